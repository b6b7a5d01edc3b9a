/**
 * `tailor submit <kind> ...` enqueues a job with the same flags as the command it runs; `tailor submit flow FILE`
 * enqueues steps that run one after the other; `tailor worker` runs jobs; `tailor jobs list | show | cancel`
 * reads the queue. The queue is $TAILOR_REDIS (or --redis) with key prefix $TAILOR_QUEUE_PREFIX (or --prefix).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../../errors.ts';
import type { JobInfo, JobKind, JobQueue, JobStep, SubmitOptions } from '../../jobs/index.ts';
import type { Json } from '../../registry/index.ts';
import { collect, emit, num, withGlobals, type GlobalOptions } from '../common.ts';
import { customizeCommand } from './customize.ts';
import { distillCommand } from './distill.ts';
import { evaluateCommand } from './evaluate.ts';
import { quantizeCommand } from './quantize.ts';

interface QueueCliOptions {
  redis?: string;
  prefix?: string;
}

/** --redis and --prefix, which every queue command takes. */
function withQueue(cmd: Command): Command {
  return cmd
    .option('--redis <url>', 'Redis URL (default: $TAILOR_REDIS, else redis://127.0.0.1:6379)')
    .option('--prefix <prefix>', 'queue key prefix (default: $TAILOR_QUEUE_PREFIX, else tailor)');
}

async function openQueue(o: QueueCliOptions): Promise<JobQueue> {
  const { JobQueue, queueConfig } = await import('../../jobs/index.ts');
  return JobQueue.open(
    queueConfig({ ...(o.redis ? { redis: o.redis } : {}), ...(o.prefix ? { prefix: o.prefix } : {}) }),
  );
}

async function withQueueOpen<T>(o: QueueCliOptions, fn: (q: JobQueue) => Promise<T>): Promise<T> {
  const q = await openQueue(o);
  try {
    return await fn(q);
  } finally {
    await q.close();
  }
}

/** `register`: a flow's last step, moving aliases onto the model the steps before it produced. */
function registerStepCommand(): Command {
  return new Command('register')
    .description('flow step: set aliases on the model the previous steps produced')
    .requiredOption('--alias <alias>', 'alias to set (repeatable)', collect)
    .option('--model <ref>', "model reference (default: the previous step's model)")
    .option(
      '--min-accuracy <x>',
      'refuse unless the previous evaluate step measured at least this',
      num({ min: 0, max: 1 }),
    );
}

const STEP_COMMANDS: Record<JobKind, () => Command> = {
  customize: customizeCommand,
  quantize: quantizeCommand,
  distill: distillCommand,
  evaluate: evaluateCommand,
  register: registerStepCommand,
};

/** Flags that name files or folders: made absolute at submit time, since a worker may run elsewhere. */
const PATH_OPTIONS = ['train', 'eval', 'out', 'calibration', 'unlabelled', 'validation'];
/** Flags that name a folder or a registry reference: made absolute only when such a folder exists here. */
const MAYBE_PATH_OPTIONS = ['base', 'model', 'teacher', 'baseline'];
/** Options that belong to the command line, not to the job. */
const LOCAL_OPTIONS = ['json', 'quiet', 'home', 'redis', 'prefix', 'attempts', 'backoffMs', 'checkpointEvery'];

/** The job's options from a command's parsed options: local flags dropped, paths absolute. */
function jobOptions(parsed: Record<string, unknown>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (LOCAL_OPTIONS.includes(k) || v === undefined) continue;
    const abs = (s: string): string => path.resolve(s);
    if (PATH_OPTIONS.includes(k)) out[k] = Array.isArray(v) ? v.map((s) => abs(String(s))) : abs(String(v));
    else if (MAYBE_PATH_OPTIONS.includes(k) && typeof v === 'string' && existsSync(v)) out[k] = abs(v);
    else out[k] = v as Json;
  }
  return out;
}

/** Parses one flow step's arguments with its command's own flag definitions. */
async function parseStep(kind: JobKind, args: readonly string[], first: boolean): Promise<Record<string, Json>> {
  const cmd = STEP_COMMANDS[kind]();
  const sourceFlag = kind === 'distill' ? '--teacher' : '--model';
  const argv = [...args];
  // Later steps work on the model the step before produced unless they name one.
  if (!first && kind !== 'customize' && kind !== 'register' && !argv.includes(sourceFlag))
    argv.push(sourceFlag, '@previous');
  let parsed: Record<string, unknown> | undefined;
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  cmd.action((o: Record<string, unknown>) => {
    parsed = o;
  });
  try {
    await cmd.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError)
      throw new ConfigError(`flow step ${kind}: ${e.message.replace(/^error: /, '')}`, {
        field: kind,
        value: argv.join(' '),
      });
    throw e;
  }
  return jobOptions(parsed!);
}

