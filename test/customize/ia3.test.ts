import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { customize } from '../../src/customize/customize.ts';
import { attachHead } from '../../src/models/head.ts';
import { ia3Adapter, ia3Name, injectIa3, loadIa3Adapter, mergeIa3, saveIa3Adapter } from '../../src/customize/ia3.ts';
import { parseSafetensors } from '../../src/onnx/safetensors.ts';
import { paramValues, toOnnxModel, withParamValues, type Model } from '../../src/models/model.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { clincSlice, tinyBert } from './fixtures.ts';
import { ia3Config, peftResolve, tmpDir, vals, writeAdapterDir } from './peft-fixtures.ts';

const data = clincSlice(3, 8, 3);
const base = tinyBert(data);
const headed = attachHead(base, { labels: [...new Set(data.train.map((r) => r.label))].sort(), seed: 3 });

function feeds(): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: 24 }, (_, i) => BigInt(5 + ((i * 7) % 20)));
  const mask = BigInt64Array.from({ length: 24 }, (_, i) => (i % 12 < 9 ? 1n : 0n));
  return {
    input_ids: new ort.Tensor('int64', ids, [2, 12]),
    attention_mask: new ort.Tensor('int64', mask, [2, 12]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(24), [2, 12]),
  };
}

async function logits(m: Model): Promise<Float32Array> {
  const s = await Session.create(toOnnxModel(m), { intraOpThreads: 1 });
  try {
    return (await s.run(feeds())).logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

const close = (a: Float32Array, b: Float32Array, tol: number): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `[${i}] ${a[i]} vs ${b[i]}`);
};

/** The base with a module's weight (and optionally bias) multiplied by c, written by hand. */
function scaled(m: Model, module: string, c: number, bias: boolean): Model {
  let out = withParamValues(
    m,
    `${module}.weight`,
    Float32Array.from(paramValues(m, `${module}.weight`) as Float32Array, (v) => v * c),
  );
  if (bias)
    out = withParamValues(
      out,
      `${module}.bias`,
      Float32Array.from(paramValues(m, `${module}.bias`) as Float32Array, (v) => v * c),
    );
  return out;
}

test('IA3 defaults: key, value (output, width out) and the FFN output dense (input, width intermediate); starts exactly equal to the base; only vectors + head train', async () => {
  const { model, spec } = injectIa3(headed);
  assert.deepEqual(
    spec.sites.map((s) => [s.module, s.feedforward, s.width]),
    [0, 1].flatMap((l) => [
      [`encoder.layer.${l}.attention.self.key`, false, 32],
      [`encoder.layer.${l}.attention.self.value`, false, 32],
      [`encoder.layer.${l}.output.dense`, true, 64],
    ]),
  );
  const trainable = [...model.params.values()]
    .filter((p) => p.trainable)
    .map((p) => p.path)
    .sort();
  assert.deepEqual(
    trainable,
    ['classifier.bias', 'classifier.weight', ...spec.sites.map((s) => ia3Name(s.module))].sort(),
  );
  for (const s of spec.sites) assert.ok((paramValues(model, ia3Name(s.module)) as Float32Array).every((v) => v === 1));
  assert.deepEqual(await logits(model), await logits(headed));
});

test('IA3 semantics match PEFT: a value vector c scales weight and bias (as a key vector does); a feed-forward vector c scales the weight only', async () => {
  // value, not key: a key bias adds q·b to every score of a query, which softmax cancels, so it would not show.
  const key = 'encoder.layer.0.attention.self.value';
  const ff = 'encoder.layer.1.output.dense';
  // Non-zero biases, so that scaling them or not shows.
  let withBias = headed;
  for (const [mod, n] of [
    [key, 32],
    [ff, 32],
  ] as const)
    withBias = withParamValues(
      withBias,
      `${mod}.bias`,
      Float32Array.from({ length: n }, (_, i) => 0.3 * Math.sin(i + 1)),
    );
  const headedB = withBias;
  const { model } = injectIa3(headedB);
  const m1 = withParamValues(
    withParamValues(model, ia3Name(key), new Float32Array(32).fill(1.7)),
    ia3Name(ff),
    new Float32Array(64).fill(0.6),
  );
  const want = scaled(scaled(headedB, key, 1.7, true), ff, 0.6, false);
  const a = await logits(m1);
  close(a, await logits(want), 1e-5);
  // The alternatives (the value's bias unscaled, the FFN's bias scaled) give other outputs: the test tells them apart.
  for (const wrong of [
    scaled(scaled(headedB, key, 1.7, false), ff, 0.6, false),
    scaled(scaled(headedB, key, 1.7, true), ff, 0.6, true),
  ]) {
    const b = await logits(wrong);
    assert.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-4));
  }
});

