/**
 * The server serves LoRA adapters of one base through one mixed-adapter engine: three adapters of a tiny BERT,
 * saved as `tailor customize` saves them (model/ merged, adapter/ PEFT), registered two ways (the whole folder, and
 * model/ with the adapter as a run artifact, as the workflow does). Answers over /v1 and V2 equal `Classifier.load`
 * on each saved folder row by row; one execution holds rows of different adapters; an ordinary model beside them
 * keeps the folder engine, and so does an adapter with an MLP head (the engine stacks linear heads only).
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeLineage } from '../../src/customize/lineage.ts';
import { saveCustomizedModel } from '../../src/customize/save.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { openRegistry, type Registry } from '../../src/registry/index.ts';
import { startServer, type ServeHandle, type ServeOptions } from '../../src/serve/server.ts';
import { clincSlice, tinyBert } from '../customize/fixtures.ts';
import { randomAdapter } from '../customize/random-adapters.ts';
import { call, directScores, metricValue, tinyClassifier } from './fixtures.ts';

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const H = 32;
const L = (i: number, part: string): string => `encoder.layer.${i}.${part}`;
const TEXTS = data.train.slice(0, 6).map((r) => r.text);

/** Three adapters with their own modules, ranks and label sets (heads differ per adapter). */
const SPECS = {
  alpha: { modules: [L(0, 'attention.self.query')], r: 2, alpha: 8, labels: ['a1', 'a2', 'a3'], seed: 11 },
  beta: {
    modules: [L(0, 'attention.self.query'), L(1, 'attention.self.value'), L(1, 'intermediate.dense')],
    r: 4,
    alpha: 8,
    labels: ['b1', 'b2'],
    seed: 12,
  },
  gamma: {
    modules: [L(1, 'attention.self.value'), L(1, 'intermediate.dense')],
    r: 3,
    alpha: 6,
    labels: ['c1', 'c2', 'c3', 'c4'],
    seed: 13,
  },
} as const;
type Name = keyof typeof SPECS;
const NAMES = Object.keys(SPECS) as Name[];

let tmp: string;
let registry: Registry;
let server: ServeHandle;
const folders = {} as Record<Name, string>;
/** The library's answers (Classifier.load on each saved folder), per adapter, per text. */
const expected = {} as Record<Name, { label: string; probabilities: number[] }[]>;
let plainDir: string;

/** A server over this file's registry on an ephemeral loopback port, quiet and on one thread, with `options`. */
const serve = (options: ServeOptions): Promise<ServeHandle> =>
  startServer({ registry, port: 0, pollIntervalMs: 0, logSampleRate: 0, intraOpThreads: 1, ...options });

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'tailor-serve-adapters-'));
  registry = await openRegistry({ home: path.join(tmp, 'home') });
  for (const name of NAMES) {
    const s = SPECS[name];
    const labels = [...s.labels];
    const lineage = makeLineage(base, 'lora', { maxLength: 32 }, `fp-${name}`, s.seed, labels);
    const adapter = { ...randomAdapter(base, { ...s, modules: [...s.modules], labels, features: H }), lineage };
    const saved = await saveCustomizedModel(path.join(tmp, name), { model: base, labels, lineage, adapter }, { base });
    folders[name] = saved.dir;
    if (name === 'gamma') {
      // As the workflow registers: model/ only, the adapter logged beside it in the run.
      const run = await registry.startRun({ name: 'gamma-run' });
      await run.logArtifact(saved.model, { path: 'model', kind: 'model' });
      await run.logArtifact(saved.adapter!, { path: 'adapter', kind: 'adapter' });
      await run.registerModel({ name, source: { runId: run.id, artifactPath: 'model' } });
      await run.finish();
    } else {
      await registry.registerModel({ name, source: saved.dir });
    }
    const clf = await Classifier.load(saved.dir, { intraOpThreads: 1 });
    expected[name] = await clf.predict(TEXTS);
    await clf.release();
  }
  plainDir = await tinyClassifier(path.join(tmp, 'plain'), 5);
  await registry.registerModel({ name: 'plain', source: plainDir });
  server = await serve({
    // Long enough that requests sent together land in one execution on a busy machine.
    batching: { maxQueueDelayMs: 150 },
  });
});

