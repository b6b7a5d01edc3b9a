/**
 * `monitor()`: the library entry point behind `tailor monitor`. Cuts the prediction log into time windows and,
 * per window and over the whole period, runs the drift tests against the reference profile (the columns derived
 * from the log, text drift, optional embedding drift), CBPE's estimated accuracy and, where feedback labels exist,
 * the realized accuracy. Returns a JSON-serialisable report; `renderHtml` (html.ts) draws it.
 */
import { ConfigError } from '../errors.ts';
import {
  datasetDrift,
  embeddingDrift,
  textDrift,
  type DatasetDrift,
  type DriftOptions,
  type EmbeddingDrift,
  type EmbeddingMethod,
  type TextDrift,
} from './drift.ts';
import { feedbackLabels, rowKey, type FeedbackRow, type PredictionRow } from './log.ts';
import {
  estimateAccuracy,
  fitCbpe,
  realizedPerformance,
  type CbpeEstimate,
  type CbpeModel,
  type CbpeOptions,
  type Realized,
} from './performance.ts';
import { profileEmbeddings, textColumns, type ReferenceProfile } from './profile.ts';
import type { WindowSignals } from './policy.ts';
import type { Value } from './stats/index.ts';

export interface MonitorOptions {
  /** Window length in ms (e.g. one hour). */
  windowMs: number;
  /** Range start (default: the first row's time) and end (default: just after the last row). */
  since?: Date;
  until?: Date;
  /** Windows with fewer predictions are reported but not tested. Default 30. */
  minWindowSize?: number;
  drift?: DriftOptions;
  text?: { enabled?: boolean; threshold?: number };
  embeddings?: { enabled?: boolean; method?: EmbeddingMethod };
  /** Embeds current texts with the profile's base model (rows aligned with texts). */
  embed?: (texts: string[]) => Promise<ArrayLike<ArrayLike<number>>> | ArrayLike<ArrayLike<number>>;
  cbpe?: CbpeOptions;
  /** Number of most-drifted example texts kept per window. Default 5. */
  examples?: number;
  seed?: number | string;
  now?: Date;
}

export interface DriftCheck {
  count: number;
  textCount: number;
  data?: DatasetDrift;
  predictionDrift?: boolean;
  text?: TextDrift;
  embeddings?: EmbeddingDrift;
  cbpe?: CbpeEstimate;
  realized?: Realized;
  examples: string[];
}

export interface WindowReport extends DriftCheck {
  start: string;
  end: string;
  /** false when the window had fewer than minWindowSize predictions (no tests run). */
  tested: boolean;
}

export interface MonitorReport {
  v: 1;
  generatedAt: string;
  model: { name: string; version: number };
  profile: { createdAt: string; referenceTexts: number; validationRows: number };
  range: { since: string; until: string; windowMs: number; minWindowSize: number };
  /** Rows of other model versions left out (their scores use other labels). */
  otherVersionRows: number;
  overall: DriftCheck;
  windows: WindowReport[];
  cbpeLimits?: { lower: number; upper: number; mean: number };
  summary: { windows: number; tested: number; drifted: number; cbpeAlerts: number; verdict: string };
}

function referenceColumns(profile: ReferenceProfile): Record<string, Value[]> {
  const out: Record<string, Value[]> = {};
  for (const c of ['text_length', 'token_count', 'oov_rate', 'predicted_label', 'confidence'])
    if (profile.columns[c]?.length) out[c] = profile.columns[c];
  return out;
}

