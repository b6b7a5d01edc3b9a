/**
 * Adapters whose classification head is an MLP (models/head.ts kind `mlp`, RoBERTa's RobertaClassificationHead):
 * PEFT's tensor names for it, reading and writing them (and refusing half-saved heads), rebuilding the model from a
 * LoRA or IA3 adapter with such a head, the adapter host feeding its hidden layer, and the mixed-adapter graph
 * refusing it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { AdapterHost, applyAdapter, mergeAdapter } from '../../src/customize/adapters.ts';
import {
  applyIa3Adapter,
  ia3Adapter,
  injectIa3,
  ia3Name,
  loadIa3Adapter,
  saveIa3Adapter,
} from '../../src/customize/ia3.ts';
import { makeLineage } from '../../src/customize/lineage.ts';
import { injectLora, loraBName, loraWeightsOf } from '../../src/customize/lora.ts';
import { checkAdapterFits, multiLoraModel } from '../../src/customize/multi-lora.ts';
import {
  headTensorOf,
  loadAdapter,
  peftConfig,
  saveAdapter,
  savedHeadKind,
  type LoraAdapter,
} from '../../src/customize/peft.ts';
import { adapterHead } from '../../src/customize/strategies/lora.ts';
import { ConfigError, ModelFileError } from '../../src/errors.ts';
import { attachHead, headKind, withHeadValues } from '../../src/models/head.ts';
import { paramValues, withParamValues, type Model } from '../../src/models/model.ts';
import { parseSafetensors } from '../../src/onnx/safetensors.ts';
import { tensorToArray } from '../../src/onnx/tensor.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { clincSlice, tinyBert } from './fixtures.ts';
import {
  feeds,
  logits,
  loraConfig,
  maxDiff,
  tmpDir,
  vals,
  writeAdapterDir,
  type FixtureTensor,
} from './peft-fixtures.ts';
import { randomAdapter } from './random-adapters.ts';

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const H = 32;
const LABELS = ['x', 'y', 'z'];
const L = (i: number, part: string): string => `encoder.layer.${i}.${part}`;
const TARGETS = [L(0, 'attention.self.query'), L(1, 'attention.self.value'), L(1, 'intermediate.dense')];

function uniform(seed: number, scale = 0.3): (n: number) => Float32Array {
  const rnd = mulberry32(seed);
  return (n) => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * scale);
}

/** The base with an MLP head of random values (as a trained one would have). */
function mlpHeaded(seed: number): Model {
  const u = uniform(seed);
  const headed = attachHead(base, { labels: LABELS, kind: 'mlp', seed });
  return withHeadValues(headed, {
    dense: { weight: u(H * H), bias: u(H) },
    weight: u(H * LABELS.length),
    bias: u(LABELS.length),
  });
}

/** A LoRA-trained model with an MLP head: random head, random B (zero at init), packaged as the strategy does. */
function trainedLora(seed: number): { trained: Model; adapter: LoraAdapter } {
  const u = uniform(seed + 100, 0.2);
  const { model, spec } = injectLora(mlpHeaded(seed), { targets: TARGETS, r: 2, alpha: 4, seed });
  let trained = model;
  for (const m of spec.modules) {
    const n = model.params.get(loraBName(m))!.shape.reduce((a, b) => a * b, 1);
    trained = withParamValues(trained, loraBName(m), u(n));
  }
  const adapter: LoraAdapter = {
    config: peftConfig({ r: 2, lora_alpha: 4, target_modules: spec.modules, modules_to_save: ['classifier'] }),
    weights: loraWeightsOf(trained, spec),
    head: adapterHead(trained, LABELS),
    lineage: makeLineage(base, 'lora', {}, 'fp', seed, LABELS),
  };
  return { trained, adapter };
}

function header(dir: string): Record<string, { shape: number[] }> {
  const st = parseSafetensors(fs.readFileSync(path.join(dir, 'adapter_model.safetensors')));
  return Object.fromEntries([...st.tensors].map(([k, t]) => [k, { shape: [...t.dims] }]));
}

