/**
 * What every command shares: the global options (--json, --home, --device, --profile), output that keeps stdout
 * for the result (JSON or text) and stderr for progress, and a progress bar that degrades to plain log lines
 * when stderr is not a terminal (CI logs, pipes).
 */
import cliProgress from 'cli-progress';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigError } from '../errors.ts';
import { providersForDevice } from '../runtime/providers.ts';
import { parseDuration } from '../util/duration.ts';
import type { ProviderSpec } from '../runtime/session.ts';

export interface GlobalOptions {
  json?: boolean;
  home?: string;
  device?: 'cpu' | 'cuda' | 'webgpu';
  profile?: boolean;
  quiet?: boolean;
}

/** Adds the options every command accepts. */
export function withGlobals(cmd: Command, opts: { device?: boolean } = {}): Command {
  cmd.option('--json', 'print one machine-readable JSON object (the API return value) on stdout');
  cmd.option('--home <dir>', 'registry folder (default: $TAILOR_HOME, else ./.tailor)');
  cmd.option('-q, --quiet', 'no progress output on stderr');
  if (opts.device) {
    cmd.addOption(
      new Option('--device <device>', 'where models run: ONNX Runtime execution provider')
        .choices(['cpu', 'cuda', 'webgpu'])
        .default('cpu'),
    );
    cmd.option('--profile', "print ONNX Runtime's per-op profile of the model (time by op type)");
  }
  return cmd;
}

/** The base model and labelled data flags `audit` and `customize` share (same names, defaults and checks). */
export function withDataOptions(cmd: Command): Command {
  return cmd
    .option('--base <model>', 'use-lite, a model folder, a .onnx file or a hub id', 'use-lite')
    .requiredOption('--train <file>', 'train file (CSV, TSV, JSONL, Parquet); repeat for several', collect)
    .option('--eval <file>', 'held-out eval file; default: the validation split of train', collect)
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label', 'label')
    .option('--max-train-examples <n>', 'subsample train (stratified, seeded)', num({ min: 2, int: true }))
    .option('--max-eval-examples <n>', 'subsample eval (stratified, seeded)', num({ min: 1, int: true }));
}

/** Where a command that makes a model writes and registers it: `--out`, `--name`, `--alias`. */
export function withOutputOptions(cmd: Command, what: string): Command {
  return cmd
    .requiredOption('--out <dir>', `new folder for ${what}`)
    .option('--name <name>', "model name in the registry (default: the --out folder's name)")
    .option('--alias <alias>', 'alias to set on the new model version (repeatable)', collect);
}

/** `--device` -> ONNX Runtime providers. */
export function providersFor(device: string | undefined): ProviderSpec[] {
  return providersForDevice(device);
}

/** Parses a numeric option; a value out of range is a usage error naming the option. */
export function num(opts: { min?: number; max?: number; int?: boolean } = {}): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    const bad =
      v.trim() === '' ||
      !Number.isFinite(n) ||
      (opts.int && !Number.isInteger(n)) ||
      (opts.min !== undefined && n < opts.min) ||
      (opts.max !== undefined && n > opts.max);
    if (bad) {
      const range = [
        opts.int ? 'an integer' : 'a number',
        opts.min !== undefined ? `>= ${opts.min}` : '',
        opts.max !== undefined ? `<= ${opts.max}` : '',
      ]
        .filter(Boolean)
        .join(' ');
      // A usage error (exit 2): commander prints it with the option's name.
      throw new InvalidArgumentError(`must be ${range}`);
    }
    return n;
  };
}

/** Parses a duration option (`90s`, `10m`, `1h`) into seconds; anything else is a usage error naming the option. */
export function duration(v: string): number {
  try {
    return parseDuration(v);
  } catch {
    // A usage error (exit 2): commander prints it with the option's name.
    throw new InvalidArgumentError('must be a positive duration such as 90s, 10m or 1h');
  }
}

/** JSON text where NaN/Infinity become null (JSON has no such numbers). */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : typeof v === 'bigint' ? Number(v) : v),
    2,
  );
}

let resultSink: ((value: unknown) => void) | undefined;

/** Prints the command's result: JSON on --json, else the text rendering (or hands it to `captureResult`). */
export function emit(opts: GlobalOptions, value: unknown, text: () => string): void {
  if (resultSink) resultSink(JSON.parse(toJson(value)));
  else process.stdout.write(opts.json ? `${toJson(value)}\n` : `${text()}\n`);
}

/**
 * Runs `fn` (which parses and runs a command) and returns the value the command would have printed, as JSON
 * data, instead of printing it: the job worker runs commands this way, one at a time per process.
 */
export async function captureResult(fn: () => Promise<unknown>): Promise<unknown> {
  let value: unknown;
  let got = false;
  const previous = resultSink;
  resultSink = (v) => {
    value = v;
    got = true;
  };
  try {
    await fn();
  } finally {
    resultSink = previous;
  }
  if (!got) throw new ConfigError('the command finished without a result', { field: 'command' });
  return value;
}

/** Progress on stderr: a bar on a TTY, otherwise a line at every quarter (and at the end). */
export class Progress {
  private bar: cliProgress.SingleBar | undefined;
  private label = '';
  private total = 0;
  private lastDecile = -1;
  private readonly tty: boolean;
  constructor(
    private readonly enabled: boolean,
    tty = process.stderr.isTTY === true,
  ) {
    this.tty = tty;
  }

  /** Starts (or switches to) a stage. */
  start(label: string, total: number): void {
    this.stop();
    this.label = label;
    this.total = total;
    this.lastDecile = -1;
    if (!this.enabled) return;
    if (this.tty) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${label.padEnd(22)} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0);
    }
  }

  update(done: number, total = this.total): void {
    if (!this.enabled) return;
    if (this.bar) {
      if (total !== this.total) this.bar.setTotal(total);
      this.total = total;
      this.bar.update(done);
      return;
    }
    // Without a terminal: a line per quarter, so logs stay short.
    const decile = total > 0 ? Math.floor((4 * done) / total) : 4;
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      process.stderr.write(`${this.label}: ${done}/${total}\n`);
    }
  }

  /** Progress of a stage (the library's WorkflowProgress): a new bar whenever the stage changes. */
  stage(stage: string, done: number, total: number): void {
    if (stage !== this.label) this.start(stage, total);
    this.update(done, total);
  }

  /** A plain message line (not a bar). */
  log(message: string): void {
    if (!this.enabled) return;
    if (this.bar) this.stop();
    process.stderr.write(`${message}\n`);
  }

  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
    }
  }
}

/** A Progress following the global options. */
export function progressFor(opts: GlobalOptions): Progress {
  return new Progress(!opts.quiet);
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** An onProgress(stage, done, total) callback that starts a new bar whenever the stage changes. */
export function stageProgress(
  progress: Progress | undefined,
  prefix = '',
): (stage: string, done: number, total: number) => void {
  return (stage, done, total) => progress?.stage(`${prefix}${stage}`, done, total);
}

/** Exit codes documented in docs/cli.md. */
export const EXIT = { ok: 0, error: 1, usage: 2, regression: 3 } as const;

let requestedExit = 0;

/** A command that completed but must not exit 0 (for example a regression that kept an alias in place) says so here. */
export function requestExitCode(code: number): void {
  requestedExit = code;
}

/** The exit code a command asked for (0 if none), reset for the next command. */
export function takeRequestedExitCode(): number {
  const c = requestedExit;
  requestedExit = 0;
  return c;
}