async function check(
  rows: PredictionRow[],
  profile: ReferenceProfile,
  vocabulary: ReadonlySet<string>,
  labelsFb: Map<string, string>,
  cbpe: CbpeModel | undefined,
  refEmbeddings: Float32Array[] | undefined,
  options: MonitorOptions,
  seed: string,
): Promise<DriftCheck> {
  const texts = rows.flatMap((r) => (r.input && 'text' in r.input ? [r.input.text] : []));
  const cols: Record<string, Value[]> = {
    ...textColumns(texts, vocabulary),
    predicted_label: rows.map((r) => r.label),
    confidence: rows.map((r) => r.confidence),
  };
  const ref = referenceColumns(profile);
  const out: DriftCheck = { count: rows.length, textCount: texts.length, examples: [] };
  if (rows.length === 0) return out;
  const current: Record<string, Value[]> = {};
  for (const [k, v] of Object.entries(cols)) if (v.length && ref[k]) current[k] = v;
  out.data = datasetDrift(ref, current, options.drift);
  const pl = out.data.columns.find((c) => c.column === 'predicted_label');
  if (pl) out.predictionDrift = pl.drift;
  const nEx = options.examples ?? 5;
  if ((options.text?.enabled ?? true) && texts.length >= 10 && profile.texts.length >= 10) {
    out.text = textDrift(profile.texts, texts, {
      seed,
      examples: nEx,
      ...(options.text?.threshold !== undefined ? { threshold: options.text.threshold } : {}),
      largeReference: options.drift?.largeReference,
    });
    out.examples = out.text.examples.slice(0, nEx);
  } else if (texts.length) {
    const oov = cols.oov_rate as number[];
    out.examples = texts
      .map((t, i) => ({ t, o: oov[i] }))
      .sort((a, b) => b.o - a.o)
      .slice(0, nEx)
      .map((x) => x.t);
  }
  if (options.embeddings?.enabled && options.embed && refEmbeddings && texts.length >= 10) {
    const emb = await options.embed(texts);
    out.embeddings = embeddingDrift(refEmbeddings, emb, { method: options.embeddings.method, seed });
  }
  if (cbpe) {
    const labelsN = profile.model.labels.length;
    const scored = rows.filter((r) => r.scores.length === labelsN);
    if (scored.length)
      out.cbpe = estimateAccuracy(
        cbpe,
        scored.map((r) => r.scores),
      );
  }
  const truth: string[] = [];
  const pred: string[] = [];
  for (const r of rows) {
    const l = labelsFb.get(rowKey(r));
    if (l !== undefined) {
      truth.push(l);
      pred.push(r.label);
    }
  }
  if (truth.length) out.realized = realizedPerformance(truth, pred, profile.model.labels);
  return out;
}

function drifted(c: DriftCheck): boolean {
  return Boolean(c.data?.drift || c.text?.drift || c.embeddings?.drift);
}

/** Runs the monitor over prediction rows (one model) against the version's reference profile. */
export async function monitor(
  predictions: PredictionRow[],
  profile: ReferenceProfile,
  options: MonitorOptions,
  feedback: FeedbackRow[] = [],
): Promise<MonitorReport> {
  if (!(options.windowMs > 0))
    throw new ConfigError(`window must be positive, got ${options.windowMs} ms`, { field: 'window' });
  const own = predictions.filter(
    (r) => r.model.name === profile.model.name && r.model.version === profile.model.version,
  );
  const otherVersionRows = predictions.length - own.length;
  const times = own.map((r) => Date.parse(r.time));
  // A loop, not Math.min(...times): spreading a large log overflows the call stack.
  let firstTime = Infinity;
  let lastTime = -Infinity;
  for (const t of times) {
    if (t < firstTime) firstTime = t;
    if (t > lastTime) lastTime = t;
  }
  const since = options.since ?? new Date(times.length ? firstTime : Date.now());
  const until = options.until ?? new Date(times.length ? lastTime + 1 : since.getTime() + options.windowMs);
  const minWindowSize = options.minWindowSize ?? 30;
  const vocabulary = new Set(profile.vocabulary);
  const labelsFb = feedbackLabels(feedback);
  const cbpe = profile.validation ? fitCbpe(profile.validation, profile.model.labels, options.cbpe) : undefined;
  const refEmb = profileEmbeddings(profile);
  const seed = String(options.seed ?? 42);
  const inRange = own.filter((_, i) => times[i] >= since.getTime() && times[i] < until.getTime());
  const windows: WindowReport[] = [];
  const count = Math.max(1, Math.ceil((until.getTime() - since.getTime()) / options.windowMs));
  for (let w = 0; w < count; w++) {
    const s = since.getTime() + w * options.windowMs;
    const e = Math.min(until.getTime(), s + options.windowMs);
    const rows = inRange.filter((r) => {
      const t = Date.parse(r.time);
      return t >= s && t < e;
    });
    const tested = rows.length >= minWindowSize;
    const c = tested
      ? await check(rows, profile, vocabulary, labelsFb, cbpe, refEmb, options, `${seed}:${w}`)
      : { count: rows.length, textCount: 0, examples: [] };
    windows.push({ start: new Date(s).toISOString(), end: new Date(e).toISOString(), tested, ...c });
  }
  const overall = await check(inRange, profile, vocabulary, labelsFb, cbpe, refEmb, options, `${seed}:all`);
  const tested = windows.filter((w) => w.tested);
  const driftedN = tested.filter(drifted).length;
  const alerts = tested.filter((w) => w.cbpe?.alert).length;
  const last = tested.at(-1);
  const verdict = !last
    ? `no window with at least ${minWindowSize} predictions`
    : drifted(last) || last.cbpe?.alert
      ? `latest window (${last.start}) drifted: ${signalNames(last).join(', ')}`
      : `latest window (${last.start}): no drift`;
  return {
    v: 1,
    generatedAt: (options.now ?? new Date()).toISOString(),
    model: { name: profile.model.name, version: profile.model.version },
    profile: {
      createdAt: profile.createdAt,
      referenceTexts: profile.texts.length,
      validationRows: profile.validation?.labels.length ?? 0,
    },
    range: { since: since.toISOString(), until: until.toISOString(), windowMs: options.windowMs, minWindowSize },
    otherVersionRows,
    overall,
    windows,
    ...(cbpe ? { cbpeLimits: { lower: cbpe.lower, upper: cbpe.upper, mean: cbpe.mean } } : {}),
    summary: { windows: windows.length, tested: tested.length, drifted: driftedN, cbpeAlerts: alerts, verdict },
  };
}

