/**
 * The MLP head (models/head.ts kind `mlp`, RoBERTa's classification head): its graph and parameters, the warm
 * start that makes it begin as the linear head, temperature folded into its output layer, `customize` with
 * `headType: 'mlp'` (head and LoRA), and the saved folder reading back with the same predictions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { customize } from '../../src/customize/customize.ts';
import { saveCustomizedModel } from '../../src/customize/save.ts';
import { ConfigError } from '../../src/errors.ts';
import { loadArtifact } from '../../src/models/artifact.ts';
import { Classifier } from '../../src/models/classifier.ts';
import {
  attachHead,
  featureValue,
  headGraph,
  headKind,
  LOGITS,
  MLP_DENSE_WEIGHT,
  MLP_OUT_BIAS,
  MLP_OUT_WEIGHT,
  scaleHead,
  warmHeadValues,
  withHeadValues,
} from '../../src/models/head.ts';
import { paramValues, type Model } from '../../src/models/model.ts';
import { predictTexts } from '../../src/models/text.ts';
import { modelFromGraph } from '../../src/onnx/ir.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { initValues } from '../../src/models/zoo/params.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(4, 30, 8);
const base = tinyBert(data);
const labels = [...new Set(data.train.map((r) => r.label))].sort();
const D = 32;
const C = labels.length;
const tmp = mkdtempSync(path.join(tmpdir(), 'tailor-mlp-head-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The head alone run on `features` [n, D]: its logits [n, C]. */
async function headLogits(model: Model, features: Float32Array): Promise<Float32Array> {
  const hg = headGraph(model);
  const s = await Session.create(modelFromGraph(hg.graph));
  try {
    const n = features.length / D;
    const out = await s.run({ [hg.feature]: new ort.Tensor('float32', features, [n, D]) }, [LOGITS]);
    return out[LOGITS].data as Float32Array;
  } finally {
    await s.release();
  }
}

const normal = (n: number, std: number, seed: number): Float32Array =>
  initValues({ kind: 'normal', std }, n, seed, 'test');

/** x W + b for row-major x [n, D], W [D, C]: the linear head by hand. */
function linear(x: Float32Array, w: Float32Array, b: Float32Array): Float32Array {
  const n = x.length / D;
  const out = new Float32Array(n * C);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < C; c++) {
      let s = b[c];
      for (let d = 0; d < D; d++) s += x[i * D + d] * w[d * C + c];
      out[i * C + c] = s;
    }
  return out;
}

test('attachHead kind mlp: RoBERTa-named parameters [D, D] + [D] + [D, C] + [C], all trainable and new, on the body feature', async () => {
  const lin = attachHead(base, { labels });
  const mlp = attachHead(base, { labels, kind: 'mlp' });
  assert.equal(headKind(lin), 'linear');
  assert.equal(headKind(mlp), 'mlp');
  assert.equal(headKind(base), undefined);
  const shapes = Object.fromEntries(
    [...mlp.params.values()].filter((p) => p.path.startsWith('classifier.')).map((p) => [p.path, p.shape]),
  );
  assert.deepEqual(shapes, {
    'classifier.dense.weight': [D, D],
    'classifier.dense.bias': [D],
    'classifier.out_proj.weight': [D, C],
    'classifier.out_proj.bias': [C],
  });
  assert.ok([...mlp.params.values()].filter((p) => p.path.startsWith('classifier.')).every((p) => p.trainable));
  assert.deepEqual([...(mlp.newlyInitialized ?? [])].sort(), Object.keys(shapes).sort());
  // The head reads the same body value as the linear head, so cached features serve both.
  assert.equal(featureValue(mlp), featureValue(lin));
  // A head of one kind replaces a head of the other (re-heading a customized model).
  assert.equal(headKind(attachHead(mlp, { labels })), 'linear');
  assert.equal(headKind(attachHead(lin, { labels, kind: 'mlp' })), 'mlp');
  const texts = data.validation.slice(0, 5).map((r) => r.text);
  const r = await predictTexts(mlp, texts, { maxLength: 24 });
  assert.equal(r.classes, C);
  assert.ok(r.logits.every(Number.isFinite));

  assert.throws(
    () => attachHead(base, { labels, kind: 'tree' as 'mlp' }),
    (e: unknown) => e instanceof ConfigError && /unknown head type 'tree' \(head types: linear, mlp\)/.test(e.message),
  );
  assert.throws(
    () => attachHead(base, { labels, dense: { weight: new Float32Array(D * D), bias: new Float32Array(D) } }),
    /hidden-layer values were given for a 'linear' head/,
  );
  assert.throws(
    () => attachHead(base, { labels, kind: 'mlp', dense: { weight: new Float32Array(3), bias: new Float32Array(D) } }),
    /hidden-layer values have 3 \+ 32 elements; a \[32, 32\] layer needs 1024 \+ 32/,
  );
});

test('warmHeadValues: the MLP head starts within 1% of the linear head, on unit-norm and on unit-variance features', async () => {
  const w = normal(D * C, 2, 1);
  const b = normal(C, 0.5, 2);
  for (const scale of [1 / Math.sqrt(D), 1]) {
    const x = normal(50 * D, scale, 3);
    const expected = linear(x, w, b);
    const values = warmHeadValues('mlp', { weight: w, bias: b }, D, x);
    const mlp = withHeadValues(attachHead(base, { labels, kind: 'mlp' }), values);
    const got = await headLogits(mlp, x);
    const span = Math.max(...expected.map(Math.abs));
    const err = Math.max(...got.map((v, i) => Math.abs(v - expected[i])));
    assert.ok(err < 0.01 * span, `features of scale ${scale}: max error ${err} against logits up to ${span}`);
    // Not a coincidence of small logits: without the warm start the head is far off.
    const cold = await headLogits(attachHead(base, { labels, kind: 'mlp' }), x);
    assert.ok(Math.max(...cold.map((v, i) => Math.abs(v - expected[i]))) > 0.3 * span);
  }
  // The linear kind takes the values as they are.
  assert.deepEqual(warmHeadValues('linear', { weight: w, bias: b }, D, new Float32Array(D)), { weight: w, bias: b });
});

