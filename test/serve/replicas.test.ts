/**
 * Serving replicas share one registry (PostgreSQL + S3-compatible storage, as in docs/scale-out.md): two
 * `tailor serve` processes with separate local folders serve the same model, and an alias moved through one
 * process's registry connection (a promotion) is served by both within the documented poll interval.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { openRegistry } from '../../src/registry/index.ts';
import { BIN } from '../cli/fixtures.ts';
import { useBackends } from '../registry/harness.ts';
import { call, tinyClassifier, TEXTS } from './fixtures.ts';

const backend = useBackends().find((b) => b.name === 'postgres+s3')!;
const POLL_MS = 300;
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Starts `tailor serve` with its own --home (its local cache) and the shared registry from the environment. */
async function replica(home: string, env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  mkdirSync(home, { recursive: true });
  const child = spawn(
    process.execPath,
    [
      BIN,
      'serve',
      '--home',
      home,
      '--port',
      '0',
      '--json',
      '--models',
      'tickets@production',
      '--poll-interval',
      String(POLL_MS),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const until = Date.now() + 90_000;
  while (!stdout.includes('\n') && Date.now() < until && child.exitCode === null)
    await new Promise((r) => setTimeout(r, 20));
  assert.ok(stdout.includes('\n'), `replica did not start: ${stderr}`);
  return { url: (JSON.parse(stdout.split('\n')[0]) as { url: string }).url, child };
}

test('two tailor serve replicas on PostgreSQL + S3: a promotion made through the registry is served by both', async () => {
  const opts = backend.fresh();
  const env = backend.env(opts);
  const reg = await openRegistry(opts);
  try {
    const root = path.dirname(opts.home);
    await reg.registerModel({
      name: 'tickets',
      source: await tinyClassifier(path.join(root, 'v1'), 1),
      aliases: ['production'],
    });
    await reg.registerModel({ name: 'tickets', source: await tinyClassifier(path.join(root, 'v2'), 2) });
    const [a, b] = await Promise.all([replica(path.join(root, 'a'), env), replica(path.join(root, 'b'), env)]);
    const version = async (url: string): Promise<number> => {
      const r = await call<{ model: { version: number } }>(`${url}/v1/models/tickets@production/predict`, {
        body: { texts: [TEXTS[0]] },
      });
      assert.equal(r.status, 200, r.text);
      return r.body.model.version;
    };
    assert.deepEqual([await version(a.url), await version(b.url)], [1, 1]);
    const moved = Date.now();
    await reg.setAlias('tickets', 'production', 2);
    // Documented delay: one poll interval, plus loading the new version (downloaded from S3 into each replica's cache).
    const seen: number[] = [];
    for (const url of [a.url, b.url]) {
      while ((await version(url)) !== 2) {
        assert.ok(Date.now() - moved < 30_000, `replica ${url} still serves version 1 after 30 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      seen.push(Date.now() - moved);
    }
    assert.equal(seen.length, 2);
    for (const c of [a.child, b.child]) c.kill('SIGTERM');
  } finally {
    await reg.close();
  }
});
