/**
 * The one place where a job meets the library: job kind -> the function the CLI command calls. When the library
 * API moves (the customize loop leaves src/cli/pipeline.ts; quantize, distill and evaluate become library
 * functions), only this file changes.
 *
 * Until then, `customize` calls `runPipeline` directly, and `quantize`, `distill` and `evaluate` run their CLI
 * command's action on the job's options (the action holds their logic today) and take the value it would print.
 *
 * Every call is safe to repeat after a crash: the job's output is written to a folder of its own
 * (`<work>/<job id>/out`) and moved to `--out` only after the model is registered; a customize attempt first
 * looks in the registry for runs tagged with the job id, so a job killed after registering does not register twice,
 * and its training resumes from the checkpoints in `<work>/<job id>/checkpoints`.
 */
import { existsSync } from 'node:fs';
import { cp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, DataError, GateError } from '../errors.ts';
import { openRegistry, type Json, type Registry } from '../registry/index.ts';
import { PREVIOUS, type JobKind, type JobProgress, type JobResult } from './types.ts';
import type { TailorOptions, WorkflowProgress } from '../workflow/tailor.ts';
import type { DistillModelOptions, QuantizeModelOptions } from '../workflow/compress.ts';
import type { EvaluateModelOptions } from '../workflow/evaluate.ts';

/** What a worker gives a call besides the job's options. */
export interface CallContext {
  jobId: string;
  /** The worker's registry folder (results go there, whatever the submitter's --home was). */
  home?: string;
  /** This job's own folder: checkpoints and the output being written. */
  workDir: string;
  /** Results of the flow steps this job depends on (empty outside a flow). */
  previous: JobResult[];
  /** customize: optimizer steps between checkpoints. */
  checkpointEvery?: number;
  progress: (p: JobProgress) => void;
  log: (line: string) => void;
  /** Aborted when the job is cancelled; calls stop at their next progress report. */
  signal?: AbortSignal;
}

/** Thrown from a progress report once the job's signal is aborted, so the library call unwinds cleanly. */
export class JobCancelled extends Error {
  constructor(reason: string) {
    super(`cancelled: ${reason}`);
    this.name = 'JobCancelled';
  }
}

function throwIfCancelled(ctx: CallContext): void {
  if (ctx.signal?.aborted) throw new JobCancelled(String(ctx.signal.reason ?? 'by request'));
}

export type JobCall = (options: Record<string, Json>, ctx: CallContext) => Promise<JobResult>;

/** Registry tag that marks the runs a job made. */
export const JOB_TAG = 'tailor_job';