after(async () => {
  await server?.close();
  await registry?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function assertClose(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} scores, want ${want.length}`);
  got.forEach((g, j) => assert.ok(Math.abs(g - want[j]) < 1e-4, `${what} class ${j}: ${g} vs ${want[j]}`));
}

type V1 = {
  predictions: { label: string; scores: Record<string, number> }[];
  model: { name: string; version: number };
};
type V2 = { model_name: string; outputs: { name: string; data: (string | number)[] }[] };

test('concurrent /v1 predict and V2 infer on three adapters of one base equal Classifier.load on each folder, row by row', async () => {
  const asks = NAMES.flatMap((name) =>
    TEXTS.flatMap((text, i) => [
      { name, i, v: 1, p: call<V1>(`${server.url}/v1/models/${name}/predict`, { body: { texts: [text] } }) },
      {
        name,
        i,
        v: 2,
        p: call<V2>(`${server.url}/v2/models/${name}/infer`, {
          body: { inputs: [{ name: 'text', shape: [1], datatype: 'BYTES', data: [text] }] },
        }),
      },
    ]),
  );
  for (const { name, i, v, p } of asks) {
    const r = await p;
    assert.equal(r.status, 200, r.text);
    const want = expected[name][i];
    const labels = SPECS[name].labels;
    if (v === 1) {
      const body = r.body as V1;
      assert.deepEqual(body.model, { name, version: 1 });
      const [pred] = body.predictions;
      assert.deepEqual(Object.keys(pred.scores), labels);
      assertClose(
        labels.map((l) => pred.scores[l]),
        want.probabilities,
        `${name} v1 text ${i}`,
      );
      assert.equal(pred.label, want.label);
    } else {
      const body = r.body as V2;
      assert.equal(body.model_name, name);
      const [label, probs] = body.outputs;
      assertClose(probs.data as number[], want.probabilities, `${name} v2 text ${i}`);
      assert.equal(label.data[0], want.label);
    }
  }
  const m = await call(`${server.url}/metrics`);
  const text = m.text;
  const engine = /tailor_execution_total\{model="(lora:[0-9a-f]{12})",version="mixed"\}/.exec(text)?.[1];
  assert.ok(engine, 'one mixed-adapter engine series');
  const inferences = metricValue(text, 'tailor_inference_total', { model: engine });
  const executions = metricValue(text, 'tailor_execution_total', { model: engine });
  assert.equal(inferences, asks.length, 'every text ran through the one engine');
  assert.ok(executions < asks.length, `executions ${executions} < requests ${asks.length}`);
  assert.ok(inferences > executions);
  // Each adapter loaded once (at load time: a miss), then every request found it (hits); nothing evicted.
  assert.equal(metricValue(text, 'tailor_adapter_cache_misses_total'), 3);
  assert.ok(metricValue(text, 'tailor_adapter_cache_hits_total') >= asks.length);
  assert.equal(metricValue(text, 'tailor_adapter_cache_evictions_total'), 0);
  assert.equal(metricValue(text, 'tailor_adapters_loaded'), 3);
  // No folder-engine series for the adapters: they are not served as merged models.
  for (const name of NAMES) assert.throws(() => metricValue(text, 'tailor_execution_total', { model: name }));
});

test('one request per adapter, sent together, runs as one execution holding rows of different adapters', async () => {
  const before = await call(`${server.url}/metrics`);
  const engine = /tailor_execution_total\{model="(lora:[0-9a-f]{12})"/.exec(before.text)![1];
  const e0 = metricValue(before.text, 'tailor_execution_total', { model: engine });
  const i0 = metricValue(before.text, 'tailor_inference_total', { model: engine });
  const replies = await Promise.all(
    NAMES.map((name) => call<V1>(`${server.url}/v1/models/${name}/predict`, { body: { texts: [TEXTS[2]] } })),
  );
  replies.forEach((r, k) => {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.predictions[0].label, expected[NAMES[k]][2].label);
  });
  const afterText = (await call(`${server.url}/metrics`)).text;
  assert.equal(metricValue(afterText, 'tailor_inference_total', { model: engine }) - i0, 3);
  // Three single-row requests of three adapters in fewer than three executions: one run mixed adapters.
  const runs = metricValue(afterText, 'tailor_execution_total', { model: engine }) - e0;
  assert.ok(runs < 3, `3 requests of 3 adapters took ${runs} executions`);
});

test('an ordinary model beside the adapters keeps the folder engine and its own answers', async () => {
  const want = await directScores(plainDir, TEXTS.slice(0, 2));
  const r = await call<V1>(`${server.url}/v1/models/plain/predict`, { body: { texts: TEXTS.slice(0, 2) } });
  assert.equal(r.status, 200, r.text);
  r.body.predictions.forEach((p, i) => assertClose(Object.values(p.scores), want[i], `plain text ${i}`));
  const text = (await call(`${server.url}/metrics`)).text;
  assert.equal(metricValue(text, 'tailor_inference_total', { model: 'plain' }), 2);
});

test('mixedAdapters { enabled: false } serves each adapter as its merged model, with the same answers', async () => {
  const s = await serve({
    models: ['alpha', 'gamma'],
    mixedAdapters: { enabled: false },
  });
  try {
    for (const name of ['alpha', 'gamma'] as const) {
      const r = await call<V1>(`${s.url}/v1/models/${name}/predict`, { body: { texts: TEXTS } });
      assert.equal(r.status, 200, r.text);
      r.body.predictions.forEach((p, i) =>
        assertClose(Object.values(p.scores), expected[name][i].probabilities, `${name} merged text ${i}`),
      );
    }
    const text = (await call(`${s.url}/metrics`)).text;
    assert.equal(metricValue(text, 'tailor_inference_total', { model: 'alpha' }), TEXTS.length);
    assert.doesNotMatch(text, /model="lora:/);
    assert.equal(metricValue(text, 'tailor_adapter_cache_misses_total'), 0);
  } finally {
    await s.close();
  }
});

test('mixedAdapters { basePrecision: int8 }: the adapters answer close to the library (int8 base), not bit-equal', async () => {
  const s = await serve({
    models: ['beta'],
    mixedAdapters: { basePrecision: 'int8' },
  });
  try {
    const r = await call<V1>(`${s.url}/v1/models/beta/predict`, { body: { texts: TEXTS } });
    assert.equal(r.status, 200, r.text);
    let maxDiff = 0;
    r.body.predictions.forEach((p, i) =>
      Object.values(p.scores).forEach(
        (v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - expected.beta[i].probabilities[j]))),
      ),
    );
    assert.ok(maxDiff > 1e-6 && maxDiff < 0.02, `int8 engine vs library fp32: max probability difference ${maxDiff}`);
    assert.match((await call(`${s.url}/metrics`)).text, /model="lora:/);
  } finally {
    await s.close();
  }
});

test('an adapter whose registered labels differ from its own fails to load: 503 for it alone, the others answer', async () => {
  const dir = path.join(tmp, 'alpha-relabelled');
  cpSync(folders.alpha, dir, { recursive: true });
  const infoFile = path.join(dir, 'model', 'tailor.json');
  const info = JSON.parse(readFileSync(infoFile, 'utf8')) as { labels: string[] };
  writeFileSync(infoFile, JSON.stringify({ ...info, labels: ['a3', 'a2', 'a1'] }));
  await registry.registerModel({ name: 'relabelled', source: dir });
  const s = await serve({
    models: ['alpha', 'relabelled'],
  });
  try {
    const bad = await call(`${s.url}/v1/models/relabelled/predict`, { body: { texts: [TEXTS[0]] } });
    assert.equal(bad.status, 503, bad.text);
    assert.equal(
      (bad.body as { error: string }).error,
      "model 'relabelled@latest' failed to load version 1: adapter 'relabelled:1' has labels [a1, a2, a3] but was registered with [a3, a2, a1]",
    );
    const ok = await call<V1>(`${s.url}/v1/models/alpha/predict`, { body: { texts: [TEXTS[0]] } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.predictions[0].label, expected.alpha[0].label);
  } finally {
    await s.close();
  }
});

test('mixedAdapters.modules limits the engine to those branches: an adapter of other modules fails alone, naming them', async () => {
  // alpha adapts layer 0's query only; gamma adapts layer 1's value and intermediate.dense.
  const s = await serve({
    models: ['alpha', 'gamma'],
    mixedAdapters: { modules: 'layer\\.0\\.attention\\.self\\.query$' },
  });
  try {
    const ok = await call<V1>(`${s.url}/v1/models/alpha/predict`, { body: { texts: TEXTS } });
    assert.equal(ok.status, 200, ok.text);
    ok.body.predictions.forEach((p, i) =>
      assertClose(Object.values(p.scores), expected.alpha[i].probabilities, `alpha text ${i}`),
    );
    const bad = await call(`${s.url}/v1/models/gamma/predict`, { body: { texts: [TEXTS[0]] } });
    assert.equal(bad.status, 503, bad.text);
    assert.match(
      (bad.body as { error: string }).error,
      /^model 'gamma@latest' failed to load version 1: adapter 'gamma:1' adapts module 'encoder\.layer\.1\.attention\.self\.value', which this mixed-adapter graph has no LoRA branch for \(it has: encoder\.layer\.0\.attention\.self\.query\)$/,
    );
  } finally {
    await s.close();
  }
});

test('a LoRA adapter with an MLP head is served by the folder engine from its merged model/, beside a mixed-engine adapter', async () => {
  const labels = ['m1', 'm2', 'm3'];
  const lineage = makeLineage(base, 'lora', { maxLength: 32 }, 'fp-mlp', 21, labels);
  const spec = {
    modules: [L(0, 'attention.self.query')],
    r: 2,
    alpha: 8,
    labels,
    seed: 21,
    features: H,
    mlpHead: true,
  };
  const adapter = { ...randomAdapter(base, spec), lineage };
  const saved = await saveCustomizedModel(path.join(tmp, 'mlp'), { model: base, labels, lineage, adapter }, { base });
  await registry.registerModel({ name: 'mlp', source: saved.dir });
  const clf = await Classifier.load(saved.dir, { intraOpThreads: 1 });
  const want = await clf.predict(TEXTS);
  await clf.release();
  const s = await serve({
    models: ['alpha', 'mlp'],
  });
  try {
    const r = await call<V1>(`${s.url}/v1/models/mlp/predict`, { body: { texts: TEXTS } });
    assert.equal(r.status, 200, r.text);
    r.body.predictions.forEach((p, i) => {
      assert.deepEqual(Object.keys(p.scores), labels);
      assertClose(
        labels.map((l) => p.scores[l]),
        want[i].probabilities,
        `mlp text ${i}`,
      );
      assert.equal(p.label, want[i].label);
    });
    const ok = await call<V1>(`${s.url}/v1/models/alpha/predict`, { body: { texts: [TEXTS[0]] } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.predictions[0].label, expected.alpha[0].label);
    const text = (await call(`${s.url}/metrics`)).text;
    // The MLP-headed adapter runs as its own model (folder engine series), alpha in the mixed engine.
    assert.equal(metricValue(text, 'tailor_inference_total', { model: 'mlp' }), TEXTS.length);
    assert.match(text, /tailor_inference_total\{model="lora:[0-9a-f]{12}",version="mixed"\} 1\b/);
    assert.equal(metricValue(text, 'tailor_adapters_loaded'), 1);
    assert.equal(metricValue(text, 'tailor_adapter_cache_misses_total'), 1);
  } finally {
    await s.close();
  }
});

// Last: it adds a version of alpha to the shared registry.
test('an alias promotion between adapter versions under load: zero failed requests, then the new adapter answers', async () => {
  await registry.setAlias('alpha', 'production', 1);
  const s = await serve({
    models: ['alpha@production'],
    batching: { maxQueueDelayMs: 1 },
  });
  try {
    let stop = false;
    const statuses: number[] = [];
    const versions = new Set<number>();
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let k = 0; !stop && k < 200; k++) {
          const r = await call<V1>(`${s.url}/v1/models/alpha/predict`, { body: { texts: [TEXTS[k % TEXTS.length]] } });
          statuses.push(r.status);
          if (r.status === 200) versions.add(r.body.model.version);
        }
      }),
    );
    // Version 2 of alpha is beta's saved folder: another adapter (other labels) over the same base.
    await registry.registerModel({ name: 'alpha', source: folders.beta });
    await registry.setAlias('alpha', 'production', 2);
    await s.manager.poll();
    const after = await call<V1>(`${s.url}/v1/models/alpha/predict`, { body: { texts: [TEXTS[1]] } });
    stop = true;
    await load;
    assert.ok(statuses.length > 0);
    assert.deepEqual(
      statuses.filter((c) => c !== 200),
      [],
    );
    assert.equal(after.status, 200, after.text);
    assert.deepEqual(after.body.model, { name: 'alpha', version: 2 });
    assertClose(
      ['b1', 'b2'].map((l) => after.body.predictions[0].scores[l]),
      expected.beta[1].probabilities,
      'alpha v2 (beta) text 1',
    );
    assert.ok(versions.has(1));
    const text = (await call(`${s.url}/metrics`)).text;
    assert.equal(metricValue(text, 'tailor_model_switches_total', { model: 'alpha' }), 1);
  } finally {
    await s.close();
  }
});
