import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { AdapterHost, applyAdapter, mergeAdapter } from '../../src/customize/adapters.ts';
import { baseHash } from '../../src/customize/lineage.ts';
import { loadAdapter, saveAdapter, type LoraAdapter } from '../../src/customize/peft.ts';
import { ConfigError } from '../../src/errors.ts';
import { paramValues, toOnnxModel, type Model } from '../../src/models/model.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const H = 32;
const QUERY = 'encoder.layer.0.attention.self.query';
const VALUE = 'encoder.layer.1.attention.self.value';

/** safetensors bytes written by hand from the format's description (not with Tailor's writer). */
function handSafetensors(tensors: { name: string; shape: number[]; values: number[] }[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.values.length] };
    off += 4 * t.values.length;
  }
  let json = JSON.stringify(header);
  while (json.length % 8) json += ' ';
  const out = Buffer.alloc(8 + json.length + off);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, 'utf8');
  let pos = 8 + json.length;
  for (const t of tensors)
    for (const v of t.values) {
      out.writeFloatLE(v, pos);
      pos += 4;
    }
  return out;
}

const v = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => Math.fround(f(i)));
// PyTorch layout, as PEFT stores them: lora_A [r, in], lora_B [out, r], classifier [labels, in].
const qA = v(2 * H, (i) => Math.sin(i) * 0.1);
const qB = v(H * 2, (i) => Math.cos(i) * 0.1);
const vA = v(2 * H, (i) => ((i % 5) - 2) * 0.03);
const vB = v(H * 2, (i) => ((i % 3) - 1) * 0.05);
const cW = v(3 * H, (i) => (((i * 37) % 11) - 5) * 0.02);
const cB = [0.1, -0.2, 0.05];

function writePeftFixture(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'adapter_config.json'),
    JSON.stringify({
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: 'tiny-bert',
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layers_pattern: null,
      layers_to_transform: null,
      lora_alpha: 4,
      lora_dropout: 0.1,
      modules_to_save: ['classifier'],
      peft_type: 'LORA',
      r: 2,
      rank_pattern: {},
      revision: null,
      target_modules: ['query', 'value'],
      task_type: 'SEQ_CLS',
      use_rslora: false,
    }),
  );
  fs.writeFileSync(
    path.join(dir, 'adapter_model.safetensors'),
    handSafetensors([
      { name: `base_model.model.${QUERY}.lora_A.weight`, shape: [2, H], values: qA },
      { name: `base_model.model.${QUERY}.lora_B.weight`, shape: [H, 2], values: qB },
      { name: `base_model.model.${VALUE}.lora_A.weight`, shape: [2, H], values: vA },
      { name: `base_model.model.${VALUE}.lora_B.weight`, shape: [H, 2], values: vB },
      { name: 'base_model.model.classifier.weight', shape: [3, H], values: cW },
      { name: 'base_model.model.classifier.bias', shape: [3], values: cB },
    ]),
  );
}

function feeds(): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: 20 }, (_, i) => BigInt(6 + ((i * 5) % 15)));
  return {
    input_ids: new ort.Tensor('int64', ids, [2, 10]),
    attention_mask: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: 20 }, () => 1n),
      [2, 10],
    ),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(20), [2, 10]),
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

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-peft-'));

test('a PEFT-layout adapter written by hand loads: names, [r,in]/[out,r] layouts, scaling alpha/r, classifier via modules_to_save', async () => {
  const dir = tmp();
  writePeftFixture(dir);
  const a = await loadAdapter(dir);
  assert.deepEqual([...a.weights.keys()].sort(), [QUERY, VALUE].sort());
  const q = a.weights.get(QUERY)!;
  assert.equal(q.r, 2);
  // Graph layout A is [in, r]: element (i, k) is PyTorch A[k][i].
  assert.equal(q.A[5 * 2 + 1], qA[1 * H + 5]);
  assert.equal(q.B[1 * H + 7], qB[7 * 2 + 1]);
  assert.deepEqual(a.head!.labels, ['LABEL_0', 'LABEL_1', 'LABEL_2']);
  // Merged weight checked against PEFT's formula W_pt + (alpha/r) * B_pt A_pt, transposed to ONNX's [in, out].
  const merged = mergeAdapter(base, a);
  const W = paramValues(base, `${QUERY}.weight`) as Float32Array;
  const M = paramValues(merged.model, `${QUERY}.weight`) as Float32Array;
  for (let i = 0; i < H; i++) {
    for (let o = 0; o < H; o++) {
      const delta = 2 * (qB[o * 2] * qA[i] + qB[o * 2 + 1] * qA[H + i]);
      assert.ok(Math.abs(M[i * H + o] - (W[i * H + o] + delta)) < 1e-6);
    }
  }
  assert.equal(paramValues(merged.model, 'classifier.weight')[4 * 3 + 2], cW[2 * H + 4]);
  const [x, y] = [await logits(applyAdapter(base, a)), await logits(merged.model)];
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) < 1e-5);
});

