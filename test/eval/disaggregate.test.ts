import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { bootstrapIntervals } from '../../src/eval/bootstrap.ts';
import { disaggregate, DEFAULT_MIN_GROUP_SIZE, type FairnessView } from '../../src/eval/disaggregate.ts';

const close = (a: number | undefined, b: number, eps = 1e-6): void =>
  assert.ok(a !== undefined && Math.abs(a - b) < eps, `${a} != ${b}`);
const view = (views: FairnessView[], name: string): FairnessView => {
  const v = views.find((x) => x.name === name);
  assert.ok(v, `no view ${name} in ${views.map((x) => x.name).join(', ')}`);
  return v;
};

// The example arrays of Fairlearn's user guide, used on three of its pages:
// https://fairlearn.org/main/user_guide/assessment/perform_fairness_assessment.html
// https://fairlearn.org/main/user_guide/assessment/common_fairness_metrics.html
// https://fairlearn.org/main/user_guide/assessment/intersecting_groups.html
const Y_TRUE = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1];
const Y_PRED = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
const SF = ['b', 'b', 'a', 'b', 'b', 'c', 'c', 'c', 'a', 'a', 'c', 'a', 'b', 'c', 'c', 'b', 'c', 'c'];
const G2 = [8, 6, 8, 8, 8, 8, 6, 6, 6, 8, 6, 6, 6, 6, 8, 6, 6, 6].map(String);
const BIN = ['0', '1'];

/** sklearn precision_score for the positive class 1 (zero_division 0). */
const precision = (t: number[], p: number[]): number => {
  let tp = 0;
  let pp = 0;
  for (let i = 0; i < t.length; i++) {
    if (p[i] !== 1) continue;
    pp++;
    if (t[i] === 1) tp++;
  }
  return pp ? tp / pp : 0;
};

test('Fairlearn "Performing a Fairness Assessment": by_group, overall, difference() and ratio()', () => {
  const r = disaggregate({
    labels: BIN,
    yTrue: Y_TRUE,
    yPred: Y_PRED,
    sensitive: { sf: SF },
    minGroupSize: 1,
    bootstrap: false,
  });
  assert.equal(r.task, 'binary');
  assert.deepEqual(r.positiveLabels, ['1']);
  // mf.overall: tpr 0.500000, fpr 0.666667, sel 0.555556, count 18
  close(r.overall.truePositiveRate, 0.5);
  close(r.overall.falsePositiveRate, 0.666667);
  close(r.overall.selectionRate, 0.555556);
  assert.equal(r.overall.count, 18);
  const v = view(r.views, 'sf');
  // mf.by_group: a 0.5 1.000000 0.75 4; b 0.6 0.000000 0.50 6; c 0.4 0.666667 0.50 8
  const expected: Array<[string, number, number, number, number]> = [
    ['a', 0.5, 1, 0.75, 4],
    ['b', 0.6, 0, 0.5, 6],
    ['c', 0.4, 0.666667, 0.5, 8],
  ];
  assert.deepEqual(
    v.groups.map((g) => g.group),
    ['a', 'b', 'c'],
  );
  expected.forEach(([g, tpr, fpr, sel, n], i) => {
    const m = v.groups[i].metrics;
    assert.equal(v.groups[i].group, g);
    close(m.truePositiveRate, tpr);
    close(m.falsePositiveRate, fpr);
    close(m.selectionRate, sel);
    assert.equal(m.count, n);
  });
  // mf.difference(): tpr 0.20, fpr 1.00, sel 0.25; mf.ratio(): tpr 0.666667, fpr 0.000000, sel 0.666667
  close(v.difference.truePositiveRate.estimate, 0.2);
  close(v.difference.falsePositiveRate.estimate, 1);
  close(v.difference.selectionRate.estimate, 0.25);
  close(v.ratio.truePositiveRate.estimate, 0.666667);
  close(v.ratio.falsePositiveRate.estimate, 0);
  close(v.ratio.selectionRate.estimate, 0.666667);
});

test('Fairlearn "Common fairness metrics": demographic parity 0.25 / 0.666..., equalized odds 1.0 / 0.0', () => {
  const v = disaggregate({
    labels: BIN,
    yTrue: Y_TRUE,
    yPred: Y_PRED,
    sensitive: { sf: SF },
    minGroupSize: 1,
    bootstrap: false,
  }).views[0];
  close(v.demographicParityDifference.estimate, 0.25);
  close(v.demographicParityRatio.estimate, 0.666666);
  close(v.equalizedOddsDifference.estimate, 1.0);
  close(v.equalizedOddsRatio.estimate, 0.0);
  // Equal opportunity difference = the TPR difference of the same page (0.2).
  close(v.equalOpportunityDifference.estimate, 0.2);
  // Disparate impact = lowest / highest selection rate = 0.5 / 0.75 (b and c tie at the lowest; first wins).
  close(v.disparateImpact.estimate, 2 / 3);
  assert.equal(v.disparateImpact.fourFifthsViolated, true);
  assert.equal(v.disparateImpact.highestGroup, 'a');
  assert.equal(v.disparateImpact.lowestGroup, 'b');
});

