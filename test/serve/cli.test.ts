/**
 * `tailor serve` as a process: it prints where it listens, answers, and on SIGTERM drains the requests in flight
 * before exiting 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { BIN } from '../cli/fixtures.ts';
import { call, metricValue, testRegistry, TEXTS, type TestRegistry } from './fixtures.ts';

let reg: TestRegistry;
before(async () => {
  reg = await testRegistry('cli');
});
after(() => reg.cleanup());

test('tailor serve --json: listens, answers, and SIGTERM drains requests in flight, exit 0', async () => {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'serve',
      '--home',
      reg.home,
      '--port',
      '0',
      '--json',
      '--max-queue-delay-ms',
      '400',
      '--max-batch-size',
      '64',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  try {
    const until = Date.now() + 60_000;
    while (!stdout.includes('\n') && Date.now() < until && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 20));
    const started = JSON.parse(stdout.split('\n')[0]) as {
      url: string;
      models: Array<{ ref: string; version: number; state: string }>;
    };
    assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(started.models, [
      { ref: 'intents@production', version: 1, state: 'ready' },
      { ref: 'tickets@production', version: 1, state: 'ready' },
    ]);
    const first = await call(`${started.url}/v1/models/tickets/predict`, { body: { texts: [TEXTS[0]] } });
    assert.equal(first.status, 200);
    // Ten requests wait in the batch queue (400 ms window); SIGTERM arrives while they are there.
    const inflight = Array.from({ length: 10 }, (_, i) =>
      call(`${started.url}/v1/models/intents/predict`, { body: { texts: [TEXTS[i]] } }),
    );
    let depth = 0;
    while (depth < 10 && Date.now() < until) {
      depth = metricValue((await call(`${started.url}/metrics`)).text, 'tailor_queue_depth', { model: 'intents' });
    }
    assert.equal(depth, 10);
    child.kill('SIGTERM');
    const replies = await Promise.all(inflight);
    assert.deepEqual(
      replies.map((r) => r.status),
      new Array(10).fill(200),
    );
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /tailor serve: SIGTERM: draining in-flight requests\ntailor serve: stopped\n$/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('tailor serve: a route file naming a bad reference is an error naming the file (exit 1)', async () => {
  const { writeFileSync } = await import('node:fs');
  const file = `${reg.tmp}/routes.json`;
  writeFileSync(file, JSON.stringify({ routes: { t: { variants: [{ name: 'a', model: 'tickets:0' }] } } }));
  const child = spawn(process.execPath, [BIN, 'serve', '--home', reg.home, '--routes', file, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 1);
  assert.equal(
    stderr.trim(),
    `tailor: ${file}: routes.t.variants.0.model: invalid model version '0' in 'tickets:0': expected a positive integer`,
  );
});
