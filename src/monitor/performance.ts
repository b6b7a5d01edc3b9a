/**
 * Model performance in production. With feedback labels: realized accuracy and macro-F1 per window. Without:
 * NannyML's confidence-based performance estimation (CBPE) — with calibrated probabilities the expected accuracy
 * of a window is the mean probability of the predicted class, so the expected confusion matrix (and hence the
 * accuracy) is estimated without labels. As in NannyML, the probabilities are calibrated on the reference
 * (validation) set, alert thresholds are the mean ± 3 standard deviations of the realized accuracy over reference
 * chunks, and the confidence band is ± 3 sampling errors (σ of per-row correctness / √n).
 */
import { ConfigError, DataError } from '../errors.ts';
import { argmax, classificationMetrics } from '../eval/metrics.ts';

/** A monotone step function fitted by pool-adjacent-violators (isotonic regression, increasing). */
export interface Isotonic {
  /** Right ends of the fitted blocks (sorted) and their values. */
  x: number[];
  y: number[];
}

/** Isotonic (increasing) least-squares fit of y on x, scikit-learn's IsotonicRegression (out_of_bounds='clip'). */
export function fitIsotonic(x: ArrayLike<number>, y: ArrayLike<number>): Isotonic {
  const order = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  // Blocks of (sum, weight, min x, max x); ties in x are pooled first, as sklearn does.
  const blocks: Array<{ s: number; w: number; lo: number; hi: number }> = [];
  for (const i of order) {
    const last = blocks[blocks.length - 1];
    if (last && last.hi === x[i]) {
      last.s += y[i];
      last.w += 1;
    } else blocks.push({ s: y[i], w: 1, lo: x[i], hi: x[i] });
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a.s / a.w <= b.s / b.w) break;
      blocks.splice(blocks.length - 2, 2, { s: a.s + b.s, w: a.w + b.w, lo: a.lo, hi: b.hi });
    }
  }
  const xs: number[] = [];
  const ys: number[] = [];
  for (const b of blocks) {
    xs.push(b.lo, b.hi);
    ys.push(b.s / b.w, b.s / b.w);
  }
  return { x: xs, y: ys };
}

/** Evaluates an isotonic fit with linear interpolation between block ends, clipped outside (sklearn's predict). */
export function isotonicPredict(f: Isotonic, v: number): number {
  const { x, y } = f;
  if (v <= x[0]) return y[0];
  if (v >= x[x.length - 1]) return y[y.length - 1];
  let lo = 0;
  let hi = x.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (x[mid] <= v) lo = mid;
    else hi = mid;
  }
  if (x[hi] === x[lo]) return y[hi];
  return y[lo] + ((v - x[lo]) * (y[hi] - y[lo])) / (x[hi] - x[lo]);
}

export interface CbpeOptions {
  /** Rows per reference chunk. Default: a tenth of the reference (NannyML's default of 10 chunks), at least 10. */
  chunkSize?: number;
  /** Calibrate the confidence on the reference (default true when the reference has at least 100 rows). */
  calibrate?: boolean;
}

export interface CbpeModel {
  labels: string[];
  calibration: Isotonic | null;
  /** Realized accuracy on each reference chunk, and the alert limits from them. */
  referenceChunks: number[];
  mean: number;
  std: number;
  lower: number;
  upper: number;
  /** Standard deviation of per-row correctness on the reference (sampling error numerator). */
  rowStd: number;
  referenceAccuracy: number;
}

function checkProbs(probs: ArrayLike<ArrayLike<number>>, classes: number, field: string): void {
  for (let i = 0; i < probs.length; i++)
    if (probs[i].length !== classes)
      throw new DataError(`${field}[${i}] has ${probs[i].length} probabilities, expected ${classes}`, { field });
}

