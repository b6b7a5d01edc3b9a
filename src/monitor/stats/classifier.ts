/**
 * Domain-classifier drift (Evidently's text and embedding default): label reference rows 0 and current rows 1,
 * split the pool in half (seeded shuffle), fit a logistic regression on one half and score ROC AUC on the other.
 * Drift when the AUC exceeds 0.55 for a reference of more than 1,000 rows, otherwise when it exceeds the 95th
 * percentile of the AUC a random classifier gets on the same test labels. The logistic regression is a small
 * L2-regularised full-batch fit on sparse rows (bag-of-words or dense embeddings), written here because the
 * project's own linear head is a ridge classifier and a probability-free score is all the AUC needs.
 */
import { ConfigError } from '../../errors.ts';
import { createRng } from '../../util/rng.ts';

/** A sparse feature row: parallel index and value arrays. */
export interface SparseRow {
  indices: Int32Array;
  values: Float64Array;
}

/** Dense rows as sparse rows (every component). */
export function denseToSparse(rows: ArrayLike<ArrayLike<number>>): SparseRow[] {
  return Array.from(rows, (r) => ({
    indices: Int32Array.from({ length: r.length }, (_, i) => i),
    values: Float64Array.from(r),
  }));
}

/**
 * ROC AUC by the Mann–Whitney rank sum, ties given their average rank (scikit-learn's roc_auc_score).
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = labels.length;
  if (scores.length !== n)
    throw new ConfigError(`rocAuc needs one score per label (${n}), got ${scores.length}`, { field: 'scores' });
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const rank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) if (labels[order[k]] === 1) rankSum += rank;
    i = j + 1;
  }
  for (let i = 0; i < n; i++) if (labels[i] === 1) pos++;
  const neg = n - pos;
  if (pos === 0 || neg === 0) throw new ConfigError('rocAuc needs both classes among the labels', { field: 'labels' });
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

export interface LogisticOptions {
  /** L2 strength on the weights (not the bias). Default 1e-3. */
  l2?: number;
  /** Full-batch iterations. Default 300. */
  iterations?: number;
}

export interface LogisticModel {
  weights: Float64Array;
  bias: number;
}

/** Binary logistic regression fitted with Adam on the mean log-loss; deterministic (no sampling). */
export function fitLogistic(
  rows: SparseRow[],
  labels: ArrayLike<number>,
  dim: number,
  options: LogisticOptions = {},
): LogisticModel {
  const l2 = options.l2 ?? 1e-3;
  const iterations = options.iterations ?? 300;
  const w = new Float64Array(dim);
  const gw = new Float64Array(dim);
  const m = new Float64Array(dim + 1);
  const v = new Float64Array(dim + 1);
  let b = 0;
  const lr = 0.05;
  const n = rows.length;
  for (let t = 1; t <= iterations; t++) {
    gw.fill(0);
    let gb = 0;
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      let z = b;
      for (let k = 0; k < r.indices.length; k++) z += w[r.indices[k]] * r.values[k];
      const err = 1 / (1 + Math.exp(-z)) - labels[i];
      gb += err;
      for (let k = 0; k < r.indices.length; k++) gw[r.indices[k]] += err * r.values[k];
    }
    const c1 = 1 - 0.9 ** t;
    const c2 = 1 - 0.999 ** t;
    for (let j = 0; j <= dim; j++) {
      const g = j < dim ? gw[j] / n + l2 * w[j] : gb / n;
      m[j] = 0.9 * m[j] + 0.1 * g;
      v[j] = 0.999 * v[j] + 0.001 * g * g;
      const step = (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + 1e-8);
      if (j < dim) w[j] -= step;
      else b -= step;
    }
  }
  return { weights: w, bias: b };
}

/** Decision values of a fitted model. */
export function logisticScores(model: LogisticModel, rows: SparseRow[]): Float64Array {
  return Float64Array.from(rows, (r) => {
    let z = model.bias;
    for (let k = 0; k < r.indices.length; k++) z += model.weights[r.indices[k]] * r.values[k];
    return z;
  });
}

export interface DomainClassifierOptions {
  seed?: number | string;
  /** Fixed AUC threshold used when the reference has more than `largeReference` rows. Default 0.55. */
  threshold?: number;
  /** Reference size above which the fixed threshold applies. Default 1000. */
  largeReference?: number;
  /** Random-classifier draws for the small-reference threshold. Default 1000. */
  randomDraws?: number;
  logistic?: LogisticOptions;
}

export interface DomainClassifierResult {
  auc: number;
  /** The AUC the classifier had to exceed. */
  threshold: number;
  method: 'fixed' | 'random-classifier-p95';
  drift: boolean;
  /** Test-half rows (indices into reference ++ current) ordered from most to least "current-looking". */
  mostCurrentLike: number[];
}

/** The 95th percentile (numpy linear interpolation) of the AUC a random scorer gets on `labels`. */
export function randomClassifierAucP95(labels: ArrayLike<number>, draws: number, seed: number | string): number {
  const rng = createRng(seed);
  const aucs = new Float64Array(draws);
  const s = new Float64Array(labels.length);
  for (let d = 0; d < draws; d++) {
    for (let i = 0; i < s.length; i++) s[i] = rng.next();
    aucs[d] = rocAuc(labels, s);
  }
  aucs.sort();
  const h = (draws - 1) * 0.95;
  const lo = Math.floor(h);
  return aucs[lo] + (h - lo) * (aucs[Math.min(draws - 1, lo + 1)] - aucs[lo]);
}

/** Domain-classifier drift between feature rows of the reference and the current window. */
export function domainClassifierDrift(
  reference: SparseRow[],
  current: SparseRow[],
  dim: number,
  options: DomainClassifierOptions = {},
): DomainClassifierResult {
  if (reference.length < 2 || current.length < 2)
    throw new ConfigError(
      `domain classifier needs at least 2 rows on each side, got ${reference.length} and ${current.length}`,
      { field: reference.length < 2 ? 'reference' : 'current' },
    );
  const seed = options.seed ?? 42;
  const rng = createRng(seed);
  const all = [...reference, ...current];
  const labels = all.map((_, i) => (i < reference.length ? 0 : 1));
  // Split each side in half so both halves hold both classes.
  const refIdx = rng.shuffle(Array.from({ length: reference.length }, (_, i) => i));
  const curIdx = rng.shuffle(Array.from({ length: current.length }, (_, i) => reference.length + i));
  const train = [...refIdx.slice(0, refIdx.length >> 1), ...curIdx.slice(0, curIdx.length >> 1)];
  const test = [...refIdx.slice(refIdx.length >> 1), ...curIdx.slice(curIdx.length >> 1)];
  const model = fitLogistic(
    train.map((i) => all[i]),
    train.map((i) => labels[i]),
    dim,
    options.logistic,
  );
  const scores = logisticScores(
    model,
    test.map((i) => all[i]),
  );
  const testLabels = test.map((i) => labels[i]);
  const auc = rocAuc(testLabels, scores);
  const large = reference.length > (options.largeReference ?? 1000);
  const threshold = large
    ? (options.threshold ?? 0.55)
    : randomClassifierAucP95(testLabels, options.randomDraws ?? 1000, `${seed}:random`);
  const order = test
    .map((row, k) => ({ row, s: scores[k] }))
    .filter((x) => x.row >= reference.length)
    .sort((a, b) => b.s - a.s)
    .map((x) => x.row);
  return {
    auc,
    threshold,
    method: large ? 'fixed' : 'random-classifier-p95',
    drift: auc > threshold,
    mostCurrentLike: order,
  };
}
