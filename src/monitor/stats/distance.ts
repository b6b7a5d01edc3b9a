/**
 * Distribution distances with Evidently's definitions, so thresholds carry over: normed Wasserstein
 * (scipy.stats.wasserstein_distance / max(std_ref, 0.001)), and the binned PSI, KL divergence, Jensen–Shannon
 * distance and Hellinger distance over Evidently's `get_binned_data` bins (numeric columns with more than 20
 * distinct reference values: Sturges bins over both samples, as numpy.histogram_bin_edges; otherwise one bin per
 * category). Small and exact enough to write here; the bin edges follow numpy's rules.
 */
import { ConfigError } from '../../errors.ts';

/** A value of a column: numbers for numeric columns, strings (or numbers treated as labels) for categorical. */
export type Value = number | string;

function checkNonEmpty(name: string, n: number): void {
  if (n === 0) throw new ConfigError(`${name} is empty`, { field: name });
}

/** Population standard deviation (numpy's default ddof = 0). */
export function stdPopulation(values: ArrayLike<number>): number {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) ** 2;
  return Math.sqrt(ss / n);
}

/** First Wasserstein distance between two 1-D empirical distributions (scipy.stats.wasserstein_distance). */
export function wasserstein(u: ArrayLike<number>, v: ArrayLike<number>): number {
  checkNonEmpty('reference', u.length);
  checkNonEmpty('current', v.length);
  const a = Float64Array.from(u).sort();
  const b = Float64Array.from(v).sort();
  let i = 0;
  let j = 0;
  let dist = 0;
  let x = Math.min(a[0], b[0]);
  // Walk the merged values; between consecutive points both CDFs are constant.
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i] <= b[j]) ? a[i] : b[j];
    dist += Math.abs(i / a.length - j / b.length) * (next - x);
    x = next;
    while (i < a.length && a[i] === next) i++;
    while (j < b.length && b[j] === next) j++;
  }
  return dist;
}

/** Evidently's normed Wasserstein distance: W1 divided by the reference's standard deviation (at least 0.001). */
export function normedWasserstein(reference: ArrayLike<number>, current: ArrayLike<number>): number {
  return wasserstein(reference, current) / Math.max(stdPopulation(reference), 0.001);
}

/** Sturges bin edges over the values (numpy.histogram_bin_edges(values, bins='sturges')). */
export function sturgesEdges(values: ArrayLike<number>): number[] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  let width = (hi - lo) / (Math.log2(values.length) + 1);
  // numpy widens bins to 1 for integer arrays; pandas gives integer columns (lengths, counts) that dtype.
  let integer = true;
  for (let i = 0; i < values.length && integer; i++) integer = Number.isInteger(values[i]);
  if (integer && width < 1) width = 1;
  const bins = Math.max(1, Math.ceil((hi - lo) / width));
  // numpy.linspace: start + k·step, the last edge set exactly.
  const step = (hi - lo) / bins;
  const edges: number[] = [];
  for (let k = 0; k < bins; k++) edges.push(lo + k * step);
  edges.push(hi);
  return edges;
}

/** Share of values in each bin, numpy.histogram's convention: half-open bins, the last one closed. */
export function histogramShares(values: ArrayLike<number>, edges: number[]): number[] {
  const bins = edges.length - 1;
  const counts = new Array<number>(bins).fill(0);
  const lo = edges[0];
  const hi = edges[bins];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo || v > hi) continue;
    let k = v === hi ? bins - 1 : Math.floor(((v - lo) / (hi - lo)) * bins);
    // Correct the floating-point bin index against the actual edges, as numpy does.
    if (k < bins - 1 && v >= edges[k + 1]) k++;
    if (k > 0 && v < edges[k]) k--;
    counts[k]++;
  }
  return counts.map((c) => c / values.length);
}

export type ColumnKind = 'numeric' | 'categorical';

export interface Binned {
  /** Bin labels: category names, or "[lo, hi)" ranges. */
  bins: string[];
  reference: number[];
  current: number[];
}

function distinct(values: ArrayLike<Value>): number {
  return new Set(Array.from(values)).size;
}

/**
 * Evidently's get_binned_data: shares per bin of reference and current. With `fillZeros`, empty bins get a
 * small share (min non-zero share / 10⁶ if that minimum is ≤ 0.0001, else 0.0001) so logarithms stay finite.
 */
