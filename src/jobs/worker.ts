/**
 * The working side: a BullMQ worker that runs jobs in sandboxed child processes (processor.ts), reports each job's
 * start and end on stderr, and listens for cancel events. A worker that dies stops renewing its jobs' locks; after
 * `lockDurationMs` another worker's stalled-job check puts them back in the queue, and they resume from their
 * checkpoints (calls.ts).
 */
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { QueueEvents, Worker } from 'bullmq';
import { resolveHome } from '../registry/index.ts';
import { bullConnection, checkRedis, maskUrl, type QueueConfig } from './config.ts';
import { CANCEL_EVENT } from './queue.ts';
import { CHILD_ENV, type JobData, type JobResult } from './types.ts';

export interface WorkerOptions {
  config: QueueConfig;
  /** Jobs at once, each in its own child process (default 1). */
  concurrency?: number;
  /** Registry folder the jobs write to (default: $TAILOR_HOME, else ./.tailor). */
  home?: string;
  /** Where jobs keep checkpoints and unfinished output (default <home>/jobs); shared by all workers to resume across machines. */
  workDir?: string;
  /** How long a job's lock lives without renewal, i.e. how soon a dead worker's job is picked up again (default 30 s). */
  lockDurationMs?: number;
  /** How often a worker looks for jobs whose lock expired (default 30 s). */
  stalledIntervalMs?: number;
  /** Name recorded on the jobs it takes (default host:pid). */
  name?: string;
  /** Where start/finish lines go (default stderr). */
  log?: (line: string) => void;
}

export interface JobWorker {
  readonly name: string;
  readonly worker: Worker<JobData, JobResult>;
  /** Stops taking jobs, waits for the running ones, closes connections. */
  close(): Promise<void>;
}

/** Starts a worker; fails fast (naming the URL) when Redis is unreachable. */
export async function startWorker(o: WorkerOptions): Promise<JobWorker> {
  const cfg = o.config;
  await checkRedis(cfg);
  const home = resolveHome(o.home);
  const workDir = path.resolve(o.workDir ?? path.join(home, 'jobs'));
  mkdirSync(workDir, { recursive: true });
  const name = o.name ?? `${hostname()}:${process.pid}`;
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // The child runs what this process runs: the built JavaScript of an installed package, or in a checkout the
  // TypeScript sources through tsx's loader (by absolute URL, so that it is found from any working directory).
  const compiled = import.meta.url.endsWith('.js');
  const execArgv = compiled ? [] : ['--import', import.meta.resolve('tsx')];
  const processor = new URL(compiled ? './processor.js' : './processor.ts', import.meta.url);
  const worker = new Worker<JobData, JobResult>(cfg.queue, processor, {
    connection: bullConnection(cfg),
    prefix: cfg.prefix,
    concurrency: o.concurrency ?? 1,
    lockDuration: o.lockDurationMs ?? 30_000,
    stalledInterval: o.stalledIntervalMs ?? 30_000,
    // A job whose worker died more than this many times fails (it is probably what kills them).
    maxStalledCount: 3,
    name,
    workerForkOptions: {
      execArgv,
      env: { ...process.env, [CHILD_ENV.home]: home, [CHILD_ENV.work]: workDir },
    },
  });
  worker.on('active', (job) => log(`${name}: started ${job.data.kind} job ${job.id} (try ${job.attemptsMade + 1})`));
  worker.on('completed', (job) =>
    log(
      `${name}: finished ${job.data.kind} job ${job.id}${job.returnvalue?.model ? `: ${job.returnvalue.model.ref}` : ''}`,
    ),
  );
  worker.on('failed', (job, err) =>
    log(`${name}: ${job?.data.kind ?? ''} job ${job?.id ?? '?'} failed: ${err.message}`),
  );
  worker.on('error', (err) => log(`${name}: queue error (${maskUrl(cfg.url)}): ${err.message}; retrying`));
  const events = new QueueEvents(cfg.queue, { connection: bullConnection(cfg), prefix: cfg.prefix });
  events.on('error', (err) => log(`${name}: queue events error (${maskUrl(cfg.url)}): ${err.message}; retrying`));
  // Custom events are outside QueueEvents' typed listener map.
  (events as unknown as NodeJS.EventEmitter).on(CANCEL_EVENT, (e: { jobId: string; reason?: string }) => {
    if (worker.cancelJob(e.jobId, e.reason ?? 'cancelled by request')) log(`${name}: cancelling job ${e.jobId}`);
  });
  await Promise.all([worker.waitUntilReady(), events.waitUntilReady()]);
  return {
    name,
    worker,
    async close() {
      await Promise.all([worker.close(), events.close()]);
    },
  };
}
