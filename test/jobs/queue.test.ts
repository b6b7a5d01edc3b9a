/**
 * The job queue on a real Redis (127.0.0.1:6379 or $TAILOR_REDIS), each test on a prefix of its own that it deletes:
 * configuration and masked URLs, an unreachable Redis, submit-time flags that round-trip to the command, cancelling
 * a waiting and a running job, and a flow customize -> quantize -> evaluate -> register run by an in-process worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { QueueError, ConfigError } from '../../src/errors.ts';
import { argvFor } from '../../src/jobs/calls.ts';
import { JobQueue, maskUrl, queueConfig, startWorker, type JobDetails } from '../../src/jobs/index.ts';
import { customizeCommand } from '../../src/cli/commands/customize.ts';
import { quantizeCommand } from '../../src/cli/commands/quantize.ts';
import { evaluateCommand } from '../../src/cli/commands/evaluate.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { tailor, workspace, type Workspace, clincArgs } from '../cli/fixtures.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const prefix = (tag: string): string => `tailor-test-${tag}-${process.pid}-${Date.now()}`;

async function until(q: JobQueue, id: string, done: (j: JobDetails) => boolean, ms = 60_000): Promise<JobDetails> {
  const t0 = Date.now();
  for (;;) {
    const j = await q.show(id);
    if (done(j)) return j;
    if (Date.now() - t0 > ms) throw new Error(`job ${id} still ${j.state} after ${ms} ms: ${JSON.stringify(j)}`);
    await sleep(100);
  }
}
const finished = (j: JobDetails): boolean => j.state === 'completed' || j.state === 'failed';

test('maskUrl hides the password and user name; queueConfig rejects bad URLs and prefixes', () => {
  assert.equal(maskUrl('redis://alice:s3cret@redis.internal:6380/2'), 'redis://***:***@redis.internal:6380/2');
  assert.equal(maskUrl('rediss://:s3cret@cache:6379'), 'rediss://:***@cache:6379');
  assert.equal(maskUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.throws(
    () => queueConfig({ redis: 'http://u:p@host:1' }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === "Redis URL 'http://***:***@host:1' must start with redis:// or rediss://",
  );
  assert.throws(
    () => queueConfig({ prefix: 'a b' }),
    (e: unknown) =>
      e instanceof ConfigError && e.message === "queue prefix 'a b' must be letters, digits, '.', '_' or '-'",
  );
});

test('an unreachable Redis is an error naming the masked URL, at once (no hang), from the API and the CLI', async () => {
  const t0 = Date.now();
  await assert.rejects(
    JobQueue.open(queueConfig({ redis: 'redis://bob:hunter2@127.0.0.1:1' })),
    (e: unknown) =>
      e instanceof QueueError &&
      e.message ===
        'cannot reach Redis at redis://***:***@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1 (set --redis or TAILOR_REDIS)',
  );
  assert.ok(Date.now() - t0 < 5000);
  const r = await tailor(['jobs', 'list'], { env: { TAILOR_REDIS: 'redis://bob:hunter2@127.0.0.1:1' } });
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr,
    'tailor: cannot reach Redis at redis://***:***@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1 (set --redis or TAILOR_REDIS)\n',
  );
  assert.doesNotMatch(r.stderr, /hunter2/);
});

/** The options a command's flags parse to. */
async function parse(make: () => Command, argv: string[]): Promise<Record<string, unknown>> {
  const cmd = make();
  let opts: Record<string, unknown> = {};
  cmd.exitOverride();
  cmd.action((o: Record<string, unknown>) => {
    opts = o;
  });
  await cmd.parseAsync(argv, { from: 'user' });
  return opts;
}

