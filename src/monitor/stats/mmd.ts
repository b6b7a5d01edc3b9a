/**
 * Maximum mean discrepancy drift test as Alibi Detect's MMDDrift runs it: Gaussian RBF kernel
 * k(x, y) = exp(−‖x − y‖² / (2σ²)) with σ from the median heuristic on the reference (σ = √(median/2) over the
 * reference's off-diagonal squared distances), the unbiased MMD² estimate (zero kernel diagonal), and a
 * permutation p-value: the share of `permutations` (100) random relabellings whose MMD² is at least the observed.
 * Written here: no maintained npm library implements it.
 */
import { ConfigError } from '../../errors.ts';
import { createRng } from '../../util/rng.ts';

export interface MmdOptions {
  /** Number of permutations for the p-value (Alibi Detect: 100). */
  permutations?: number;
  /** Kernel bandwidth; default from the median heuristic on the reference. */
  sigma?: number;
  seed?: number | string;
}

export interface MmdResult {
  /** Unbiased MMD² estimate. */
  mmd2: number;
  pValue: number;
  sigma: number;
  permutations: number;
}

type Rows = ArrayLike<ArrayLike<number>>;

function checkRows(name: string, rows: Rows, dim: number): void {
  if (rows.length < 2) throw new ConfigError(`${name} needs at least 2 rows, got ${rows.length}`, { field: name });
  for (let i = 0; i < rows.length; i++)
    if (rows[i].length !== dim)
      throw new ConfigError(`${name}[${i}] has ${rows[i].length} components, expected ${dim}`, {
        field: name,
        value: String(rows[i].length),
      });
}

function sqDist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) {
    const d = a[k] - b[k];
    s += d * d;
  }
  return s;
}

/** Alibi Detect's sigma_median on the reference alone: √(0.5 · the median off-diagonal squared distance). */
export function medianHeuristicSigma(reference: Rows): number {
  const n = reference.length;
  const d: number[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) d.push(sqDist(reference[i], reference[j]));
  d.sort((a, b) => a - b);
  // Alibi takes index n + (n² − n)//2 − 1 of all n² sorted distances, whose first n are the zero diagonal.
  return Math.sqrt(0.5 * d[Math.floor((n * n - n) / 2) - 1]);
}

/**
 * Unbiased MMD² for the split given by `g` (1 = reference, 0 = current) from a kernel matrix with a zero diagonal.
 * With r = K·g: Σ_XX = gᵀr, Σ_YX = (1−g)ᵀr, Σ_YY = ΣK − Σ_XX − 2Σ_YX; one contiguous pass over K per split.
 */
function mmd2FromKernel(k: Float64Array, total: number, g: Float64Array, n: number, sumAll: number): number {
  const m = total - n;
  let xx = 0;
  let xy = 0;
  for (let a = 0; a < total; a++) {
    const row = a * total;
    let r = 0;
    for (let b = 0; b < total; b++) r += k[row + b] * g[b];
    if (g[a] === 1) xx += r;
    else xy += r;
  }
  const yy = sumAll - xx - 2 * xy;
  return xx / (n * (n - 1)) + yy / (m * (m - 1)) - (2 * xy) / (n * m);
}

/** MMD two-sample test with a permutation p-value. */
export function mmdTest(reference: Rows, current: Rows, options: MmdOptions = {}): MmdResult {
  const dim = reference.length ? reference[0].length : 0;
  checkRows('reference', reference, dim);
  checkRows('current', current, dim);
  const permutations = options.permutations ?? 100;
  const sigma = options.sigma ?? medianHeuristicSigma(reference);
  if (!(sigma > 0)) throw new ConfigError(`MMD kernel bandwidth must be positive, got ${sigma}`, { field: 'sigma' });
  const n = reference.length;
  const total = n + current.length;
  const all = [...Array.from(reference), ...Array.from(current)];
  const k = new Float64Array(total * total);
  const gamma = 1 / (2 * sigma * sigma);
  for (let a = 0; a < total; a++)
    for (let b = a + 1; b < total; b++) {
      const v = Math.exp(-gamma * sqDist(all[a], all[b]));
      k[a * total + b] = v;
      k[b * total + a] = v;
    }
  let sumAll = 0;
  for (let i = 0; i < k.length; i++) sumAll += k[i];
  const g = Float64Array.from({ length: total }, (_, i) => (i < n ? 1 : 0));
  const mmd2 = mmd2FromKernel(k, total, g, n, sumAll);
  // A permutation relabels which rows count as reference, as Alibi's permuted kernel matrix does.
  const rng = createRng(options.seed ?? 0);
  let atLeast = 0;
  const labels = Array.from(g);
  for (let p = 0; p < permutations; p++) {
    rng.shuffle(labels);
    if (mmd2FromKernel(k, total, Float64Array.from(labels), n, sumAll) >= mmd2) atLeast++;
  }
  return { mmd2, pValue: permutations ? atLeast / permutations : NaN, sigma, permutations };
}
