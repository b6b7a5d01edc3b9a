import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attachHead } from '../../src/models/head.ts';
import {
  initLoraA,
  injectLora,
  loraAName,
  loraBName,
  loraScaling,
  loraWeightsOf,
  mergeLora,
  unmergeLora,
} from '../../src/customize/lora.ts';
import { linearSites, selectSites } from '../../src/customize/sites.ts';
import { ConfigError } from '../../src/errors.ts';
import { paramValues, toOnnxModel, withParamValues, type Model } from '../../src/models/model.ts';
import { encodeModel } from '../../src/onnx/serialize.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const headed = attachHead(base, { labels: ['a', 'b', 'c'], seed: 3 });

function feeds(): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: 24 }, (_, i) => BigInt(5 + ((i * 7) % 20)));
  const mask = BigInt64Array.from({ length: 24 }, (_, i) => (i % 12 < 9 ? 1n : 0n));
  return {
    input_ids: new ort.Tensor('int64', ids, [2, 12]),
    attention_mask: new ort.Tensor('int64', mask, [2, 12]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(24), [2, 12]),
  };
}

async function logits(m: Model | Uint8Array): Promise<Float32Array> {
  const s = await Session.create(m instanceof Uint8Array ? m : toOnnxModel(m), { intraOpThreads: 1 });
  try {
    return (await s.run(feeds())).logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

test('targets select modules by regex, PEFT name list and kind; a target matching nothing lists the modules', () => {
  const q = selectSites(headed, 'query|value').map((s) => s.module);
  assert.deepEqual(q, [
    'encoder.layer.0.attention.self.query',
    'encoder.layer.0.attention.self.value',
    'encoder.layer.1.attention.self.query',
    'encoder.layer.1.attention.self.value',
  ]);
  assert.deepEqual(
    selectSites(headed, ['query', 'value']).map((s) => s.module),
    q,
  );
  assert.equal(selectSites(headed, { kind: 'attention' }).length, 8);
  assert.deepEqual(
    selectSites(headed, { kind: 'ffn' }).map((s) => s.module),
    [
      'encoder.layer.0.intermediate.dense',
      'encoder.layer.0.output.dense',
      'encoder.layer.1.intermediate.dense',
      'encoder.layer.1.output.dense',
    ],
  );
  assert.equal(selectSites(headed, { kind: 'all-linear' }).length, 12, 'all linear layers but the classifier');
  assert.equal(linearSites(headed).length, 13);
  assert.throws(
    () => selectSites(headed, 'qkv'),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message.startsWith(
        "target 'qkv' matches no linear module; the model's linear modules are: encoder.layer.0.attention.self.query, encoder.layer.0.attention.self.key,",
      ) &&
      e.message.endsWith('encoder.layer.1.output.dense, classifier'),
  );
});

test('rank larger than a layer allows, and bad alpha/dropout, are errors', () => {
  assert.throws(() => injectLora(headed, { targets: 'query', r: 33 }), {
    message:
      "LoRA rank 33 is larger than module 'encoder.layer.0.attention.self.query' allows: its weight is [32, 32] (rank at most 32)",
  });
  assert.throws(() => injectLora(headed, { targets: 'query', r: 0 }), {
    message: 'LoRA rank r must be a positive integer, got 0',
  });
  assert.throws(() => injectLora(headed, { targets: 'query', r: 2, dropout: 1 }), {
    message: 'lora_dropout must lie in [0, 1), got 1',
  });
});

test('PEFT init: B zero, A kaiming-uniform(a=sqrt 5) = U(+-1/sqrt(in)); the adapted model starts exactly equal to the base', async () => {
  const { model, spec } = injectLora(headed, { targets: 'query|value', r: 4, alpha: 8, dropout: 0.1 });
  const trainable = [...model.params.values()]
    .filter((p) => p.trainable)
    .map((p) => p.path)
    .sort();
  assert.deepEqual(
    trainable,
    ['classifier.bias', 'classifier.weight', ...spec.modules.flatMap((m) => [loraAName(m), loraBName(m)])].sort(),
  );
  // Base weights stay initializers with their original bytes.
  for (const [k, t] of headed.graph.initializers) assert.equal(model.graph.initializers.get(k), t, k);
  const w = loraWeightsOf(model, spec);
  for (const lw of w.values()) {
    assert.ok(lw.B.every((v) => v === 0));
    const bound = 1 / Math.sqrt(lw.inFeatures);
    assert.ok(lw.A.every((v) => Math.abs(v) <= bound) && lw.A.some((v) => Math.abs(v) > bound / 2));
    assert.equal(lw.A.length, 32 * 4);
  }
  assert.deepEqual(initLoraA('m', 2, 8, 0), initLoraA('m', 2, 8, 0));
  assert.notDeepEqual(initLoraA('m', 2, 8, 0), initLoraA('n', 2, 8, 0));
  assert.deepEqual(await logits(model), await logits(headed));
  assert.equal(loraScaling(16, 4, false), 4);
  assert.equal(loraScaling(16, 4, true), 8);
});

function randomB(model: Model, modules: string[]): Model {
  let m = model;
  let s = 1;
  for (const mod of modules) {
    const p = m.params.get(loraBName(mod))!;
    m = withParamValues(
      m,
      p.path,
      Float32Array.from(
        { length: p.shape[0] * p.shape[1] },
        () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5) * 0.5,
      ),
    );
  }
  return m;
}

test('merge folds W + scale*A*B (checked in float64), runs standalone in onnxruntime, and unmerge restores the base bit for bit', async () => {
  const inj = injectLora(headed, { targets: { kind: 'attention' }, r: 3, alpha: 6 });
  const adapted = randomB(inj.model, inj.spec.modules);
  const w = loraWeightsOf(adapted, inj.spec);
  const merged = mergeLora(headed, w, 2);
  // Independent check of one merged weight.
  const mod = 'encoder.layer.1.attention.output.dense';
  const W = paramValues(headed, `${mod}.weight`) as Float32Array;
  const M = paramValues(merged.model, `${mod}.weight`) as Float32Array;
  const { A, B } = w.get(mod)!;
  for (let i = 0; i < 32; i++) {
    for (let o = 0; o < 32; o++) {
      let acc = 0;
      for (let k = 0; k < 3; k++) acc += A[i * 3 + k] * B[k * 32 + o];
      assert.ok(Math.abs(M[i * 32 + o] - (W[i * 32 + o] + 2 * acc)) < 1e-6);
    }
  }
  assert.equal(merged.model.graph.nodes.length, headed.graph.nodes.length, 'no adapter nodes remain');
  const bytes = encodeModel(toOnnxModel(merged.model));
  const [a, m, b] = [await logits(adapted), await logits(bytes), await logits(headed)];
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - m[i]) < 1e-5, `${a[i]} vs ${m[i]}`);
  assert.ok(
    a.some((v, i) => Math.abs(v - b[i]) > 1e-4),
    'the adapter changes the outputs',
  );
  const un = unmergeLora(merged);
  assert.equal(un.graph.initializers.size, headed.graph.initializers.size);
  for (const [k, t] of headed.graph.initializers)
    assert.ok(Buffer.from(un.graph.initializers.get(k)!.data).equals(Buffer.from(t.data)), k);
  assert.deepEqual(await logits(un), b);
});
