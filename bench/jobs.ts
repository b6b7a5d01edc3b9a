/**
 * `node --import tsx bench/jobs.ts [--jobs N] [--workers 1,2]`: job-queue throughput on this machine. For each worker
 * count, starts that many `tailor worker` processes (concurrency 1 each) on a fresh queue prefix, submits N small
 * customize jobs (LoRA, 2 epochs, batch 8, on a tiny BERT with 100 CLINC150 training texts of 4 intents; the same
 * data the CLI tests use), and times first submit -> last completion. Prints jobs per hour. Needs Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { JobQueue, queueConfig } from '../src/jobs/index.ts';
import { BIN, workspace } from '../test/cli/fixtures.ts';

const args = process.argv.slice(2);
const argOf = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(argOf('--jobs') ?? 12);
const COUNTS = (argOf('--workers') ?? '1,2').split(',').map(Number);

function startWorker(home: string, prefix: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'worker', '--home', home, '--prefix', prefix], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('waiting for jobs')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${log}`)));
  });
}

const ws = await workspace('bench-jobs');
try {
  for (const W of COUNTS) {
    const prefix = `tailor-bench-${process.pid}-${W}`;
    const q = await JobQueue.open(queueConfig({ prefix }));
    const home = path.join(ws.dir, `home-${W}`);
    const workers = await Promise.all(Array.from({ length: W }, () => startWorker(home, prefix)));
    const t0 = performance.now();
    const ids: string[] = [];
    for (let i = 0; i < N; i++)
      ids.push(
        await q.submit({
          kind: 'customize',
          options: {
            base: ws.bert,
            train: [ws.train],
            eval: [ws.eval],
            labelColumn: 'intent',
            strategy: 'lora',
            epochs: 2,
            batchSize: 8,
            seed: i,
            out: path.join(ws.dir, `out-${W}-${i}`),
            name: `b${i}`,
          },
        }),
      );
    for (;;) {
      const states = await Promise.all(ids.map(async (id) => (await q.show(id)).state));
      if (states.includes('failed')) throw new Error(`a job failed: ${states.join(', ')}`);
      if (states.every((s) => s === 'completed')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const s = (performance.now() - t0) / 1000;
    console.log(`${W} worker(s): ${N} jobs in ${s.toFixed(1)} s = ${Math.round((N / s) * 3600)} jobs/hour`);
    for (const w of workers) w.kill('SIGTERM');
    await q.obliterate();
    await q.close();
  }
} finally {
  rmSync(ws.dir, { recursive: true, force: true });
}
