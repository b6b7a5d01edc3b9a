/**
 * The server answers like the model itself: /v1 predict and KServe V2 infer on two registered models equal the
 * library run of each model folder; metadata, health, OpenAPI; dynamic batching seen in /metrics; prediction and
 * feedback log rows.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type ServeHandle } from '../../src/serve/index.ts';
import { call, directScores, LABELS, metricValue, testRegistry, TEXTS, type TestRegistry } from './fixtures.ts';

let reg: TestRegistry;
let server: ServeHandle;

before(async () => {
  reg = await testRegistry('predict');
  server = await startServer({
    registry: reg.registry,
    port: 0,
    logInputs: 'full',
    // A long enough window that concurrent single-text requests share executions even on a busy machine.
    batching: { maxBatchSize: 16, maxQueueDelayMs: 20 },
    logAppender: { flushIntervalMs: 20 },
  });
});
after(async () => {
  await server.close();
  await reg.cleanup();
});

interface PredictBody {
  request_id: string;
  predictions: Array<{ label: string; scores: Record<string, number> }>;
  model: { name: string; version: number };
  variant: string;
}

function assertClose(actual: readonly number[], expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) < 1e-5, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

test('/v1 predict on two models returns the probabilities of running each model folder directly', async () => {
  const texts = TEXTS.slice(0, 6);
  for (const [name, key] of [
    ['tickets', 'tickets:1'],
    ['intents', 'intents:1'],
  ]) {
    const expected = await directScores(reg.dirs.get(key)!, texts);
    const r = await call<PredictBody>(`${server.url}/v1/models/${name}/predict`, { body: { texts } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.model, { name, version: 1 });
    assert.equal(r.body.variant, `${name}@production`);
    assert.equal(r.headers.get('x-tailor-variant'), `${name}@production`);
    assert.equal(r.headers.get('x-request-id'), r.body.request_id);
    assert.equal(r.body.predictions.length, texts.length);
    r.body.predictions.forEach((p, i) => {
      assert.deepEqual(Object.keys(p.scores), [...LABELS]);
      const scores = LABELS.map((l) => p.scores[l]);
      assertClose(scores, expected[i], `${name} text ${i}`);
      assert.equal(p.label, LABELS[expected[i].indexOf(Math.max(...expected[i]))]);
    });
  }
});

test('KServe V2 infer (latest and a pinned version) answers with label and probabilities outputs', async () => {
  const texts = TEXTS.slice(3, 8);
  const expected = await directScores(reg.dirs.get('intents:1')!, texts);
  const body = { id: 'req-42', inputs: [{ name: 'text', shape: [texts.length], datatype: 'BYTES', data: texts }] };
  for (const url of [`${server.url}/v2/models/intents/infer`, `${server.url}/v2/models/intents/versions/1/infer`]) {
    const r = await call<{
      model_name: string;
      model_version: string;
      id: string;
      outputs: Array<{ name: string; datatype: string; shape: number[]; data: Array<string | number> }>;
    }>(url, { body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.model_name, 'intents');
    assert.equal(r.body.model_version, '1');
    assert.equal(r.body.id, 'req-42');
    const [label, probs] = r.body.outputs;
    assert.deepEqual([label.name, label.datatype, label.shape], ['label', 'BYTES', [texts.length]]);
    assert.deepEqual([probs.name, probs.datatype, probs.shape], ['probabilities', 'FP32', [texts.length, 4]]);
    texts.forEach((_, i) => {
      assertClose(probs.data.slice(i * 4, i * 4 + 4) as number[], expected[i], `row ${i}`);
      assert.equal(label.data[i], LABELS[expected[i].indexOf(Math.max(...expected[i]))]);
    });
  }
  // A [n, 1] shape is the same request.
  const r2 = await call(`${server.url}/v2/models/intents/infer`, {
    body: { inputs: [{ name: 'text', shape: [2, 1], datatype: 'BYTES', data: [[texts[0]], [texts[1]]] }] },
  });
  assert.equal(r2.status, 200, r2.text);
  // A version that is not served is a 404 naming what is.
  const r3 = await call(`${server.url}/v2/models/intents/versions/7/infer`, { body });
  assert.equal(r3.status, 404);
  assert.equal(
    (r3.body as { error: string }).error,
    "model 'intents/versions/7' is not served (served models: intents@production (version 1), tickets@production (version 1))",
  );
});

test('health, model readiness, metadata and the OpenAPI document', async () => {
  assert.deepEqual((await call(`${server.url}/v2/health/live`)).body, { live: true });
  assert.deepEqual((await call(`${server.url}/v2/health/ready`)).body, { ready: true });
  assert.deepEqual((await call(`${server.url}/v2/models/tickets/ready`)).body, { name: 'tickets', ready: true });
  assert.equal((await call(`${server.url}/v2/models/tickets/versions/1/ready`)).status, 200);
  assert.equal((await call(`${server.url}/v2/models/tickets/versions/2/ready`)).status, 404);
  const meta = await call<{ name: string; versions: string[]; outputs: unknown[]; parameters: { labels: string[] } }>(
    `${server.url}/v2/models/tickets`,
  );
  assert.equal(meta.body.name, 'tickets');
  assert.deepEqual(meta.body.versions, ['1']);
  assert.deepEqual(meta.body.parameters.labels, [...LABELS]);
  assert.deepEqual(meta.body.outputs, [
    { name: 'label', datatype: 'BYTES', shape: [-1] },
    { name: 'probabilities', datatype: 'FP32', shape: [-1, 4] },
  ]);
  const doc = await call<{ openapi: string; paths: Record<string, unknown> }>(`${server.url}/openapi.json`);
  assert.equal(doc.body.openapi, '3.0.3');
  for (const p of [
    '/v1/models/{ref}/predict',
    '/v1/feedback',
    '/v2/models/{name}/infer',
    '/v2/models/{name}/versions/{version}/infer',
    '/v2/health/ready',
    '/v2/repository/models/{ref}/load',
    '/metrics',
  ])
    assert.ok(p in doc.body.paths, p);
});

test('dynamic batching: concurrent single-text requests share executions (inference count > execution count)', async () => {
  const before = await call(`${server.url}/metrics`);
  const inf0 = metricValue(before.text, 'tailor_inference_total', { model: 'tickets', version: '1' });
  const exe0 = metricValue(before.text, 'tailor_execution_total', { model: 'tickets', version: '1' });
  const n = 40;
  const replies = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      call(`${server.url}/v1/models/tickets/predict`, { body: { texts: [TEXTS[i % TEXTS.length]] } }),
    ),
  );
  assert.ok(replies.every((r) => r.status === 200));
  const m = (await call(`${server.url}/metrics`)).text;
  const inf = metricValue(m, 'tailor_inference_total', { model: 'tickets', version: '1' }) - inf0;
  const exe = metricValue(m, 'tailor_execution_total', { model: 'tickets', version: '1' }) - exe0;
  assert.equal(inf, n);
  assert.ok(exe < inf, `executions ${exe} should be fewer than inferences ${inf}`);
  assert.ok(metricValue(m, 'tailor_batch_size_count', { model: 'tickets', version: '1' }) >= exe);
});

test('/metrics exposes the request, batching, queue, adapter, log and process series', async () => {
  await call(`${server.url}/v1/models/intents/predict`, { body: { texts: [TEXTS[0]] } });
  await call(`${server.url}/v1/models/missing/predict`, { body: { texts: [TEXTS[0]] } });
  const r = await call(`${server.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
  const m = r.text;
  assert.ok(
    metricValue(m, 'tailor_requests_total', { model: 'intents', variant: 'intents@production', outcome: 'success' }) >=
      1,
  );
  assert.ok(metricValue(m, 'tailor_requests_rejected_total', { reason: 'not_found' }) >= 1);
  assert.ok(metricValue(m, 'tailor_request_duration_seconds_count', { model: 'intents' }) >= 1);
  assert.ok(metricValue(m, 'tailor_queue_duration_seconds_count', { model: 'intents' }) >= 1);
  assert.ok(metricValue(m, 'tailor_compute_duration_seconds_sum', { model: 'intents' }) > 0);
  assert.equal(metricValue(m, 'tailor_queue_depth', { model: 'intents', version: '1' }), 0);
  assert.equal(metricValue(m, 'tailor_models_loaded'), 2);
  assert.equal(metricValue(m, 'tailor_adapters_loaded'), 0);
  for (const s of [
    'tailor_adapter_cache_hits_total',
    'tailor_adapter_cache_misses_total',
    'tailor_adapter_cache_evictions_total',
  ])
    assert.equal(metricValue(m, s), 0, s);
  assert.equal(metricValue(m, 'tailor_log_dropped_rows_total', { log: 'predictions' }), 0);
  assert.ok(metricValue(m, 'process_resident_memory_bytes') > 0);
  assert.ok(metricValue(m, 'nodejs_eventloop_lag_seconds') >= 0);
  // Labels only carry served names: the unknown model never became a label value.
  assert.ok(!m.includes('missing'));
  assert.match(m, /# TYPE tailor_requests_total counter/);
  assert.match(m, /# TYPE tailor_request_duration_seconds histogram/);
});

test('prediction log: one JSON line per text with the documented fields; feedback rows', async () => {
  const texts = [TEXTS[1], TEXTS[2]];
  const r = await call<PredictBody>(`${server.url}/v1/models/tickets/predict`, {
    body: { texts },
    headers: { 'x-request-id': 'log-test-1' },
  });
  assert.equal(r.body.request_id, 'log-test-1');
  const fb = await call(`${server.url}/v1/feedback`, { body: { request_id: 'log-test-1', index: 1, label: 'alarm' } });
  assert.equal(fb.status, 202);
  await server.context.predictionLog!.flush();
  await server.context.feedbackLog.flush();
  const dir = path.join(reg.home, 'predictions');
  const files = readdirSync(dir);
  assert.ok(
    files.every((f) => /^predictions-\d{8}-.+-\d+-\d+\.jsonl$/.test(f)),
    files.join(','),
  );
  const rows = files
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((row) => row.request_id === 'log-test-1');
  assert.equal(rows.length, 2);
  rows.sort((a, b) => (a.index as number) - (b.index as number));
  rows.forEach((row, i) => {
    const p = r.body.predictions[i];
    assert.deepEqual(Object.keys(row), [
      'v',
      'time',
      'request_id',
      'index',
      'model',
      'variant',
      'shadow',
      'input',
      'label',
      'confidence',
      'scores',
      'latency_ms',
    ]);
    assert.equal(row.v, 1);
    assert.ok(!Number.isNaN(Date.parse(row.time as string)));
    assert.equal(row.index, i);
    assert.deepEqual(row.model, { ref: 'tickets@production', name: 'tickets', version: 1 });
    assert.equal(row.variant, 'tickets@production');
    assert.equal(row.shadow, false);
    assert.deepEqual(row.input, { text: texts[i] });
    assert.equal(row.label, p.label);
    assert.deepEqual(
      row.scores,
      LABELS.map((l) => p.scores[l]),
    );
    assert.equal(row.confidence, Math.max(...(row.scores as number[])));
    assert.ok(typeof row.latency_ms === 'number' && row.latency_ms > 0);
  });
  const fdir = path.join(reg.home, 'feedback');
  const frows = readdirSync(fdir).flatMap((f) =>
    readFileSync(path.join(fdir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  );
  assert.equal(frows.length, 1);
  assert.deepEqual(Object.keys(frows[0]), ['v', 'time', 'request_id', 'index', 'label']);
  assert.deepEqual({ ...frows[0], time: 'T' }, { v: 1, time: 'T', request_id: 'log-test-1', index: 1, label: 'alarm' });
});