function str(o: Record<string, Json>, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

async function withReg<T>(home: string | undefined, fn: (reg: Registry) => Promise<T>): Promise<T> {
  const reg = await openRegistry(home !== undefined ? { home } : {});
  try {
    return await fn(reg);
  } finally {
    await reg.close();
  }
}

/** The library's progress sink, reporting to the job (one report per tenth of a stage: each is a Redis write). */
function jobProgress(ctx: CallContext): WorkflowProgress {
  let current = '';
  let last = -1;
  return {
    stage(stage, done, total) {
      throwIfCancelled(ctx);
      if (stage !== current) {
        current = stage;
        last = -1;
      }
      const tenth = total > 0 ? Math.floor((10 * done) / total) : 10;
      if (tenth === last) return;
      last = tenth;
      ctx.progress({ stage, done, total });
    },
    log(message) {
      throwIfCancelled(ctx);
      ctx.log(message);
      ctx.progress({ stage: current || 'running', done: 0, total: 0, message });
    },
  };
}

/** The model the nearest earlier flow step produced or worked on. */
function previousModel(ctx: CallContext, flag: string): string {
  const m = [...ctx.previous].reverse().find((r) => r.model)?.model;
  if (!m)
    throw new ConfigError(`${flag} ${PREVIOUS}: no earlier step of this flow produced a model`, {
      field: flag.replace(/^--/, ''),
      value: PREVIOUS,
    });
  return m.ref;
}

/** Moves the finished output from the job's folder to --out (copy + delete across file systems). */
async function publishOut(staging: string, out: string): Promise<void> {
  if (!existsSync(staging)) return;
  if (existsSync(out))
    throw new ConfigError(`--out ${out} appeared while the job ran; its result stays in ${staging}`, {
      file: out,
      field: 'out',
    });
  try {
    await rename(staging, out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await cp(staging, `${out}.partial`, { recursive: true });
    await rename(`${out}.partial`, out);
    await rm(staging, { recursive: true, force: true });
  }
}

/** The step of the newest checkpoint in `dir`, if any. */
async function checkpointStep(dir: string): Promise<number | undefined> {
  try {
    const j = JSON.parse(await readFile(path.join(dir, 'latest.json'), 'utf8')) as { step?: number };
    return typeof j.step === 'number' ? j.step : undefined;
  } catch {
    return undefined;
  }
}

/** What an earlier attempt of this job registered, if it got that far. */
async function registeredByJob(
  ctx: CallContext,
): Promise<{ runId: string; model: { name: string; version: number } } | undefined> {
  return withReg(ctx.home, async (reg) => {
    for (const run of await reg.listRuns({ tag: { [JOB_TAG]: ctx.jobId } })) {
      const d = await reg.showRun(run.id);
      if (d.models.length > 0) return { runId: run.id, model: d.models[0] };
    }
    return undefined;
  });
}

const customizeCall: JobCall = async (options, ctx) => {
  const [{ tailorModel }, { providersForDevice }, { assertFreshOut }, { nameFromOut }] = await Promise.all([
    import('../workflow/tailor.ts'),
    import('../runtime/providers.ts'),
    import('../models/artifact.ts'),
    import('../workflow/sources.ts'),
  ]);
  const outOpt = str(options, 'out');
  if (!outOpt) throw new ConfigError('customize job without --out', { field: 'out' });
  const out = path.resolve(outOpt);
  const name = str(options, 'name') ?? nameFromOut(out);
  const staging = path.join(ctx.workDir, 'out');
  const checkpoints = path.join(ctx.workDir, 'checkpoints');

  const earlier = await registeredByJob(ctx);
  if (earlier) {
    // Killed between registering and finishing: finish the bookkeeping, register nothing again.
    await publishOut(staging, out);
    const mv = await withReg(ctx.home, (reg) => reg.getModel(`${earlier.model.name}:${earlier.model.version}`));
    await rm(checkpoints, { recursive: true, force: true });
    ctx.log(`an earlier attempt registered ${mv.name}:${mv.version}; nothing to redo`);
    return {
      kind: 'customize',
      model: { name: mv.name, version: mv.version, ref: `${mv.name}:${mv.version}`, aliases: mv.aliases },
      run_id: earlier.runId,
      out,
      metrics: Object.fromEntries(
        Object.entries(mv.metadata).filter((e): e is [string, number] => typeof e[1] === 'number'),
      ),
      recovered: true,
    };
  }
  await assertFreshOut(out);
  // Whatever an earlier attempt left in the staging folder never reached the registry: start it again.
  await rm(staging, { recursive: true, force: true });
  const resumedFrom = await checkpointStep(checkpoints);
  if (resumedFrom !== undefined) ctx.log(`resuming training from the checkpoint at step ${resumedFrom}`);
  const {
    json: _json,
    device,
    profile: _profile,
    quiet: _quiet,
    home: _home,
    alias,
    out: _out,
    name: _name,
    ...pipeline
  } = options;
  const r = await tailorModel({
    ...(pipeline as unknown as Omit<TailorOptions, 'out'>),
    out: staging,
    name,
    ...(ctx.home !== undefined ? { home: ctx.home } : {}),
    ...(Array.isArray(alias) && alias.length ? { aliases: alias.map(String) } : {}),
    providers: providersForDevice(typeof device === 'string' ? device : undefined),
    progress: jobProgress(ctx),
    checkpoint: { dir: checkpoints, ...(ctx.checkpointEvery ? { every: ctx.checkpointEvery } : {}) },
    tags: { [JOB_TAG]: ctx.jobId },
  });
  await publishOut(staging, out);
  await rm(checkpoints, { recursive: true, force: true });
  return {
    kind: 'customize',
    model: r.model,
    run_id: r.run_id,
    out,
    metrics: {
      accuracy: r.customized.accuracy,
      macro_f1: r.customized.macro_f1,
      baseline_accuracy: r.baseline.accuracy,
      train_seconds: r.train_seconds,
      seconds: r.seconds,
    },
    strategy: r.strategy,
    ...(resumedFrom !== undefined ? { resumed_from_step: resumedFrom } : {}),
  };
};

/** Command-line arguments that make `cmd` parse back to `options` (the inverse of commander's parsing). */
export function argvFor(cmd: Command, options: Record<string, Json>): string[] {
  const argv: string[] = [];
  for (const opt of cmd.options) {
    const v = options[opt.attributeName()];
    if (v === undefined || v === null || !opt.long) continue;
    if (opt.negate) {
      if (v === false) argv.push(opt.long);
    } else if (opt.isBoolean()) {
      if (v === true) argv.push(opt.long);
    } else if (Array.isArray(v)) {
      for (const x of v) argv.push(opt.long, String(x));
    } else argv.push(opt.long, String(v));
  }
  return argv;
}

type CommandKind = 'quantize' | 'distill' | 'evaluate';

/**
 * The library call behind each command kind. The job's options are the command's parsed options, whose names are
 * the library options' names (the commands only parse flags and call these).
 */
const LIBRARY: Record<CommandKind, (o: Record<string, unknown>) => Promise<unknown>> = {
  quantize: async (o) => (await import('../workflow/compress.ts')).quantizeModel(o as unknown as QuantizeModelOptions),
  distill: async (o) => (await import('../workflow/compress.ts')).distillModel(o as unknown as DistillModelOptions),
  evaluate: async (o) => {
    const r = await (await import('../workflow/evaluate.ts')).evaluateModel(o as unknown as EvaluateModelOptions);
    if (r.fairnessBudget && !r.fairnessBudget.pass)
      throw new GateError(`fairness budget failed: ${r.fairnessBudget.reasons.join('; ')}`, {
        details: { checks: r.fairnessBudget.checks },
      });
    return { ...r.report, ...(r.behaviour ? { behaviour: r.behaviour } : {}) };
  },
};

/** Picks numbers out of a command's result: output name -> dotted path in the result. */
function metricsOf(value: Record<string, unknown>, paths: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, dotted] of Object.entries(paths)) {
    const v = dotted
      .split('.')
      .reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), value);
    if (typeof v === 'number' && Number.isFinite(v)) out[name] = v;
  }
  return out;
}

