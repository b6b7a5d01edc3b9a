import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  estimateAccuracy,
  fitCbpe,
  fitIsotonic,
  isotonicPredict,
  realizedPerformance,
} from '../../src/monitor/performance.ts';
import { createRng } from '../../src/util/rng.ts';

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected}`);
}

test('isotonic regression: pool-adjacent-violators by hand, interpolation between blocks', () => {
  // y = [1, 3, 2, 4, 3.5, 5]: (3, 2) pool to 2.5 and (4, 3.5) pool to 3.75.
  const f = fitIsotonic([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 3.5, 5]);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((x) => isotonicPredict(f, x)),
    [1, 2.5, 2.5, 3.75, 3.75, 5],
  );
  assert.equal(isotonicPredict(f, 1.5), 1.75);
  assert.equal(isotonicPredict(f, 0), 1);
  assert.equal(isotonicPredict(f, 9), 5);
});

test('CBPE without calibration: mean probability of the predicted class; chunk thresholds by hand', () => {
  const labels = ['a', 'b'];
  // Correct: 1, 1, 0, 1, 1, 1 -> chunks of 2: [1, 0.5, 1], mean 5/6, sample std 0.288675.
  const m = fitCbpe(
    {
      labels: ['a', 'b', 'a', 'a', 'b', 'a'],
      probabilities: [
        [0.9, 0.1],
        [0.2, 0.8],
        [0.3, 0.7],
        [0.7, 0.3],
        [0.4, 0.6],
        [0.8, 0.2],
      ],
    },
    labels,
    { chunkSize: 2, calibrate: false },
  );
  assert.deepEqual(m.referenceChunks, [1, 0.5, 1]);
  close(m.mean, 5 / 6, 1e-12, 'mean');
  close(m.std, 0.28867513459481287, 1e-12, 'std');
  assert.equal(m.lower, 0);
  assert.equal(m.upper, 1);
  const e = estimateAccuracy(m, [
    [0.9, 0.1],
    [0.3, 0.7],
    [0.6, 0.4],
  ]);
  close(e.estimatedAccuracy, (0.9 + 0.7 + 0.6) / 3, 1e-12, 'estimate');
  // Row std of correctness on the reference: sqrt(5/6 · 1/6); sampling error over 3 rows.
  const se = Math.sqrt((5 / 6) * (1 / 6)) / Math.sqrt(3);
  close(e.band[0], e.estimatedAccuracy - 3 * se, 1e-12, 'band');
});

/** Binary predictions whose confidence c is calibrated: the prediction is right with probability c. */
function calibrated(seed: number, n: number, lo: number, hi: number): { labels: string[]; probabilities: number[][] } {
  const rng = createRng(seed);
  const labels: string[] = [];
  const probabilities: number[][] = [];
  for (let i = 0; i < n; i++) {
    const c = lo + (hi - lo) * rng.next();
    const predA = rng.next() < 0.5;
    const right = rng.next() < c;
    probabilities.push(predA ? [c, 1 - c] : [1 - c, c]);
    labels.push(predA === right ? 'a' : 'b');
  }
  return { labels, probabilities };
}

test('CBPE on calibrated synthetic data: the estimate tracks the realized accuracy; a confidence drop alerts', () => {
  const ref = calibrated(1, 2000, 0.6, 1);
  const m = fitCbpe(ref, ['a', 'b'], { chunkSize: 200 });
  assert.ok(m.calibration !== null);
  const win = calibrated(2, 500, 0.6, 1);
  const e = estimateAccuracy(m, win.probabilities);
  const realized = realizedPerformance(
    win.labels,
    win.probabilities.map((p) => (p[0] >= p[1] ? 'a' : 'b')),
    ['a', 'b'],
  );
  // Expected accuracy is 0.8; both within sampling error (3·sqrt(0.16/500) = 0.054).
  assert.ok(Math.abs(e.estimatedAccuracy - 0.8) < 0.03, `estimate ${e.estimatedAccuracy}`);
  assert.ok(realized.accuracy >= e.band[0] && realized.accuracy <= e.band[1], `${realized.accuracy} in ${e.band}`);
  assert.equal(e.alert, false);
  const drop = estimateAccuracy(m, calibrated(3, 500, 0.5, 0.7).probabilities);
  assert.ok(drop.estimatedAccuracy < m.lower, `${drop.estimatedAccuracy} < ${m.lower}`);
  assert.equal(drop.alert, true);
});

test('realized performance: accuracy and macro-F1 (labels outside the model count as errors)', () => {
  // truth a a b b c, pred a b b b a: a P=1/2 R=1/2 F=1/2; b P=2/3 R=1 F=0.8; c F=0 -> macro 1.3/3.
  const r = realizedPerformance(['a', 'a', 'b', 'b', 'c'], ['a', 'b', 'b', 'b', 'a'], ['a', 'b']);
  close(r.accuracy, 0.6, 1e-12, 'accuracy');
  close(r.macroF1, 1.3 / 3, 1e-12, 'macro-F1');
  assert.throws(() => realizedPerformance(['a'], [], ['a']), /1 feedback labels for 0 predictions/);
});
