/**
 * Side-by-side comparison of two runs: latest metrics, params, and, when both runs logged per-example predictions
 * on the same eval set, McNemar's exact test and paired bootstrap CIs (from src/eval) for accuracy and macro-F1.
 */
import { bootstrapIntervals, type Interval } from '../eval/bootstrap.ts';
import { metricsFromConfusion } from '../eval/metrics.ts';
import { mcnemarExact, type McNemarResult } from '../eval/significance.ts';
import type { MetadataStore } from './store.ts';
import type { Json, PredictionRow, RunRecord, RunStatus } from './types.ts';

/**
 * What compareRuns reads: run lookup by id or prefix, plus the metadata store. `Registry` satisfies it; taking this
 * narrow shape instead of `Registry` keeps compare.ts below registry.ts (no import cycle).
 */
export interface RunSource {
  getRun(idOrPrefix: string): Promise<RunRecord>;
  readonly metadata: Pick<MetadataStore, 'getMetrics' | 'listPredictionSets' | 'getPredictions'>;
}

/** The identifying part of a run shown in a comparison. */
export interface RunBrief {
  id: string;
  name: string | null;
  status: RunStatus;
  startedAt: number;
  baseModel: string | null;
  datasetFingerprint: string | null;
}

/** Paired significance on a shared eval set. */
export interface PairedSignificance {
  evalSet: string;
  count: number;
  /** b = A right & B wrong, c = A wrong & B right. */
  mcnemar: McNemarResult;
  confidence: number;
  iterations: number;
  accuracy: { a: Interval; b: Interval; difference: Interval };
  macroF1: { a: Interval; b: Interval; difference: Interval };
}

/** Result of compareRuns; `difference` and `delta` are always B − A. */
export interface RunComparison {
  a: RunBrief;
  b: RunBrief;
  metrics: Array<{ key: string; a: number | null; b: number | null; delta: number | null }>;
  params: Array<{ key: string; a: Json | null; b: Json | null; same: boolean }>;
  significance: PairedSignificance | null;
  /** Why significance is missing, or which eval set was picked among several. */
  notes: string[];
}

/** Options for compareRuns. */
export interface CompareOptions {
  /** Eval set to test on; default the only (or first, alphabetically) one both runs logged. */
  evalSet?: string;
  /** Bootstrap resamples (default 1000) and interval coverage (default 0.95). */
  iterations?: number;
  confidence?: number;
  seed?: number | string;
}

function brief(r: RunRecord): RunBrief {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    startedAt: r.startedAt,
    baseModel: r.baseModel,
    datasetFingerprint: r.datasetFingerprint,
  };
}

async function latest(reg: RunSource, id: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of await reg.metadata.getMetrics(id)) out[p.key] = p.value;
  return out;
}

/** Paired statistics on two prediction lists over the same examples (labels must agree row by row). */
export function pairedSignificance(
  evalSet: string,
  rowsA: PredictionRow[],
  rowsB: PredictionRow[],
  options: Omit<CompareOptions, 'evalSet'> = {},
): PairedSignificance {
  const n = rowsA.length;
  const classes = new Map<string, number>();
  const id = (s: string): number => {
    let v = classes.get(s);
    if (v === undefined) classes.set(s, (v = classes.size));
    return v;
  };
  const y = new Int32Array(n);
  const pa = new Int32Array(n);
  const pb = new Int32Array(n);
  let b = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    y[i] = id(rowsA[i].label);
    pa[i] = id(rowsA[i].prediction);
    pb[i] = id(rowsB[i].prediction);
    const ra = pa[i] === y[i];
    const rb = pb[i] === y[i];
    if (ra && !rb) b++;
    else if (!ra && rb) c++;
  }
  const k = classes.size;
  const labels = [...classes.keys()];
  const stats = (idx: Int32Array): Record<string, number> => {
    const ca = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    const cb = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    for (let j = 0; j < idx.length; j++) {
      const i = idx[j];
      ca[y[i]][pa[i]]++;
      cb[y[i]][pb[i]]++;
    }
    const ma = metricsFromConfusion(ca, labels);
    const mb = metricsFromConfusion(cb, labels);
    return {
      accA: ma.accuracy,
      accB: mb.accuracy,
      accD: mb.accuracy - ma.accuracy,
      f1A: ma.macroF1,
      f1B: mb.macroF1,
      f1D: mb.macroF1 - ma.macroF1,
    };
  };
  const iterations = options.iterations ?? 1000;
  const confidence = options.confidence ?? 0.95;
  const ci = bootstrapIntervals(n, stats, { iterations, confidence, seed: options.seed ?? 0 });
  return {
    evalSet,
    count: n,
    mcnemar: mcnemarExact(b, c),
    confidence,
    iterations,
    accuracy: { a: ci.accA, b: ci.accB, difference: ci.accD },
    macroF1: { a: ci.f1A, b: ci.f1B, difference: ci.f1D },
  };
}