interface SubmitCliOptions extends GlobalOptions, QueueCliOptions {
  attempts?: number;
  backoffMs?: number;
  checkpointEvery?: number;
}

function withSubmitOptions(cmd: Command): Command {
  return withQueue(cmd)
    .option('--attempts <n>', 'tries in all before the job fails (default 3)', num({ min: 1, int: true }))
    .option('--backoff-ms <ms>', 'first retry delay, doubling each retry (default 2000)', num({ min: 0, int: true }))
    .option(
      '--checkpoint-every <steps>',
      'customize: optimizer steps between checkpoints (default 20)',
      num({ min: 1, int: true }),
    );
}

function submitOptions(o: SubmitCliOptions): SubmitOptions {
  return {
    ...(o.attempts !== undefined ? { attempts: o.attempts } : {}),
    ...(o.backoffMs !== undefined ? { backoffMs: o.backoffMs } : {}),
    ...(o.checkpointEvery !== undefined ? { checkpointEvery: o.checkpointEvery } : {}),
  };
}

export function submitCommand(): Command {
  const submit = new Command('submit').description(
    'enqueue a job for `tailor worker`: customize, quantize, distill or evaluate (same flags as the command), or a flow',
  );
  for (const kind of ['customize', 'quantize', 'distill', 'evaluate'] as const) {
    const cmd = withSubmitOptions(STEP_COMMANDS[kind]());
    cmd.description(`enqueue \`tailor ${kind}\` (same flags); prints the job id`);
    cmd.action(async (o: SubmitCliOptions & Record<string, unknown>) => {
      const id = await withQueueOpen(o, (q) => q.submit({ kind, options: jobOptions(o) }, submitOptions(o)));
      emit(o, { id, kind }, () => id);
    });
    submit.addCommand(cmd);
  }
  const flow = withSubmitOptions(
    new Command('flow')
      .description(
        'enqueue steps that run in order, e.g. customize -> quantize -> evaluate -> register; FILE is JSON: {"steps": [["customize", "--base", ...], ["quantize", "--out", "q"], ["evaluate", "--eval", "e.csv"], ["register", "--alias", "production"]]}; later steps use the previous model unless given --model',
      )
      .argument('<file>', 'flow file (JSON)'),
  );
  withGlobals(flow);
  flow.action(async (file: string, o: SubmitCliOptions) => {
    let spec: unknown;
    try {
      spec = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`flow file ${file}: ${(e as Error).message}`, { file }, { cause: e });
    }
    const steps = (spec as { steps?: unknown }).steps;
    if (!Array.isArray(steps) || steps.length === 0 || !steps.every((s) => Array.isArray(s) && s.length > 0))
      throw new ConfigError(`flow file ${file}: "steps" must be a non-empty list of [kind, ...flags] lists`, {
        file,
        field: 'steps',
      });
    const parsed: JobStep[] = [];
    for (const [i, s] of (steps as unknown[][]).entries()) {
      const kind = String(s[0]) as JobKind;
      if (!(kind in STEP_COMMANDS))
        throw new ConfigError(
          `flow file ${file}: step ${i + 1} has unknown kind '${kind}' (${Object.keys(STEP_COMMANDS).join(', ')})`,
          {
            file,
            field: `steps[${i}]`,
            value: kind,
          },
        );
      parsed.push({ kind, options: await parseStep(kind, s.slice(1).map(String), i === 0) });
    }
    const ids = await withQueueOpen(o, (q) => q.submitFlow(parsed, submitOptions(o)));
    emit(o, { ids, steps: parsed.map((p) => p.kind) }, () => ids.map((id, i) => `${id} ${parsed[i].kind}`).join('\n'));
  });
  submit.addCommand(flow);
  return submit;
}

interface WorkerCliOptions extends QueueCliOptions {
  concurrency: number;
  home?: string;
  workDir?: string;
  lockMs?: number;
  stalledMs?: number;
}

