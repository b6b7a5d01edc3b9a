/**
 * What only the PostgreSQL store has to prove, against the real server: versioned migrations (also when two
 * processes start at once), version numbers and alias moves under concurrent writers on separate connection
 * pools, a clear error naming the masked URL when the server is unreachable, and retry with backoff when the
 * connection drops while running (through a TCP proxy the test stops and restarts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { RegistryError } from '../../src/errors.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { PG_SCHEMA_VERSION, PgMetadataStore, isTransientPgError } from '../../src/registry/pg-store.ts';
import { maskUrl, randomHex } from '../../src/registry/util.ts';
import { TEST_PG_URL, dropSchemas, pgUrl } from './harness.ts';

const root = mkdtempSync(join(tmpdir(), 'tailor-pg-'));
const tag = `tailor_test_${randomHex(4)}`;
const schemas: string[] = [];
let n = 0;
after(async () => {
  await dropSchemas(schemas);
  rmSync(root, { recursive: true, force: true });
});

function freshUrl(): string {
  const s = `${tag}_${n++}`;
  schemas.push(s);
  return pgUrl(s);
}

const artifact = (i: number) => ({ hash: i.toString(16).padStart(64, '0'), type: 'dir' as const, size: i });

test('migrations are versioned in schema_migrations, run once when two processes open at once, and a newer schema is refused', async () => {
  const url = freshUrl();
  const schema = schemas[schemas.length - 1];
  const [a, b] = await Promise.all([PgMetadataStore.open(url), PgMetadataStore.open(url)]);
  await a.close();
  await b.close();
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  await c.connect();
  try {
    const rows = (await c.query(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`)).rows;
    assert.deepEqual(
      rows.map((r: { version: number }) => r.version),
      Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1),
    );
    await c.query(`INSERT INTO "${schema}".schema_migrations (version, applied_at) VALUES ($1, 0)`, [
      PG_SCHEMA_VERSION + 1,
    ]);
  } finally {
    await c.end();
  }
  await assert.rejects(PgMetadataStore.open(url), (e: unknown) => {
    assert.ok(e instanceof RegistryError);
    assert.equal(
      e.message,
      `registry database ${url} has schema version ${PG_SCHEMA_VERSION + 1}, newer than this Tailor supports (${PG_SCHEMA_VERSION}); upgrade Tailor`,
    );
    return true;
  });
});

test('two writers on separate pools allocate versions 1..N without a gap or duplicate; alias moves stay atomic', async () => {
  const url = freshUrl();
  const a = await PgMetadataStore.open(url, { maxConnections: 4 });
  const b = await PgMetadataStore.open(url, { maxConnections: 4 });
  const perWriter = 15;
  const made = await Promise.all(
    [a, b].flatMap((store, w) =>
      Array.from({ length: perWriter }, (_, i) =>
        store.createModelVersion({ name: 'shared', artifact: artifact(w * 100 + i + 1), createdAt: Date.now() }),
      ),
    ),
  );
  const numbers = made.map((v) => v.version).sort((x, y) => x - y);
  assert.deepEqual(
    numbers,
    Array.from({ length: 2 * perWriter }, (_, i) => i + 1),
  );
  // Each version row holds the artifact its writer sent (no row was overwritten by the other writer).
  const listed = await a.listModelVersions('shared');
  assert.deepEqual(listed.map((v) => v.artifact.hash).sort(), made.map((v) => v.artifact.hash).sort());

  // Alias moves from both writers while a reader resolves: every read sees a whole version, never nothing.
  const reads: Array<number | undefined> = [];
  let stop = false;
  const reader = (async () => {
    while (!stop) reads.push(await a.resolveAlias('shared', 'production'));
  })();
  await a.setAlias('shared', 'production', 1);
  for (let i = 0; i < 20; i++) {
    await Promise.all([a.setAlias('shared', 'production', 2 + (i % 5)), b.setAlias('shared', 'production', 10)]);
  }
  await b.setAlias('shared', 'production', 7);
  stop = true;
  await reader;
  assert.ok(reads.length > 0);
  for (const r of reads) assert.ok(r === undefined || (r >= 1 && r <= 10), String(r));
  assert.equal(await a.resolveAlias('shared', 'production'), 7);
  // A move to a version that does not exist fails and leaves the alias where it was.
  await assert.rejects(a.setAlias('shared', 'production', 99), /model version shared:99 does not exist/);
  assert.equal(await b.resolveAlias('shared', 'production'), 7);
  assert.deepEqual((await a.getModelVersion('shared', 7))!.aliases, ['production']);
  await a.close();
  await b.close();
});

test('an unreachable server is a RegistryError naming the URL with the password masked, and nothing falls back to SQLite', async () => {
  const url = 'postgres://tailor:s3cret@127.0.0.1:1/registry';
  await assert.rejects(PgMetadataStore.open(url, { connectTimeoutMs: 2000 }), (e: unknown) => {
    assert.ok(e instanceof RegistryError);
    assert.equal(e.message, 'cannot open registry database postgres://tailor:***@127.0.0.1:1/registry: ECONNREFUSED');
    return true;
  });
  const home = join(root, 'no-fallback');
  const prev = process.env.TAILOR_REGISTRY;
  process.env.TAILOR_REGISTRY = url;
  try {
    await assert.rejects(
      openRegistry({ home }),
      /^RegistryError: cannot open registry database postgres:\/\/tailor:\*\*\*@/,
    );
  } finally {
    if (prev === undefined) delete process.env.TAILOR_REGISTRY;
    else process.env.TAILOR_REGISTRY = prev;
  }
  assert.equal(existsSync(join(home, 'registry.db')), false);
  const missingDb = new URL(TEST_PG_URL);
  missingDb.pathname = '/tailor_no_such_database';
  await assert.rejects(
    PgMetadataStore.open(missingDb.toString()),
    new RegExp(
      `^RegistryError: cannot open registry database ${missingDb.toString().replace(/[?.*+]/g, '\\$&')}: database "tailor_no_such_database" does not exist$`,
    ),
  );
});

/** A TCP proxy to the test server that can drop every connection and refuse new ones, then come back. */
async function pgProxy(): Promise<{ port: number; stop(): Promise<void>; start(): Promise<void> }> {
  const target = new URL(TEST_PG_URL);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const start = async (): Promise<void> => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  };
  const stop = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    await new Promise<void>((r) => server!.close(() => r()));
  };
  await start();
  return { port, stop, start };
}

