import assert from 'node:assert/strict';
import { test } from 'node:test';
import { predictTexts } from '../../src/models/text.ts';
import { applyAdapter } from '../../src/customize/adapters.ts';
import { slotBytes } from '../../src/customize/multi-lora.ts';
import type { LoraAdapter } from '../../src/customize/peft.ts';
import { ModelUnavailableError, ServerBusyError } from '../../src/serve/backend.ts';
import type { ExecutionStats } from '../../src/serve/engine/batcher.ts';
import { MultiAdapterEngine, type EngineOptions } from '../../src/serve/engine/engine.ts';
import { clincSlice, tinyBert } from '../customize/fixtures.ts';
import { randomAdapter } from '../customize/random-adapters.ts';

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const H = 32;
const L = (i: number, part: string): string => `encoder.layer.${i}.${part}`;
const texts = data.train.slice(0, 6).map((r) => r.text);
const MODULES = [L(0, 'attention.self.query'), L(1, 'attention.self.value'), L(1, 'intermediate.dense')];

const adapters: Record<string, LoraAdapter> = {
  a: randomAdapter(base, { modules: [MODULES[0]], r: 2, alpha: 8, labels: ['a1', 'a2', 'a3'], seed: 11, features: H }),
  b: randomAdapter(base, { modules: MODULES, r: 4, alpha: 8, labels: ['b1', 'b2'], seed: 12, features: H }),
  c: randomAdapter(base, {
    modules: [MODULES[1], MODULES[2]],
    r: 3,
    alpha: 6,
    labels: ['c1', 'c2', 'c3', 'c4'],
    seed: 13,
    features: H,
  }),
};

