/** What travels on the queue: a job kind and the options of the command it runs, all plain JSON. */
import type { Json } from '../registry/index.ts';

/** Library calls a job can make; `register` only exists as the last step of a flow (it moves aliases). */
export const JOB_KINDS = ['customize', 'quantize', 'distill', 'evaluate', 'register'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** Environment variables a worker sets for its job processes: the registry folder and the work folder. */
export const CHILD_ENV = { home: 'TAILOR_JOB_HOME', work: 'TAILOR_JOB_WORK_DIR' } as const;

/** In a flow, a `--model`/`--teacher` of this value means "the model the previous step produced". */
export const PREVIOUS = '@previous';

export interface JobData {
  kind: JobKind;
  /** The command's options as its flags parsed them (paths made absolute at submit time). */
  options: Record<string, Json>;
  /** customize: optimizer steps between training checkpoints (and at the end of training). */
  checkpointEvery?: number;
  /** Set by `jobs cancel` on a job that is already running; the worker also gets an abort signal. */
  cancelRequested?: string;
}

/** A job's return value, kept in Redis (the full reports live in the registry and the --out folder). */
export interface JobResult {
  kind: JobKind;
  /** The model version the job registered (or, for evaluate/register, the one it worked on). */
  model?: { name: string; version: number; ref: string; aliases?: string[] };
  run_id?: string;
  out?: string;
  metrics: Record<string, number>;
  /** customize: the optimizer step training resumed from, when an earlier attempt was killed mid-way. */
  resumed_from_step?: number;
  /** An earlier attempt had already registered the model; this attempt only finished the bookkeeping. */
  recovered?: boolean;
  [key: string]: Json | undefined;
}

/** What a job reports while it runs (BullMQ progress). */
export interface JobProgress {
  stage: string;
  done: number;
  total: number;
  message?: string;
}