test('a connection lost while running is retried with backoff; past the retries it is an error naming the URL', async () => {
  const schemaUrl = new URL(freshUrl());
  const proxy = await pgProxy();
  schemaUrl.host = `127.0.0.1:${proxy.port}`;
  const url = schemaUrl.toString();
  const store = await PgMetadataStore.open(url, { retries: 6, retryMinDelayMs: 100 });
  const quick = await PgMetadataStore.open(url, { retries: 1, retryMinDelayMs: 50 });
  await store.createRun({ id: 'run0001', startedAt: 1 });
  await proxy.stop();
  const t0 = Date.now();
  setTimeout(() => void proxy.start(), 400);
  const run = await store.getRun('run0001');
  assert.equal(run?.id, 'run0001');
  assert.ok(Date.now() - t0 >= 350, 'the read waited for the server to come back');

  await proxy.stop();
  await assert.rejects(quick.listRuns(), (e: unknown) => {
    assert.ok(e instanceof RegistryError);
    assert.match(e.message, new RegExp(`^registry database ${url.replace(/[?.*+]/g, '\\$&')}: query failed: `));
    return true;
  });
  await store.close();
  await quick.close();
});

test('isTransientPgError: a terminated backend is transient, a constraint violation is not', async () => {
  const victim = new pg.Client({ connectionString: TEST_PG_URL });
  victim.on('error', () => undefined);
  await victim.connect();
  const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const killer = new pg.Client({ connectionString: TEST_PG_URL });
  await killer.connect();
  // The handler is attached at once: the victim's query can fail before the killer's query returns, and a rejection
  // with no handler yet is an unhandled rejection that fails the test.
  const pending = victim.query('SELECT pg_sleep(5)').then(
    () => undefined,
    (e: unknown) => e,
  );
  await new Promise((r) => setTimeout(r, 200));
  await killer.query('SELECT pg_terminate_backend($1)', [pid]);
  const killed = await pending;
  assert.ok(killed !== undefined);
  assert.equal(isTransientPgError(killed), true, String(killed));
  const violation = await killer.query('CREATE TEMP TABLE t (x int primary key); INSERT INTO t VALUES (1), (1)').then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.equal((violation as { code?: string }).code, '23505');
  assert.equal(isTransientPgError(violation), false);
  await killer.end();
  await victim.end().catch(() => undefined);
});

test('maskUrl hides the password and secret-named query parameters and leaves the rest as written', () => {
  assert.equal(maskUrl('postgres://tailor:s3cret@db:5432/reg?schema=a'), 'postgres://tailor:***@db:5432/reg?schema=a');
  assert.equal(maskUrl('postgres://tailor@db/reg'), 'postgres://tailor@db/reg');
  assert.equal(
    maskUrl('postgres://db/reg?password=x&sslmode=require'),
    'postgres://db/reg?password=***&sslmode=require',
  );
  assert.equal(maskUrl('http://127.0.0.1:9000'), 'http://127.0.0.1:9000');
});
