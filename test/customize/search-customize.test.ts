/**
 * The search with the real trainer (customizeTrials) on a tiny BERT over a 5-intent CLINC150 slice: the shared
 * features and warm head reach every trial, the winner's model is the one the table scores, and `precomputed`
 * gives customize the same start as computing the features itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { customize, type CustomizeResult } from '../../src/customize/customize.ts';
import { customizeTrials, searchCustomize, type SearchConfig } from '../../src/customize/search.ts';
import { ConfigError } from '../../src/errors.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { textFeatures } from '../../src/models/text.ts';
import { fitWarmHead } from '../../src/train/warm-head.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(5, 40, 10);
const base = tinyBert(data);
const shared = { batchSize: 15, threads: 1, maxLength: 24 };
const labels = [...new Set(data.train.map((r) => r.label))].sort();

test('searchCustomize on a tiny BERT: 3 trials on a third of the rows (13 of 40 per intent), the best on all of them; the winner is the model returned', async () => {
  const candidates: SearchConfig[] = [
    { strategy: 'head', lr: 3e-2 },
    { strategy: 'lora', lora: { r: 4, targets: 'attention' }, lr: 3e-3 },
    { strategy: 'full', lr: 3e-3 },
  ];
  const runner = customizeTrials(base, data, { ...shared, seed: 1 });
  const results: CustomizeResult[] = [];
  const s = await searchCustomize(base, data, {
    ...shared,
    budgetSeconds: 3600,
    seed: 1,
    candidates,
    minFraction: 1 / 3,
    maxEpochs: 2,
    fill: false,
    runner: {
      prepare: () => runner.prepare!(),
      async run(plan) {
        const out = await runner.run(plan);
        results.push(out.result!);
        return out;
      },
    },
  });
  assert.deepEqual(
    s.trials.map((t) => [t.config, t.rung, t.trainRows, t.epochs]),
    [
      ['head lr 3e-2', 0, 65, 1],
      ['lora attention r4 lr 3e-3', 0, 65, 1],
      ['full lr 3e-3', 0, 65, 1],
      [s.trials[3].config, 1, 200, 2],
    ],
  );
  const rung0 = s.trials.slice(0, 3);
  const best = [...rung0].sort((a, b) => b.accuracy! - a.accuracy! || a.logLoss! - b.logLoss!)[0];
  assert.equal(s.trials[3].config, best.config, 'the best of rung 0 goes on');
  assert.equal(s.winner, s.trials[3]);
  assert.equal(s.result, results[3]);
  assert.equal(s.result!.report.strategy, s.winner.strategy);
  // Every trial started from the one warm head fitted during the setup, and none ran a feature pass of its own.
  for (const r of results) {
    assert.equal(r.report.headInit.kind, 'warm');
    assert.equal(r.report.featureSeconds, undefined);
  }
  const warm = results.map((r) => (r.report.headInit.kind === 'warm' ? r.report.headInit.valAccuracy : NaN));
  assert.ok(warm.every((a) => a === warm[0]));
  // The table's score is the returned model's: recomputed from its own predictions.
  const clf = await Classifier.fromModel(s.result!.model, { maxLength: 24, intraOpThreads: 1 });
  try {
    const p = await clf.predict(data.validation.map((x) => x.text));
    const acc = p.filter((x, i) => x.label === data.validation[i].label).length / p.length;
    assert.equal(acc, s.winner.accuracy);
  } finally {
    await clf.release();
  }
  assert.ok(s.setupSeconds > 0 && s.validationSeconds > 0);
  assert.ok(s.seconds >= s.trials.reduce((a, t) => a + t.seconds, 0));
});

test('customize with precomputed features and warm head starts where computing them itself does', async () => {
  const opts = { strategy: 'lora' as const, epochs: 1, seed: 1, ...shared, lr: 3e-3, labels };
  const plain = await customize(base, data, opts);
  const { features, width } = await textFeatures(
    base,
    [...data.train, ...data.validation].map((r) => r.text),
    { maxLength: 24 },
  );
  const n = data.train.length;
  const train = features.slice(0, n * width);
  const validation = features.slice(n * width);
  const id = (l: string): number => labels.indexOf(l);
  const warmHead = await fitWarmHead(
    { features: train, labels: data.train.map((r) => id(r.label)) },
    { features: validation, labels: data.validation.map((r) => id(r.label)) },
    width,
    labels.length,
  );
  const pre = await customize(base, data, { ...opts, precomputed: { train, validation, width, warmHead } });
  assert.equal(pre.report.featureSeconds, undefined);
  assert.equal(plain.report.headInit.kind, 'warm');
  assert.equal(pre.report.headInit.kind, 'warm');
  if (plain.report.headInit.kind === 'warm' && pre.report.headInit.kind === 'warm') {
    assert.equal(pre.report.headInit.l2, plain.report.headInit.l2);
    assert.equal(pre.report.headInit.valAccuracy, plain.report.headInit.valAccuracy);
    assert.ok(Math.abs(pre.report.headInit.valLoss - plain.report.headInit.valLoss) < 1e-4);
  }
  assert.equal(pre.report.accuracy, plain.report.accuracy);
  assert.ok(Math.abs(pre.report.curve[0].trainLoss - plain.report.curve[0].trainLoss) < 1e-3);

  await assert.rejects(
    customize(base, data, { ...opts, precomputed: { train: new Float32Array(3), validation, width } }),
    (e: unknown) =>
      e instanceof ConfigError && /precomputed\.train holds 3 values, not 200 rows of width 32/.test(e.message),
  );
  await assert.rejects(
    customize(base, data, {
      ...opts,
      precomputed: { train, validation, width, warmHead: { ...warmHead, weight: new Float32Array(width) } },
    }),
    /precomputed\.warmHead's weight is not \[32, 5\]/,
  );
});

test('customizeTrials starts from features it is given when their sizes fit the rows, else encodes the rows itself', async () => {
  const plan = {
    config: { strategy: 'head' as const, lr: 3e-2 },
    rung: 0,
    rows: data.train.map((_, i) => i),
    fraction: 1,
    epochs: 1,
  };
  const warmAccuracy = async (features?: { train: Float32Array; validation: Float32Array; width: number }) => {
    const runner = customizeTrials(base, data, { ...shared, seed: 1, ...(features ? { features } : {}) });
    const { result } = await runner.run(plan);
    const h = result!.report.headInit;
    assert.equal(h.kind, 'warm');
    return h.kind === 'warm' ? h.valAccuracy : NaN;
  };
  const own = await warmAccuracy();
  assert.ok(own > 0.5, String(own));
  // All-zero features of the right sizes: the warm head sees no signal and gives every text one class, 10 of 50.
  const zeros = { train: new Float32Array(200 * 32), validation: new Float32Array(50 * 32), width: 32 };
  assert.equal(await warmAccuracy(zeros), 0.2);
  // Sizes that do not fit the rows (a subsampled validation split): ignored, the rows are encoded again.
  assert.equal(await warmAccuracy({ ...zeros, validation: new Float32Array(40 * 32) }), own);
});

test('setfit ignores precomputed features: its body phase changes the body they were computed from', async () => {
  const opts = { strategy: 'setfit' as const, epochs: 1, seed: 1, ...shared, labels, setfit: { pairsPerExample: 1 } };
  const width = 32;
  const zeros = {
    train: new Float32Array(data.train.length * width),
    validation: new Float32Array(data.validation.length * width),
    width,
  };
  const plain = await customize(base, data, opts);
  const pre = await customize(base, data, { ...opts, precomputed: zeros });
  // The tuned body's features were computed (not the zeros), so the two runs agree.
  assert.ok(pre.report.featureSeconds !== undefined);
  assert.equal(pre.report.accuracy, plain.report.accuracy);
  assert.ok(pre.report.accuracy > 1 / labels.length, `accuracy ${pre.report.accuracy} is above chance`);
});
