import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateGate } from '../../src/monitor/gate.ts';

const labels = ['a', 'b'];

/** 100 held-out rows, all class 0; `wrong` lists the rows a model gets wrong. */
function preds(wrong: number[]): number[] {
  const p = new Array<number>(100).fill(0);
  for (const i of wrong) p[i] = 1;
  return p;
}
const yTrue = new Array<number>(100).fill(0);
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

test('blessed: passes value thresholds and the -0.5 pt change threshold', () => {
  const champion = { predictions: preds(range(0, 12)) }; // 88%
  const challenger = { predictions: preds(range(0, 12)), latencyMs: 8, fairnessGap: 0.02 }; // 88%
  const r = evaluateGate(yTrue, labels, challenger, champion, {
    minAccuracy: 0.85,
    latencyBudgetMs: 10,
    fairnessGapBudget: 0.05,
  });
  assert.equal(r.blessed, true);
  assert.deepEqual(
    r.checks.map((c) => [c.name, c.passed]),
    [
      ['accuracy', true],
      ['latency', true],
      ['fairness_gap', true],
      ['no_regression', true],
    ],
  );
});

test('refused with one reason per failed check', () => {
  const champion = { predictions: preds(range(0, 10)) }; // 90%
  const challenger = { predictions: preds(range(0, 11)), latencyMs: 12, fairnessGap: 0.1 }; // 89%: -1 pt
  const r = evaluateGate(yTrue, labels, challenger, champion, {
    minAccuracy: 0.9,
    latencyBudgetMs: 10,
    fairnessGapBudget: 0.05,
  });
  assert.equal(r.blessed, false);
  assert.deepEqual(r.reasons, [
    'accuracy 89.00% < 90.00%',
    'latency 12 ms > budget 10 ms',
    'fairness gap 10.00 pt > budget 5.00 pt',
    'change -1.00 pt vs champion < -0.50 pt',
  ]);
});

test('significant gain: McNemar exact p (b = 2, c = 10: 2·(1+12+66)/4096 = 0.03857) below 0.05', () => {
  // Champion wrong on rows 0-11 (12), challenger wrong on rows 10-13 (4): b = 2 (12, 13), c = 10 (0-9).
  const champion = { predictions: preds(range(0, 12)) };
  const challenger = { predictions: preds(range(10, 14)) };
  const r = evaluateGate(yTrue, labels, challenger, champion, { requireSignificantGain: true });
  assert.equal(r.comparison?.b, 2);
  assert.equal(r.comparison?.c, 10);
  assert.ok(Math.abs((r.comparison?.pValue ?? 0) - 158 / 4096) < 1e-12);
  assert.equal(r.blessed, true);
  // A smaller gain (b = 0, c = 2: p = 0.5) is not enough.
  const r2 = evaluateGate(yTrue, labels, { predictions: preds(range(2, 12)) }, champion, {
    requireSignificantGain: true,
  });
  assert.equal(r2.blessed, false);
  assert.deepEqual(r2.reasons, ['change +2.00 pt vs champion, McNemar p = 0.500 not < 0.05']);
});

test('no champion: only value thresholds; mismatched rows and missing measurements are errors', () => {
  assert.equal(evaluateGate(yTrue, labels, { predictions: preds([]) }, undefined, { minAccuracy: 0.99 }).blessed, true);
  assert.throws(
    () => evaluateGate(yTrue, labels, { predictions: [0] }, undefined),
    /challenger has 1 predictions for 100 held-out rows/,
  );
  assert.throws(
    () => evaluateGate(yTrue, labels, { predictions: preds([]) }, undefined, { latencyBudgetMs: 5 }),
    /latency budget is set but the challenger has no latencyMs/,
  );
});

test('exactly at the change bar passes: 0.895 - 0.9 is -0.0050000000000000044 in floating point', () => {
  const y = new Array<number>(200).fill(0);
  const p = (wrong: number): number[] => Array.from({ length: 200 }, (_, i) => (i < wrong ? 1 : 0));
  const r = evaluateGate(y, labels, { predictions: p(21) }, { predictions: p(20) });
  assert.equal(r.comparison?.difference, 0.895 - 0.9);
  assert.equal(r.blessed, true);
  assert.equal(evaluateGate(y, labels, { predictions: p(22) }, { predictions: p(20) }).blessed, false);
});