/** Names of the signals a checked window raised. */
export function signalNames(c: DriftCheck): string[] {
  const s: string[] = [];
  if (c.data?.drift) s.push(`data drift (${c.data.driftedColumns}/${c.data.columns.length} columns)`);
  else if (c.data?.driftedColumns)
    s.push(
      `${c.data.columns
        .filter((x) => x.drift)
        .map((x) => x.column)
        .join(', ')} drifted`,
    );
  if (c.text?.drift) s.push(`text drift (AUC ${c.text.auc.toFixed(3)})`);
  if (c.embeddings?.drift) s.push(`embedding drift (${c.embeddings.method})`);
  if (c.cbpe?.alert) s.push(`estimated accuracy ${c.cbpe.estimatedAccuracy.toFixed(3)} outside reference limits`);
  return s;
}

/** The per-window signals the policy's trigger reads. */
export function windowSignals(report: MonitorReport): WindowSignals[] {
  return report.windows.map((w) => ({
    start: w.start,
    count: w.count,
    datasetDrift: w.data?.drift,
    textDrift: w.text?.drift,
    embeddingDrift: w.embeddings?.drift,
    predictionDrift: w.predictionDrift,
    estimatedAccuracy: w.cbpe?.estimatedAccuracy,
    cbpeAlert: w.cbpe?.alert,
    ...(w.realized ? { realized: { count: w.realized.count, accuracy: w.realized.accuracy } } : {}),
  }));
}

const f3 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(3));

/** A plain-text summary (what `tailor monitor` prints). */
export function formatSummary(report: MonitorReport): string {
  const lines = [
    `model ${report.model.name} v${report.model.version}  ${report.range.since} .. ${report.range.until}  window ${report.range.windowMs / 60000} min`,
    `window                    n    data drift   text AUC  est. acc  real. acc  signals`,
  ];
  for (const w of report.windows) {
    if (!w.tested) {
      lines.push(`${w.start}  ${String(w.count).padStart(5)}  (fewer than ${report.range.minWindowSize}: not tested)`);
      continue;
    }
    const dd = w.data ? `${w.data.driftedColumns}/${w.data.columns.length}${w.data.drift ? ' DRIFT' : ''}` : '-';
    lines.push(
      `${w.start}  ${String(w.count).padStart(5)}  ${dd.padEnd(11)}  ${(f3(w.text?.auc) + (w.text?.drift ? '*' : '')).padEnd(8)}  ${f3(w.cbpe?.estimatedAccuracy).padEnd(8)}  ${w.realized ? `${f3(w.realized.accuracy)} (${w.realized.count})` : '-'.padEnd(9)}  ${signalNames(w).join('; ')}`,
    );
  }
  lines.push(
    `${report.summary.tested}/${report.summary.windows} windows tested, ${report.summary.drifted} drifted, ${report.summary.cbpeAlerts} CBPE alerts`,
  );
  lines.push(report.summary.verdict);
  return lines.join('\n');
}
