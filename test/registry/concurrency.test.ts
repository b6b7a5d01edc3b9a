import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openRegistry } from '../../src/registry/index.ts';
import { useBackends, type Backend } from './harness.ts';

const writer = fileURLToPath(new URL('./fixtures/writer.ts', import.meta.url));

function spawnWriter(
  args: string[],
  env: Record<string, string> = {},
): {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>;
  pid: number;
  firstLine: Promise<string>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', writer, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  let resolveLine: (s: string) => void = () => undefined;
  const firstLine = new Promise<string>((r) => (resolveLine = r));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('\n')) resolveLine(out.split('\n')[0]);
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((r) =>
    child.on('close', (code, signal) => r({ code, signal, out, err })),
  );
  return { done, pid: child.pid!, firstLine };
}

function suite(backend: Backend): void {
  describe(backend.name, () => {
    test('two processes writing at once leave a consistent registry', async () => {
      const opts = backend.fresh();
      const home = opts.home;
      const count = 30;
      const a = spawnWriter([home, 'A', 'write', String(count)], backend.env(opts));
      const b = spawnWriter([home, 'B', 'write', String(count)], backend.env(opts));
      const [ra, rb] = await Promise.all([a.done, b.done]);
      assert.equal(ra.code, 0, ra.err);
      assert.equal(rb.code, 0, rb.err);
      const reg = await openRegistry(opts);
      const runs = await reg.listRuns();
      assert.equal(runs.length, 2);
      const [r0, r1] = runs;
      assert.ok(r0.startedAt < r1.endedAt! && r1.startedAt < r0.endedAt!, 'the two runs overlapped in time');
      for (const r of runs) {
        assert.equal(r.status, 'finished');
        const loss = await reg.getMetrics(r.id, 'loss');
        assert.deepEqual(
          loss.map((p) => p.step),
          Array.from({ length: count }, (_, i) => i),
        );
        assert.equal(loss[count - 1].value, 1 / count);
        assert.equal((await reg.metadata.listArtifacts(r.id)).length, count / 5);
      }
      // Both registered into the same model name: versions are 1..N with no gap or duplicate.
      const versions = await reg.listModelVersions('shared-model');
      assert.deepEqual(
        versions.map((v) => v.version),
        Array.from({ length: (2 * count) / 5 }, (_, i) => i + 1),
      );
      const staging = await reg.getModel('shared-model@staging');
      assert.equal(staging.version, versions.length, 'the alias ends on whichever registration came last');
      const v = await reg.verify();
      assert.equal(v.ok, true, JSON.stringify(v.problems));
      assert.equal(v.checkedObjects, (2 * count) / 5);
      assert.deepEqual(await reg.metadata.listReservations(), []);
      assert.deepEqual(readdirSync(join(home, 'tmp')), []);
      await reg.close();
    });

    test('a run whose process is killed mid-way shows as failed and its partial artifact is never recorded', async () => {
      const opts = backend.fresh();
      const home = opts.home;
      const w = spawnWriter([home, 'K', 'hang', '1'], backend.env(opts));
      const runId = await w.firstLine;
      process.kill(w.pid, 'SIGKILL');
      const res = await w.done;
      assert.equal(res.signal, 'SIGKILL');
      const reg = await openRegistry(opts);
      const run = await reg.getRun(runId);
      assert.equal(run.status, 'failed');
      assert.equal(run.error, `process ${w.pid} on ${run.host} exited without ending the run`);
      assert.ok(run.endedAt !== null);
      assert.deepEqual(
        (await reg.getMetrics(runId)).map((p) => [p.key, p.value]),
        [['loss', 1]],
      );
      assert.deepEqual(await reg.metadata.listArtifacts(runId), []);
      // The staging folder it left behind is removed by gc.
      assert.equal(readdirSync(join(home, 'tmp')).length, 1);
      const gc = await reg.gc();
      assert.equal(gc.removedTemp.length, 1);
      assert.deepEqual(readdirSync(join(home, 'tmp')), []);
      await reg.close();
    });

    test('with handleSignals, SIGTERM marks the run killed and the process exits 143', async () => {
      const opts = backend.fresh();
      const w = spawnWriter([opts.home, 'S', 'signals', '1'], backend.env(opts));
      const runId = await w.firstLine;
      process.kill(w.pid, 'SIGTERM');
      const res = await w.done;
      assert.equal(res.code, 143, res.err);
      const reg = await openRegistry(opts);
      const run = await reg.getRun(runId);
      assert.equal(run.status, 'killed');
      assert.equal(run.error, 'received SIGTERM');
      await reg.close();
    });
  });
}

for (const backend of useBackends()) suite(backend);
