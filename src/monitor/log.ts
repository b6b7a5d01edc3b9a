/**
 * Reader of the prediction log and the feedback log written by the server (schema in docs/monitor.md):
 * JSON Lines files under `<home>/predictions/` and `<home>/feedback/`, rotated into several files per folder.
 * Every file is read; rows are returned in time order; lines that are not valid rows are skipped and counted
 * (a crash can leave a half-written last line), never fatal.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ConfigError, DataError } from '../errors.ts';

/** One predicted text. */
export interface PredictionRow {
  v: 1;
  time: string;
  request_id: string;
  index: number;
  model: { ref: string; name: string; version: number };
  variant: string;
  shadow: boolean;
  /** The text, its SHA-256 when the server logs hashes only, or null when inputs are not logged. */
  input: { text: string } | { sha256: string } | null;
  label: string;
  confidence: number;
  /** Probabilities aligned with the model version's labels. */
  scores: number[];
  latency_ms: number;
}

/** One label given after the fact for a logged prediction. */
export interface FeedbackRow {
  v: 1;
  time: string;
  request_id: string;
  index: number;
  label: string;
}

export interface SkippedLine {
  file: string;
  line: number;
  reason: string;
}

export interface ReadResult<T> {
  rows: T[];
  /** Lines skipped as corrupt (first 100 kept), and their total count. */
  skipped: SkippedLine[];
  skippedCount: number;
  files: string[];
}

export interface LogFilter {
  /** Model name (matches `model.name`). */
  model?: string;
  /** Inclusive lower bound. */
  since?: Date;
  /** Exclusive upper bound. */
  until?: Date;
  /** Keep shadow predictions (default false: they were not served). */
  includeShadow?: boolean;
  /** Only these variants. */
  variants?: string[];
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function validTime(x: unknown): x is string {
  return typeof x === 'string' && !Number.isNaN(Date.parse(x));
}

/** Why `x` is not a prediction row, or null when it is one. */
export function predictionRowProblem(x: unknown): string | null {
  if (!isObj(x)) return 'not a JSON object';
  if (x.v !== 1) return `unsupported version v=${String(x.v)}`;
  if (!validTime(x.time)) return 'time is not an ISO date';
  if (typeof x.request_id !== 'string') return 'request_id is not a string';
  if (!Number.isInteger(x.index)) return 'index is not an integer';
  const m = x.model;
  if (!isObj(m) || typeof m.name !== 'string' || typeof m.ref !== 'string' || !Number.isInteger(m.version))
    return 'model must be {ref, name, version}';
  if (typeof x.variant !== 'string') return 'variant is not a string';
  if (typeof x.shadow !== 'boolean') return 'shadow is not a boolean';
  const inp = x.input;
  if (inp !== null && !(isObj(inp) && (typeof inp.text === 'string' || typeof inp.sha256 === 'string')))
    return 'input must be {text}, {sha256} or null';
  if (typeof x.label !== 'string') return 'label is not a string';
  if (typeof x.confidence !== 'number') return 'confidence is not a number';
  if (!Array.isArray(x.scores) || !x.scores.every((s) => typeof s === 'number')) return 'scores is not a number array';
  if (typeof x.latency_ms !== 'number') return 'latency_ms is not a number';
  return null;
}

/** Why `x` is not a feedback row, or null when it is one. */
export function feedbackRowProblem(x: unknown): string | null {
  if (!isObj(x)) return 'not a JSON object';
  if (x.v !== 1) return `unsupported version v=${String(x.v)}`;
  if (!validTime(x.time)) return 'time is not an ISO date';
  if (typeof x.request_id !== 'string') return 'request_id is not a string';
  if (!Number.isInteger(x.index)) return 'index is not an integer';
  if (typeof x.label !== 'string') return 'label is not a string';
  return null;
}

async function listJsonl(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .filter((n) => n.endsWith('.jsonl'))
    .sort()
    .map((n) => path.join(dir, n));
}

async function readRows<T extends { time: string }>(
  dir: string,
  problem: (x: unknown) => string | null,
  keep: (row: T) => boolean,
): Promise<ReadResult<T>> {
  const files = await listJsonl(dir);
  const rows: T[] = [];
  const skipped: SkippedLine[] = [];
  let skippedCount = 0;
  for (const file of files) {
    const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
    let line = 0;
    for await (const text of rl) {
      line++;
      if (text.trim() === '') continue;
      let parsed: unknown;
      let reason: string | null;
      try {
        parsed = JSON.parse(text);
        reason = problem(parsed);
      } catch {
        reason = 'not valid JSON';
      }
      if (reason) {
        skippedCount++;
        if (skipped.length < 100) skipped.push({ file, line, reason });
        continue;
      }
      const row = parsed as T;
      if (keep(row)) rows.push(row);
    }
  }
  // Rotated files may interleave (several writers); a stable sort keeps same-time rows in file order.
  const t = new Map<T, number>(rows.map((r) => [r, Date.parse(r.time)]));
  rows.sort((x, y) => (t.get(x) ?? 0) - (t.get(y) ?? 0));
  return { rows, skipped, skippedCount, files };
}

function inWindow(time: string, filter: LogFilter): boolean {
  const t = Date.parse(time);
  if (filter.since && t < filter.since.getTime()) return false;
  if (filter.until && t >= filter.until.getTime()) return false;
  return true;
}

/** Reads `<home>/predictions/*.jsonl`, filtered, in time order. */
export async function readPredictions(home: string, filter: LogFilter = {}): Promise<ReadResult<PredictionRow>> {
  return readRows<PredictionRow>(path.join(home, 'predictions'), predictionRowProblem, (r) => {
    if (filter.model !== undefined && r.model.name !== filter.model) return false;
    if (!filter.includeShadow && r.shadow) return false;
    if (filter.variants && !filter.variants.includes(r.variant)) return false;
    return inWindow(r.time, filter);
  });
}

/** Reads `<home>/feedback/*.jsonl` (time window only: feedback rows carry no model). */
export async function readFeedback(
  home: string,
  filter: Pick<LogFilter, 'since' | 'until'> = {},
): Promise<ReadResult<FeedbackRow>> {
  return readRows<FeedbackRow>(path.join(home, 'feedback'), feedbackRowProblem, (r) => inWindow(r.time, filter));
}

/** Key joining a prediction and its feedback. */
export function rowKey(r: { request_id: string; index: number }): string {
  return `${r.request_id}#${r.index}`;
}

/** The latest feedback label per prediction (later rows override earlier corrections). */
export function feedbackLabels(feedback: FeedbackRow[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of feedback) m.set(rowKey(f), f.label);
  return m;
}

/** Parses "24h", "30m", "7d", "90s" into milliseconds. */
export function parseDuration(text: string, field = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m)
    throw new ConfigError(`${field} "${text}" is not a duration like 90s, 30m, 24h or 7d`, { field, value: text });
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd' | 'w'
  ];
  return Number(m[1]) * unit;
}

