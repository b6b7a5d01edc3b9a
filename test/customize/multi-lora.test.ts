import assert from 'node:assert/strict';
import { test } from 'node:test';
import { textFeeds } from '../../src/models/text.ts';
import { applyAdapter, mergeAdapter } from '../../src/customize/adapters.ts';
import {
  ADAPTER_INDEX,
  allocStacks,
  checkAdapterFits,
  clearSlot,
  MASKED_LOGIT,
  multiLoraModel,
  slotBytes,
  stackArray,
  stackShapes,
  writeSlot,
} from '../../src/customize/multi-lora.ts';
import type { LoraAdapter } from '../../src/customize/peft.ts';
import { ConfigError } from '../../src/errors.ts';
import { toOnnxModel, type Model } from '../../src/models/model.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { clincSlice, tinyBert } from './fixtures.ts';
import { randomAdapter } from './random-adapters.ts';

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const H = 32;
const L = (i: number, part: string): string => `encoder.layer.${i}.${part}`;
const texts = [
  ...data.train.slice(0, 4).map((r) => r.text),
  'short',
  data.validation[0].text,
  `${data.train[5].text} ${data.train[6].text}`,
];

// Three adapters of different ranks, target modules, scalings and label counts.
const adapters: Record<string, LoraAdapter> = {
  qv: randomAdapter(base, {
    modules: [L(0, 'attention.self.query'), L(0, 'attention.self.value'), L(1, 'attention.self.value')],
    r: 2,
    alpha: 4,
    labels: ['a', 'b', 'c'],
    seed: 1,
    features: H,
  }),
  attn: randomAdapter(base, {
    modules: [L(1, 'attention.self.query'), L(1, 'attention.self.key'), L(1, 'attention.output.dense')],
    r: 4,
    alpha: 8,
    labels: ['v', 'w', 'x', 'y', 'z'],
    seed: 2,
    features: H,
  }),
  ffn: randomAdapter(base, {
    modules: [L(0, 'intermediate.dense'), L(1, 'output.dense')],
    r: 3,
    alpha: 6,
    rslora: true,
    labels: ['yes', 'no'],
    seed: 3,
    features: H,
  }),
};