test('headTensorOf: an MLP head under its own names and under modules_to_save.<adapter>; the linear head as before', () => {
  assert.deepEqual(headTensorOf('base_model.model.classifier.dense.weight'), {
    module: 'classifier',
    layer: 'dense',
    part: 'weight',
  });
  assert.deepEqual(headTensorOf('base_model.model.classifier.modules_to_save.default.out_proj.bias'), {
    module: 'classifier',
    layer: 'out_proj',
    part: 'bias',
  });
  assert.deepEqual(headTensorOf('base_model.model.classifier.weight'), { module: 'classifier', part: 'weight' });
  assert.deepEqual(headTensorOf('base_model.model.classifier.modules_to_save.default.bias'), {
    module: 'classifier',
    part: 'bias',
  });
  assert.equal(headTensorOf('base_model.model.classifier.dense.lora_A.weight'), undefined);
});

test('a LoRA adapter with an MLP head: PEFT names and PyTorch shapes on disk, the same values read back, the same logits rebuilt', async () => {
  const { trained, adapter } = trainedLora(7);
  assert.equal(headKind(trained), 'mlp');
  assert.ok(adapter.head?.dense);
  const dir = tmpDir();
  await saveAdapter(dir, adapter);
  const h = header(dir);
  const C = LABELS.length;
  assert.deepEqual(h['base_model.model.classifier.dense.weight'].shape, [H, H]);
  assert.deepEqual(h['base_model.model.classifier.dense.bias'].shape, [H]);
  assert.deepEqual(h['base_model.model.classifier.out_proj.weight'].shape, [C, H]);
  assert.deepEqual(h['base_model.model.classifier.out_proj.bias'].shape, [C]);
  assert.equal(h['base_model.model.classifier.weight'], undefined);
  assert.equal(Object.keys(h).length, 2 * TARGETS.length + 4);
  // PyTorch layout: dense.weight[o][i] is the graph's [i, o].
  const st = parseSafetensors(fs.readFileSync(path.join(dir, 'adapter_model.safetensors')));
  const dw = tensorToArray(st.tensors.get('base_model.model.classifier.dense.weight')!) as Float32Array;
  const graphDense = paramValues(trained, 'classifier.dense.weight') as Float32Array;
  assert.equal(dw[3 * H + 5], graphDense[5 * H + 3]);
  assert.equal(savedHeadKind(dir), 'mlp');

  const back = await loadAdapter(dir);
  assert.deepEqual(back.weights, adapter.weights);
  assert.deepEqual(back.head, adapter.head);
  assert.deepEqual(back.head!.labels, LABELS);

  const want = await logits(trained);
  const applied = applyAdapter(base, back);
  assert.equal(headKind(applied), 'mlp');
  assert.ok(maxDiff(await logits(applied), want) < 1e-5, 'applyAdapter');
  const merged = mergeAdapter(base, back).model;
  assert.equal(headKind(merged), 'mlp');
  assert.ok(maxDiff(await logits(merged), want) < 1e-5, 'mergeAdapter');
  // The head matters: the same adapter read as a linear head on the output layer alone answers otherwise.
  const { dense: _dense, ...linearHead } = back.head!;
  assert.ok(maxDiff(await logits(applyAdapter(base, { ...back, head: linearHead })), want) > 1e-3);
});

test('an IA3 adapter with an MLP head: written, read back equal, and rebuilt with the same logits', async () => {
  const u = uniform(21, 0.5);
  const { model, spec } = injectIa3(mlpHeaded(9));
  let trained = model;
  for (const s of spec.sites)
    trained = withParamValues(
      trained,
      ia3Name(s.module),
      Float32Array.from(u(s.width), (x) => 1 + x),
    );
  const adapter = ia3Adapter(trained, spec, {
    head: adapterHead(trained, LABELS),
    lineage: makeLineage(base, 'ia3', {}, 'fp', 9, LABELS),
  });
  const dir = tmpDir();
  await saveIa3Adapter(dir, adapter);
  const h = header(dir);
  assert.deepEqual(h['base_model.model.classifier.dense.weight'].shape, [H, H]);
  assert.deepEqual(h['base_model.model.classifier.out_proj.weight'].shape, [LABELS.length, H]);
  const back = await loadIa3Adapter(dir);
  assert.deepEqual(back.head, adapter.head);
  assert.deepEqual(back.vectors, adapter.vectors);
  const rebuilt = applyIa3Adapter(base, back).model;
  assert.equal(headKind(rebuilt), 'mlp');
  assert.ok(maxDiff(await logits(rebuilt), await logits(trained)) < 1e-5);
});

