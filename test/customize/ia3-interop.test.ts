/**
 * IA3 adapters in PEFT 0.20's real layout (issue #18, item 8), written by hand (peft-fixtures.ts cites the PEFT
 * source) and checked against outputs computed here: the base with each vector folded into its weight (and, on the
 * output side, its bias) in plain JS and the fixture's head put in place, run in onnxruntime.
 *
 * The fixture follows PEFT's default IA3 config for BERT (utils/constants.py:
 * TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING["bert"] = ["key", "value", "output.dense"], feed-forward
 * ["output.dense"]). Under PEFT's list rules that reaches attention.output.dense as well as the FFN's output.dense,
 * both on the feed-forward (input) side, so the file has vectors for both.
 *
 * Before the fix (commit a5e4090) this file fails at import: there was no way to apply a loaded IA3 adapter
 * (applyIa3Adapter is new); the loader also refused the bfloat16 head, the `.modules_to_save.default.` names
 * and the `score` head.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyIa3Adapter, loadIa3Adapter, mergeIa3 } from '../../src/customize/ia3.ts';
import { ConfigError } from '../../src/errors.ts';
import { paramValues, withParamValues, type Model } from '../../src/models/model.ts';
import { clincSlice, tinyBert } from './fixtures.ts';
import {
  H,
  ia3Config,
  INTER,
  logits,
  maxDiff,
  tmpDir,
  vals,
  withClassifier,
  withIa3,
  writeAdapterDir,
  type FixtureTensor,
} from './peft-fixtures.ts';

const data = clincSlice(3, 5, 2);
/** BertForSequenceClassification's layout, with non-zero biases so that scaling a bias or not shows. */
const base: Model = (() => {
  let m = tinyBert(data, 'sequence-classification');
  let seed = 40;
  for (const p of [...m.params.values()])
    if (/encoder\.layer\.\d\..*\.bias$/.test(p.path) && p.shape.length === 1)
      m = withParamValues(
        m,
        p.path,
        Float32Array.from(vals(p.shape[0], seed++), (x) => x / 2),
      );
  return m;
})();
const P = 'base_model.model.';

interface Vec {
  module: string;
  feedforward: boolean;
  l: number[];
}

/** The vectors PEFT's default BERT config creates on 2 layers; values near 1 (1 + k/256), exact in float32. */
const vecs: Vec[] = [0, 1].flatMap((layer, i) => {
  const b = `bert.encoder.layer.${layer}`;
  const near1 = (n: number, s: number): number[] => vals(n, s).map((x) => 1 + x / 4);
  return [
    { module: `${b}.attention.self.key`, feedforward: false, l: near1(H, 10 * i + 1) },
    { module: `${b}.attention.self.value`, feedforward: false, l: near1(H, 10 * i + 2) },
    { module: `${b}.attention.output.dense`, feedforward: true, l: near1(H, 10 * i + 3) },
    { module: `${b}.output.dense`, feedforward: true, l: near1(INTER, 10 * i + 4) },
  ];
});

/** PEFT's tensors: [out, 1] for output-side vectors, [1, in] for feed-forward ones (tuners/ia3/layer.py). */
function ia3Tensors(vs: Vec[], adapterName?: string): FixtureTensor[] {
  return vs.map((x) => ({
    name: `${P}${x.module}.ia3_l${adapterName ? `.${adapterName}` : ''}`,
    shape: x.feedforward ? [1, x.l.length] : [x.l.length, 1],
    values: x.l,
  }));
}

const headW = vals(2 * H, 77);
const headB = [-0.25, 0.125];

function reference(vs: Vec[], w: number[], b: number[]): Model {
  let m = base;
  for (const x of vs) m = withIa3(m, x.module, x.l, x.feedforward);
  return withClassifier(m, w, b);
}

async function assertRuns(dir: string, want: Model): Promise<void> {
  const a = await loadIa3Adapter(dir);
  const ref = await logits(want);
  assert.ok(maxDiff(ref, await logits(base)) > 1e-2, 'the fixture changes the outputs');
  const { model, spec } = applyIa3Adapter(base, a);
  assert.deepEqual(
    spec.sites.map((s) => [s.module, s.feedforward]),
    vecs.map((x) => [x.module, x.feedforward]),
  );
  assert.ok(maxDiff(await logits(model), ref) < 1e-5, 'applied adapter = reference');
  assert.ok(maxDiff(await logits(mergeIa3(model, spec)), ref) < 1e-5, 'merged adapter = reference');
}

test("PEFT's default BERT IA3 adapter: bert.-prefixed vectors, [out,1] / [1,in] shapes, classifier via modules_to_save", async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, ia3Config({}), [
    ...ia3Tensors(vecs),
    { name: `${P}classifier.weight`, shape: [2, H], values: headW },
    { name: `${P}classifier.bias`, shape: [2], values: headB },
  ]);
  const a = await loadIa3Adapter(dir);
  assert.deepEqual(a.head!.labels, ['LABEL_0', 'LABEL_1']);
  assert.equal(a.notes, undefined);
  await assertRuns(dir, reference(vecs, headW, headB));
});

test('adapter names kept (ia3_l.default, classifier.modules_to_save.default.*) and a bfloat16 head, upcast and noted', async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, ia3Config({}), [
    ...ia3Tensors(vecs, 'default'),
    { name: `${P}classifier.modules_to_save.default.weight`, shape: [2, H], values: headW, dtype: 'bfloat16' },
    { name: `${P}classifier.modules_to_save.default.bias`, shape: [2], values: headB, dtype: 'bfloat16' },
  ]);
  const a = await loadIa3Adapter(dir);
  assert.deepEqual(a.notes, [
    'bfloat16 tensors upcast to float32 on load: base_model.model.classifier.modules_to_save.default.bias, base_model.model.classifier.modules_to_save.default.weight',
  ]);
  await assertRuns(dir, reference(vecs, headW, headB));
});

test('a bias-free score head with IA3 vectors runs with a zero bias', async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, ia3Config({}), [
    ...ia3Tensors(vecs),
    { name: `${P}score.weight`, shape: [2, H], values: headW },
  ]);
  await assertRuns(dir, reference(vecs, headW, [0, 0]));
});

test('applying checks modules and widths against the base', async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, ia3Config({}), ia3Tensors(vecs));
  const a = await loadIa3Adapter(dir);
  // A BertModel base (no `bert.` prefix) lacks the modules of a BertForSequenceClassification adapter.
  const plain = tinyBert(data);
  assert.throws(
    () => applyIa3Adapter(plain, a),
    (e: unknown) =>
      e instanceof ConfigError &&
      /^IA3 adapter scales module 'bert\.(encoder\.layer\.\d\.[a-z.]+)', which the base lacks \(it has '\1': the adapter was made on a model with other module prefixes\); the base's linear modules are: encoder\.layer\.0\.attention\.self\.query,/.test(
        e.message,
      ),
  );
  const wide = new Map(a.vectors);
  const k = vecs[0].module;
  wide.set(k, { feedforward: false, data: new Float32Array(H + 1) });
  assert.throws(() => applyIa3Adapter(base, { ...a, vectors: wide }), {
    message: `IA3 vector for '${k}' has 33 values; the module's output has 32`,
  });
  // Without a head the base keeps its own classifier.
  const { model } = applyIa3Adapter(base, a);
  assert.deepEqual(paramValues(model, 'classifier.weight'), paramValues(base, 'classifier.weight'));
});
