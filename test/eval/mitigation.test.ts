import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { fitGroupThresholds, GroupThresholds, reweighingWeights } from '../../src/eval/mitigation.ts';

const close = (a: number, b: number, eps = 1e-12): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('reweighing: AIF360 weights n_y n_g / (n n_gy), hand-computed, and label independent of group once weighted', () => {
  // A: labels 1,1,1,0; B: 1,0,0,0. n = 8, n_A = n_B = 4, n_1 = n_0 = 4.
  // AIF360 (aif360/algorithms/preprocessing/reweighing.py): w_p_fav = n_fav*n_p / (n*n_p_fav), etc.
  // w(A,1) = 4*4/(8*3) = 2/3; w(A,0) = 16/(8*1) = 2; w(B,1) = 16/8 = 2; w(B,0) = 16/24 = 2/3.
  const groups = ['A', 'A', 'A', 'A', 'B', 'B', 'B', 'B'];
  const labels = ['1', '1', '1', '0', '1', '0', '0', '0'];
  const { weights, factors } = reweighingWeights(labels, groups);
  const expected = [2 / 3, 2 / 3, 2 / 3, 2, 2, 2 / 3, 2 / 3, 2 / 3];
  expected.forEach((w, i) => close(weights[i], w));
  assert.deepEqual(
    factors.map((f) => [f.group, f.label, f.count]),
    [
      ['A', '0', 1],
      ['A', '1', 3],
      ['B', '0', 3],
      ['B', '1', 1],
    ],
  );
  close(factors[0].weight, 2);
  // Weighted: P(1 | A) = 3 * 2/3 / 4 = 0.5 = P(1 | B) = P(1); the weights sum to n.
  close(
    weights.reduce((a, b) => a + b, 0),
    8,
  );
  const rate = (g: string): number => {
    let pos = 0;
    let all = 0;
    groups.forEach((x, i) => {
      if (x !== g) return;
      all += weights[i];
      if (labels[i] === '1') pos += weights[i];
    });
    return pos / all;
  };
  close(rate('A'), 0.5);
  close(rate('B'), 0.5);
  // Three groups and three labels: still w = n_g n_y / (n n_gy).
  const r3 = reweighingWeights(['a', 'b', 'c', 'a', 'a', 'b'], ['x', 'x', 'y', 'y', 'z', 'z']);
  // (y, a): n_y(group) = 2, n_a = 3, n = 6, n_ya = 1 -> 2*3/6 = 1; (x, b): 2*2/(6*1) = 2/3
  close(r3.weights[3], 1);
  close(r3.weights[1], 2 / 3);
  assert.throws(() => reweighingWeights(['a'], ['x', 'y']), /groups has 2 entries but there are 1 labels/);
});

// Group A scores (P(yes)) .9 .8 .7 .6 .4 .3 with truth 1 1 1 0 0 0; group B .6 .45 .4 .2 .1 .05 with truth 1 1 0 0 0 0.
const SCORES = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.6, 0.45, 0.4, 0.2, 0.1, 0.05];
const TRUTH = [1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0];
const GROUPS = ['A', 'A', 'A', 'A', 'A', 'A', 'B', 'B', 'B', 'B', 'B', 'B'];
const PROBS = SCORES.map((s) => [1 - s, s]);

test('demographic-parity thresholds: hand-computed choice, accuracy and parity before/after', () => {
  const t = fitGroupThresholds({
    labels: ['no', 'yes'],
    probabilities: PROBS,
    yTrue: TRUTH,
    groups: GROUPS,
    tolerance: 0,
    minGroupSize: 1,
  });
  // Argmax: A selects 4/6 (3 right + 1 false positive: 5 right), B 1/6 (5 right) -> accuracy 10/12, DP 0.5.
  // Equal rates need the same k in both groups; k = 2 and k = 3 both give 11/12 right; the grid meets k = 2 first.
  // Thresholds: A between .8 and .7 = .75; B between .45 and .4 = .425.
  const s = t.toJSON();
  close(s.thresholds.A, 0.75);
  close(s.thresholds.B, 0.425);
  close(s.validation.before.accuracy, 10 / 12);
  close(s.validation.before.demographicParityDifference, 0.5);
  close(s.validation.after.accuracy, 11 / 12);
  close(s.validation.after.demographicParityDifference, 0);
  assert.deepEqual(t.predict(PROBS, GROUPS), [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]);
  // JSON round trip keeps the behaviour.
  const back = GroupThresholds.fromJSON(JSON.parse(JSON.stringify(t)));
  assert.deepEqual(back.predict(PROBS, GROUPS), t.predict(PROBS, GROUPS));
  // A group without a threshold falls back to argmax.
  assert.equal(t.apply([0.45, 0.55], 'unseen'), 1);
  assert.equal(t.apply([0.45, 0.55], 'A'), 0);
});

