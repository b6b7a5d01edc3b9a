/**
 * The edges of monitoring: reading the log under a registry home, writing the JSON and HTML reports, and one
 * scheduled `watch` tick (monitor, decide, remember the last trigger). Retraining and alias moves are the
 * caller's: `watchOnce` returns the decision and the caller acts on it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../errors.ts';
import { abFromLog, type AbReport } from './ab.ts';
import { renderHtml } from './html.ts';
import { feedbackLabels, readFeedback, readPredictions } from './log.ts';
import { decideTrigger, type Policy, type TriggerDecision } from './policy.ts';
import type { ReferenceProfile } from './profile.ts';
import { monitor, windowSignals, type MonitorOptions, type MonitorReport } from './report.ts';

async function writeAtomic(file: string, text: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.promises.writeFile(tmp, text);
  await fs.promises.rename(tmp, file);
}

export interface HomeMonitorResult {
  report: MonitorReport;
  /** Corrupt log lines skipped (predictions + feedback). */
  skippedLines: number;
}

/** Monitors the model's predictions under `<home>/predictions` (and feedback) from `since` to `until`. */
export async function monitorHome(
  home: string,
  profile: ReferenceProfile,
  options: MonitorOptions,
): Promise<HomeMonitorResult> {
  const filter = { model: profile.model.name, since: options.since, until: options.until };
  const preds = await readPredictions(home, filter);
  const fb = await readFeedback(home, { since: options.since });
  const report = await monitor(preds.rows, profile, options, fb.rows);
  return { report, skippedLines: preds.skippedCount + fb.skippedCount };
}

/** Writes `monitor-report.json` and `monitor-report.html` into `dir` (atomically); returns their paths. */
export async function writeReports(report: MonitorReport, dir: string): Promise<{ json: string; html: string }> {
  const json = path.join(dir, 'monitor-report.json');
  const html = path.join(dir, 'monitor-report.html');
  await writeAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeAtomic(html, renderHtml(report));
  return { json, html };
}

interface WatchState {
  lastTriggered?: string;
}

function stateFile(home: string, model: string): string {
  return path.join(home, 'monitor', `watch-${model.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
}

export interface WatchTick {
  report: MonitorReport;
  decision: TriggerDecision;
  skippedLines: number;
}

/**
 * One scheduled check: monitor the policy's lookback with its window, decide, and when the trigger fires record
 * it (`<home>/monitor/watch-<model>.json` for the cool-down, `<home>/monitor/triggers.jsonl` as history).
 */
export async function watchOnce(
  home: string,
  policy: Policy,
  profile: ReferenceProfile,
  now = new Date(),
  options: Pick<MonitorOptions, 'embed' | 'cbpe'> = {},
): Promise<WatchTick> {
  const since = new Date(now.getTime() - policy.lookbackMs);
  const { report, skippedLines } = await monitorHome(home, profile, {
    windowMs: policy.windowMs,
    since,
    until: now,
    minWindowSize: policy.minWindowSize,
    drift: policy.drift,
    text: policy.text,
    // Embedding checks need the base model to embed live texts: only when the caller passes an embedder.
    embeddings: policy.embeddings,
    ...options,
    now,
  });
  const sf = stateFile(home, profile.model.name);
  let state: WatchState;
  try {
    state = JSON.parse(await fs.promises.readFile(sf, 'utf8')) as WatchState;
  } catch (e) {
    // No state yet: never triggered. A damaged state file is an error, not a silent reset of the cool-down.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new DataError(`watch state ${sf} is unreadable: ${(e as Error).message}`, { file: sf }, { cause: e });
    state = {};
  }
  const last = state.lastTriggered ? new Date(state.lastTriggered) : undefined;
  const decision = decideTrigger(policy, windowSignals(report), last, now);
  if (decision.fire) {
    await writeAtomic(sf, JSON.stringify({ lastTriggered: now.toISOString() }));
    await fs.promises.appendFile(
      path.join(home, 'monitor', 'triggers.jsonl'),
      `${JSON.stringify({ time: now.toISOString(), model: policy.model, version: profile.model.version, reasons: decision.reasons })}\n`,
    );
  }
  return { report, decision, skippedLines };
}

/** A/B analysis of two variants of a model from the log and its feedback. */
export async function abHome(
  home: string,
  model: string,
  variants: [string, string],
  options: { since?: Date; until?: Date; tau?: number; alpha?: number; effect?: number; power?: number } = {},
): Promise<AbReport> {
  const preds = await readPredictions(home, { model, since: options.since, until: options.until, variants });
  const fb = await readFeedback(home, { since: options.since });
  return abFromLog(preds.rows, feedbackLabels(fb.rows), variants, options);
}