test('argvFor: the options a job carries parse back to the same options (repeatable, negated, numeric flags)', async () => {
  const cases: Array<[() => Command, string[]]> = [
    [
      customizeCommand,
      [
        '--train',
        'a.csv',
        '--train',
        'b.csv',
        '--out',
        'o',
        '--strategy',
        'lora',
        '--rank',
        '4',
        '--lr',
        '0.002',
        '--alias',
        'x',
        '--json',
      ],
    ],
    [
      quantizeCommand,
      ['--model', 'm:1', '--out', 'q', '--mode', 'int4', '--block-size', '64', '--no-embeddings', '--asymmetric'],
    ],
    [evaluateCommand, ['--model', 'm@prod', '--eval', 'e.csv', '--no-latency']],
  ];
  for (const [make, argv] of cases) {
    const first = await parse(make, argv);
    const again = await parse(make, argvFor(make(), first as never));
    assert.deepEqual(again, first);
  }
});

test(
  'jobs cancel: a waiting job is removed; a running one stops and fails as cancelled, without retries',
  { timeout: 120_000 },
  async (t) => {
    const ws = await workspace('jobs-cancel');
    const cfg = queueConfig({ prefix: prefix('cancel') });
    const q = await JobQueue.open(cfg);
    t.after(async () => {
      await q.obliterate();
      await q.close();
      rmSync(ws.dir, { recursive: true, force: true });
    });
    const long = (out: string): Record<string, string | number | string[]> => ({
      base: ws.bert,
      train: [ws.train],
      eval: [ws.eval],
      labelColumn: 'intent',
      strategy: 'full',
      epochs: 200,
      batchSize: 4,
      seed: 0,
      out: path.join(ws.dir, out),
    });
    const waiting = await q.submit({ kind: 'customize', options: long('w') });
    assert.equal(await q.cancel(waiting), 'removed');
    await assert.rejects(
      q.show(waiting),
      (e: unknown) => e instanceof QueueError && e.message.startsWith(`no job '${waiting}'`),
    );

    const w = await startWorker({ config: cfg, home: ws.home, log: () => {} });
    t.after(() => w.close());
    const id = await q.submit({ kind: 'customize', options: long('r') }, { attempts: 3 });
    await until(q, id, (j) => j.state === 'active' && j.logs.some((l) => l.startsWith('epoch 1:')));
    const cli = await tailor(['jobs', 'cancel', id, '--prefix', cfg.prefix, '--reason', 'changed my mind']);
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(cli.stdout, `cancelling job ${id} (its worker stops it)\n`);
    const j = await until(q, id, finished, 30_000);
    assert.equal(j.state, 'failed');
    assert.equal(j.failedReason, 'cancelled: changed my mind');
    assert.equal(j.attemptsMade, 1);
  },
);

test(
  'a job process that crashes mid-training is retried after a backoff and resumes from its checkpoint',
  { timeout: 120_000 },
  async (t) => {
    const ws = await workspace('jobs-crash');
    const cfg = queueConfig({ prefix: prefix('crash') });
    const q = await JobQueue.open(cfg);
    const lines: string[] = [];
    const w = await startWorker({ config: cfg, home: ws.home, log: (l) => lines.push(l) });
    t.after(async () => {
      await w.close();
      await q.obliterate();
      await q.close();
      rmSync(ws.dir, { recursive: true, force: true });
    });
    const id = await q.submit(
      {
        kind: 'customize',
        options: {
          base: ws.bert,
          train: [ws.train],
          eval: [ws.eval],
          labelColumn: 'intent',
          strategy: 'lora',
          epochs: 6,
          batchSize: 8,
          seed: 1,
          out: path.join(ws.dir, 'crashed'),
          name: 'crashed',
        },
      },
      { checkpointEvery: 2, attempts: 3, backoffMs: 300 },
    );
    // The job's child process (BullMQ's sandbox, a child of this process) is killed once a checkpoint exists.
    const latest = path.join(ws.home, 'jobs', id, 'checkpoints', 'latest.json');
    let step: number | undefined;
    const t0 = Date.now();
    while (step === undefined && Date.now() - t0 < 60_000) {
      try {
        step = (JSON.parse(readFileSync(latest, 'utf8')) as { step: number }).step;
      } catch {
        await sleep(20);
      }
    }
    assert.ok(step !== undefined && step < 60, `no early checkpoint: ${step}`);
    const pids = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'bullmq'], { encoding: 'utf8' })
      .trim()
      .split('\n');
    assert.equal(pids.length, 1, `job processes: ${pids.join(', ')}`);
    process.kill(Number(pids[0]), 'SIGKILL');
    const j = await until(q, id, finished, 90_000);
    assert.equal(j.state, 'completed', j.failedReason ?? '');
    assert.equal(j.attemptsMade, 2);
    assert.ok(
      typeof j.result?.resumed_from_step === 'number' && j.result.resumed_from_step >= step,
      JSON.stringify(j.result),
    );
    assert.ok(
      lines.some((l) => l.endsWith(`customize job ${id} failed: Unexpected exit code: null signal: SIGKILL`)),
      lines.join('\n'),
    );
    assert.equal((await q.list({ state: 'completed' }))[0]?.result?.model?.ref, 'crashed:1');
  },
);