test('saveAdapter writes PEFT names, shapes and metadata; loading it back gives the same tensors', async () => {
  const dir = tmp();
  writePeftFixture(dir);
  const a = await loadAdapter(dir);
  const out = tmp();
  await saveAdapter(out, {
    ...a,
    lineage: {
      base: { id: 't', hash: baseHash(base) },
      strategy: 'lora',
      hyperparameters: {},
      data_fingerprint: 'x',
      seed: 0,
      tailor_version: '0',
      labels: ['x', 'y', 'z'],
    },
  });
  const bytes = fs.readFileSync(path.join(out, 'adapter_model.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { shape: number[]; dtype: string }
  >;
  assert.deepEqual(header.__metadata__, { format: 'pt' });
  assert.deepEqual(header[`base_model.model.${QUERY}.lora_A.weight`].shape, [2, H]);
  assert.deepEqual(header[`base_model.model.${QUERY}.lora_B.weight`].shape, [H, 2]);
  assert.deepEqual(header['base_model.model.classifier.weight'].shape, [3, H]);
  assert.equal(Object.keys(header).length, 7);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.peft_type, 'LORA');
  assert.deepEqual(cfg.target_modules, ['query', 'value']);
  const b = await loadAdapter(out);
  assert.deepEqual(b.weights, a.weights);
  assert.deepEqual(b.head!.labels, ['x', 'y', 'z']);
  assert.deepEqual(b.head!.weight, a.head!.weight);
  // Bytes of every tensor equal the hand-written file's.
  const orig = fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
  const on = Number(orig.readBigUInt64LE(0));
  const oh = JSON.parse(orig.subarray(8, 8 + on).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  for (const [k, e] of Object.entries(oh)) {
    if (k === '__metadata__') continue;
    const h2 = (header as unknown as Record<string, { data_offsets: [number, number] }>)[k];
    assert.ok(
      orig
        .subarray(8 + on + e.data_offsets[0], 8 + on + e.data_offsets[1])
        .equals(bytes.subarray(8 + n + h2.data_offsets[0], 8 + n + h2.data_offsets[1])),
      k,
    );
  }
});

test('an adapter for another base (hash) or other shapes is refused with a clear error', async () => {
  const dir = tmp();
  writePeftFixture(dir);
  const a = await loadAdapter(dir);
  const other = tinyBert(data, 'sentence-embedding', 2);
  const stamped: LoraAdapter = {
    ...a,
    lineage: {
      base: { id: 'tiny', hash: baseHash(base) },
      strategy: 'lora',
      hyperparameters: {},
      data_fingerprint: '',
      seed: 0,
      tailor_version: '',
      labels: ['a', 'b', 'c'],
    },
  };
  assert.throws(
    () => applyAdapter(other, stamped),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === `adapter was trained on base ${baseHash(base)} (tiny) but the loaded base is ${baseHash(other)}`,
  );
  const small = {
    ...a,
    weights: new Map([[QUERY, { ...a.weights.get(QUERY)!, inFeatures: 16, A: new Float32Array(32) }]]),
  };
  assert.throws(() => mergeAdapter(base, small), {
    message: `adapter tensors for '${QUERY}' fit a [16, 32] weight (PyTorch [32, 16]) but the base's is [32, 32]`,
  });
  const missing = { ...a, weights: new Map([['encoder.layer.9.attention.self.query', a.weights.get(QUERY)!]]) };
  assert.throws(
    () => applyAdapter(base, missing),
    /adapter adapts module 'encoder\.layer\.9\.attention\.self\.query', which the base lacks/,
  );
  fs.writeFileSync(
    path.join(dir, 'adapter_config.json'),
    JSON.stringify({ peft_type: 'IA3', r: 2, lora_alpha: 4, target_modules: ['query'] }),
  );
  await assert.rejects(loadAdapter(dir), {
    message: `${path.join(dir, 'adapter_config.json')}: peft_type "IA3" is not supported (only "LORA")`,
  });
});

test('one host session serves several adapters: switching per call equals applying each adapter', async () => {
  const dir = tmp();
  writePeftFixture(dir);
  const a = await loadAdapter(dir);
  const b: LoraAdapter = {
    ...a,
    weights: new Map([[QUERY, { ...a.weights.get(QUERY)!, B: a.weights.get(QUERY)!.B.map((x) => -2 * x) }]]),
    head: { ...a.head!, bias: Float32Array.of(0, 1, 2) },
  };
  const host = await AdapterHost.create(base, { a, b }, { intraOpThreads: 1 });
  try {
    const ra = (await host.run('a', feeds())).logits.data as Float32Array;
    const rb = (await host.run('b', feeds())).logits.data as Float32Array;
    const ra2 = (await host.run('a', feeds())).logits.data as Float32Array;
    const [ea, eb] = [await logits(applyAdapter(base, a)), await logits(applyAdapter(base, b))];
    for (let i = 0; i < ea.length; i++) {
      assert.ok(Math.abs(ra[i] - ea[i]) < 1e-5 && Math.abs(rb[i] - eb[i]) < 1e-5);
      assert.equal(ra2[i], ra[i]);
    }
    assert.ok(ea.some((x, i) => Math.abs(x - eb[i]) > 1e-3));
    await assert.rejects(host.run('c', feeds()), { message: "no adapter named 'c' (loaded: a, b)" });
  } finally {
    await host.release();
  }
});