// A PEFT RoBERTa-style file written by hand: LoRA on one query, the classifier saved whole (modules_to_save).
const Q = 'encoder.layer.0.attention.self.query';
const loraTensors = (): FixtureTensor[] => [
  { name: `base_model.model.${Q}.lora_A.weight`, shape: [2, H], values: vals(2 * H, 1) },
  { name: `base_model.model.${Q}.lora_B.weight`, shape: [H, 2], values: vals(2 * H, 2) },
];
const mlpTensors = (prefix = 'base_model.model.classifier', C = 3): FixtureTensor[] => [
  { name: `${prefix}.dense.weight`, shape: [H, H], values: vals(H * H, 3) },
  { name: `${prefix}.dense.bias`, shape: [H], values: vals(H, 4) },
  { name: `${prefix}.out_proj.weight`, shape: [C, H], values: vals(C * H, 5) },
  { name: `${prefix}.out_proj.bias`, shape: [C], values: vals(C, 6) },
];
const config = (): Record<string, unknown> =>
  loraConfig({ r: 2, lora_alpha: 4, target_modules: ['query'], modules_to_save: ['classifier'] });

test("PEFT's live-model names (classifier.modules_to_save.default.dense.weight) load like the saved ones", async () => {
  const saved = tmpDir();
  writeAdapterDir(saved, config(), [...loraTensors(), ...mlpTensors()]);
  const live = tmpDir();
  writeAdapterDir(live, config(), [
    ...loraTensors(),
    ...mlpTensors('base_model.model.classifier.modules_to_save.default'),
  ]);
  const a = await loadAdapter(saved);
  const b = await loadAdapter(live);
  assert.deepEqual(b.head, a.head);
  assert.deepEqual(a.head!.labels, ['LABEL_0', 'LABEL_1', 'LABEL_2']);
  // Graph layout: out_proj [C, D] on disk is the head's weight [D, C].
  assert.equal(a.head!.weight[7 * 3 + 2], Math.fround(vals(3 * H, 5)[2 * H + 7]));
  assert.equal(a.head!.dense!.weight[4 * H + 9], Math.fround(vals(H * H, 3)[9 * H + 4]));
  assert.ok(maxDiff(await logits(applyAdapter(base, a)), await logits(mergeAdapter(base, a).model)) < 1e-5);
});

test('a half-saved or mixed MLP head is refused by file and tensor', async () => {
  const file = (dir: string): string => path.join(dir, 'adapter_model.safetensors');
  const expectRefused = async (tensors: FixtureTensor[], message: string, field: string): Promise<void> => {
    const dir = tmpDir();
    writeAdapterDir(dir, config(), [...loraTensors(), ...tensors]);
    await assert.rejects(
      loadAdapter(dir),
      (e: unknown) =>
        e instanceof ModelFileError &&
        e.message === `${file(dir)}: ${message}` &&
        e.context.file === file(dir) &&
        e.context.field === field,
    );
  };
  const [dw, db, ow, ob] = mlpTensors();
  await expectRefused(
    [dw, db],
    "the saved MLP head classifier is incomplete: it has 'base_model.model.classifier.dense.weight', 'base_model.model.classifier.dense.bias' but no classifier.out_proj.weight, classifier.out_proj.bias",
    'classifier.out_proj.weight',
  );
  await expectRefused(
    [ow, ob, db],
    "the saved MLP head classifier is incomplete: it has 'base_model.model.classifier.dense.bias', 'base_model.model.classifier.out_proj.weight', 'base_model.model.classifier.out_proj.bias' but no classifier.dense.weight",
    'classifier.dense.weight',
  );
  await expectRefused(
    [dw, db, { ...ow, shape: [3, H / 2], values: vals(3 * (H / 2), 5) }, ob],
    "'base_model.model.classifier.out_proj.weight' is [3, 16]; it reads the 32-wide hidden layer, so it must be [labels, 32]",
    'base_model.model.classifier.out_proj.weight',
  );
  await expectRefused(
    [{ ...dw, shape: [H / 2, H], values: vals((H / 2) * H, 3) }, db, ow, ob],
    "'base_model.model.classifier.dense.weight' is [16, 32]; an MLP head's hidden layer is square, [features, features]",
    'base_model.model.classifier.dense.weight',
  );
  await expectRefused(
    [dw, db, ow, { ...ob, shape: [2], values: vals(2, 6) }],
    "'base_model.model.classifier.out_proj.bias' is [2]; the output layer 'base_model.model.classifier.out_proj.weight' needs [3]",
    'base_model.model.classifier.out_proj.bias',
  );
  await expectRefused(
    [{ name: 'base_model.model.classifier.weight', shape: [3, H], values: vals(3 * H, 7) }, dw, db, ow, ob],
    "the file mixes a linear head ('base_model.model.classifier.weight') and an MLP head ('base_model.model.classifier.dense.weight'); a saved classifier is one or the other",
    'base_model.model.classifier.dense.weight',
  );
  await expectRefused(
    [...mlpTensors(), { ...dw, name: 'base_model.model.classifier.modules_to_save.other.dense.weight' }],
    "'classifier.dense.weight' is saved twice (under two adapter names?)",
    'base_model.model.classifier.modules_to_save.other.dense.weight',
  );
});