/** Runs the command's own action on the options and returns the value it would print with --json. */
function commandCall(kind: CommandKind): JobCall {
  return async (options, ctx) => {
    const [{ providersForDevice }, { assertFreshOut }, { nameFromOut }] = await Promise.all([
      import('../runtime/providers.ts'),
      import('../models/artifact.ts'),
      import('../workflow/sources.ts'),
    ]);
    const o: Record<string, Json> = { ...options, json: true, quiet: true };
    if (ctx.home !== undefined) o.home = ctx.home;
    else delete o.home;
    const sourceFlag = kind === 'distill' ? 'teacher' : 'model';
    if (o[sourceFlag] === PREVIOUS) o[sourceFlag] = previousModel(ctx, `--${sourceFlag}`);
    const outOpt = str(o, 'out');
    const out = outOpt ? path.resolve(outOpt) : undefined;
    const staging = path.join(ctx.workDir, 'out');
    if (out) {
      await assertFreshOut(out);
      await rm(staging, { recursive: true, force: true });
      o.out = staging;
      o.name = str(options, 'name') ?? nameFromOut(out);
    }
    const { json: _json, quiet: _quiet, device, ...rest } = o;
    const lib = {
      ...(rest as Record<string, unknown>),
      providers: providersForDevice(typeof device === 'string' ? device : undefined),
      progress: jobProgress(ctx),
    };
    const value = (await LIBRARY[kind](lib)) as Record<string, unknown>;
    if (out) await publishOut(staging, out);
    const model = value.model as JobResult['model'] | undefined;
    if (kind === 'evaluate') {
      const ref = String(o.model);
      const resolved = await withReg(ctx.home, async (reg) => (existsSync(ref) ? undefined : reg.getModel(ref)));
      return {
        kind,
        ...(resolved
          ? { model: { name: resolved.name, version: resolved.version, ref: `${resolved.name}:${resolved.version}` } }
          : {}),
        metrics: metricsOf(value, {
          count: 'count',
          accuracy: 'metrics.accuracy',
          macro_f1: 'metrics.macroF1',
          latency_p50_ms: 'latency.batch1.p50Ms',
          p_value: 'comparison.pValue',
        }),
      };
    }
    return {
      kind,
      ...(model ? { model } : {}),
      ...(typeof value.run_id === 'string' ? { run_id: value.run_id } : {}),
      ...(out ? { out } : {}),
      metrics: metricsOf(
        value,
        kind === 'quantize'
          ? {
              size_ratio: 'sizeRatio',
              speedup_batch1: 'speedupBatch1',
              accuracy: 'quantized.accuracy',
              accuracy_delta: 'accuracyDelta',
            }
          : {
              accuracy: 'student.accuracy',
              teacher_accuracy: 'teacher.accuracy',
              accuracy_delta: 'accuracyDelta',
              agreement: 'agreement',
              speedup_batch1: 'speedupBatch1',
            },
      ),
    };
  };
}