export function workerCommand(): Command {
  const cmd = withQueue(
    new Command('worker')
      .description('run queued jobs (each in its own child process) until SIGINT/SIGTERM; results go to the registry')
      .option('--concurrency <n>', 'jobs at once', num({ min: 1, int: true }), 1)
      .option('--home <dir>', 'registry the jobs write to (default: $TAILOR_HOME, else ./.tailor)')
      .option(
        '--work-dir <dir>',
        'checkpoints and unfinished output, shared by workers that resume each other (default <home>/jobs)',
      )
      .option(
        '--lock-ms <ms>',
        "how soon a dead worker's job is taken over (default 30000)",
        num({ min: 100, int: true }),
      )
      .option('--stalled-ms <ms>', 'how often to look for such jobs (default 30000)', num({ min: 100, int: true })),
  );
  cmd.action(async (o: WorkerCliOptions) => {
    const { startWorker, queueConfig, maskUrl } = await import('../../jobs/index.ts');
    const config = queueConfig({ ...(o.redis ? { redis: o.redis } : {}), ...(o.prefix ? { prefix: o.prefix } : {}) });
    const w = await startWorker({
      config,
      concurrency: o.concurrency,
      ...(o.home !== undefined ? { home: o.home } : {}),
      ...(o.workDir !== undefined ? { workDir: o.workDir } : {}),
      ...(o.lockMs !== undefined ? { lockDurationMs: o.lockMs } : {}),
      ...(o.stalledMs !== undefined ? { stalledIntervalMs: o.stalledMs } : {}),
    });
    process.stderr.write(
      `worker ${w.name} waiting for jobs on ${maskUrl(config.url)} (${config.prefix}:${config.queue}), concurrency ${o.concurrency}\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = (sig: string): void => {
        process.stderr.write(`worker ${w.name}: ${sig}, finishing running jobs\n`);
        void w.close().then(resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
  });
  return cmd;
}

function fmtProgress(p: JobInfo['progress']): string {
  if (p === null) return '';
  if (typeof p === 'number') return `${p}%`;
  return p.total > 0 ? `${p.stage} ${p.done}/${p.total}` : (p.message ?? p.stage);
}

function fmtJobList(jobs: JobInfo[], formatTable: (h: string[], r: string[][]) => string): string {
  if (jobs.length === 0) return 'no jobs';
  return formatTable(
    ['id', 'kind', 'state', 'tries', 'progress', 'model', 'created'],
    jobs.map((j) => [
      j.id,
      j.kind,
      j.state,
      String(j.attemptsMade),
      j.state === 'active' ? fmtProgress(j.progress) : j.state === 'failed' ? (j.failedReason ?? '').slice(0, 60) : '',
      j.result?.model?.ref ?? '',
      new Date(j.createdAt).toISOString().replace('T', ' ').slice(0, 19),
    ]),
  );
}

export function jobsCommand(): Command {
  const jobs = new Command('jobs').description('queued jobs: list, show, cancel');
  const list = withGlobals(
    withQueue(
      new Command('list')
        .description('jobs, newest first')
        .addOption(
          new Option('--state <state>', 'only jobs in this state').choices([
            'waiting',
            'active',
            'delayed',
            'prioritized',
            'waiting-children',
            'completed',
            'failed',
          ]),
        )
        .option('--limit <n>', 'at most this many', num({ min: 1, int: true }), 50),
    ),
  );
  list.action(async (o: GlobalOptions & QueueCliOptions & { state?: JobInfo['state']; limit: number }) => {
    const { renderTable } = await import('../../util/table.ts');
    const r = await withQueueOpen(o, (q) =>
      q.list({ ...(o.state && o.state !== 'unknown' ? { state: o.state } : {}), limit: o.limit }),
    );
    emit(o, r, () => fmtJobList(r, (h, rows) => renderTable(h, rows, 'auto')));
  });
  const show = withGlobals(
    withQueue(new Command('show').description('one job: state, tries, progress, result, log').argument('<id>')),
  );
  show.action(async (id: string, o: GlobalOptions & QueueCliOptions) => {
    const r = await withQueueOpen(o, (q) => q.show(id));
    emit(o, r, () =>
      [
        `job ${r.id} (${r.kind}): ${r.state}, ${r.attemptsMade} tries ended, taken over ${r.stalled} times${r.worker ? `, last worker ${r.worker}` : ''}`,
        ...(r.state === 'active' ? [`progress: ${fmtProgress(r.progress)}`] : []),
        ...(r.failedReason ? [`error: ${r.failedReason}`] : []),
        ...(r.result ? [`result: ${JSON.stringify(r.result)}`] : []),
        ...(r.parent ? [`next step: ${r.parent}`] : []),
        `options: ${JSON.stringify(r.options)}`,
        ...(r.logs.length ? ['log:', ...r.logs.map((l) => `  ${l}`)] : []),
      ].join('\n'),
    );
  });
  const cancel = withGlobals(
    withQueue(
      new Command('cancel')
        .description('remove a job that has not started; stop one that is running (no retries)')
        .argument('<id>')
        .option('--reason <text>', 'recorded as the failure reason', 'cancelled by request'),
    ),
  );
  cancel.action(async (id: string, o: GlobalOptions & QueueCliOptions & { reason: string }) => {
    const outcome = await withQueueOpen(o, (q) => q.cancel(id, o.reason));
    const text = {
      removed: `removed job ${id}`,
      cancelling: `cancelling job ${id} (its worker stops it)`,
      finished: `job ${id} had already finished`,
    }[outcome];
    emit(o, { id, outcome }, () => text);
  });
  jobs.addCommand(list);
  jobs.addCommand(show);
  jobs.addCommand(cancel);
  return jobs;
}