test(
  'a flow customize -> quantize -> evaluate -> register: each step on the previous model, alias set',
  { timeout: 180_000 },
  async (t) => {
    const ws: Workspace = await workspace('jobs-flow');
    const cfg = queueConfig({ prefix: prefix('flow') });
    const q = await JobQueue.open(cfg);
    const w = await startWorker({ config: cfg, home: ws.home, log: () => {} });
    t.after(async () => {
      await w.close();
      await q.obliterate();
      await q.close();
      rmSync(ws.dir, { recursive: true, force: true });
    });
    const flowFile = path.join(ws.dir, 'flow.json');
    const steps = [
      [
        'customize',
        ...clincArgs(ws),
        '--strategy',
        'head',
        '--epochs',
        '2',
        '--out',
        path.join(ws.dir, 'float'),
        '--name',
        'intents',
      ],
      [
        'quantize',
        '--mode',
        'dynamic',
        '--eval',
        ws.eval,
        '--label-column',
        'intent',
        '--latency-iterations',
        '0',
        '--out',
        path.join(ws.dir, 'int8'),
        '--name',
        'intents',
      ],
      ['evaluate', '--eval', ws.eval, '--label-column', 'intent', '--no-latency'],
      ['register', '--alias', 'production', '--min-accuracy', '0'],
    ];
    writeFileSync(flowFile, JSON.stringify({ steps }));
    const r = await tailor(['submit', 'flow', flowFile, '--prefix', cfg.prefix, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const { ids } = JSON.parse(r.stdout) as { ids: string[] };
    assert.equal(ids.length, 4);
    const last = await until(q, ids[3], finished, 150_000);
    const all = await Promise.all(ids.map((id) => q.show(id)));
    assert.deepEqual(
      all.map((j) => `${j.kind} ${j.state} ${j.failedReason ?? ''}`),
      ['customize completed ', 'quantize completed ', 'evaluate completed ', 'register completed '],
    );
    assert.equal(all[0].result?.model?.ref, 'intents:1');
    assert.equal(all[1].result?.model?.ref, 'intents:2');
    assert.equal(all[2].result?.model?.ref, 'intents:2');
    assert.equal(all[2].result?.metrics.count, 40);
    assert.deepEqual(last.result?.model, { name: 'intents', version: 2, ref: 'intents:2', aliases: ['production'] });
    const reg = await openRegistry({ home: ws.home });
    try {
      const prod = await reg.getModel('intents@production');
      assert.equal(prod.version, 2);
      assert.deepEqual(
        prod.parents.map((p) => `${p.relation} ${p.model?.name}:${p.model?.version}`),
        ['quantized-from intents:1'],
      );
      // Two code paths score the int8 model on the same file: quantize's own --eval and the evaluate step.
      assert.equal(all[2].result?.metrics.accuracy, all[1].result?.metrics.accuracy);
      assert.ok(typeof all[2].result?.metrics.accuracy === 'number');
    } finally {
      await reg.close();
    }
  },
);