test('mergeIa3 folds the vectors into the weights (checked in plain JS) and gives a plain graph with the same outputs', async () => {
  const { model, spec } = injectIa3(headed);
  let m = model;
  let s = 5;
  for (const site of spec.sites)
    m = withParamValues(
      m,
      ia3Name(site.module),
      Float32Array.from({ length: site.width }, () => 0.5 + (s = (s * 16807) % 2147483647) / 2147483647),
    );
  const merged = mergeIa3(m, spec);
  assert.equal(merged.graph.nodes.length, headed.graph.nodes.length);
  assert.ok(![...merged.params.keys()].some((k) => k.endsWith('.ia3_l')));
  assert.ok(![...merged.graph.initializers.keys()].some((k) => k.endsWith('.ia3_l')));
  for (const site of spec.sites) {
    const l = paramValues(m, ia3Name(site.module)) as Float32Array;
    const W = paramValues(headed, `${site.module}.weight`) as Float32Array;
    const W2 = paramValues(merged, `${site.module}.weight`) as Float32Array;
    const [I, O] = headed.params.get(`${site.module}.weight`)!.shape;
    for (let i = 0; i < I; i++)
      for (let o = 0; o < O; o++) assert.equal(W2[i * O + o], Math.fround(W[i * O + o] * l[site.feedforward ? i : o]));
    const b = paramValues(headed, `${site.module}.bias`) as Float32Array;
    const b2 = paramValues(merged, `${site.module}.bias`) as Float32Array;
    for (let o = 0; o < O; o++) assert.equal(b2[o], site.feedforward ? b[o] : Math.fround(b[o] * l[o]));
  }
  close(await logits(merged), await logits(m), 1e-5);
});