/**
 * Imports feedback labels from a CSV file (columns `request_id`, `label`, optional `index` (default 0) and `time`
 * (default `now`)) into a new file under `<home>/feedback/`, written atomically. Any bad row is an error naming
 * the file and line, and nothing is written.
 */
export async function importFeedbackCsv(
  home: string,
  file: string,
  now = new Date(),
): Promise<{ file: string; rows: number }> {
  const { parse } = await import('csv-parse/sync');
  let records: Array<Record<string, string>>;
  try {
    records = parse(await fs.promises.readFile(file), { columns: true, skip_empty_lines: true, trim: true });
  } catch (e) {
    throw new DataError(`cannot read feedback CSV ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  const rows: FeedbackRow[] = records.map((r, i) => {
    const line = i + 2; // header is line 1
    for (const col of ['request_id', 'label'])
      if (!r[col])
        throw new DataError(`${file}:${line}: column "${col}" is missing or empty`, { file, line, field: col });
    const index = r.index === undefined || r.index === '' ? 0 : Number(r.index);
    if (!Number.isInteger(index) || index < 0)
      throw new DataError(`${file}:${line}: index "${r.index}" is not a non-negative integer`, {
        file,
        line,
        field: 'index',
        value: r.index,
      });
    const time = r.time ? new Date(r.time) : now;
    if (Number.isNaN(time.getTime()))
      throw new DataError(`${file}:${line}: time "${r.time}" is not a date`, {
        file,
        line,
        field: 'time',
        value: r.time,
      });
    return { v: 1, time: time.toISOString(), request_id: r.request_id, index, label: r.label };
  });
  const dir = path.join(home, 'feedback');
  await fs.promises.mkdir(dir, { recursive: true });
  const out = path.join(dir, `import-${now.toISOString().replace(/[:.]/g, '-')}-${process.pid}.jsonl`);
  const tmp = `${out}.tmp`;
  await fs.promises.writeFile(tmp, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
  await fs.promises.rename(tmp, out);
  return { file: out, rows: rows.length };
}
