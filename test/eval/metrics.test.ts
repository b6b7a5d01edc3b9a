import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { classificationMetrics, confusionMatrix, softmax, topKAccuracy } from '../../src/eval/metrics.ts';
import { calibrationFromConfidence, expectedCalibrationError } from '../../src/eval/calibration.ts';

const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

// Hand-computed: confusion [[2,1,0],[0,1,1],[0,0,1]].
// class 0: P=2/2 R=2/3 F1=0.8; class 1: P=1/2 R=1/2 F1=0.5; class 2: P=1/2 R=1/1 F1=2/3.
const yTrue = [0, 0, 0, 1, 1, 2];
const yPred = [0, 0, 1, 1, 2, 2];

test('confusion matrix rows are true classes, columns predictions', () => {
  assert.deepEqual(confusionMatrix(yTrue, yPred, 3), [
    [2, 1, 0],
    [0, 1, 1],
    [0, 0, 1],
  ]);
});

test('per-class and averaged F1 match hand computation (sklearn definitions)', () => {
  const m = classificationMetrics(yTrue, yPred, ['a', 'b', 'c']);
  close(m.accuracy, 4 / 6);
  const [a, b, c] = m.perClass;
  close(a.precision, 1);
  close(a.recall, 2 / 3);
  close(a.f1, 0.8);
  close(b.f1, 0.5);
  close(c.precision, 0.5);
  close(c.recall, 1);
  close(c.f1, 2 / 3);
  assert.deepEqual(
    m.perClass.map((x) => x.support),
    [3, 2, 1],
  );
  close(m.macroF1, (0.8 + 0.5 + 2 / 3) / 3);
  close(m.weightedF1, (0.8 * 3 + 0.5 * 2 + (2 / 3) * 1) / 6);
  close(m.microF1, 4 / 6);
  close(m.macroPrecision, (1 + 0.5 + 0.5) / 3);
  close(m.macroRecall, (2 / 3 + 0.5 + 1) / 3);
});

test('macro average skips classes absent from both truth and predictions; zero division gives 0', () => {
  const m = classificationMetrics(yTrue, yPred, ['a', 'b', 'c', 'unused']);
  close(m.macroF1, (0.8 + 0.5 + 2 / 3) / 3);
  assert.equal(m.perClass[3].f1, 0);
  // class 1 never predicted: precision 0 (sklearn zero_division=0), recall 0
  const m2 = classificationMetrics([0, 1], [0, 0], ['x', 'y']);
  assert.equal(m2.perClass[1].precision, 0);
  close(m2.perClass[0].precision, 0.5);
  close(m2.macroF1, (2 / 3 + 0) / 2);
});

test('bad predictions are ConfigErrors naming the problem', () => {
  assert.throws(
    () => confusionMatrix([0, 1], [0], 2),
    (e: unknown) => e instanceof ConfigError && /yTrue has 2 entries but yPred has 1/.test(e.message),
  );
  assert.throws(
    () => confusionMatrix([0, 3], [0, 1], 2),
    (e: unknown) => e instanceof ConfigError && /yTrue\[1\] = 3/.test(e.message),
  );
});

test('top-k accuracy', () => {
  const scores = [
    [0.5, 0.3, 0.2], // true 1: rank 2
    [0.1, 0.2, 0.7], // true 0: rank 3
    [0.6, 0.3, 0.1], // true 0: rank 1
  ];
  const y = [1, 0, 0];
  close(topKAccuracy(scores, y, 1), 1 / 3);
  close(topKAccuracy(scores, y, 2), 2 / 3);
  close(topKAccuracy(scores, y, 3), 1);
});

test('softmax is stable for large logits', () => {
  const p = softmax([1000, 1000 + Math.log(3)]);
  close(p[0], 0.25);
  close(p[1], 0.75);
});

test('ECE and reliability bins by hand', () => {
  // 10 bins. (0.8,0.9]: conf .9,.9 acc 1/2 gap .4; (0.5,0.6]: .6,.6 acc 1 gap .4; (0.2,0.3]: .3 acc 0 gap .3.
  // ECE = 2/5*.4 + 2/5*.4 + 1/5*.3 = 0.38
  const r = calibrationFromConfidence([0.9, 0.9, 0.6, 0.6, 0.3], [true, false, true, true, false], 10);
  close(r.ece, 0.38);
  close(r.mce, 0.4);
  assert.equal(r.bins[8].count, 2);
  assert.equal(r.bins[5].count, 2);
  assert.equal(r.bins[2].count, 1, '0.3 sits in (0.2, 0.3], not (0.3, 0.4]');
  close(r.bins[2].confidence, 0.3);
  assert.ok(Number.isNaN(r.bins[0].accuracy));
  assert.equal(
    r.bins.reduce((s, b) => s + b.count, 0),
    5,
  );
});

test('ECE from probability rows uses the argmax confidence; perfect calibration is 0', () => {
  const probs = [
    [0.75, 0.25],
    [0.75, 0.25],
    [0.75, 0.25],
    [0.25, 0.75],
  ];
  // 4 examples at confidence .75, 3 correct -> accuracy .75 -> ECE 0
  close(expectedCalibrationError(probs, [0, 0, 1, 1], 10).ece, 0);
  close(expectedCalibrationError(probs, [1, 1, 1, 1], 10).ece, 0.5); // acc 1/4 at conf .75
  assert.throws(() => calibrationFromConfidence([1.2], [true]), ConfigError);
});
