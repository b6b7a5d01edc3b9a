/**
 * Temperature scaling (eval/calibration.ts fitTemperature) on cases with a closed-form optimum, and ECE of scaled
 * logits (logitCalibration) against hand-computed values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitTemperature, logitCalibration } from '../../src/eval/calibration.ts';
import { scoreLogits } from '../../src/eval/metrics.ts';
import { ConfigError } from '../../src/errors.ts';

const close = (a: number, b: number, tol: number, what: string): void =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

/**
 * Rows with logits [m, 0, ..., 0] (k classes), a fraction p of them labelled 0 and the rest spread over the other
 * classes. The log-loss of logits / T is -p·βm + log(e^{βm} + k - 1) + const with β = 1/T; its derivative vanishes
 * where e^{βm} / (e^{βm} + k - 1) = p, so T = m / ln(p (k - 1) / (1 - p)).
 */
function oneMarginRows(
  m: number,
  k: number,
  correct: number,
  wrong: number,
): { logits: Float32Array; labels: number[] } {
  const n = correct + wrong;
  const logits = new Float32Array(n * k);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    logits[i * k] = m;
    labels.push(i < correct ? 0 : 1 + ((i - correct) % (k - 1)));
  }
  return { logits, labels };
}

test('fitTemperature: binary rows with margin 4, 3 of 4 correct: T = 4 / ln 3; predictions unchanged, log-loss lowered', () => {
  const { logits, labels } = oneMarginRows(4, 2, 3, 1);
  const T = fitTemperature(logits, labels, 2);
  close(T, 4 / Math.log(3), 1e-6, 'T'); // 3.6409569...
  const raw = scoreLogits(logits, 2, labels);
  const scaled = scoreLogits(logits, 2, labels, T);
  assert.deepEqual(scaled.predictions, raw.predictions);
  assert.equal(scaled.correct, 3);
  // Before: 0.75·ln(1 + e^-4) + 0.25·ln(1 + e^4) = 1.018150; after: the binary entropy H(0.75) = 0.562335.
  close(raw.nll / 4, 0.75 * Math.log(1 + Math.exp(-4)) + 0.25 * Math.log(1 + Math.exp(4)), 1e-6, 'NLL before');
  close(raw.nll / 4, 1.01815, 1e-5, 'NLL before (pasted)');
  close(scaled.nll / 4, 0.562335, 1e-6, 'NLL after');
});

test('fitTemperature: 3 classes, margin 3, 80% correct: T = 3 / ln 8 (an under-confident model gets T < 1)', () => {
  const { logits, labels } = oneMarginRows(3, 3, 80, 20);
  const T = fitTemperature(logits, labels, 3);
  close(T, 3 / Math.log(8), 1e-6, 'T'); // 1.442695...
  // At the optimum the scaled confidence equals the accuracy, so ECE is 0 (every row is in the same bin).
  const after = logitCalibration(logits, 3, labels, T);
  close(after.ece, 0, 1e-6, 'ECE after');
  // Unscaled confidence e^3 / (e^3 + 2) = 0.909393 against accuracy 0.8.
  close(logitCalibration(logits, 3, labels).ece, Math.exp(3) / (Math.exp(3) + 2) - 0.8, 1e-6, 'ECE before');
});

test('fitTemperature: every row correct drives T down until the log-loss is 0 in float64; bad input is refused', () => {
  const { logits, labels } = oneMarginRows(2, 3, 10, 0);
  // The loss 2·e^{-2/T} only falls as T shrinks; below T ≈ 0.054 it is 0 in float64 (a flat end of the search).
  const T = fitTemperature(logits, labels, 3);
  assert.ok(T < 0.06, `T ${T}`);
  assert.equal(scoreLogits(logits, 3, labels, T).nll, 0);
  // With the interval cut at ln T = -2 the loss is still falling there: the end of the interval.
  close(Math.log(fitTemperature(logits, labels, 3, { lnMin: -2 })), -2, 1e-6, 'ln T with lnMin -2');
  assert.throws(() => fitTemperature(new Float32Array(5), [0, 1], 3), {
    name: 'ConfigError',
    message: 'fitTemperature: 5 logits do not hold [n, 3] rows for 2 labels',
  });
  assert.throws(
    () => fitTemperature(logits, labels, 3, { lnMin: 1, lnMax: 1 }),
    (e: unknown) => e instanceof ConfigError && e.message === 'fitTemperature: empty search interval [1, 1] for ln T',
  );
});