export function binnedShares(
  reference: ArrayLike<Value>,
  current: ArrayLike<Value>,
  kind: ColumnKind,
  fillZeros: boolean,
): Binned {
  checkNonEmpty('reference', reference.length);
  checkNonEmpty('current', current.length);
  let out: Binned;
  if (kind === 'numeric' && distinct(reference) > 20) {
    const r = Array.from(reference, Number);
    const c = Array.from(current, Number);
    const edges = sturgesEdges([...r, ...c]);
    out = {
      bins: edges.slice(0, -1).map((e, k) => `[${fmt(e)}, ${fmt(edges[k + 1])})`),
      reference: histogramShares(r, edges),
      current: histogramShares(c, edges),
    };
  } else {
    // Sorted so plots read in order; Evidently's key order (a Python set) is arbitrary and sums do not depend on it.
    const keys = [...new Set([...Array.from(reference), ...Array.from(current)])].sort(compareValues);
    const rc = countBy(reference);
    const cc = countBy(current);
    out = {
      bins: keys.map(String),
      reference: keys.map((k) => (rc.get(k) ?? 0) / reference.length),
      current: keys.map((k) => (cc.get(k) ?? 0) / current.length),
    };
  }
  if (fillZeros) {
    out.reference = fillEmpty(out.reference);
    out.current = fillEmpty(out.current);
  }
  return out;
}

/** Numbers before strings, numbers ascending, strings in code-unit order. */
export function compareValues(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function fmt(x: number): string {
  return Number(x.toPrecision(4)).toString();
}

export function countBy<T>(values: ArrayLike<T>): Map<T, number> {
  const m = new Map<T, number>();
  for (let i = 0; i < values.length; i++) m.set(values[i], (m.get(values[i]) ?? 0) + 1);
  return m;
}

function fillEmpty(shares: number[]): number[] {
  const nonZero = shares.filter((s) => s !== 0);
  if (nonZero.length === shares.length || nonZero.length === 0) return shares;
  const min = Math.min(...nonZero);
  const fill = min <= 0.0001 ? min / 1e6 : 0.0001;
  return shares.map((s) => (s === 0 ? fill : s));
}

/** Population stability index Σ (ref − cur)·ln(ref / cur) over shares (Evidently's psi). */
export function psiFromShares(ref: number[], cur: number[]): number {
  let s = 0;
  for (let k = 0; k < ref.length; k++) s += (ref[k] - cur[k]) * Math.log(ref[k] / cur[k]);
  return s;
}

function normalise(p: number[]): number[] {
  const t = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / t);
}

/** KL(ref ‖ cur) in nats, both renormalised (scipy.stats.entropy(ref, cur)). */
export function klFromShares(ref: number[], cur: number[]): number {
  const p = normalise(ref);
  const q = normalise(cur);
  let s = 0;
  for (let k = 0; k < p.length; k++) if (p[k] > 0) s += p[k] * Math.log(p[k] / q[k]);
  return s;
}

/** Jensen–Shannon distance, natural log (scipy.spatial.distance.jensenshannon). */
export function jsFromShares(ref: number[], cur: number[]): number {
  const p = normalise(ref);
  const q = normalise(cur);
  let s = 0;
  for (let k = 0; k < p.length; k++) {
    const m = (p[k] + q[k]) / 2;
    if (p[k] > 0) s += p[k] * Math.log(p[k] / m);
    if (q[k] > 0) s += q[k] * Math.log(q[k] / m);
  }
  return Math.sqrt(Math.max(0, s / 2));
}

/** Hellinger distance √(Σ(√p − √q)²)/√2, in [0, 1]. */
export function hellingerFromShares(ref: number[], cur: number[]): number {
  let s = 0;
  for (let k = 0; k < ref.length; k++) s += (Math.sqrt(ref[k]) - Math.sqrt(cur[k])) ** 2;
  return Math.sqrt(s) / Math.SQRT2;
}

/** PSI on Evidently's bins (zeros filled). */
export function psi(reference: ArrayLike<Value>, current: ArrayLike<Value>, kind: ColumnKind): number {
  const b = binnedShares(reference, current, kind, true);
  return psiFromShares(b.reference, b.current);
}

/** KL divergence on Evidently's bins (zeros filled). */
export function klDivergence(reference: ArrayLike<Value>, current: ArrayLike<Value>, kind: ColumnKind): number {
  const b = binnedShares(reference, current, kind, true);
  return klFromShares(b.reference, b.current);
}

/** Jensen–Shannon distance on Evidently's bins (zeros kept). */
export function jensenShannon(reference: ArrayLike<Value>, current: ArrayLike<Value>, kind: ColumnKind): number {
  const b = binnedShares(reference, current, kind, false);
  return jsFromShares(b.reference, b.current);
}

/** Hellinger distance on Evidently's bins (zeros kept). */
export function hellinger(reference: ArrayLike<Value>, current: ArrayLike<Value>, kind: ColumnKind): number {
  const b = binnedShares(reference, current, kind, false);
  return hellingerFromShares(b.reference, b.current);
}
