/**
 * Classification metrics with scikit-learn's definitions: per-class precision/recall/F1, macro (unweighted
 * mean over classes), weighted (mean weighted by support) and micro (from global TP/FP/FN, equal to accuracy
 * for single-label multi-class). Zero denominators give 0, as sklearn's zero_division default does.
 */
import { ConfigError } from '../errors.ts';

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of true examples of this class. */
  support: number;
}

export interface ClassificationMetrics {
  accuracy: number;
  macroPrecision: number;
  macroRecall: number;
  macroF1: number;
  weightedF1: number;
  microF1: number;
  perClass: ClassMetrics[];
  /** confusion[t][p]: examples of true class t predicted as p. */
  confusion: number[][];
  count: number;
}

function checkLabels(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, numClasses: number): void {
  if (yTrue.length !== yPred.length) {
    throw new ConfigError(`yTrue has ${yTrue.length} entries but yPred has ${yPred.length}`, { field: 'yPred' });
  }
  for (const [name, arr] of [
    ['yTrue', yTrue],
    ['yPred', yPred],
  ] as const) {
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
        throw new ConfigError(`${name}[${i}] = ${v} is not a class id in [0, ${numClasses})`, {
          field: name,
          value: String(v),
        });
      }
    }
  }
}

/** Confusion matrix, rows = true class, columns = predicted class. */
export function confusionMatrix(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, numClasses: number): number[][] {
  checkLabels(yTrue, yPred, numClasses);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) m[yTrue[i]][yPred[i]]++;
  return m;
}

const div = (a: number, b: number): number => (b === 0 ? 0 : a / b);

/**
 * All headline metrics from a confusion matrix. Macro averages run over the classes that occur in yTrue or
 * yPred (sklearn's default label set), so a class absent from this eval set does not drag the mean to 0.
 */
export function metricsFromConfusion(confusion: number[][], labels: string[]): ClassificationMetrics {
  const k = confusion.length;
  let total = 0;
  let correct = 0;
  const perClass: ClassMetrics[] = [];
  const present: boolean[] = [];
  for (let c = 0; c < k; c++) {
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < k; j++) {
      support += confusion[c][j];
      predicted += confusion[j][c];
    }
    const tp = confusion[c][c];
    total += support;
    correct += tp;
    const precision = div(tp, predicted);
    const recall = div(tp, support);
    const f1 = div(2 * tp, support + predicted);
    perClass.push({ label: labels[c] ?? String(c), precision, recall, f1, support });
    present.push(support + predicted > 0);
  }
  const used = perClass.filter((_, c) => present[c]);
  const mean = (f: (m: ClassMetrics) => number): number =>
    div(
      used.reduce((s, m) => s + f(m), 0),
      used.length,
    );
  const accuracy = div(correct, total);
  return {
    accuracy,
    macroPrecision: mean((m) => m.precision),
    macroRecall: mean((m) => m.recall),
    macroF1: mean((m) => m.f1),
    weightedF1: div(
      perClass.reduce((s, m) => s + m.f1 * m.support, 0),
      total,
    ),
    // Each error is one FP and one FN, so micro P = micro R = micro F1 = accuracy.
    microF1: accuracy,
    perClass,
    confusion,
    count: total,
  };
}

/** Metrics from class-id predictions. */
export function classificationMetrics(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  labels: string[],
): ClassificationMetrics {
  return metricsFromConfusion(confusionMatrix(yTrue, yPred, labels.length), labels);
}

/** Index of the largest score (first on ties). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

/**
 * Top-k accuracy: the true class counts as found when fewer than k classes score strictly higher than it
 * (ties resolved in the model's favour; with distinct scores this is the usual definition).
 */
export function topKAccuracy(scores: ArrayLike<ArrayLike<number>>, yTrue: ArrayLike<number>, k: number): number {
  if (scores.length !== yTrue.length)
    throw new ConfigError(`scores has ${scores.length} rows but yTrue has ${yTrue.length}`, { field: 'scores' });
  if (!Number.isInteger(k) || k < 1)
    throw new ConfigError(`top-k needs a positive integer k, got ${k}`, { field: 'topK' });
  let hits = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const row = scores[i];
    const s = row[yTrue[i]];
    let higher = 0;
    for (let j = 0; j < row.length; j++) if (row[j] > s) higher++;
    if (higher < k) hits++;
  }
  return div(hits, yTrue.length);
}

/** Row-wise softmax, numerically stable; for models that output logits. */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) max = Math.max(max, logits[j]);
  const out = new Array<number>(logits.length);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) {
    out[j] = Math.exp(logits[j] - max);
    sum += out[j];
  }
  for (let j = 0; j < out.length; j++) out[j] /= sum;
  return out;
}

/**
 * Predictions and log-loss of row-major logits [n, classes] against labels: argmax per row, the number correct and
 * the summed negative log-likelihood (log-sum-exp shifted by the row's maximum, so large logits do not overflow).
 * With `temperature` T the log-loss is that of logits / T (temperature scaling; the predictions do not change).
 */
export function scoreLogits(
  logits: ArrayLike<number>,
  classes: number,
  labels: ArrayLike<number>,
  temperature = 1,
): { predictions: number[]; correct: number; nll: number } {
  const inv = 1 / temperature;
  const n = labels.length;
  const predictions = new Array<number>(n);
  let correct = 0;
  let nll = 0;
  for (let i = 0; i < n; i++) {
    const o = i * classes;
    let a = 0;
    for (let c = 1; c < classes; c++) if (logits[o + c] > logits[o + a]) a = c;
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(inv * (logits[o + c] - logits[o + a]));
    nll += Math.log(z) - inv * (logits[o + Number(labels[i])] - logits[o + a]);
    predictions[i] = a;
    if (a === Number(labels[i])) correct++;
  }
  return { predictions, correct, nll };
}