test('Fairlearn "Intersecting Groups": two sensitive features, recall and precision per intersection', () => {
  const r = disaggregate({
    labels: BIN,
    yTrue: Y_TRUE,
    yPred: Y_PRED,
    sensitive: { 'SF 0': SF, 'SF 1': G2 },
    metrics: { precision },
    minGroupSize: 1,
    bootstrap: false,
  });
  assert.deepEqual(
    r.views.map((v) => v.name),
    ['SF 0', 'SF 1', 'SF 0 × SF 1'],
  );
  // metric_2sf.overall 0.5; metric_2sf_multi.overall precision 0.6
  close(r.overall.truePositiveRate, 0.5);
  close(r.overall.precision, 0.6);
  // metric_2sf_multi.by_group: precision / recall / count
  const expected: Array<[string[], number, number, number]> = [
    [['a', '6'], 0, 0, 2],
    [['a', '8'], 0.5, 1, 2],
    [['b', '6'], 1, 0.666667, 3],
    [['b', '8'], 1, 0.5, 3],
    [['c', '6'], 0.666667, 0.5, 6],
    [['c', '8'], 0, 0, 2],
  ];
  const inter = view(r.views, 'SF 0 × SF 1');
  assert.equal(inter.groups.length, 6);
  expected.forEach(([values, prec, rec, n], i) => {
    const g = inter.groups[i];
    assert.deepEqual(g.values, values);
    assert.equal(g.group, values.join(' × '));
    close(g.metrics.precision, prec);
    close(g.metrics.truePositiveRate, rec);
    assert.equal(g.count, n);
  });
  // Hand-computed from the table above: recall spread 1 − 0 = 1, precision spread 1 − 0 = 1, ratio 0.
  close(inter.difference.truePositiveRate.estimate, 1);
  close(inter.difference.precision.estimate, 1);
  close(inter.ratio.precision.estimate, 0);
});

test('Fairlearn "Advanced Usage of MetricFrame": a custom metric (fbeta, beta = 0.6) per group', () => {
  // https://fairlearn.org/v0.10/user_guide/assessment/advanced_metricframe.html: overall 0.56983...,
  // by_group a 0.365591, b 0.850000, c 0.468966
  const fbeta = (t: number[], p: number[]): number => {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < t.length; i++) {
      if (t[i] === 1 && p[i] === 1) tp++;
      else if (p[i] === 1) fp++;
      else if (t[i] === 1) fn++;
    }
    const b2 = 0.36;
    return ((1 + b2) * tp) / ((1 + b2) * tp + b2 * fn + fp);
  };
  const r = disaggregate({
    labels: BIN,
    yTrue: Y_TRUE,
    yPred: Y_PRED,
    sensitive: { sf: SF },
    metrics: { fbeta },
    minGroupSize: 1,
    bootstrap: false,
  });
  close(r.overall.fbeta, 0.56983, 1e-5);
  const g = r.views[0].groups.map((x) => x.metrics.fbeta);
  close(g[0], 0.365591);
  close(g[1], 0.85);
  close(g[2], 0.468966);
});

