/**
 * The submitting side of the job queue: enqueue a job or a flow (steps that run one after the other, each a BullMQ
 * parent of the step before it), list and show jobs, cancel one. Jobs are retried with exponential backoff on
 * crashes (BullMQ's `attempts` and `backoff`); bad input fails at once (see processor.ts).
 */
import { randomUUID } from 'node:crypto';
import { FlowProducer, Queue, QueueEventsProducer, type Job, type JobState, type JobsOptions } from 'bullmq';
import { ConfigError, QueueError } from '../errors.ts';
import type { Json } from '../registry/index.ts';
import { bullConnection, checkRedis, type QueueConfig } from './config.ts';
import { JOB_KINDS, type JobData, type JobKind, type JobProgress, type JobResult } from './types.ts';

/** The custom queue event a worker listens to for cancelling a job it is running. */
export const CANCEL_EVENT = 'tailor.cancel';

export interface SubmitOptions {
  /** Tries in all, the first included (default 3). */
  attempts?: number;
  /** First retry delay; doubles with each retry (default 2000 ms). */
  backoffMs?: number;
  /** customize: optimizer steps between checkpoints (default 20). */
  checkpointEvery?: number;
}

export interface JobStep {
  kind: JobKind;
  options: Record<string, Json>;
}

/** One job as `jobs list` and `jobs show` print it. */
export interface JobInfo {
  id: string;
  kind: JobKind;
  state: JobState | 'unknown';
  progress: JobProgress | number | null;
  /** Tries that ended (failed or finished); a worker killed mid-job does not count as a try. */
  attemptsMade: number;
  /** Times the job was taken back from a worker that stopped renewing its lock. */
  stalled: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  worker: string | null;
  failedReason: string | null;
  result: JobResult | null;
  /** In a flow: the step that runs after this one. */
  parent: string | null;
  options: Record<string, Json>;
}

export interface JobDetails extends JobInfo {
  logs: string[];
}

export const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_BACKOFF_MS = 2000;
export const DEFAULT_CHECKPOINT_EVERY = 20;

