/**
 * The sandboxed processor: BullMQ forks a child process per concurrent job slot and runs this module's default
 * export there, so CPU-bound training never delays the worker process's lock renewal. The worker passes its
 * registry and work folders through the environment of the child.
 *
 * Failure policy: bad input (a DataError, ConfigError, ModelFileError, GraphError, TrainingError, or a
 * RegistryError such as an unknown model reference) fails the job at once with the library's message (BullMQ's
 * UnrecoverableError: no retries, since a retry would fail the same way); anything else (a crashed or killed
 * child process, an ONNX Runtime failure, a lost connection) is retried with exponential backoff.
 */
import path from 'node:path';
import { ParentCommand, UnrecoverableError, type SandboxedJob } from 'bullmq';
import { ConfigError, DataError, GraphError, ModelFileError, RegistryError, TrainingError } from '../errors.ts';
import { CALLS, JobCancelled, type CallContext } from './calls.ts';
import { CHILD_ENV, JOB_KINDS, type JobData, type JobResult } from './types.ts';

/** Errors a retry cannot fix. */
const BAD_INPUT = [DataError, ConfigError, ModelFileError, GraphError, TrainingError, RegistryError];

/** After a cancel, how long the call may take to reach its next progress report before the child exits. */
const CANCEL_GRACE_MS = 10_000;

// The worker process is gone (SIGKILL, crash): its lock will expire and another worker will redo the job from
// its checkpoint, so this child must stop now rather than finish (and register) the same job a second time.
process.on('disconnect', () => process.exit(1));

export default async function processJob(
  job: SandboxedJob<JobData, JobResult>,
  _token?: string,
  signal?: AbortSignal,
): Promise<JobResult> {
  const data = job.data;
  if (data.cancelRequested) throw new UnrecoverableError(`cancelled: ${data.cancelRequested}`);
  if (!JOB_KINDS.includes(data.kind)) throw new UnrecoverableError(`unknown job kind '${String(data.kind)}'`);
  const root = process.env[CHILD_ENV.work];
  if (!root) throw new Error(`${CHILD_ENV.work} is not set: run jobs with 'tailor worker'`);
  const home = process.env[CHILD_ENV.home];
  const previous = Object.values(await job.getChildrenValues<JobResult>());
  const ctx: CallContext = {
    jobId: job.id ?? '',
    ...(home ? { home } : {}),
    workDir: path.join(root, job.id ?? 'unknown'),
    previous,
    ...(data.checkpointEvery ? { checkpointEvery: data.checkpointEvery } : {}),
    progress: (p) => void job.updateProgress(p),
    log: (line) => job.log(line),
    ...(signal ? { signal } : {}),
  };
  let hardStop: NodeJS.Timeout | undefined;
  signal?.addEventListener(
    'abort',
    () => {
      // A call that reports no progress for a long time (one long epoch) is stopped the hard way: fail the job
      // as cancelled (not as a crash, which would be retried), then exit so the work stops too.
      hardStop = setTimeout(() => {
        const err = new UnrecoverableError(`cancelled: ${String(signal.reason ?? 'by request')}`);
        const message = { cmd: ParentCommand.Failed, value: { name: err.name, message: err.message } };
        if (process.send) process.send(message, () => process.exit(0));
        else process.exit(0);
      }, CANCEL_GRACE_MS);
    },
    { once: true },
  );
  try {
    return await CALLS[data.kind](data.options, ctx);
  } catch (e) {
    if (e instanceof JobCancelled) throw new UnrecoverableError(e.message);
    if (BAD_INPUT.some((c) => e instanceof c)) throw new UnrecoverableError((e as Error).message);
    throw e;
  } finally {
    clearTimeout(hardStop);
  }
}