test('AIF360 tests/test_classification_metric.py (multiclass confusion matrix): equal opportunity 0.2', () => {
  // AIF360's test: feat 2 unprivileged, feat 0/1 privileged, labels 0 and 1 favourable, 2 unfavourable;
  // binary confusion TP 7, FN 1, TN 2, FP 0 and false_negative_rate_difference = -0.2 (FNR unpriv 0 − priv 0.2).
  // Binarised here (favourable = 1); TPR = 1 − FNR, so the TPR gap is 0.2.
  const feat = [0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
  const truth = [1, 0, 0, 1, 0, 2, 1, 0, 2, 1].map((l) => (l === 2 ? 0 : 1));
  const pred = [1, 0, 0, 0, 2, 2, 1, 0, 2, 1].map((l) => (l === 2 ? 0 : 1));
  const groups = feat.map((f) => (f === 2 ? 'unprivileged' : 'privileged'));
  const r = disaggregate({
    labels: ['unfavourable', 'favourable'],
    yTrue: truth,
    yPred: pred,
    sensitive: { g: groups },
    minGroupSize: 1,
    bootstrap: false,
  });
  const [priv, unpriv] = r.views[0].groups;
  close(1 - priv.metrics.truePositiveRate, 0.2);
  close(1 - unpriv.metrics.truePositiveRate, 0);
  close(r.views[0].equalOpportunityDifference.estimate, 0.2);
  close(r.overall.truePositiveRate, 7 / 8);
  close(r.overall.falsePositiveRate, 0);
});

// Hand-computed case with a tiny group, an intersection and three classes.
//   region n/s; group x/y/z (z has 2 examples: too small at minGroupSize 3).
//   classes a, b, c.
const H = {
  labels: ['a', 'b', 'c'],
  yTrue: [0, 0, 1, 2, 0, 0, 1, 2, 0, 1],
  yPred: [0, 0, 1, 2, 1, 1, 1, 2, 0, 0],
  group: ['x', 'x', 'x', 'x', 'y', 'y', 'y', 'y', 'z', 'z'],
  region: ['n', 's', 'n', 's', 'n', 's', 'n', 's', 'n', 'n'],
};

test('hand-computed multi-class case: one-vs-rest per class, worst class named, tiny groups left out', () => {
  const r = disaggregate({
    labels: H.labels,
    yTrue: H.yTrue,
    yPred: H.yPred,
    sensitive: { group: H.group, region: H.region },
    minGroupSize: 3,
    bootstrap: false,
  });
  assert.equal(r.task, 'multiclass');
  assert.match(r.method, /one-vs-rest to each of 3 classes and the worst class is reported/);
  assert.equal(r.minGroupSize, 3);
  const g = view(r.views, 'group');
  // x: all 4 right (acc 1); y: a,a -> b,b wrong, b and c right (acc .5); z: a right, b -> a wrong (acc .5), tiny.
  assert.deepEqual(
    g.groups.map((x) => [x.group, x.count, x.metrics.accuracy, x.tooSmall]),
    [
      ['x', 4, 1, false],
      ['y', 4, 0.5, false],
      ['z', 2, 0.5, true],
    ],
  );
  assert.deepEqual(g.judged, ['x', 'y']);
  assert.deepEqual(g.tooSmall, [{ group: 'z', count: 2 }]);
  // macro F1: x = 1; y: class a tp0 (true2 pred0) f1 0, b tp1 true1 pred3 f1 .5, c 1 -> 0.5
  close(g.groups[1].metrics.macroF1, 0.5);
  close(g.difference.accuracy.estimate, 0.5);
  close(g.ratio.accuracy.estimate, 0.5);
  // Class a (one-vs-rest): sel x 2/4, y 0/4 -> DP .5, DI 0; TPR x 1, y 0 -> EOpp 1; FPR 0, 0 -> EOdds 1.
  // Class b: sel x 1/4, y 3/4 -> DP .5, DI 1/3; TPR 1, 1; FPR x 0/3, y 2/3 -> EOdds 2/3.
  // Class c: identical in x and y -> 0, DI 1.
  const a = g.perClass.find((p) => p.label === 'a')!;
  const b = g.perClass.find((p) => p.label === 'b')!;
  const c = g.perClass.find((p) => p.label === 'c')!;
  close(a.demographicParityDifference, 0.5);
  close(a.disparateImpact, 0);
  close(a.equalOpportunityDifference, 1);
  close(b.equalizedOddsDifference, 2 / 3);
  close(b.disparateImpact, 1 / 3);
  close(c.equalizedOddsDifference, 0);
  close(c.disparateImpact, 1);
  assert.deepEqual(
    g.perClass.map((p) => p.label),
    ['a', 'b', 'c'],
  );
  // Headlines: worst class; DP tie (.5 for a and b) goes to the first class.
  assert.deepEqual([g.demographicParityDifference.estimate, g.demographicParityDifference.label], [0.5, 'a']);
  assert.deepEqual([g.equalizedOddsDifference.estimate, g.equalizedOddsDifference.label], [1, 'a']);
  assert.deepEqual([g.disparateImpact.estimate, g.disparateImpact.label], [0, 'a']);
  assert.equal(g.disparateImpact.lowestGroup, 'y');
  assert.equal(g.disparateImpact.fourFifthsViolated, true);

  // region: n = idx 0,2,4,6,8,9 (6), s = 1,3,5,7 (4). n right: 0,2,6,8 -> acc 4/6; s right: 1,3,7 -> 3/4.
  const reg = view(r.views, 'region');
  close(reg.groups[0].metrics.accuracy, 4 / 6);
  close(reg.groups[1].metrics.accuracy, 3 / 4);
  close(reg.difference.accuracy.estimate, 3 / 4 - 4 / 6);

  // Intersection: x×n (0,2) x×s (1,3) y×n (4,6) y×s (5,7) z×n (8,9): every cell has 2 < 3 -> none judged.
  const inter = view(r.views, 'group × region');
  assert.equal(inter.groups.length, 5);
  assert.deepEqual(inter.judged, []);
  assert.ok(Number.isNaN(inter.demographicParityDifference.estimate));
  assert.match(inter.note ?? '', /only 0 group\(s\) of "group × region" have at least 3 examples/);
  // With minGroupSize 2 every cell is judged: class a sel x×n 1/2, x×s 1/2, y×n 0, y×s 0, z×n 1 -> DP 1.
  const r2 = disaggregate({
    labels: H.labels,
    yTrue: H.yTrue,
    yPred: H.yPred,
    sensitive: { group: H.group, region: H.region },
    minGroupSize: 2,
    bootstrap: false,
  });
  const inter2 = view(r2.views, 'group × region');
  assert.equal(inter2.judged.length, 5);
  close(inter2.demographicParityDifference.estimate, 1);
  assert.equal(inter2.demographicParityDifference.label, 'a');
});

test('bootstrap intervals: seeded, bracket the estimate, equal an independent recomputation', () => {
  // 200 examples: group p selected 60%, group q 30%.
  const n = 200;
  const groups = Array.from({ length: n }, (_, i) => (i < 100 ? 'p' : 'q'));
  const yPred = Array.from({ length: n }, (_, i) => (i < 100 ? (i % 10 < 6 ? 1 : 0) : i % 10 < 3 ? 1 : 0));
  const yTrue = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : 0));
  const opts = { iterations: 300, seed: 5 };
  const r = disaggregate({ labels: BIN, yTrue, yPred, sensitive: { g: groups }, bootstrap: opts });
  const v = r.views[0];
  close(v.demographicParityDifference.estimate, 0.3);
  close(v.disparateImpact.estimate, 0.5);
  assert.ok(v.demographicParityDifference.lower! < 0.3 && 0.3 < v.demographicParityDifference.upper!);
  // The same resamples (seed "5/g", documented per view) with a plain selection-rate difference written here.
  const ref = bootstrapIntervals(
    n,
    (idx) => {
      const sel = { p: [0, 0], q: [0, 0] } as Record<string, [number, number]>;
      for (const i of idx) {
        sel[groups[i]][0] += yPred[i];
        sel[groups[i]][1]++;
      }
      const rp = sel.p[0] / sel.p[1];
      const rq = sel.q[0] / sel.q[1];
      return { dp: Math.abs(rp - rq), di: Math.min(rp, rq) / Math.max(rp, rq) };
    },
    { iterations: 300, seed: '5/g' },
  );
  close(v.demographicParityDifference.lower, ref.dp.lower, 1e-12);
  close(v.demographicParityDifference.upper, ref.dp.upper, 1e-12);
  close(v.disparateImpact.lower, ref.di.lower, 1e-12);
  close(v.disparateImpact.upper, ref.di.upper, 1e-12);
  assert.deepEqual(r.bootstrap, { iterations: 300, confidence: 0.95, seed: 5 });
  const again = disaggregate({ labels: BIN, yTrue, yPred, sensitive: { g: groups }, bootstrap: opts });
  assert.deepEqual(again.views[0].demographicParityDifference, v.demographicParityDifference);
});

