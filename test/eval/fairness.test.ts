import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { binaryFairness, fairnessReport } from '../../src/eval/fairness.ts';

const close = (a: number, b: number, eps = 1e-12): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

// Group A: truth 1,1,0,0  pred 1,0,1,0 -> TP1 FN1 FP1 TN1: selection .5, TPR .5, FPR .5, acc .5
// Group B: truth 1,1,1,0  pred 1,1,0,1 -> TP2 FN1 FP1 TN0: selection .75, TPR 2/3, FPR 1, acc .5
const yTrue = [1, 1, 0, 0, 1, 1, 1, 0].map(Boolean);
const yPred = [1, 0, 1, 0, 1, 1, 0, 1].map(Boolean);
const groups = ['A', 'A', 'A', 'A', 'B', 'B', 'B', 'B'];

test('Fairlearn disparity metrics on a hand-computed case', () => {
  const f = binaryFairness(yTrue, yPred, groups);
  const [a, b] = f.byGroup;
  assert.equal(a.group, 'A');
  close(a.selectionRate, 0.5);
  close(b.selectionRate, 0.75);
  close(b.truePositiveRate, 2 / 3);
  close(b.falsePositiveRate, 1);
  close(f.demographicParityDifference, 0.25);
  close(f.demographicParityRatio, 0.5 / 0.75);
  close(f.equalOpportunityDifference, 2 / 3 - 0.5);
  close(f.equalizedOddsDifference, 0.5); // max(TPR diff 1/6, FPR diff 1/2)
  close(f.equalizedOddsRatio, 0.5); // min(TPR ratio .75, FPR ratio .5)
  close(f.accuracyDifference, 0);
  close(f.overall.selectionRate, 5 / 8);
});

test('a group without actual positives has TPR 0 (sklearn normalised confusion matrix)', () => {
  const f = binaryFairness([true, false, false, false], [true, false, true, false], ['x', 'x', 'y', 'y']);
  close(f.byGroup[1].truePositiveRate, 0);
  close(f.equalOpportunityDifference, 1);
  close(f.byGroup[1].falsePositiveRate, 0.5);
});

test('multi-class report: one-vs-rest per class, worst class named', () => {
  // labels a,b,c; group g1 always right; g2 predicts every "a" as "b".
  const labels = ['a', 'b', 'c'];
  const yT = [0, 1, 2, 0, 0, 1, 2, 0];
  const yP = [0, 1, 2, 0, 1, 1, 2, 1];
  const g = ['g1', 'g1', 'g1', 'g1', 'g2', 'g2', 'g2', 'g2'];
  const r = fairnessReport(yT, yP, g, labels);
  assert.deepEqual(
    r.byGroup.map((x) => [x.group, x.count, x.accuracy]),
    [
      ['g1', 4, 1],
      ['g2', 4, 0.5],
    ],
  );
  close(r.accuracyDifference, 0.5);
  // class a: TPR g1 = 1, g2 = 0 -> equal opportunity difference 1
  close(r.worst.equalOpportunityDifference.value, 1);
  assert.equal(r.worst.equalOpportunityDifference.label, 'a');
  // class b: selection g1 1/4, g2 3/4 -> DP difference .5; class a: g1 2/4, g2 0 -> .5; tie broken by first
  close(r.worst.demographicParityDifference.value, 0.5);
  // class c is predicted perfectly in both groups
  const c = r.perClass.find((p) => p.positiveLabel === 'c')!;
  close(c.equalizedOddsDifference, 0);
  assert.throws(() => fairnessReport(yT, yP, g, labels, ['zzz']), ConfigError);
  assert.throws(
    () =>
      fairnessReport(
        yT,
        yP,
        g.map(() => 'one'),
        labels,
      ),
    /at least two groups/,
  );
});
