/**
 * mSPRT against the normal-mixture likelihood ratio integrated numerically with scipy (test/monitor/
 * scipy_reference.py: quadrature, not the closed form), the fixed-horizon size against R's power.prop.test, and
 * the A/A peeking simulation the issue asks for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  abFromLog,
  fixedHorizonSampleSize,
  msprt,
  msprtLook,
  simulatePeeking,
  twoProportionZ,
} from '../../src/monitor/ab.ts';

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected}`);
}

test('mSPRT look: the closed form equals the numerically integrated normal mixture (scipy.integrate.quad)', () => {
  const r = msprtLook({ successes: 120, trials: 1000 }, { successes: 150, trials: 1000 }, 0.05 ** 2);
  close(r.difference, 0.03, 1e-12, 'difference');
  close(r.variance, 0.00023310000000000003, 1e-15, 'variance');
  close(r.lambda, 1.7074339241718046, 1e-9, 'Lambda');
  close(r.pLook, 0.5856742014101967, 1e-9, 'p');
  close(r.interval[0], -0.01641295046816383, 1e-9, 'CS lower');
  close(r.interval[1], 0.07641295046816383, 1e-9, 'CS upper');
});

test('mSPRT sequence: running-minimum p-value and intersected intervals; a real effect is found', () => {
  const looks = [];
  for (let n = 100; n <= 2000; n += 100)
    looks.push({ a: { successes: Math.round(0.1 * n), trials: n }, b: { successes: Math.round(0.16 * n), trials: n } });
  const r = msprt(looks);
  assert.equal(r.looks, 20);
  assert.ok(r.significant && r.pValue < 0.001, `p = ${r.pValue}`);
  assert.ok(r.interval[0] > 0 && r.interval[1] > 0.06 && r.interval[0] < 0.06, `CS ${r.interval}`);
  const single = msprtLook(looks[19].a, looks[19].b, 0.0025);
  assert.ok(r.pValue <= single.pLook);
  assert.throws(
    () => msprt([{ a: { successes: 5, trials: 3 }, b: { successes: 0, trials: 1 } }]),
    /a needs integer 0 <= successes <= trials, got 5\/3/,
  );
});

test('fixed-horizon sample size matches R power.prop.test', () => {
  // R documentation example: power.prop.test(p1 = .50, p2 = .75, power = .90) gives n = 76.7 per group.
  close(fixedHorizonSampleSize(0.5, 0.75, { power: 0.9 }), 76.70692845177743, 1e-6, 'n');
  close(fixedHorizonSampleSize(0.1, 0.12), 3840.8474824362725, 1e-5, 'n (power 0.8)');
  assert.throws(() => fixedHorizonSampleSize(0.1, 0.1), /p1 and p2 must differ/);
});

test('10,000 A/A tests with continuous peeking: mSPRT stays at or below 5%, the naive z-test does not', () => {
  const t0 = Date.now();
  const sim = simulatePeeking({ tests: 10000, samplesPerArm: 300, p: 0.2, seed: 15 });
  const ms = Date.now() - t0;
  // Binomial standard error at 5% over 10,000 tests is 0.22 pt; allow 3 of them.
  assert.ok(
    sim.msprtFalsePositiveRate <= 0.05 + 3 * Math.sqrt((0.05 * 0.95) / 10000),
    `mSPRT ${sim.msprtFalsePositiveRate}`,
  );
  assert.ok(sim.naiveFalsePositiveRate > 0.15, `naive ${sim.naiveFalsePositiveRate}`);
  assert.ok(ms < 10000, `took ${ms} ms`);
});

test('two-proportion z-test p-value', () => {
  // z = 0.03 / sqrt(0.135·0.865·(2/1000)) = 1.963049807622355; scipy: 2·norm.sf(z) = 0.04964038686536878.
  close(
    twoProportionZ({ successes: 120, trials: 1000 }, { successes: 150, trials: 1000 }),
    0.04964038686536878,
    1e-12,
    'p',
  );
});

test('abFromLog: accuracy on labelled rows per variant, looks in time order, shadow rows ignored', () => {
  const preds: Parameters<typeof abFromLog>[0] = [];
  const fb = new Map<string, string>();
  for (let i = 0; i < 400; i++) {
    const variant = i % 2 === 0 ? 'production' : 'candidate';
    // production right 3 times in 4, candidate 9 times in 10.
    const k = Math.floor(i / 2);
    const right = variant === 'production' ? k % 4 !== 0 : k % 10 !== 0;
    preds.push({
      time: new Date(Date.UTC(2026, 10, 29, 12, 0, i)).toISOString(),
      request_id: `r${i}`,
      index: 0,
      variant,
      label: right ? 'x' : 'y',
      shadow: false,
    });
    fb.set(`r${i}#0`, 'x');
  }
  preds.push({
    time: '2026-11-29T13:00:00Z',
    request_id: 's',
    index: 0,
    variant: 'candidate',
    label: 'y',
    shadow: true,
  });
  fb.set('s#0', 'x');
  const r = abFromLog(preds, fb, ['production', 'candidate']);
  assert.deepEqual([r.a.trials, r.a.successes, r.b.trials, r.b.successes], [200, 150, 200, 180]);
  assert.equal(r.msprt.looks, 399);
  assert.ok(r.msprt.significant && r.msprt.interval[0] > 0, JSON.stringify(r.msprt));
  // power.prop.test(p1 = 0.75, p2 = 0.77, power = 0.8) closed form with scipy norm.ppf: n = 7156.999 per group.
  assert.equal(r.requiredPerArm, 7157);
  assert.throws(() => abFromLog(preds, fb, ['production', 'canary']), /canary: 0/);
});