test('customize ia3: trains the vectors and the head only; the merged model and the saved PEFT IA3 adapter reproduce the trained one', async () => {
  const r = await customize(base, data, {
    strategy: 'ia3',
    epochs: 1,
    batchSize: 8,
    lr: 5e-2,
    seed: 1,
    threads: 1,
    maxLength: 16,
  });
  assert.ok(r.ia3);
  const sites = r.ia3.spec.sites;
  assert.equal(r.report.trainableParams, sites.reduce((t, s) => t + s.width, 0) + 32 * 3 + 3);
  assert.ok(
    [...r.ia3.vectors.values()].some((v) => v.some((x) => Math.abs(x - 1) > 1e-4)),
    'vectors moved',
  );
  for (const [k, t] of headed.graph.initializers)
    if (!k.startsWith('classifier.')) assert.equal(r.model.graph.initializers.get(k), t, `${k} frozen`);
  close(await logits(mergeIa3(r.model, r.ia3.spec)), await logits(r.model), 1e-5);

  // PEFT's IA3 format: names, [out, 1] / [1, in] shapes, config; loading it back rebuilds the same model.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ia3-'));
  try {
    await saveIa3Adapter(dir, r.ia3.adapter);
    const cfg = JSON.parse(await readFile(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.peft_type, 'IA3');
    // Shortest suffixes PEFT resolves to exactly these modules: `output.dense` alone would also reach
    // attention.output.dense, and a feed-forward name must also be a target_modules entry.
    assert.deepEqual(cfg.target_modules, ['key', 'layer.0.output.dense', 'layer.1.output.dense', 'value']);
    assert.deepEqual(cfg.feedforward_modules, ['layer.0.output.dense', 'layer.1.output.dense']);
    assert.deepEqual(cfg.modules_to_save, ['classifier']);
    const st = parseSafetensors(await readFile(path.join(dir, 'adapter_model.safetensors')));
    assert.deepEqual(
      [...st.tensors].map(([k, t]) => [k, [...t.dims]]).sort(),
      [
        ...[0, 1].flatMap((l) => [
          [`base_model.model.encoder.layer.${l}.attention.self.key.ia3_l`, [32, 1]],
          [`base_model.model.encoder.layer.${l}.attention.self.value.ia3_l`, [32, 1]],
          [`base_model.model.encoder.layer.${l}.output.dense.ia3_l`, [1, 64]],
        ]),
        ['base_model.model.classifier.bias', [3]],
        ['base_model.model.classifier.weight', [3, 32]],
      ].sort(),
    );
    const back = await loadIa3Adapter(dir);
    assert.deepEqual(
      [...back.vectors].map(([k, v]) => [k, v.feedforward, [...v.data]]),
      [...r.ia3.adapter.vectors].map(([k, v]) => [k, v.feedforward, [...v.data]]),
    );
    const h = back.head!;
    const rebuilt = injectIa3(
      attachHead(base, { labels: h.labels, weight: h.weight, bias: h.bias }),
      {
        targets: [...back.vectors.keys()],
        feedforward: [...back.vectors].filter(([, v]) => v.feedforward).map(([k]) => k),
      },
      new Map([...back.vectors].map(([k, v]) => [k, v.data])),
    );
    assert.deepEqual(await logits(rebuilt.model), await logits(r.model));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// Issue #18, items 1 and 7. Before the fix (commit a5e4090) target_modules and feedforward_modules came from two
// separate peftTargetModules calls: here target_modules ["dense", "key", "value"] with full-path
// feedforward_modules, which PEFT's IA3Config refuses ("feedforward_modules should be a subset of
// target_modules"); and a `score` head was "neither an IA3 vector nor a saved classifier".
const seqBase = tinyBert(data, 'sequence-classification');

test('IA3 config: feedforward_modules is a string subset of target_modules, and PEFT resolves both to exactly the sites', () => {
  const { model, spec } = injectIa3(seqBase, { targets: /key|value|dense/ });
  const cfg = ia3Adapter(model, spec).config;
  const ff = cfg.feedforward_modules as string[];
  const targets = cfg.target_modules as string[];
  assert.ok(
    ff.every((f) => targets.includes(f)),
    `${JSON.stringify(ff)} within ${JSON.stringify(targets)}`,
  );
  const sites = spec.sites.map((s) => s.module).sort();
  assert.equal(sites.length, 11, 'key, value and three dense per layer (2 × 5), and the pooler; never the classifier');
  assert.deepEqual(peftResolve(targets, ['classifier', 'score']).sort(), sites);
  // PEFT's feed-forward rule for a list (ia3/model.py _check_target_module_feedforward): key.endswith(entry).
  assert.deepEqual(
    sites.filter((m) => ff.some((f) => m.endsWith(f))),
    ['bert.encoder.layer.0.output.dense', 'bert.encoder.layer.1.output.dense'],
  );
  assert.deepEqual(
    spec.sites.filter((s) => s.feedforward).map((s) => s.module),
    ['bert.encoder.layer.0.output.dense', 'bert.encoder.layer.1.output.dense'],
  );
});

test('IA3 adapters with a score head (PEFT adds "score" to modules_to_save for sequence classification) load', async () => {
  const dir = tmpDir();
  const key = 'bert.encoder.layer.0.attention.self.key';
  const l = vals(32, 5).map((x) => 1 + x / 4);
  const w = vals(2 * 32, 7);
  writeAdapterDir(dir, ia3Config({ target_modules: ['key'], feedforward_modules: [] }), [
    { name: `base_model.model.${key}.ia3_l`, shape: [32, 1], values: l },
    { name: 'base_model.model.score.weight', shape: [2, 32], values: w },
    { name: 'base_model.model.score.bias', shape: [2], values: [0.5, -0.5] },
  ]);
  const a = await loadIa3Adapter(dir);
  assert.deepEqual([...a.vectors.get(key)!.data], l);
  assert.equal(a.vectors.get(key)!.feedforward, false);
  for (let c = 0; c < 2; c++) for (let d = 0; d < 32; d++) assert.equal(a.head!.weight[d * 2 + c], w[c * 32 + d]);
  assert.deepEqual([...a.head!.bias], [0.5, -0.5]);
  // PEFT refuses a config whose feedforward_modules are not among target_modules; so does the loader.
  const bad = tmpDir();
  writeAdapterDir(bad, ia3Config({ target_modules: ['key', 'value'], feedforward_modules: ['output.dense'] }), [
    { name: `base_model.model.${key}.ia3_l`, shape: [32, 1], values: l },
  ]);
  await assert.rejects(loadIa3Adapter(bad), {
    message: `${path.join(bad, 'adapter_config.json')}: feedforward_modules should be a subset of target_modules (PEFT refuses the config otherwise): [output.dense] not in [key, value]`,
  });
});
