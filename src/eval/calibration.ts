/**
 * Expected calibration error (Guo et al., 2017): confidences (max probability) binned into equal-width bins
 * (lo, hi]; ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b|. A confidence of exactly 0 goes in the
 * first bin.
 */
import { ConfigError } from '../errors.ts';
import { argmax, scoreLogits, softmax } from './metrics.ts';

export interface ReliabilityBin {
  lower: number;
  upper: number;
  count: number;
  /** NaN for an empty bin. */
  accuracy: number;
  confidence: number;
  /** |accuracy − confidence|, 0 for an empty bin. */
  gap: number;
}

export interface CalibrationResult {
  ece: number;
  /** Largest gap over non-empty bins (maximum calibration error). */
  mce: number;
  bins: ReliabilityBin[];
}

/** ECE and reliability table from per-example confidence and correctness. */
export function calibrationFromConfidence(
  confidence: ArrayLike<number>,
  correct: ArrayLike<boolean | number>,
  numBins = 15,
): CalibrationResult {
  if (!Number.isInteger(numBins) || numBins < 1)
    throw new ConfigError(`numBins must be a positive integer, got ${numBins}`, { field: 'calibrationBins' });
  if (confidence.length !== correct.length)
    throw new ConfigError('confidence and correct differ in length', { field: 'confidence' });
  const count = new Array<number>(numBins).fill(0);
  const hits = new Array<number>(numBins).fill(0);
  const conf = new Array<number>(numBins).fill(0);
  for (let i = 0; i < confidence.length; i++) {
    const c = confidence[i];
    if (!(c >= 0 && c <= 1))
      throw new ConfigError(`confidence[${i}] = ${c} is not a probability`, { field: 'scores', value: String(c) });
    // c * numBins can land just above an integer (0.3 * 10 = 3.0000000000000004); compare against the
    // bin edges themselves so a value equal to an edge goes in the bin it closes.
    let b = Math.min(numBins - 1, Math.max(0, Math.ceil(c * numBins) - 1));
    if (b > 0 && c <= b / numBins) b--;
    else if (b < numBins - 1 && c > (b + 1) / numBins) b++;
    count[b]++;
    conf[b] += c;
    if (correct[i]) hits[b]++;
  }
  const n = confidence.length;
  let ece = 0;
  let mce = 0;
  const bins: ReliabilityBin[] = [];
  for (let b = 0; b < numBins; b++) {
    const acc = count[b] > 0 ? hits[b] / count[b] : NaN;
    const mc = count[b] > 0 ? conf[b] / count[b] : NaN;
    const gap = count[b] > 0 ? Math.abs(acc - mc) : 0;
    if (n > 0) ece += (count[b] / n) * gap;
    mce = Math.max(mce, gap);
    bins.push({ lower: b / numBins, upper: (b + 1) / numBins, count: count[b], accuracy: acc, confidence: mc, gap });
  }
  return { ece, mce, bins };
}

/** ECE from probability rows and true class ids (prediction = argmax). */
export function expectedCalibrationError(
  probs: ArrayLike<ArrayLike<number>>,
  yTrue: ArrayLike<number>,
  numBins = 15,
): CalibrationResult {
  const confidence: number[] = [];
  const correct: boolean[] = [];
  for (let i = 0; i < probs.length; i++) {
    const p = argmax(probs[i]);
    confidence.push(probs[i][p]);
    correct.push(p === yTrue[i]);
  }
  return calibrationFromConfidence(confidence, correct, numBins);
}

/** ECE of row-major logits [n, classes] divided by `temperature` (softmax, then `expectedCalibrationError`). */
export function logitCalibration(
  logits: ArrayLike<number>,
  classes: number,
  yTrue: ArrayLike<number>,
  temperature = 1,
  numBins = 15,
): CalibrationResult {
  const probs: number[][] = [];
  const row = new Float64Array(classes);
  for (let i = 0; i < yTrue.length; i++) {
    for (let c = 0; c < classes; c++) row[c] = logits[i * classes + c] / temperature;
    probs.push(softmax(row));
  }
  return expectedCalibrationError(probs, yTrue, numBins);
}

export interface TemperatureSearch {
  /** Search interval of ln T (default [-8, 4]: T from 3.4e-4 to 55). */
  lnMin?: number;
  lnMax?: number;
}

/**
 * Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks"): the one scalar T > 0 that
 * minimises the mean log-loss of logits / T on held-out rows (`logits` [n, classes] row-major, `labels` class ids).
 * Dividing by T changes no prediction. The loss is convex in 1/T, hence unimodal in ln T: golden-section search on
 * ln T, 60 steps (the interval shrinks to ~1e-11 of its width). Rows that are all correct and ever more confident
 * with a smaller T (a separable split) drive T to the interval's lower end.
 */
export function fitTemperature(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
  opts: TemperatureSearch = {},
): number {
  if (labels.length === 0 || logits.length !== labels.length * classes)
    throw new ConfigError(
      `fitTemperature: ${logits.length} logits do not hold [n, ${classes}] rows for ${labels.length} labels`,
      { field: 'logits', value: String(logits.length) },
    );
  let lo = opts.lnMin ?? -8;
  let hi = opts.lnMax ?? 4;
  if (!(lo < hi))
    throw new ConfigError(`fitTemperature: empty search interval [${lo}, ${hi}] for ln T`, {
      field: 'lnMin',
      value: String(lo),
    });
  const g = (Math.sqrt(5) - 1) / 2;
  const f = (u: number): number => scoreLogits(logits, classes, labels, Math.exp(u)).nll;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = f(a);
  let fb = f(b);
  for (let it = 0; it < 60; it++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - g * (hi - lo);
      fa = f(a);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + g * (hi - lo);
      fb = f(b);
    }
  }
  return Math.exp((lo + hi) / 2);
}