test('scaleHead on an MLP head scales its logits exactly (temperature folded into out_proj); the hidden layer is untouched', async () => {
  const m = withHeadValues(attachHead(base, { labels, kind: 'mlp', seed: 4 }), {
    weight: normal(D * C, 0.5, 5),
    bias: normal(C, 0.5, 6),
    dense: { weight: normal(D * D, 0.3, 7), bias: normal(D, 0.1, 8) },
  });
  const x = normal(20 * D, 0.5, 9);
  const before = await headLogits(m, x);
  const scaled = scaleHead(m, 0.4);
  const after = await headLogits(scaled, x);
  after.forEach((v, i) => assert.ok(Math.abs(v - 0.4 * before[i]) < 1e-5, `${v} vs ${0.4 * before[i]}`));
  assert.deepEqual(paramValues(scaled, MLP_DENSE_WEIGHT), paramValues(m, MLP_DENSE_WEIGHT));
  assert.ok(
    Math.abs((paramValues(scaled, MLP_OUT_BIAS)[0] as number) - 0.4 * (paramValues(m, MLP_OUT_BIAS)[0] as number)) <
      1e-7,
  );
});

test("customize head with headType mlp: trains from the warm start at the MLP head's default lr, keeps the better of the two, calibrated; the saved folder predicts the same", async () => {
  const r = await customize(base, data, {
    strategy: 'head',
    headType: 'mlp',
    epochs: 4,
    seed: 1,
    threads: 1,
    maxLength: 24,
  });
  assert.equal(headKind(r.model), 'mlp');
  assert.equal(r.lineage.hyperparameters.headType, 'mlp');
  assert.equal(r.lineage.hyperparameters.lr, 3e-4);
  assert.equal(r.report.headInit.kind, 'warm');
  const choice = r.report.headChoice!;
  assert.ok(choice, 'the head strategy reports which head it kept');
  const kept = choice.kept === 'trained' ? choice.trained : choice.start;
  assert.equal(r.report.accuracy, kept.accuracy);
  // The warm start is the linear warm head's function: its validation score equals the warm fit's.
  if (r.report.headInit.kind === 'warm')
    assert.ok(Math.abs(choice.start.accuracy - r.report.headInit.valAccuracy) < 0.05);
  // Calibration folded into out_proj: the returned model's validation logits are the kept ones divided by T.
  const texts = data.validation.map((x) => x.text);
  const out = await predictTexts(r.model, texts, { maxLength: 24 });
  const id = new Map(r.labels.map((l, i) => [l, i]));
  let correct = 0;
  for (let i = 0; i < texts.length; i++) {
    const row = Array.from(out.logits.subarray(i * C, (i + 1) * C));
    if (row.indexOf(Math.max(...row)) === id.get(data.validation[i].label)) correct++;
  }
  assert.ok(
    Math.abs(correct / texts.length - r.report.accuracy) < 1e-9,
    `${correct / texts.length} vs ${r.report.accuracy}`,
  );
  assert.ok(r.report.calibration.logLossAfter <= r.report.calibration.logLossBefore + 1e-9);

  const dir = path.join(tmp, 'head-mlp');
  await saveCustomizedModel(dir, r, { base });
  const loaded = await loadArtifact(dir);
  assert.equal(headKind(loaded.model), 'mlp', 'the parameters are recovered by name from model.onnx');
  const clf = await Classifier.load(dir);
  try {
    const preds = await clf.predict(texts);
    preds.forEach((p, i) => {
      const row = Array.from(out.logits.subarray(i * C, (i + 1) * C));
      assert.equal(p.label, r.labels[row.indexOf(Math.max(...row))]);
    });
  } finally {
    await clf.release();
  }
  // Re-heading the loaded model keeps working (a customize over a customized folder).
  assert.equal(featureValue(loaded.model), featureValue(attachHead(base, { labels })));
});

test('customize lora with headType mlp: the adapter carries the hidden layer, and adapter + base give the merged model', async () => {
  const r = await customize(base, data, {
    strategy: 'lora',
    headType: 'mlp',
    epochs: 1,
    batchSize: 20,
    seed: 1,
    threads: 1,
    maxLength: 24,
    lora: { targets: 'query|value', r: 2 },
  });
  assert.equal(headKind(r.model), 'mlp');
  const h = r.adapter!.head!;
  assert.equal(h.dense!.weight.length, D * D);
  assert.deepEqual(h.weight, paramValues(r.model, MLP_OUT_WEIGHT));
  const dir = path.join(tmp, 'lora-mlp');
  const saved = await saveCustomizedModel(dir, r, { base });
  const texts = data.validation.map((x) => x.text);
  const merged = await predictTexts((await loadArtifact(saved.model)).model, texts, { maxLength: 24 });
  const direct = await predictTexts(r.model, texts, { maxLength: 24 });
  merged.logits.forEach((v, i) => assert.ok(Math.abs(v - direct.logits[i]) < 1e-4, `${v} vs ${direct.logits[i]}`));
});

test('customize refuses an unknown head type before training, naming the field', async () => {
  await assert.rejects(
    customize(base, data, { strategy: 'head', headType: 'deep' as 'mlp' }),
    (e: unknown) =>
      e instanceof ConfigError && e.context.field === 'headType' && /unknown head type 'deep'/.test(e.message),
  );
});
