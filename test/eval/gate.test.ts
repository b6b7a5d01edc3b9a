import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BehaviourReport } from '../../src/eval/behaviour.ts';
import { disaggregate } from '../../src/eval/disaggregate.ts';
import { checkFairnessBudget } from '../../src/eval/gate.ts';

// Fairlearn's user-guide arrays (see disaggregate.test.ts): DP difference 0.25, DP ratio 2/3, EOdds difference 1.
const Y_TRUE = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1];
const Y_PRED = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
const SF = ['b', 'b', 'a', 'b', 'b', 'c', 'c', 'c', 'a', 'a', 'c', 'a', 'b', 'c', 'c', 'b', 'c', 'c'];
const fairness = disaggregate({
  labels: ['0', '1'],
  yTrue: Y_TRUE,
  yPred: Y_PRED,
  sensitive: { sf: SF },
  minGroupSize: 1,
  bootstrap: false,
});
const behaviour: BehaviourReport = {
  seed: 0,
  texts: 10,
  tests: [
    {
      test: 'typos',
      description: '',
      cases: 10,
      unchanged: 0,
      flips: 1,
      flipRate: 0.1,
      meanConfidenceShift: 0,
      meanAbsConfidenceShift: 0,
      examples: [],
    },
    {
      test: 'name-swap',
      description: '',
      cases: 4,
      unchanged: 6,
      flips: 2,
      flipRate: 0.5,
      meanConfidenceShift: 0,
      meanAbsConfidenceShift: 0,
      examples: [],
    },
    {
      test: 'contractions',
      description: '',
      cases: 0,
      unchanged: 10,
      flips: 0,
      flipRate: NaN,
      meanConfidenceShift: NaN,
      meanAbsConfidenceShift: NaN,
      examples: [],
    },
  ],
};

test('a budget the model meets passes with every check listed', () => {
  const r = checkFairnessBudget(
    { maxParityDifference: 0.3, minDisparateImpact: 0.6, maxEqualizedOddsDifference: 1, maxFlipRate: 0.5 },
    { fairness, behaviour },
  );
  assert.equal(r.pass, true);
  assert.deepEqual(r.reasons, []);
  assert.deepEqual(
    r.checks.map((c) => [c.limit, c.value, c.pass]),
    [
      ['maxParityDifference', 0.25, true],
      ['minDisparateImpact', 0.5 / 0.75, true],
      ['maxEqualizedOddsDifference', 1, true],
      ['maxFlipRate', 0.5, true],
    ],
  );
});

test('each failed limit gives a reason with the measured value and where it was measured', () => {
  const r = checkFairnessBudget(
    { maxParityDifference: 0.1, minDisparateImpact: 0.8, maxFlipRate: 0.2 },
    { fairness, behaviour },
  );
  assert.equal(r.pass, false);
  assert.deepEqual(r.reasons, [
    'demographic parity difference 0.2500 in "sf" is above the limit 0.1',
    'disparate impact ratio 0.6667 in "sf" is below the limit 0.8',
    'flip rate 0.5000 in name-swap (2/4 flipped) is above the limit 0.2',
  ]);
});

test('a limit that cannot be checked fails; bad limits are refused', () => {
  const r = checkFairnessBudget({ maxParityDifference: 0.1, maxFlipRate: 0.1 }, {});
  assert.equal(r.pass, false);
  assert.match(r.reasons[0], /demographic parity difference was not measured/);
  assert.match(r.reasons[1], /flip rate was not measured/);
  // Groups too small to judge leave nothing to check either.
  const small = disaggregate({
    labels: ['0', '1'],
    yTrue: Y_TRUE,
    yPred: Y_PRED,
    sensitive: { sf: SF },
    bootstrap: false,
  });
  const s = checkFairnessBudget({ maxParityDifference: 0.5 }, { fairness: small });
  assert.equal(s.pass, false);
  assert.match(s.reasons[0], /no sensitive column with two groups of at least 30 examples/);
  assert.throws(
    () => checkFairnessBudget({ maxFlipRate: 1.5 }, { behaviour }),
    /maxFlipRate must be a number in \[0, 1\], got 1.5/,
  );
  // An empty budget passes trivially.
  assert.equal(checkFairnessBudget({}, {}).pass, true);
});