test('the default minimum group size is 30 and is stated in the report', () => {
  const r = disaggregate({ labels: BIN, yTrue: Y_TRUE, yPred: Y_PRED, sensitive: { sf: SF }, bootstrap: false });
  assert.equal(DEFAULT_MIN_GROUP_SIZE, 30);
  assert.equal(r.minGroupSize, 30);
  assert.deepEqual(r.views[0].judged, []);
  assert.equal(r.views[0].tooSmall.length, 3);
});

test('bad input names the field', () => {
  const base = { labels: BIN, yTrue: [0, 1], yPred: [0, 1], sensitive: { g: ['a', 'b'] } };
  assert.throws(() => disaggregate({ ...base, sensitive: {} }), /at least one sensitive column/);
  assert.throws(
    () => disaggregate({ ...base, sensitive: { g: ['a'] } }),
    /sensitive column "g" has 1 values but there are 2 examples/,
  );
  assert.throws(
    () => disaggregate({ ...base, sensitive: { g: ['a', ''] } }),
    /sensitive column "g" has no value for example 1/,
  );
  assert.throws(() => disaggregate({ ...base, yPred: [0, 2] }), /yPred\[1\] = 2 is not a class id in \[0, 2\)/);
  assert.throws(() => disaggregate({ ...base, positiveLabels: ['z'] }), /positive label "z" is not one of the labels/);
  assert.throws(
    () => disaggregate({ ...base, minGroupSize: 0 }),
    (e: unknown) => e instanceof ConfigError && /minGroupSize/.test(String(e)),
  );
});