test('fairness budget on the challenger: each limit is a gate check; a failed one refuses it with the budget reason', async () => {
  const { disaggregate } = await import('../../src/eval/disaggregate.ts');
  // 100 rows, groups x (rows 0-49) and y (50-99). The challenger predicts "b" for 30 of x's rows and 10 of y's:
  // selection rates 0.6 and 0.2, so parity difference 0.4 and disparate impact 0.2 / 0.6 = 1/3.
  const groups = Array.from({ length: 100 }, (_, i) => (i < 50 ? 'x' : 'y'));
  const predictions = Array.from({ length: 100 }, (_, i) => ((i < 50 ? i < 30 : i < 60) ? 1 : 0));
  const truth = Array.from({ length: 100 }, (_, i) => ((i < 50 ? i < 25 : i < 65) ? 1 : 0));
  const fairness = disaggregate({
    labels,
    yTrue: truth,
    yPred: predictions,
    sensitive: { g: groups },
    bootstrap: false,
  });
  const behaviour = {
    seed: 0,
    texts: 100,
    tests: [
      {
        test: 'typos' as const,
        description: '',
        cases: 20,
        unchanged: 0,
        flips: 3,
        flipRate: 0.15,
        meanConfidenceShift: 0,
        meanAbsConfidenceShift: 0,
        examples: [],
      },
      {
        test: 'casing' as const,
        description: '',
        cases: 100,
        unchanged: 0,
        flips: 5,
        flipRate: 0.05,
        meanConfidenceShift: 0,
        meanAbsConfidenceShift: 0,
        examples: [],
      },
    ],
  };
  const challenger = { predictions, fairnessReports: { fairness, behaviour } };
  const refused = evaluateGate(truth, labels, challenger, undefined, {
    fairnessBudget: { maxParityDifference: 0.1, minDisparateImpact: 0.8, maxFlipRate: 0.1 },
  });
  assert.equal(refused.blessed, false);
  assert.deepEqual(
    refused.checks.map((c) => [c.name, c.passed, c.threshold]),
    [
      ['parity_difference', false, 0.1],
      ['disparate_impact', false, 0.8],
      ['flip_rate', false, 0.1],
    ],
  );
  assert.ok(Math.abs(refused.checks[0].value - 0.4) < 1e-12);
  assert.ok(Math.abs(refused.checks[1].value - 1 / 3) < 1e-12);
  assert.equal(refused.checks[2].value, 0.15);
  assert.deepEqual(refused.reasons, [
    'demographic parity difference 0.4000 in "g" is above the limit 0.1',
    'disparate impact ratio 0.3333 in "g" is below the limit 0.8',
    'flip rate 0.1500 in typos (3/20 flipped) is above the limit 0.1',
  ]);

  // Within a looser budget: blessed, and each check says what it measured.
  const blessed = evaluateGate(truth, labels, challenger, undefined, {
    fairnessBudget: {
      maxParityDifference: 0.5,
      minDisparateImpact: 0.3,
      maxEqualizedOddsDifference: 0.5,
      maxFlipRate: 0.2,
    },
  });
  assert.equal(blessed.blessed, true, blessed.reasons.join('; '));
  // Equalized odds: TPR x = 25/25 = 1, y = 10/15; FPR x = 5/25 = 0.2, y = 0/35: max(1/3, 0.2) = 1/3.
  assert.deepEqual(
    blessed.checks.map((c) => c.detail),
    [
      'demographic parity difference 0.4000 in "g" <= 0.5',
      'disparate impact ratio 0.3333 in "g" >= 0.3',
      'equalized odds difference 0.3333 in "g" <= 0.5',
      'flip rate 0.1500 in typos (3/20 flipped) <= 0.2',
    ],
  );

  // A limit without its measurement fails (a gate that cannot check must not pass), next to an accuracy bar.
  const unmeasured = evaluateGate(truth, labels, { predictions }, undefined, {
    minAccuracy: 0.5,
    fairnessBudget: { maxFlipRate: 0.1 },
  });
  assert.equal(unmeasured.blessed, false);
  assert.deepEqual(
    unmeasured.checks.map((c) => [c.name, c.passed]),
    [
      ['accuracy', true],
      ['flip_rate', false],
    ],
  );
  assert.ok(Number.isNaN(unmeasured.checks[1].value));
  assert.deepEqual(unmeasured.reasons, [
    'flip rate was not measured (no behavioural test had cases), so the limit 0.1 cannot be checked',
  ]);
});
