/**
 * Two `tailor worker` processes on a real Redis (127.0.0.1:6379 or $TAILOR_REDIS) share 20 small customize jobs
 * (LoRA on a tiny BERT, about a second each); one worker is SIGKILLed while training a job, which another worker
 * takes over and resumes from its last checkpoint. Every job ends with exactly one registered model. A job with
 * bad input fails once, with the library's message. The queue uses a prefix of its own, deleted afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { JobQueue, queueConfig, type JobInfo } from '../../src/jobs/index.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { BIN, tailor, workspace } from '../cli/fixtures.ts';

const JOBS = 20;

function startWorkerProcess(
  home: string,
  prefix: string,
): Promise<{ child: ChildProcess; name: string; log: () => string }> {
  const child = spawn(
    process.execPath,
    [BIN, 'worker', '--home', home, '--prefix', prefix, '--lock-ms', '2000', '--stalled-ms', '1000'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start within 30 s:\n${log}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /worker (\S+) waiting for jobs/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, name: m[1], log: () => log });
      }
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}:\n${log}`)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test(
  'two workers, 20 customize jobs, one worker SIGKILLed mid-training: 20 models, no duplicates, the job resumed; bad input fails once',
  { timeout: 300_000 },
  async (t) => {
    const ws = await workspace('jobs');
    const prefix = `tailor-test-${process.pid}-${Date.now()}`;
    const q = await JobQueue.open(queueConfig({ prefix }));
    const workers: ChildProcess[] = [];
    t.after(async () => {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      await q.obliterate();
      await q.close();
      rmSync(ws.dir, { recursive: true, force: true });
    });
    const a = await startWorkerProcess(ws.home, prefix);
    workers.push(a.child);
    const b = await startWorkerProcess(ws.home, prefix);
    workers.push(b.child);

    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      ids.push(
        await q.submit(
          {
            kind: 'customize',
            options: {
              base: ws.bert,
              train: [ws.train],
              eval: [ws.eval],
              labelColumn: 'intent',
              strategy: 'lora',
              epochs: 4,
              batchSize: 8,
              seed: i,
              out: path.join(ws.dir, `out-${i}`),
              name: `m${i}`,
            },
          },
          { checkpointEvery: 2, backoffMs: 200 },
        ),
      );
    }

    // Wait for a job that is training (a checkpoint well before the last of its 44 steps), and SIGKILL its worker.
    const jobsDir = path.join(ws.home, 'jobs');
    let killed: { id: string; step: number; worker: string } | undefined;
    const t0 = Date.now();
    while (!killed && Date.now() - t0 < 90_000) {
      for (const id of existsSync(jobsDir) ? readdirSync(jobsDir) : []) {
        const latest = path.join(jobsDir, id, 'checkpoints', 'latest.json');
        let step: number;
        try {
          step = (JSON.parse(readFileSync(latest, 'utf8')) as { step: number }).step;
        } catch {
          continue;
        }
        if (step > 24) continue;
        const info = await q.show(id);
        const victim = [a, b].find((w) => w.name === info.worker);
        if (info.state !== 'active' || !victim) continue;
        victim.child.kill('SIGKILL');
        killed = { id, step, worker: victim.name };
        break;
      }
      await sleep(20);
    }
    assert.ok(killed, 'no job was caught training within 90 s');

    let infos: JobInfo[] = [];
    const t1 = Date.now();
    while (Date.now() - t1 < 180_000) {
      infos = await Promise.all(ids.map((id) => q.show(id)));
      if (infos.every((j) => j.state === 'completed' || j.state === 'failed')) break;
      await sleep(250);
    }
    const notDone = infos.filter((j) => j.state !== 'completed');
    assert.deepEqual(
      notDone.map((j) => `${j.id} ${j.state} ${j.failedReason ?? ''}`),
      [],
      `worker logs:\n${a.log()}\n${b.log()}`,
    );

    // The killed job: taken over by the other worker, resumed from its checkpoint, one model.
    const k = infos.find((j) => j.id === killed.id)!;
    assert.ok(k.stalled >= 1, `the killed job was not taken over: ${JSON.stringify(k)}`);
    assert.notEqual(k.worker, killed.worker);
    assert.ok(
      typeof k.result?.resumed_from_step === 'number' && k.result.resumed_from_step >= killed.step,
      `the killed job did not resume from step ${killed.step}: ${JSON.stringify(k.result)}`,
    );
    const logs = (await q.show(killed.id)).logs;
    assert.ok(
      logs.some((l) => /^resuming training from the checkpoint at step \d+$/.test(l)),
      logs.join('\n'),
    );

    // 20 registered models m0..m19, one version each, each the model its job reports, each written to its --out.
    const reg = await openRegistry({ home: ws.home });
    try {
      const models = await reg.listModels();
      assert.deepEqual(models.map((m) => m.name).sort(), Array.from({ length: JOBS }, (_, i) => `m${i}`).sort());
      assert.deepEqual(
        models.filter((m) => m.versions !== 1).map((m) => `${m.name}: ${m.versions} versions`),
        [],
      );
      for (const [i, j] of infos.entries()) {
        assert.equal(j.result?.model?.ref, `m${i}:1`);
        assert.ok(existsSync(path.join(ws.dir, `out-${i}`, 'model', 'model.onnx')), `out-${i}`);
      }
      // Each job has exactly one finished training run (tagged with its id); the killed attempt's is marked failed.
      for (const id of ids) {
        const runs = (await reg.listRuns({ tag: { tailor_job: id } })).filter((r) => r.tags.kind !== 'audit-baseline');
        assert.equal(
          runs.filter((r) => r.status === 'finished').length,
          1,
          `${id}: ${runs.map((r) => r.status).join(', ')}`,
        );
        if (id === killed.id)
          assert.ok(
            runs.some((r) => r.status === 'failed'),
            runs.map((r) => r.status).join(', '),
          );
      }
    } finally {
      await reg.close();
    }

    // Bad input, through the CLI: one try, failed with the library's message, no retries.
    const missing = path.join(ws.dir, 'missing.csv');
    const sub = await tailor([
      'submit',
      'customize',
      '--base',
      ws.bert,
      '--train',
      missing,
      '--out',
      path.join(ws.dir, 'bad'),
      '--prefix',
      prefix,
      '--attempts',
      '3',
    ]);
    assert.equal(sub.status, 0, sub.stderr);
    const badId = sub.stdout.trim();
    let bad = await q.show(badId);
    const t2 = Date.now();
    while (bad.state !== 'failed' && bad.state !== 'completed' && Date.now() - t2 < 30_000) {
      await sleep(100);
      bad = await q.show(badId);
    }
    assert.equal(bad.state, 'failed');
    assert.equal(bad.failedReason, `cannot read train file ${missing}: no such file`);
    assert.equal(bad.attemptsMade, 1);
    await sleep(500);
    assert.equal((await q.show(badId)).attemptsMade, 1, 'a bad-input job was retried');
  },
);
