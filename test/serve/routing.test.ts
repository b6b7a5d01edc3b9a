/**
 * A/B and shadow routes: weights hold over many requests, a request key sticks to one variant, shadow variants get
 * a copy of traffic whose answers are logged and never returned, and every response names its variant.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createRng } from '../../src/util/rng.ts';
import { ConfigError } from '../../src/errors.ts';
import { parseRoutes, pickVariant, startServer, type ServeHandle } from '../../src/serve/index.ts';
import { call, metricValue, testRegistry, tinyClassifier, TEXTS, type TestRegistry } from './fixtures.ts';

let reg: TestRegistry;
let server: ServeHandle;
const ROUTES = parseRoutes(
  JSON.stringify({
    routes: {
      tickets: {
        variants: [
          { name: 'production', model: 'tickets@production', weight: 90 },
          { name: 'candidate', model: 'tickets@candidate', weight: 10 },
          { name: 'next', model: 'tickets:3', shadow: true },
        ],
      },
    },
  }),
);

before(async () => {
  reg = await testRegistry('routes');
  await reg.registry.registerModel({ name: 'tickets', source: await tinyClassifier(path.join(reg.tmp, 'v3'), 4) });
  server = await startServer({
    registry: reg.registry,
    port: 0,
    models: ['intents@production'],
    routes: ROUTES,
    random: createRng(7).next,
    logAppender: { flushIntervalMs: 20 },
    pollIntervalMs: 0,
  });
});
after(async () => {
  await server.close();
  await reg.cleanup();
});

interface PredictBody {
  request_id: string;
  predictions: Array<{ label: string }>;
  model: { name: string; version: number };
  variant: string;
}

test('A/B: 90/10 weights within tolerance over 400 requests; shadow answers logged, never returned', async () => {
  const n = 400;
  const replies: Array<PredictBody & { header: string | null }> = [];
  for (let start = 0; start < n; start += 8) {
    const batch = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        call<PredictBody>(`${server.url}/v1/models/tickets/predict`, { body: { texts: [TEXTS[(start + i) % 20]] } }),
      ),
    );
    for (const r of batch) {
      assert.equal(r.status, 200, r.text);
      replies.push({ ...r.body, header: r.headers.get('x-tailor-variant') });
    }
  }
  const counts = { production: 0, candidate: 0 };
  for (const r of replies) {
    assert.ok(r.variant === 'production' || r.variant === 'candidate', r.variant);
    assert.equal(r.header, r.variant);
    counts[r.variant as 'production' | 'candidate']++;
    // Each variant answers with its own version; the shadow's version 3 never comes back.
    assert.equal(r.model.version, r.variant === 'production' ? 1 : 2);
  }
  // Binomial(400, 0.1): sd 6 requests; 4 sd either side.
  assert.ok(Math.abs(counts.candidate - 40) <= 24, JSON.stringify(counts));
  // Shadow copies finish after the replies; wait for all of them (bounded).
  const until = Date.now() + 10_000;
  let shadowed = 0;
  while (Date.now() < until) {
    const m = (await call(`${server.url}/metrics`)).text;
    try {
      shadowed = metricValue(m, 'tailor_shadow_requests_total', { variant: 'next', outcome: 'success' });
    } catch {
      shadowed = 0;
    }
    if (shadowed >= n) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(shadowed, n);
  await server.context.predictionLog!.flush();
  const dir = path.join(reg.home, 'predictions');
  const rows = readdirSync(dir)
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean))
    .map(
      (l) =>
        JSON.parse(l) as {
          request_id: string;
          shadow: boolean;
          variant: string;
          model: { ref: string; version: number };
        },
    );
  const shadowRows = rows.filter((r) => r.shadow);
  assert.equal(shadowRows.length, n);
  assert.ok(shadowRows.every((r) => r.variant === 'next' && r.model.ref === 'tickets:3' && r.model.version === 3));
  assert.deepEqual(
    new Set(shadowRows.map((r) => r.request_id)),
    new Set(replies.map((r) => r.request_id)),
    'one shadow row per answered request',
  );
  const live = rows.filter((r) => !r.shadow);
  assert.equal(live.length, n);
  assert.equal(live.filter((r) => r.variant === 'candidate').length, counts.candidate);
});

test('a request key (x-tailor-key) always gets the same variant; keys spread by the weights', async () => {
  const variants = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const r = await call<PredictBody>(`${server.url}/v1/models/tickets/predict`, {
      body: { texts: [TEXTS[i]] },
      headers: { 'x-tailor-key': 'customer-17' },
    });
    variants.add(r.body.variant);
  }
  assert.equal(variants.size, 1);
  assert.equal([...variants][0], pickVariant(ROUTES[0], 'customer-17').name);
  let candidate = 0;
  for (let k = 0; k < 2000; k++) if (pickVariant(ROUTES[0], `customer-${k}`).name === 'candidate') candidate++;
  // Binomial(2000, 0.1): sd 13.4; 4 sd either side.
  assert.ok(Math.abs(candidate - 200) <= 54, String(candidate));
});

test('route files: bad JSON, unknown fields, no live variant, repeated names and bad references are refused by name', () => {
  const bad = (v: unknown, message: string): void =>
    assert.throws(
      () => parseRoutes(typeof v === 'string' ? v : JSON.stringify(v), 'routes.json'),
      (e: unknown) => e instanceof ConfigError && e.message === message,
    );
  bad('{', `routes.json: not valid JSON (${errorOf('{')})`);
  bad(
    { routes: { t: { variants: [{ name: 'a', model: 't', wieght: 1 }] } } },
    `routes.json: field 'routes.t.variants.0': Unrecognized key: "wieght"`,
  );
  bad(
    {
      routes: {
        t: {
          variants: [
            { name: 'a', model: 't', weight: 0 },
            { name: 's', model: 't:2', shadow: true },
          ],
        },
      },
    },
    'routes.json: routes.t: needs at least one non-shadow variant with a weight above 0',
  );
  bad(
    {
      routes: {
        t: {
          variants: [
            { name: 'a', model: 't' },
            { name: 'a', model: 't:2' },
          ],
        },
      },
    },
    "routes.json: routes.t: variant name 'a' appears twice",
  );
  bad(
    { routes: { t: { variants: [{ name: 'a', model: 't:x' }] } } },
    "routes.json: routes.t.variants.0.model: invalid model version 'x' in 't:x': expected a positive integer",
  );
});

function errorOf(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}
