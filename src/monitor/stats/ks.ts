/**
 * Two-sample Kolmogorov–Smirnov test, two-sided, as scipy.stats.ks_2samp(method='auto') computes it (Evidently's
 * numeric test for small references). The statistic is kept as an integer on the n·m lattice so ties and the
 * "outside the band" comparison are exact. No maintained npm library has the two-sample exact distribution
 * (@stdlib/stats-kstest is one-sample), so the p-value is written here: an exact lattice-path probability when
 * it is affordable, else the Kolmogorov limit with Stephens' small-sample correction.
 */
import { ConfigError } from '../../errors.ts';

export interface KsResult {
  /** sup |F_ref − F_cur|. */
  statistic: number;
  pValue: number;
  method: 'exact' | 'asymptotic';
}

/** Largest lattice band (cells visited) the exact p-value will walk; beyond it the asymptotic form is used. */
const EXACT_CELL_LIMIT = 5e7;

function sortedFinite(name: string, values: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(values);
  for (let i = 0; i < out.length; i++)
    if (!Number.isFinite(out[i]))
      throw new ConfigError(`${name}[${i}] = ${out[i]} is not a finite number`, {
        field: name,
        value: String(out[i]),
      });
  if (out.length === 0) throw new ConfigError(`${name} is empty`, { field: name });
  return out.sort();
}

/** max |c1·n2 − c2·n1| over every value, i.e. D·n1·n2 as an integer. */
function latticeStatistic(a: Float64Array, b: Float64Array): number {
  const n1 = a.length;
  const n2 = b.length;
  let i = 0;
  let j = 0;
  let best = 0;
  while (i < n1 || j < n2) {
    const v = j >= n2 || (i < n1 && a[i] <= b[j]) ? a[i] : b[j];
    while (i < n1 && a[i] === v) i++;
    while (j < n2 && b[j] === v) j++;
    best = Math.max(best, Math.abs(i * n2 - j * n1));
  }
  return best;
}

/**
 * P(D ≥ d) under H0 by walking the random interleaving of the two samples: the probability mass that stays
 * strictly inside |i·n2 − j·n1| < h, then its complement. Banded, so the cost is about n1 · 2h/n1 · … cells.
 */
function exactPValue(n1: number, n2: number, h: number): number {
  let prev = new Float64Array(n2 + 1);
  let cur = new Float64Array(n2 + 1);
  // Row i = 0: only j with |−j·n1| < h are inside.
  prev[0] = 1;
  for (let j = 1; j <= n2 && j * n1 < h; j++) prev[j] = (prev[j - 1] * (n2 - j + 1)) / (n1 + n2 - j + 1);
  let lo = 0;
  let hi = Math.min(n2, Math.ceil(h / n1) - 1);
  for (let i = 1; i <= n1; i++) {
    const nlo = Math.max(0, Math.floor((i * n2 - h) / n1) + 1);
    const nhi = Math.min(n2, Math.ceil((i * n2 + h) / n1) - 1);
    if (nhi < nlo) return 1;
    for (let j = nlo; j <= nhi; j++) {
      // From (i−1, j) by an x-step, from (i, j−1) by a y-step; each step's probability is the share of the
      // remaining items of that sample.
      let p = 0;
      if (j >= lo && j <= hi) p += (prev[j] * (n1 - i + 1)) / (n1 + n2 - i + 1 - j);
      if (j > nlo) p += (cur[j - 1] * (n2 - j + 1)) / (n1 + n2 - i - j + 1);
      cur[j] = p;
    }
    const t = prev;
    prev = cur;
    cur = t;
    lo = nlo;
    hi = nhi;
  }
  return Math.min(1, Math.max(0, 1 - prev[n2]));
}

/** Survival function of the Kolmogorov distribution, Q(λ) = 2 Σ (−1)^(k−1) exp(−2k²λ²). */
export function kolmogorovSf(lambda: number): number {
  if (lambda <= 0) return 1;
  if (lambda < 1.18) {
    // The alternating series converges slowly for small λ; use the Jacobi-theta form of the CDF instead.
    const y = Math.exp((-Math.PI * Math.PI) / (8 * lambda * lambda));
    let s = 0;
    for (let k = 1; k <= 9; k += 2) s += Math.pow(y, k * k);
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / lambda) * s));
  }
  let s = 0;
  for (let k = 1; k <= 100; k++) {
    const term = Math.exp(-2 * k * k * lambda * lambda);
    s += (k % 2 === 1 ? 1 : -1) * term;
    if (term < 1e-300) break;
  }
  return Math.min(1, Math.max(0, 2 * s));
}

/** Two-sided two-sample Kolmogorov–Smirnov test. */
export function ksTest(reference: ArrayLike<number>, current: ArrayLike<number>): KsResult {
  const a = sortedFinite('reference', reference);
  const b = sortedFinite('current', current);
  const n1 = a.length;
  const n2 = b.length;
  const h = latticeStatistic(a, b);
  const statistic = h / (n1 * n2);
  if (h === 0) return { statistic: 0, pValue: 1, method: 'exact' };
  const band = Math.min(n2 + 1, (2 * h) / n1 + 2) * n1;
  if (Math.max(n1, n2) <= 10000 && band <= EXACT_CELL_LIMIT) {
    return { statistic, pValue: exactPValue(n1, n2, h), method: 'exact' };
  }
  const en = Math.sqrt((n1 * n2) / (n1 + n2));
  return { statistic, pValue: kolmogorovSf((en + 0.12 + 0.11 / en) * statistic), method: 'asymptotic' };
}
