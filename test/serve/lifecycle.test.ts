/**
 * Model lifecycle without dropped requests: an alias promotion picked up under continuous load, load and unload
 * through the repository API, a model that fails to load (503 for it alone), and a graceful close with requests in
 * flight.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openRegistry } from '../../src/registry/index.ts';
import { loadFolderModel, startServer, type ServedModel } from '../../src/serve/index.ts';
import { call, directScores, LABELS, metricValue, testRegistry, TEXTS, type TestRegistry } from './fixtures.ts';

let reg: TestRegistry;
before(async () => {
  reg = await testRegistry('life');
});
after(() => reg.cleanup());

interface PredictBody {
  predictions: Array<{ label: string; scores: Record<string, number> }>;
  model: { name: string; version: number };
}

test('an alias promotion under continuous load: the server switches to the new version with zero failed requests', async () => {
  const server = await startServer({
    registry: reg.registry,
    port: 0,
    models: ['tickets@production'],
    pollIntervalMs: 50,
  });
  try {
    const url = `${server.url}/v1/models/tickets/predict`;
    const seen: number[][] = [[], [], [], []];
    const failures: string[] = [];
    let stop = false;
    let total = 0;
    const deadline = Date.now() + 20_000;
    const worker = async (w: number): Promise<void> => {
      while (!stop && total < 2000 && Date.now() < deadline) {
        total++;
        const r = await call<PredictBody>(url, { body: { texts: [TEXTS[total % TEXTS.length]] } });
        if (r.status !== 200) failures.push(`${r.status} ${r.text}`);
        else seen[w].push(r.body.model.version);
      }
    };
    const load = Promise.all(seen.map((_, w) => worker(w)));
    while (total < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // Promote through another registry connection, as `tailor models alias tickets production 2` would.
    const other = await openRegistry({ home: reg.home });
    await other.setAlias('tickets', 'production', 2);
    await other.close();
    while (!seen.some((s) => s.includes(2)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const atSwitch = total;
    while (total < atSwitch + 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    for (const s of seen) {
      // Each worker's requests are sequential: once one answered with version 2, no later one answers with 1.
      const first2 = s.indexOf(2);
      assert.ok(first2 > 0, `worker saw ${JSON.stringify(s.slice(0, 5))}...`);
      assert.ok(s.slice(first2).every((v) => v === 2));
      assert.ok(s.slice(0, first2).every((v) => v === 1));
    }
    // Version 2 answers as its own folder does.
    const text = TEXTS[0];
    const r = await call<PredictBody>(url, { body: { texts: [text] } });
    const [expected] = await directScores(reg.dirs.get('tickets:2')!, [text]);
    LABELS.forEach((l, j) => assert.ok(Math.abs(r.body.predictions[0].scores[l] - expected[j]) < 1e-5));
    const m = (await call(`${server.url}/metrics`)).text;
    assert.equal(metricValue(m, 'tailor_model_switches_total', { model: 'tickets' }), 1);
    assert.equal(metricValue(m, 'tailor_models_loaded'), 1, 'the old version was released');
    assert.doesNotMatch(m, /tailor_requests_total\{[^}]*outcome="failure"/);
    assert.equal(metricValue(m, 'tailor_requests_total', { model: 'tickets', outcome: 'success' }), total + 1);
  } finally {
    await server.close();
    const back = await openRegistry({ home: reg.home });
    await back.setAlias('tickets', 'production', 1);
    await back.close();
  }
});

test('load and unload through the repository API; a model that fails to load answers 503 while others serve', async () => {
  const broken = path.join(reg.tmp, 'broken');
  mkdirSync(broken);
  writeFileSync(path.join(broken, 'model.onnx'), 'not an onnx file');
  writeFileSync(
    path.join(broken, 'tailor.json'),
    JSON.stringify({ format: 'tailor.classifier/1', labels: ['a', 'b'], maxLength: 8, strategy: 'head', base: 'x' }),
  );
  await reg.registry.registerModel({ name: 'broken', source: broken });
  const server = await startServer({
    registry: reg.registry,
    port: 0,
    models: ['broken', 'intents'],
    pollIntervalMs: 0,
  });
  try {
    const b = await call<{ error: string }>(`${server.url}/v1/models/broken/predict`, { body: { texts: ['hi'] } });
    assert.equal(b.status, 503);
    assert.equal(b.headers.get('retry-after'), '5');
    assert.match(b.body.error, /^model 'broken@latest' failed to load version 1: /);
    assert.equal((await call(`${server.url}/v2/models/broken/ready`)).status, 503);
    assert.equal((await call(`${server.url}/v1/models/intents/predict`, { body: { texts: ['hi'] } })).status, 200);
    assert.deepEqual((await call(`${server.url}/v2/health/ready`)).body, { ready: true });
    const m = (await call(`${server.url}/metrics`)).text;
    assert.equal(metricValue(m, 'tailor_model_load_failures_total', { model: 'broken' }), 1);

    // Two concurrent loads of one reference load it once.
    const [load, load2] = await Promise.all([
      call(`${server.url}/v2/repository/models/tickets@candidate/load`, { method: 'POST' }),
      call(`${server.url}/v2/repository/models/tickets@candidate/load`, { method: 'POST' }),
    ]);
    assert.equal(load.status, 200, load.text);
    assert.deepEqual(load.body, { name: 'tickets@candidate', version: 2, state: 'ready' });
    assert.deepEqual(load2.body, load.body);
    assert.equal(metricValue((await call(`${server.url}/metrics`)).text, 'tailor_models_loaded'), 2);
    const p = await call<PredictBody>(`${server.url}/v1/models/tickets@candidate/predict`, { body: { texts: ['hi'] } });
    assert.deepEqual(p.body.model, { name: 'tickets', version: 2 });
    const un = await call(`${server.url}/v2/repository/models/tickets@candidate/unload`, { method: 'POST' });
    assert.deepEqual(un.body, { name: 'tickets@candidate', state: 'unloaded' });
    const gone = await call<{ error: string }>(`${server.url}/v1/models/tickets@candidate/predict`, {
      body: { texts: ['hi'] },
    });
    assert.equal(gone.status, 404);
    assert.equal(
      gone.body.error,
      "model 'tickets@candidate' is not served (served models: broken@latest (version 1), intents@latest (version 1))",
    );
    const nosuch = await call<{ error: string }>(`${server.url}/v2/repository/models/nosuch/load`, { method: 'POST' });
    assert.equal(nosuch.status, 404);
    assert.match(nosuch.body.error, /^cannot load 'nosuch': model 'nosuch' is not registered in /);
    const again = await call(`${server.url}/v2/repository/models/tickets@candidate/unload`, { method: 'POST' });
    assert.equal(again.status, 404);
  } finally {
    await server.close();
  }
});

test('close() with requests in flight: every one of them is answered, then the port stops accepting', async () => {
  let started = 0;
  let released = false;
  const slow = async (mv: { name: string; version: number }, dir: string): Promise<ServedModel> => {
    const inner = await loadFolderModel(dir, { name: mv.name, version: mv.version });
    return {
      name: inner.name,
      version: inner.version,
      labels: inner.labels,
      async predict(texts, o) {
        started++;
        await new Promise((r) => setTimeout(r, 300));
        return inner.predict(texts, o);
      },
      async release() {
        released = true;
        await inner.release();
      },
    };
  };
  const server = await startServer({
    registry: reg.registry,
    port: 0,
    models: ['intents'],
    loader: slow,
    pollIntervalMs: 0,
  });
  const n = 20;
  const inflight = Array.from({ length: n }, (_, i) =>
    call(`${server.url}/v1/models/intents/predict`, { body: { texts: [TEXTS[i % TEXTS.length]] } }),
  );
  const until = Date.now() + 10_000;
  while (started < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(started, n, 'all requests reached the model before close');
  const closing = server.close();
  const replies = await Promise.all(inflight);
  await closing;
  assert.deepEqual(
    replies.map((r) => r.status),
    new Array(n).fill(200),
  );
  assert.ok(released, 'the model was released after the requests finished');
  await assert.rejects(fetch(`${server.url}/v2/health/live`));
});