test('the adapter host feeds an MLP head as inputs: switching per call equals applying each adapter; a linear one is refused by name', async () => {
  const spec = { modules: [TARGETS[0], TARGETS[1]], r: 2, alpha: 4, labels: LABELS, features: H, mlpHead: true };
  const a = randomAdapter(base, { ...spec, seed: 31 });
  const b = randomAdapter(base, { ...spec, labels: ['p', 'q'], seed: 32 });
  const host = await AdapterHost.create(base, { a, b }, { intraOpThreads: 1 });
  try {
    assert.equal(host.headKind, 'mlp');
    const ra = (await host.run('a', feeds())).logits.data as Float32Array;
    const rb = (await host.run('b', feeds())).logits.data as Float32Array;
    assert.ok(maxDiff(ra, await logits(applyAdapter(base, a))) < 1e-5);
    assert.ok(maxDiff(rb, await logits(applyAdapter(base, b))) < 1e-5);
    assert.equal(rb.length, 2 * (ra.length / 3));
    const linear = randomAdapter(base, { ...spec, mlpHead: false, seed: 33 });
    assert.throws(
      () => host.add('flat', linear),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.context.field === 'flat' &&
        e.message ===
          "adapter 'flat' has a linear head but this host's adapters have mlp heads, and one host runs one head graph; host it with adapters whose heads are linear too, or serve its merged model (mergeAdapter, or the model/ folder of its saved customization)",
    );
    const short = { ...a, head: { ...a.head!, dense: { weight: new Float32Array(H), bias: a.head!.dense!.bias } } };
    assert.throws(() => host.add('short', short), {
      message:
        "adapter 'short''s 'classifier.dense.weight' has 32 values; a head over 32 features with 3 labels needs 1024",
    });
  } finally {
    await host.release();
  }
  await assert.rejects(
    AdapterHost.create(base, { flat: randomAdapter(base, { ...spec, mlpHead: false, seed: 33 }), a }),
    { message: /^adapter 'a' has an mlp head but this host's adapters have linear heads/ },
  );
});

test('the mixed-adapter graph refuses an MLP head, naming the adapter and what serves it instead', () => {
  const mm = multiLoraModel(base, { maxRank: 4, maxLabels: 4 });
  const spec = { modules: [TARGETS[0]], r: 2, alpha: 4, labels: LABELS, features: H };
  checkAdapterFits(mm, randomAdapter(base, { ...spec, seed: 41 }), 'flat');
  assert.throws(
    () => checkAdapterFits(mm, randomAdapter(base, { ...spec, seed: 41, mlpHead: true }), 'roberta-head'),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.context.value === 'roberta-head' &&
      e.message ===
        "adapter 'roberta-head' has an MLP head (classifier.dense + classifier.out_proj), and the mixed-adapter graph stacks linear heads only; serve its merged model instead (the model/ folder of its saved customization, or mergeAdapter)",
  );
});