const softmax = (xs: number[], t = 1): number[] => {
  const m = Math.max(...xs.map((x) => x / t));
  const e = xs.map((x) => Math.exp(x / t - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};

/** Reference probabilities of the adapter applied alone (a model with its LoRA nodes), one row per text. */
async function reference(a: LoraAdapter, t = 1): Promise<number[][]> {
  const { logits, classes } = await predictTexts(applyAdapter(base, a), texts, { maxLength: 32, intraOpThreads: 1 });
  return texts.map((_, i) => softmax([...logits.subarray(i * classes, (i + 1) * classes)], t));
}

function engineOpts(extra: Partial<EngineOptions> = {}): EngineOptions {
  return {
    modules: MODULES,
    maxRank: 4,
    maxLabels: 4,
    maxLength: 32,
    maxQueueDelayMs: 30,
    session: { intraOpThreads: 1 },
    ...extra,
  };
}

test('int8 base: the adapters answer close to fp32 (not bit-equal: the base really is quantized); a bad precision names the field', async () => {
  await assert.rejects(
    MultiAdapterEngine.create(base, engineOpts({ basePrecision: 'fp16' as 'int8' })),
    (e: Error & { context?: { field?: string } }) =>
      /base precision must be one of fp32, int8, got 'fp16'/.test(e.message) && e.context?.field === 'basePrecision',
  );
  const engine = await MultiAdapterEngine.create(base, engineOpts({ basePrecision: 'int8', buckets: [64] }));
  try {
    let maxDiff = 0;
    let agree = 0;
    let n = 0;
    for (const [name, a] of Object.entries(adapters)) {
      const m = engine.model(name, 1, () => Promise.resolve(a), { labels: a.head!.labels });
      const got = await m.predict(texts);
      const want = await reference(a);
      got.forEach((p, i) => {
        p.scores.forEach((s, j) => (maxDiff = Math.max(maxDiff, Math.abs(s - want[i][j]))));
        agree += p.label === a.head!.labels[want[i].indexOf(Math.max(...want[i]))] ? 1 : 0;
        n++;
      });
    }
    // Per-channel int8 weights and per-tensor uint8 activations: probabilities move by well under a hundredth on
    // this model, but they do move (an fp32 run would match to 1e-6, as the test above shows).
    assert.ok(maxDiff > 1e-6, `int8 answers equal fp32's exactly (max diff ${maxDiff}): was the base quantized?`);
    assert.ok(maxDiff < 0.02, `int8 answers too far from fp32's: max probability difference ${maxDiff}`);
    assert.ok(agree >= n - 1, `int8 labels agree with fp32 on ${agree} of ${n} rows`);
  } finally {
    await engine.close();
  }
});

test('adapters of one base in the same batch: each row equals its adapter applied alone; one execution', async () => {
  const stats: ExecutionStats[] = [];
  const cache: string[] = [];
  const engine = await MultiAdapterEngine.create(
    base,
    engineOpts({
      // One length bucket, so that every row may share the one batch.
      buckets: [64],
      observer: { onExecution: (s) => stats.push(s), onCache: (e, k) => cache.push(`${e} ${k}`) },
    }),
  );
  try {
    const models = Object.fromEntries(
      Object.entries(adapters).map(([n, a]) => [
        n,
        engine.model(n, 1, () => Promise.resolve(a), { labels: a.head!.labels, temperature: n === 'c' ? 2 : 1 }),
      ]),
    );
    for (const n of Object.keys(adapters)) await models[n].ready();
    assert.deepEqual(cache, ['miss a:1', 'miss b:1', 'miss c:1']);
    // Interleaved: each model asks for every text, all at once, in different orders.
    const asks = Object.keys(adapters).flatMap((n) => texts.map((t, i) => ({ n, i, p: models[n].predict([t]) })));
    const ref = {
      a: await reference(adapters.a),
      b: await reference(adapters.b),
      c: await reference(adapters.c, 2),
    } as Record<string, number[][]>;
    for (const { n, i, p } of asks) {
      const [pred] = await p;
      const want = ref[n][i];
      assert.equal(pred.scores.length, adapters[n].head!.labels.length);
      pred.scores.forEach((s, j) =>
        assert.ok(Math.abs(s - want[j]) < 1e-4, `${n} text ${i} class ${j}: ${s} vs ${want[j]}`),
      );
      assert.equal(pred.label, adapters[n].head!.labels[want.indexOf(Math.max(...want))]);
    }
    // 18 rows, maxBatchSize 32, all queued within the 30 ms delay: one ORT run served three adapters.
    assert.deepEqual(
      stats.map((s) => s.batchSize),
      [18],
    );
    assert.deepEqual(engine.counts, { inferences: 18, executions: 1 });
    assert.equal(cache.filter((c) => c.startsWith('hit')).length, 18);
    assert.deepEqual(models.b.labels, ['b1', 'b2']);
  } finally {
    await engine.close();
  }
});

test('a cold adapter loads in the background: other adapters keep being served meanwhile', async () => {
  const engine = await MultiAdapterEngine.create(base, engineOpts({ maxQueueDelayMs: 0 }));
  try {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const slow = engine.model('slow', 1, async () => {
      await gate;
      return adapters.c;
    });
    const fast = engine.model('fast', 1, () => Promise.resolve(adapters.a));
    assert.deepEqual(slow.labels, []);
    let slowDone = false;
    const ps = slow.predict([texts[0], texts[1]]).then((r) => ((slowDone = true), r));
    for (let i = 0; i < 3; i++) {
      const [r] = await fast.predict([texts[i]]);
      assert.equal(r.scores.length, 3);
    }
    assert.equal(slowDone, false);
    assert.equal(engine.queueDepth, 2);
    open();
    const r = await ps;
    assert.deepEqual(
      r.map((x) => x.scores.length),
      [4, 4],
    );
    assert.deepEqual(slow.labels, ['c1', 'c2', 'c3', 'c4']);
  } finally {
    await engine.close();
  }
});

test('the slot cache is bounded by bytes: least recently used adapters are evicted and loaded again', async () => {
  const events: string[] = [];
  const probe = await MultiAdapterEngine.create(base, engineOpts());
  const bytes = slotBytes(probe.graph);
  await probe.close();
  const engine = await MultiAdapterEngine.create(
    base,
    engineOpts({ cacheBytes: 2 * bytes + bytes / 2, observer: { onCache: (e, k) => events.push(`${e} ${k}`) } }),
  );
  try {
    assert.equal(engine.pool.slots, 2);
    const loads: Record<string, number> = { a: 0, b: 0, c: 0 };
    const m = Object.fromEntries(
      Object.keys(adapters).map((n) => [
        n,
        engine.model(n, 1, () => {
          loads[n]++;
          return Promise.resolve(adapters[n]);
        }),
      ]),
    );
    for (const n of ['a', 'b', 'a', 'c', 'b', 'a']) await m[n].predict([texts[0]]);
    // a, b load; a hits; c evicts b (least recent); b evicts a; a evicts c.
    assert.deepEqual(events, [
      'miss a:1',
      'miss b:1',
      'hit a:1',
      'miss c:1',
      'evict b:1',
      'miss b:1',
      'evict a:1',
      'miss a:1',
      'evict c:1',
    ]);
    assert.deepEqual(loads, { a: 2, b: 2, c: 1 });
    assert.equal(engine.pool.evicted, 3);
    assert.equal(engine.pool.residentBytes, 2 * bytes);
  } finally {
    await engine.close();
  }
});

test('a failing or mislabelled adapter fails its own requests only; a full queue is ServerBusyError; release', async () => {
  const engine = await MultiAdapterEngine.create(base, engineOpts({ maxQueueRows: 4, maxQueueDelayMs: 0 }));
  try {
    const broken = engine.model('broken', 2, () => Promise.reject(new Error('no such file adapter_model.safetensors')));
    const wrong = engine.model('wrong', 1, () => Promise.resolve(adapters.a), { labels: ['x', 'y', 'z'] });
    const good = engine.model('good', 1, () => Promise.resolve(adapters.b));
    const [e1, e2, ok] = await Promise.allSettled([
      broken.predict([texts[0]]),
      wrong.predict([texts[1]]),
      good.predict([texts[2]]),
    ]);
    assert.equal(ok.status, 'fulfilled');
    assert.ok(e1.status === 'rejected' && e1.reason instanceof ModelUnavailableError);
    assert.equal(
      (e1 as PromiseRejectedResult).reason.message,
      "adapter 'broken' version 2 failed to load: no such file adapter_model.safetensors",
    );
    assert.equal(
      (e2 as PromiseRejectedResult).reason.message,
      "adapter 'wrong' version 1 failed to load: adapter 'wrong:1' has labels [a1, a2, a3] but was registered with [x, y, z]",
    );
    await assert.rejects(good.predict(texts.slice(0, 5)), (e: unknown) => {
      assert.ok(e instanceof ServerBusyError);
      assert.equal(e.message, 'the queue is full (0 of 4 rows waiting; this request has 5); retry later');
      return true;
    });
    assert.equal(engine.pool.resident, 1);
    await good.release();
    assert.equal(engine.pool.resident, 0);
    await assert.rejects(good.predict([texts[0]]), { message: "model 'good' version 1 was released" });
  } finally {
    await engine.close();
  }
});

test('three adapters through two slots and two concurrent runs: every answer is its own adapter’s (pinned slots)', async () => {
  const probe = await MultiAdapterEngine.create(base, engineOpts());
  const bytes = slotBytes(probe.graph);
  await probe.close();
  const evictions: string[] = [];
  const engine = await MultiAdapterEngine.create(
    base,
    engineOpts({
      cacheBytes: 2 * bytes,
      concurrency: 2,
      maxBatchSize: 4,
      maxQueueDelayMs: 0,
      observer: { onCache: (e, k) => e === 'evict' && evictions.push(k) },
    }),
  );
  try {
    const loads: Record<string, number> = { a: 0, b: 0, c: 0 };
    const m = Object.fromEntries(
      Object.keys(adapters).map((n) => [
        n,
        engine.model(n, 1, async () => {
          loads[n]++;
          await new Promise((r) => setTimeout(r, 1));
          return adapters[n];
        }),
      ]),
    );
    const ref: Record<string, number[][]> = {
      a: await reference(adapters.a),
      b: await reference(adapters.b),
      c: await reference(adapters.c),
    };
    // Three rounds of every (adapter, text) pair, interleaved, all queued at once.
    const asks = [0, 1, 2].flatMap(() =>
      texts.flatMap((t, i) => Object.keys(adapters).map((n) => ({ n, i, p: m[n].predict([t]) }))),
    );
    for (const { n, i, p } of asks) {
      const [pred] = await p;
      ref[n][i].forEach((w, j) => assert.ok(Math.abs(pred.scores[j] - w) < 1e-4, `${n} text ${i} class ${j}`));
    }
    assert.ok(evictions.length > 0, 'the two slots were shared by three adapters');
    assert.ok(
      Object.values(loads).some((x) => x > 1),
      'an adapter evicted while its rows waited was loaded again',
    );
    assert.equal(engine.counts.inferences, asks.length);
  } finally {
    await engine.close();
  }
});