/**
 * Flow step `register`: moves aliases (`--alias`, repeatable) onto the model of the previous steps, refusing when
 * an earlier evaluate step measured an accuracy below `min_accuracy`.
 */
const registerCall: JobCall = async (options, ctx) => {
  const ref = str(options, 'model') ?? previousModel(ctx, '--model');
  const aliases = Array.isArray(options.alias) ? options.alias.map(String) : [];
  if (aliases.length === 0) throw new ConfigError('register step needs at least one --alias', { field: 'alias' });
  const min = options.minAccuracy;
  const measured = [...ctx.previous].reverse().find((r) => r.kind === 'evaluate')?.metrics.accuracy;
  if (typeof min === 'number') {
    if (measured === undefined)
      throw new ConfigError('register step with --min-accuracy needs an evaluate step before it', {
        field: 'min-accuracy',
      });
    if (measured < min)
      throw new DataError(`${ref}: accuracy ${measured} is below --min-accuracy ${min}; aliases not moved`, {
        field: 'min-accuracy',
        value: String(measured),
      });
  }
  const mv = await withReg(ctx.home, async (reg) => {
    const m = await reg.getModel(ref);
    let last = m;
    for (const a of aliases) last = await reg.setAlias(m.name, a, m.version);
    return last;
  });
  const metrics: Record<string, number> = measured !== undefined ? { accuracy: measured } : {};
  return {
    kind: 'register',
    model: { name: mv.name, version: mv.version, ref: `${mv.name}:${mv.version}`, aliases: mv.aliases },
    metrics,
  };
};

/** Job kind -> the library call it makes. */
export const CALLS: Record<JobKind, JobCall> = {
  customize: customizeCall,
  quantize: commandCall('quantize'),
  distill: commandCall('distill'),
  evaluate: commandCall('evaluate'),
  register: registerCall,
};