async function run(m: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await Session.create(toOnnxModel(m), { intraOpThreads: 1 });
  try {
    return (await s.run(feeds, ['logits'])).logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

test('one run of the mixed-adapter graph gives, row by row, each adapter’s own logits (applyAdapter and merged)', async () => {
  const mm = multiLoraModel(base, { maxRank: 4, maxLabels: 6 });
  assert.equal(mm.sites.length, 12);
  const stacks = allocStacks(mm, 5);
  // Slot 0 first holds the rank-4 adapter, then is overwritten by the rank-2 one: stale rows must not survive.
  const slotOf: Record<string, number> = { qv: 0, attn: 3, ffn: 4 };
  writeSlot(mm, stacks, 0, adapters.attn);
  for (const [name, slot] of Object.entries(slotOf)) {
    checkAdapterFits(mm, adapters[name], name);
    writeSlot(mm, stacks, slot, adapters[name]);
  }
  const rowAdapter = ['qv', 'attn', 'ffn', 'attn', 'qv', 'ffn', 'qv'];
  const feeds: Record<string, ort.Tensor> = textFeeds(base, texts, { maxLength: 32 });
  for (const { name, dims } of stackShapes(mm, stacks.slots))
    feeds[name] = new ort.Tensor('float32', stackArray(stacks, name), dims);
  feeds[ADAPTER_INDEX] = new ort.Tensor('int64', BigInt64Array.from(rowAdapter.map((a) => BigInt(slotOf[a]))), [
    texts.length,
  ]);
  const mixed = await run(mm.model, feeds);
  const C = 6;
  assert.equal(mixed.length, texts.length * C);
  const textOnly = textFeeds(base, texts, { maxLength: 32 });
  const ref: Record<string, { applied: Float32Array; merged: Float32Array; headOnly: Float32Array }> = {};
  for (const [name, a] of Object.entries(adapters)) {
    ref[name] = {
      applied: await run(applyAdapter(base, a), textOnly),
      merged: await run(mergeAdapter(base, a).model, textOnly),
      headOnly: await run(applyAdapter(base, { ...a, weights: new Map() }), textOnly),
    };
  }
  rowAdapter.forEach((name, row) => {
    const k = adapters[name].head!.labels.length;
    for (let c = 0; c < k; c++) {
      const got = mixed[row * C + c];
      assert.ok(Math.abs(got - ref[name].applied[row * k + c]) < 1e-4, `row ${row} (${name}) class ${c}`);
      assert.ok(Math.abs(got - ref[name].merged[row * k + c]) < 1e-4, `row ${row} (${name}) class ${c} merged`);
    }
    // The LoRA branch matters: without it the logits are clearly different.
    const maxDiff = Math.max(
      ...Array.from({ length: k }, (_, c) => Math.abs(mixed[row * C + c] - ref[name].headOnly[row * k + c])),
    );
    assert.ok(maxDiff > 1e-3, `row ${row}: adapter weights change the logits (${maxDiff})`);
    // Classes past the adapter's own are masked out.
    for (let c = k; c < C; c++) assert.ok(mixed[row * C + c] < MASKED_LOGIT / 2, `row ${row} class ${c} masked`);
  });

  // Clearing a slot leaves the base with a fully masked head for rows that point at it.
  clearSlot(mm, stacks, 3);
  assert.ok(
    stackArray(stacks, 'classifier.bias.stack')
      .subarray(18, 24)
      .every((x) => x === MASKED_LOGIT),
  );
  assert.ok(stackArray(stacks, `${L(1, 'attention.self.key')}.lora_B.stack`).every((x) => x === 0));
});

test('slot bytes count every stacked tensor', () => {
  const mm = multiLoraModel(base, { modules: [L(0, 'attention.self.query')], maxRank: 2, maxLabels: 4 });
  // A [32, 2] + B [2, 32] + scaling 1 + head weight [32, 4] + head bias [4], float32.
  assert.equal(slotBytes(mm), 4 * (64 + 64 + 1 + 128 + 4));
  const st = allocStacks(mm, 3);
  let total = 0;
  for (const { name } of stackShapes(mm, 3)) total += stackArray(st, name).byteLength;
  assert.equal(total, 3 * slotBytes(mm));
});

test('adapters that do not fit the mixed-adapter graph are refused with the reason', () => {
  const mm = multiLoraModel(base, {
    modules: [L(0, 'attention.self.query'), L(0, 'attention.self.value')],
    maxRank: 2,
    maxLabels: 4,
  });
  assert.throws(
    () => checkAdapterFits(mm, adapters.attn, 'attn'),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        `adapter 'attn' adapts module '${L(1, 'attention.self.query')}', which this mixed-adapter graph has no LoRA branch for (it has: ${L(0, 'attention.self.query')}, ${L(0, 'attention.self.value')})`,
  );
  const wide = multiLoraModel(base, { maxRank: 2, maxLabels: 4 });
  assert.throws(() => checkAdapterFits(wide, adapters.attn, 'attn'), {
    message: `adapter 'attn': module '${L(1, 'attention.self.query')}' has rank 4, above the graph's maxRank 2`,
  });
  const big = multiLoraModel(base, { maxRank: 4, maxLabels: 4 });
  assert.throws(() => checkAdapterFits(big, adapters.attn, 'attn'), {
    message: "adapter 'attn' has 5 labels, above the graph's maxLabels 4",
  });
  assert.throws(() => checkAdapterFits(big, { ...adapters.qv, head: undefined }, 'nohead'), {
    message: "adapter 'nohead' has no classifier head; served adapters need one",
  });
  assert.throws(() => multiLoraModel(base, { maxRank: 64, maxLabels: 4 }), {
    message: `maxRank 64 is larger than module '${L(0, 'attention.self.query')}' allows: its weight is [32, 32]`,
  });
  assert.throws(() => writeSlot(big, allocStacks(big, 2), 2, adapters.qv), { message: 'slot 2 is outside 0..1' });
});
