/**
 * Authentication, scopes, rate limits and bad input, each with its status code and message; the prediction log
 * never slows or fails a request; HTTPS with a certificate and key.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import {
  Batcher,
  hashApiKey,
  parseApiKeys,
  QueueFullError,
  startServer,
  type ServeHandle,
} from '../../src/serve/index.ts';
import { call, metricValue, testRegistry, TEXTS, type TestRegistry } from './fixtures.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
let reg: TestRegistry;
let server: ServeHandle;

before(async () => {
  reg = await testRegistry('security');
  server = await startServer({
    registry: reg.registry,
    port: 0,
    pollIntervalMs: 0,
    apiKeys: parseApiKeys(
      JSON.stringify({
        keys: [
          { id: 'app', sha256: sha('secret-app'), models: ['tickets'] },
          { id: 'ops', sha256: sha('secret-ops'), models: ['*'], admin: true },
          { id: 'limited', sha256: sha('secret-lim'), models: ['*'], rateLimit: { max: 3, timeWindowMs: 60_000 } },
        ],
      }),
    ),
    limits: { maxBodyBytes: 4096, maxTexts: 4, maxTextChars: 100 },
  });
});
after(async () => {
  await server.close();
  await reg.cleanup();
});

const OPS = { authorization: 'Bearer secret-ops' };

async function expectError(
  url: string,
  init: Parameters<typeof call>[1],
  status: number,
  message: string | RegExp,
): Promise<void> {
  const r = await call<{ error: string }>(url, init);
  assert.equal(r.status, status, r.text);
  if (typeof message === 'string') assert.equal(r.body.error, message);
  else assert.match(r.body.error, message);
}

test('API keys: 401 without or with an unknown key, 403 outside the scope, health and metrics stay public', async () => {
  const url = `${server.url}/v1/models/tickets/predict`;
  const body = { texts: ['hello'] };
  await expectError(url, { body }, 401, "missing API key: send 'Authorization: Bearer <key>' or an 'x-api-key' header");
  await expectError(url, { body, headers: { authorization: 'Bearer nope' } }, 401, 'unknown API key');
  await expectError(
    `${server.url}/v1/models/intents/predict`,
    { body, headers: { 'x-api-key': 'secret-app' } },
    403,
    "API key 'app' may not use model 'intents' (its scope: tickets)",
  );
  await expectError(
    `${server.url}/v2/models/intents/infer`,
    {
      body: { inputs: [{ name: 'text', shape: [1], datatype: 'BYTES', data: ['hi'] }] },
      headers: { authorization: 'Bearer secret-app' },
    },
    403,
    "API key 'app' may not use model 'intents' (its scope: tickets)",
  );
  assert.equal((await call(url, { body, headers: { authorization: 'Bearer secret-app' } })).status, 200);
  assert.equal((await call(url, { body, headers: { 'x-api-key': 'secret-app' } })).status, 200);
  await expectError(
    `${server.url}/v2/repository/models/tickets@candidate/load`,
    { method: 'POST', headers: { 'x-api-key': 'secret-app' } },
    403,
    "API key 'app' may not load or unload models (it is not an admin key)",
  );
  for (const p of ['/v2/health/live', '/v2/health/ready', '/metrics', '/openapi.json'])
    assert.equal((await call(`${server.url}${p}`)).status, 200, p);
  const m = (await call(`${server.url}/metrics`)).text;
  assert.ok(metricValue(m, 'tailor_requests_rejected_total', { reason: 'unauthorized' }) >= 2);
  assert.ok(metricValue(m, 'tailor_requests_rejected_total', { reason: 'forbidden' }) >= 2);
});

test('per-key rate limit: the request over the limit gets 429 with Retry-After; other keys are unaffected', async () => {
  const url = `${server.url}/v1/models/tickets/predict`;
  const headers = { authorization: 'Bearer secret-lim' };
  for (let i = 0; i < 3; i++) assert.equal((await call(url, { body: { texts: ['x'] }, headers })).status, 200);
  const r = await call<{ error: string }>(url, { body: { texts: ['x'] }, headers });
  assert.equal(r.status, 429);
  assert.match(r.body.error, /^rate limit exceeded for API key 'limited': 3 requests per 1 minute; retry in \d+ s$/);
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  assert.equal((await call(url, { body: { texts: ['x'] }, headers: OPS })).status, 200);
});

test('bad input: limits (413 naming the limit), malformed JSON and schema errors (400), unknown model and route (404)', async () => {
  const url = `${server.url}/v1/models/tickets/predict`;
  const headers = OPS;
  await expectError(
    url,
    { body: { texts: ['x'.repeat(5000)] }, headers },
    413,
    'request body is larger than the limit of 4096 bytes (--max-body-bytes)',
  );
  await expectError(
    url,
    { body: { texts: ['a', 'b', 'c', 'd', 'e'] }, headers },
    413,
    'texts has 5 items; the limit is 4 texts per request (--max-texts)',
  );
  await expectError(
    url,
    { body: { texts: ['ok', 'y'.repeat(101)] }, headers },
    413,
    'texts[1] is 101 characters; the limit is 100 characters per text (--max-text-chars)',
  );
  await expectError(url, { raw: '{"texts": [', headers }, 400, /^malformed JSON body: /);
  await expectError(url, { body: { text: 'hi' }, headers }, 400, "body must have required property 'texts'");
  await expectError(url, { body: { texts: [3] }, headers }, 400, 'body/texts/0 must be string');
  await expectError(url, { body: { texts: [] }, headers }, 400, 'body/texts must NOT have fewer than 1 items');
  await expectError(
    url,
    { body: { texts: ['a'], top_k: 2 }, headers },
    400,
    'body must NOT have additional properties',
  );
  await expectError(
    `${server.url}/v1/models/nosuch/predict`,
    { body: { texts: ['hi'] }, headers },
    404,
    "model 'nosuch' is not served (served models: intents@production (version 1), tickets@production (version 1))",
  );
  await expectError(
    `${server.url}/v1/nothing`,
    { headers },
    404,
    'no route GET /v1/nothing (the API is described at /openapi.json)',
  );
  const v2 = `${server.url}/v2/models/tickets/infer`;
  await expectError(
    v2,
    { body: { inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }, headers },
    400,
    "input 'x' has datatype FP32; this model reads text: use datatype BYTES",
  );
  await expectError(
    v2,
    { body: { inputs: [{ name: 'text', shape: [3], datatype: 'BYTES', data: ['a', 'b'] }] }, headers },
    400,
    "input 'text': shape [3] holds 3 elements but data has 2",
  );
  await expectError(
    v2,
    { body: { inputs: [{ name: 'text', shape: [1], datatype: 'BYTES', data: [7] }] }, headers },
    400,
    "input 'text': data[0] is 7, expected a string",
  );
  await expectError(
    v2,
    { body: { inputs: [{ name: 'text', shape: [5], datatype: 'BYTES', data: ['a', 'b', 'c', 'd', 'e'] }] }, headers },
    413,
    'texts has 5 items; the limit is 4 texts per request (--max-texts)',
  );
  await expectError(v2, { body: { inputs: [] }, headers }, 400, 'body/inputs must NOT have fewer than 1 items');
  await expectError(
    `${server.url}/v1/feedback`,
    { body: { request_id: 'r1' }, headers },
    400,
    "body must have required property 'label'",
  );
  const m = (await call(`${server.url}/metrics`)).text;
  assert.ok(metricValue(m, 'tailor_requests_rejected_total', { reason: 'too_large' }) >= 4);
  assert.ok(metricValue(m, 'tailor_requests_rejected_total', { reason: 'bad_request' }) >= 6);
});

test('API key files: hashes only, and errors name the field', () => {
  assert.equal(hashApiKey('secret-app'), sha('secret-app'));
  const bad = (v: unknown, message: string): void =>
    assert.throws(
      () => parseApiKeys(JSON.stringify(v), 'keys.json'),
      (e: unknown) => e instanceof ConfigError && e.message === message,
    );
  bad(
    { keys: [{ id: 'a', sha256: 'secret', models: ['*'] }] },
    "keys.json: field 'keys.0.sha256': the lower-case hex sha256 of the key (64 characters)",
  );
  bad(
    { keys: [{ id: 'a', sha256: sha('x'), models: [] }] },
    "keys.json: field 'keys.0.models': Too small: expected array to have >=1 items",
  );
  bad(
    {
      keys: [
        { id: 'a', sha256: sha('x'), models: ['*'] },
        { id: 'a', sha256: sha('y'), models: ['*'] },
      ],
    },
    "keys.json: keys.1.id 'a' appears twice",
  );
});

test('the prediction log never fails or slows a request: a stuck writer and a full disk drop rows and count them', async () => {
  const written: string[] = [];
  for (const mode of ['stuck', 'full', 'hash'] as const) {
    const s = await startServer({
      registry: reg.registry,
      port: 0,
      models: ['tickets'],
      pollIntervalMs: 0,
      logInputs: mode === 'hash' ? 'hash' : 'none',
      logAppender: {
        maxBufferedRows: 3,
        flushIntervalMs: 5,
        closeTimeoutMs: 200,
        write:
          mode === 'stuck'
            ? () => new Promise<void>(() => undefined)
            : mode === 'full'
              ? () =>
                  Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))
              : async (_f, t) => void written.push(t),
      },
    });
    try {
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        const r = await call(`${s.url}/v1/models/tickets/predict`, { body: { texts: [TEXTS[i]] } });
        assert.equal(r.status, 200);
        assert.ok(performance.now() - t0 < 2000);
        await new Promise((res) => setTimeout(res, 10));
      }
      if (mode !== 'stuck') await s.context.predictionLog!.flush();
      const m = (await call(`${s.url}/metrics`)).text;
      const dropped = metricValue(m, 'tailor_log_dropped_rows_total', { log: 'predictions' });
      const rows = metricValue(m, 'tailor_log_rows_total', { log: 'predictions' });
      if (mode === 'stuck') assert.ok(dropped >= 5 && rows === 0, `dropped ${dropped}, written ${rows}`);
      if (mode === 'full') assert.deepEqual([dropped, rows], [10, 0]);
      if (mode === 'hash') assert.deepEqual([dropped, rows], [0, 10]);
    } finally {
      await s.close();
    }
  }
  const rows = written
    .join('')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { input: { sha256: string } });
  assert.deepEqual(
    rows.map((r) => r.input),
    TEXTS.slice(0, 10).map((t) => ({ sha256: sha(t) })),
  );
});

test('a full batch queue refuses work with 503 and Retry-After instead of growing', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const b = new Batcher<string, string>('m:1', async (xs) => (await gate, xs.map((x) => x.toUpperCase())), {
    maxBatchSize: 2,
    maxQueueDelayMs: 0,
    maxQueueSize: 3,
  });
  const first = b.submit(['a', 'b']); // executing (held at the gate)
  await new Promise((r) => setTimeout(r, 5));
  const queued = b.submit(['c', 'd', 'e']); // fills the queue
  await assert.rejects(b.submit(['f']), (e: unknown) => {
    assert.ok(e instanceof QueueFullError);
    assert.equal(e.statusCode, 503);
    assert.deepEqual(e.headers, { 'retry-after': '1' });
    assert.equal(
      e.message,
      "model 'm:1' is overloaded: its queue holds the maximum of 3 texts (--max-queue); retry later",
    );
    return true;
  });
  release();
  assert.deepEqual(await first, ['A', 'B']);
  assert.deepEqual(await queued, ['C', 'D', 'E']);
});

test('over HTTP: a request whose texts do not fit in the batch queue is refused whole with 503 and Retry-After', async () => {
  const s = await startServer({
    registry: reg.registry,
    port: 0,
    models: ['tickets'],
    pollIntervalMs: 0,
    batching: { maxQueueSize: 2 },
  });
  try {
    const r = await call<{ error: string }>(`${s.url}/v1/models/tickets/predict`, { body: { texts: ['a', 'b', 'c'] } });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(
      r.body.error,
      "model 'tickets:2' is overloaded: its queue holds the maximum of 2 texts (--max-queue); retry later",
    );
    assert.equal((await call(`${s.url}/v1/models/tickets/predict`, { body: { texts: ['a', 'b'] } })).status, 200);
    const m = (await call(`${s.url}/metrics`)).text;
    assert.equal(metricValue(m, 'tailor_requests_rejected_total', { reason: 'unavailable' }), 1);
    assert.equal(metricValue(m, 'tailor_requests_total', { model: 'tickets', outcome: 'failure' }), 1);
  } finally {
    await s.close();
  }
});

test('HTTPS when given a certificate and key', async () => {
  const dir = reg.tmp;
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const s = await startServer({
    registry: reg.registry,
    port: 0,
    models: ['tickets'],
    pollIntervalMs: 0,
    tls: { cert: readFileSync(cert), key: readFileSync(key) },
  });
  try {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${s.url}/v2/health/ready`, { ca: readFileSync(cert) }, (res) => {
          let t = '';
          res.on('data', (d: Buffer) => (t += d.toString()));
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    assert.deepEqual(JSON.parse(body), { ready: true });
  } finally {
    await s.close();
  }
});