/** Fits CBPE on the reference: validation labels and predicted probabilities aligned with `labels`. */
export function fitCbpe(
  reference: { labels: string[]; probabilities: ArrayLike<ArrayLike<number>> },
  labels: string[],
  options: CbpeOptions = {},
): CbpeModel {
  const n = reference.labels.length;
  if (n < 2) throw new DataError(`CBPE needs at least 2 reference rows, got ${n}`, { field: 'validation' });
  if (reference.probabilities.length !== n)
    throw new DataError(`CBPE reference has ${n} labels but ${reference.probabilities.length} probability rows`, {
      field: 'validation.probabilities',
    });
  checkProbs(reference.probabilities, labels.length, 'validation.probabilities');
  const conf: number[] = [];
  const correct: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = reference.probabilities[i];
    const k = argmax(p);
    conf.push(p[k]);
    correct.push(labels[k] === reference.labels[i] ? 1 : 0);
  }
  const calibrate = options.calibrate ?? n >= 100;
  const calibration = calibrate ? fitIsotonic(conf, correct) : null;
  const chunkSize = options.chunkSize ?? Math.max(10, Math.floor(n / 10));
  if (!(chunkSize >= 1 && Number.isInteger(chunkSize)))
    throw new ConfigError(`chunkSize must be a positive integer, got ${chunkSize}`, { field: 'chunkSize' });
  const referenceChunks: number[] = [];
  for (let s = 0; s + chunkSize <= n; s += chunkSize) {
    let c = 0;
    for (let i = s; i < s + chunkSize; i++) c += correct[i];
    referenceChunks.push(c / chunkSize);
  }
  const mean = referenceChunks.reduce((a, b) => a + b, 0) / Math.max(1, referenceChunks.length);
  // Sample standard deviation (ddof = 1), as pandas' .std() in NannyML's threshold.
  const std =
    referenceChunks.length > 1
      ? Math.sqrt(referenceChunks.reduce((a, b) => a + (b - mean) ** 2, 0) / (referenceChunks.length - 1))
      : 0;
  const acc = correct.reduce((a, b) => a + b, 0) / n;
  const rowStd = Math.sqrt(correct.reduce((a, b) => a + (b - acc) ** 2, 0) / n);
  return {
    labels: [...labels],
    calibration,
    referenceChunks,
    mean,
    std,
    lower: Math.max(0, mean - 3 * std),
    upper: Math.min(1, mean + 3 * std),
    rowStd,
    referenceAccuracy: acc,
  };
}

export interface CbpeEstimate {
  count: number;
  estimatedAccuracy: number;
  /** Estimate ± 3 sampling errors. */
  band: [number, number];
  alert: boolean;
}

/** Estimated accuracy of a window of predicted probabilities. */
export function estimateAccuracy(model: CbpeModel, probabilities: ArrayLike<ArrayLike<number>>): CbpeEstimate {
  checkProbs(probabilities, model.labels.length, 'scores');
  const n = probabilities.length;
  if (n === 0) return { count: 0, estimatedAccuracy: NaN, band: [NaN, NaN], alert: false };
  let s = 0;
  for (let i = 0; i < n; i++) {
    const p = probabilities[i];
    const c = p[argmax(p)];
    s += model.calibration ? isotonicPredict(model.calibration, c) : c;
  }
  const est = s / n;
  const se = model.rowStd / Math.sqrt(n);
  return {
    count: n,
    estimatedAccuracy: est,
    band: [Math.max(0, est - 3 * se), Math.min(1, est + 3 * se)],
    alert: est < model.lower || est > model.upper,
  };
}

export interface Realized {
  count: number;
  accuracy: number;
  macroF1: number;
}

/** Realized accuracy and macro-F1 over the rows that have a feedback label (labels outside the model's set count as errors). */
export function realizedPerformance(truth: string[], predicted: string[], labels: string[]): Realized {
  if (truth.length !== predicted.length)
    throw new DataError(`${truth.length} feedback labels for ${predicted.length} predictions`, { field: 'feedback' });
  if (truth.length === 0) return { count: 0, accuracy: NaN, macroF1: NaN };
  const all = [...labels];
  const id = new Map(all.map((l, i) => [l, i]));
  const idOf = (l: string): number => {
    let k = id.get(l);
    if (k === undefined) {
      k = all.length;
      all.push(l);
      id.set(l, k);
    }
    return k;
  };
  const yTrue = truth.map(idOf);
  const yPred = predicted.map(idOf);
  const m = classificationMetrics(yTrue, yPred, all);
  return { count: truth.length, accuracy: m.accuracy, macroF1: m.macroF1 };
}
