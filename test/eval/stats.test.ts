import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { bootstrapIntervals } from '../../src/eval/bootstrap.ts';
import { compareModels, mcnemarExact } from '../../src/eval/significance.ts';
import { logGamma, quantile } from '../../src/eval/stats.ts';

const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('quantile interpolates like numpy.percentile (linear)', () => {
  // numpy.percentile([1,2,3,4], [50, 95]) -> [2.5, 3.85]
  close(quantile([4, 1, 3, 2], 0.5), 2.5);
  close(quantile([1, 2, 3, 4], 0.95), 3.85);
  close(quantile([7], 0.99), 7);
});

test('logGamma matches factorials', () => {
  close(logGamma(1), 0, 1e-12);
  close(logGamma(11), Math.log(3628800), 1e-10);
  close(logGamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-12);
});

test('McNemar exact p-values on known tables', () => {
  // b=2, c=8: P(X<=2 | n=10) = (1+10+45)/1024; two-sided doubles it: 0.109375 (statsmodels mcnemar exact).
  close(mcnemarExact(2, 8).pValue, 0.109375, 1e-12);
  close(mcnemarExact(8, 2).pValue, 0.109375, 1e-12);
  // b=0, c=6: 2 * 1/64
  close(mcnemarExact(0, 6).pValue, 0.03125, 1e-12);
  // equal discordance -> capped at 1
  assert.equal(mcnemarExact(5, 5).pValue, 1);
  assert.equal(mcnemarExact(0, 0).pValue, 1);
  // b=1, c=9: (1+10)/1024*2
  close(mcnemarExact(1, 9).pValue, 22 / 1024, 1e-12);
  // large n stays finite (2^-n would underflow); z = 200/sqrt(2000) ≈ 4.47 -> p of order 1e-5
  const big = mcnemarExact(900, 1100).pValue;
  assert.ok(big > 1e-6 && big < 2e-5, String(big));
  assert.throws(() => mcnemarExact(-1, 2), ConfigError);
});

test('compareModels builds the 2x2 table', () => {
  const y = [0, 1, 1, 0, 1, 0, 1, 1];
  const a = [0, 1, 0, 1, 1, 1, 0, 0]; // correct: T T F F T F F F
  const b = [0, 1, 1, 0, 0, 0, 1, 1]; // correct: T T T T F T T T
  const r = compareModels(y, a, b);
  assert.equal(r.bothCorrect, 2);
  assert.equal(r.b, 1); // only A right (index 4)
  assert.equal(r.c, 5); // only B right
  assert.equal(r.bothWrong, 0);
  close(r.accuracyA, 3 / 8);
  close(r.accuracyB, 7 / 8);
  close(r.pValue, (2 * (1 + 6)) / 64);
});

test('bootstrap is reproducible with a seed and brackets the estimate', () => {
  const data = Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? 1 : 0));
  const mean = (idx: Int32Array): Record<string, number> => ({
    mean: idx.reduce((s, i) => s + data[i], 0) / idx.length,
  });
  const a = bootstrapIntervals(data.length, mean, { seed: 7, iterations: 500 });
  const b = bootstrapIntervals(data.length, mean, { seed: 7, iterations: 500 });
  const c = bootstrapIntervals(data.length, mean, { seed: 8, iterations: 500 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(a.mean.estimate, 0.5);
  assert.ok(a.mean.lower < 0.5 && a.mean.upper > 0.5);
  // Normal theory: se = sqrt(.25/400) = .025, 95% width ≈ 0.098.
  const width = a.mean.upper - a.mean.lower;
  assert.ok(width > 0.08 && width < 0.12, `width ${width}`);
  // A constant statistic has a degenerate interval.
  const k = bootstrapIntervals(10, () => ({ k: 3 }), { iterations: 20 });
  assert.deepEqual(k.k, { estimate: 3, lower: 3, upper: 3 });
  assert.throws(() => bootstrapIntervals(10, () => ({}), { confidence: 1 }), ConfigError);
});