/** Compares runs A and B (ids or unique prefixes). Throws RegistryError for an unknown run. */
export async function compareRuns(
  reg: RunSource,
  idA: string,
  idB: string,
  options: CompareOptions = {},
): Promise<RunComparison> {
  const ra = await reg.getRun(idA);
  const rb = await reg.getRun(idB);
  const [ma, mb] = [await latest(reg, ra.id), await latest(reg, rb.id)];
  const keys = [...new Set([...Object.keys(ma), ...Object.keys(mb)])].sort();
  const metrics = keys.map((key) => {
    const a = ma[key] ?? null;
    const b = mb[key] ?? null;
    return { key, a, b, delta: a !== null && b !== null ? b - a : null };
  });
  const pkeys = [...new Set([...Object.keys(ra.params), ...Object.keys(rb.params)])].sort();
  const params = pkeys.map((key) => {
    const a = ra.params[key] ?? null;
    const b = rb.params[key] ?? null;
    return { key, a, b, same: JSON.stringify(a) === JSON.stringify(b) };
  });

  const notes: string[] = [];
  let significance: PairedSignificance | null = null;
  const setsA = await reg.metadata.listPredictionSets(ra.id);
  const setsB = new Set(await reg.metadata.listPredictionSets(rb.id));
  const common = setsA.filter((s) => setsB.has(s));
  let evalSet: string | undefined;
  if (options.evalSet !== undefined) {
    if (common.includes(options.evalSet)) evalSet = options.evalSet;
    else
      notes.push(`eval set '${options.evalSet}' was not logged by both runs (common: ${common.join(', ') || 'none'})`);
  } else if (common.length === 0) {
    notes.push(
      setsA.length === 0 || setsB.size === 0
        ? 'no McNemar test or bootstrap CIs: per-example predictions were not logged by both runs'
        : 'no McNemar test or bootstrap CIs: the runs logged predictions on different eval sets',
    );
  } else {
    evalSet = common[0];
    if (common.length > 1) notes.push(`several shared eval sets (${common.join(', ')}); tested on '${evalSet}'`);
  }
  if (evalSet !== undefined) {
    const pa = await reg.metadata.getPredictions(ra.id, evalSet);
    const pb = await reg.metadata.getPredictions(rb.id, evalSet);
    const sameLabels =
      pa.length === pb.length && pa.every((r, i) => r.index === pb[i].index && r.label === pb[i].label);
    if (!sameLabels) {
      notes.push(
        `eval set '${evalSet}' differs between the runs (${pa.length} vs ${pb.length} examples or different gold labels); no paired test`,
      );
    } else if (pa.length === 0) {
      notes.push(`eval set '${evalSet}' is empty`);
    } else {
      significance = pairedSignificance(evalSet, pa, pb, options);
    }
  }
  return { a: brief(ra), b: brief(rb), metrics, params, significance, notes };
}