function jobOptions(o: SubmitOptions, jobId: string): JobsOptions {
  const attempts = o.attempts ?? DEFAULT_ATTEMPTS;
  if (!(Number.isInteger(attempts) && attempts >= 1))
    throw new ConfigError(`attempts must be a positive integer, got ${attempts}`, {
      field: 'attempts',
      value: String(attempts),
    });
  return {
    jobId,
    attempts,
    backoff: { type: 'exponential', delay: o.backoffMs ?? DEFAULT_BACKOFF_MS },
    // Finished jobs stay listable for a week; failed ones for a month (they are what people come looking for).
    removeOnComplete: { age: 7 * 24 * 3600 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
}

function dataFor(step: JobStep, o: SubmitOptions): JobData {
  if (!JOB_KINDS.includes(step.kind))
    throw new ConfigError(`unknown job kind '${String(step.kind)}' (${JOB_KINDS.join(', ')})`, {
      field: 'kind',
      value: String(step.kind),
    });
  return {
    kind: step.kind,
    options: step.options,
    ...(step.kind === 'customize' ? { checkpointEvery: o.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY } : {}),
  };
}

/** A connection to one queue. Open with `JobQueue.open`, which fails fast when Redis is unreachable. */
export class JobQueue {
  private flows: FlowProducer | undefined;
  private events: QueueEventsProducer | undefined;

  private constructor(
    readonly config: QueueConfig,
    readonly queue: Queue<JobData, JobResult>,
  ) {}

  static async open(config: QueueConfig): Promise<JobQueue> {
    await checkRedis(config);
    const queue = new Queue<JobData, JobResult>(config.queue, {
      connection: bullConnection(config),
      prefix: config.prefix,
    });
    queue.on('error', () => {});
    return new JobQueue(config, queue);
  }

  /** Enqueues one job; returns its id. */
  async submit(step: JobStep, o: SubmitOptions = {}): Promise<string> {
    const id = randomUUID();
    await this.queue.add(step.kind, dataFor(step, o), jobOptions(o, id));
    return id;
  }

  /**
   * Enqueues steps that run in order (customize -> quantize -> evaluate -> register): each step is the BullMQ
   * parent of the one before it, so it starts when that one has finished and reads its result. A failed step
   * fails the steps after it. Returns the ids in step order.
   */
  async submitFlow(steps: readonly JobStep[], o: SubmitOptions = {}): Promise<string[]> {
    if (steps.length === 0) throw new ConfigError('a flow needs at least one step', { field: 'steps' });
    this.flows ??= new FlowProducer({ connection: bullConnection(this.config), prefix: this.config.prefix });
    const ids = steps.map(() => randomUUID());
    type Node = Parameters<FlowProducer['add']>[0];
    let node: Node | undefined;
    steps.forEach((step, i) => {
      node = {
        name: step.kind,
        queueName: this.config.queue,
        data: dataFor(step, o),
        opts: { ...jobOptions(o, ids[i]), ...(i < steps.length - 1 ? { failParentOnFailure: true } : {}) },
        ...(node ? { children: [node] } : {}),
      };
    });
    await this.flows.add(node!);
    return ids;
  }

  private async get(id: string): Promise<Job<JobData, JobResult>> {
    const job = await this.queue.getJob(id);
    if (!job) throw new QueueError(`no job '${id}' in queue ${this.config.prefix}:${this.config.queue}`, { value: id });
    return job;
  }

  private async info(job: Job<JobData, JobResult>): Promise<JobInfo> {
    const state = await job.getState();
    return {
      id: job.id ?? '',
      kind: job.data.kind,
      state,
      progress:
        typeof job.progress === 'object' || typeof job.progress === 'number' ? (job.progress as JobProgress) : null,
      attemptsMade: job.attemptsMade,
      stalled: job.stalledCounter ?? 0,
      createdAt: job.timestamp,
      startedAt: job.processedOn ?? null,
      finishedAt: job.finishedOn ?? null,
      worker: job.processedBy ?? null,
      failedReason: job.failedReason || null,
      result: job.returnvalue ?? null,
      parent: job.parent?.id ?? null,
      options: job.data.options,
    };
  }

  /** Jobs, newest first, optionally in one state. */
  async list(filter: { state?: JobState; limit?: number } = {}): Promise<JobInfo[]> {
    const states: JobState[] = filter.state
      ? [filter.state]
      : ['active', 'waiting', 'waiting-children', 'prioritized', 'delayed', 'completed', 'failed'];
    const jobs = await this.queue.getJobs(states, 0, (filter.limit ?? 100) - 1, false);
    const infos = await Promise.all(jobs.filter((j): j is Job<JobData, JobResult> => !!j).map((j) => this.info(j)));
    return infos.sort((a, b) => b.createdAt - a.createdAt).slice(0, filter.limit ?? 100);
  }

  /** One job with its log lines. */
  async show(id: string): Promise<JobDetails> {
    const job = await this.get(id);
    const { logs } = await this.queue.getJobLogs(id);
    return { ...(await this.info(job)), logs };
  }

  /**
   * Cancels a job: one that has not started is removed (a step of a flow with its whole flow);
   * a running one is told to stop (its worker aborts it and fails it as cancelled, without retries).
   */
  async cancel(id: string, reason = 'cancelled by request'): Promise<'removed' | 'cancelling' | 'finished'> {
    const job = await this.get(id);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return 'finished';
    if (state !== 'active') {
      try {
        // A step of a flow takes the whole flow with it: the later steps could never run.
        let root = job;
        for (let pid = job.parent?.id; pid; pid = root.parent?.id) {
          const parent = await this.queue.getJob(pid);
          if (!parent) break;
          root = parent;
        }
        await root.remove({ removeChildren: true });
        return 'removed';
      } catch {
        // It started in the meantime: cancel it as a running job.
      }
    }
    await job.updateData({ ...job.data, cancelRequested: reason });
    this.events ??= new QueueEventsProducer(this.config.queue, {
      connection: bullConnection(this.config),
      prefix: this.config.prefix,
    });
    await this.events.publishEvent({ eventName: CANCEL_EVENT, jobId: id, reason });
    return 'cancelling';
  }

  /** Deletes every key of this queue (tests, and `jobs` housekeeping). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }

  async close(): Promise<void> {
    await Promise.all([this.queue.close(), this.flows?.close(), this.events?.close()]);
  }
}