test('true-positive-rate parity: every positive of both groups selected, nothing else', () => {
  const t = fitGroupThresholds({
    labels: ['no', 'yes'],
    probabilities: PROBS,
    yTrue: TRUTH,
    groups: GROUPS,
    constraint: 'true_positive_rate_parity',
    tolerance: 0,
    minGroupSize: 1,
  });
  // Equal TPR with 3 positives in A and 2 in B: 0/3 = 0/2 or 3/3 = 2/2; all-positives is right on 12/12.
  const s = t.toJSON();
  close(s.thresholds.A, 0.7);
  close(s.thresholds.B, 0.45);
  close(s.validation.after.accuracy, 1);
  close(s.validation.after.equalOpportunityDifference, 0);
  close(s.validation.before.equalOpportunityDifference, 1 - 0.5);
});

test('multi-class: the positive class is thresholded per group, the rest is argmax of the others', () => {
  const t = new GroupThresholds({
    kind: 'tailor.group-thresholds',
    version: 1,
    labels: ['a', 'b', 'c'],
    positiveLabel: 'b',
    constraint: 'demographic_parity',
    tolerance: 0,
    thresholds: { g: 0.3 },
    validation: {
      count: 0,
      before: { accuracy: 0, demographicParityDifference: 0, equalOpportunityDifference: 0 },
      after: { accuracy: 0, demographicParityDifference: 0, equalOpportunityDifference: 0 },
    },
  });
  assert.equal(t.apply([0.5, 0.35, 0.15], 'g'), 1);
  assert.equal(t.apply([0.5, 0.25, 0.25], 'g'), 0);
  assert.equal(t.apply([0.2, 0.25, 0.55], 'g'), 2);
  assert.equal(t.apply([0.5, 0.35, 0.15], 'h'), 0);
  assert.throws(() => t.apply([0.5, 0.5], 'g'), /probabilities has 2 entries, expected 3/);
  assert.throws(
    () => fitGroupThresholds({ labels: ['a', 'b', 'c'], probabilities: [], yTrue: [], groups: [] }),
    /a 3-class task needs positiveLabel/,
  );
});

test('bad specs and inputs are refused with the field named', () => {
  assert.throws(
    () => GroupThresholds.fromJSON({ kind: 'x' }, 'model/thresholds.json'),
    (e: unknown) => e instanceof ConfigError && /model\/thresholds.json: kind is "x"/.test((e as Error).message),
  );
  assert.throws(
    () =>
      GroupThresholds.fromJSON({
        kind: 'tailor.group-thresholds',
        version: 1,
        labels: ['no', 'yes'],
        positiveLabel: 'yes',
        constraint: 'demographic_parity',
        thresholds: { A: 'high' },
      }),
    /thresholds: thresholds.A is "high", not a number/,
  );
  assert.throws(
    () =>
      fitGroupThresholds({
        labels: ['no', 'yes'],
        probabilities: PROBS,
        yTrue: TRUTH,
        groups: GROUPS,
        minGroupSize: 7,
      }),
    /at least two groups with 7 or more validation examples, found 0/,
  );
  assert.throws(
    () =>
      fitGroupThresholds({ labels: ['no', 'yes'], probabilities: PROBS, yTrue: TRUTH, groups: GROUPS, tolerance: 2 }),
    /tolerance must be in \[0, 1\], got 2/,
  );
});

test('multi-class fit: the favourable class is thresholded per group to equal selection rates', () => {
  // Three classes; P(b) is high in group G (b selected 4 of 6 by argmax) and low in H (1 of 6).
  const pb = [0.7, 0.6, 0.55, 0.5, 0.3, 0.2, 0.45, 0.35, 0.3, 0.25, 0.2, 0.1];
  const probs = pb.map((p, i) => (i % 2 ? [1 - p - 0.05, p, 0.05] : [0.05, p, 1 - p - 0.05]));
  const groups = pb.map((_, i) => (i < 6 ? 'G' : 'H'));
  const yTrue = [1, 1, 1, 0, 2, 0, 1, 1, 0, 2, 0, 2];
  const t = fitGroupThresholds({
    labels: ['a', 'b', 'c'],
    positiveLabel: 'b',
    probabilities: probs,
    yTrue,
    groups,
    tolerance: 0,
    minGroupSize: 1,
  });
  const pred = t.predict(probs, groups);
  const rate = (g: string): number => pred.filter((p, i) => groups[i] === g && p === 1).length / 6;
  assert.equal(rate('G'), rate('H'));
  // Below the threshold the other classes keep their argmax: never "b".
  pred.forEach((p, i) => {
    if (p !== 1) assert.equal(p, probs[i][0] > probs[i][2] ? 0 : 2);
  });
  close(t.spec.validation.after.demographicParityDifference, 0);
  close(t.spec.validation.after.accuracy, pred.filter((p, i) => p === yTrue[i]).length / 12);
});
