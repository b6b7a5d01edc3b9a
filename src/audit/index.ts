/**
 * The audit: how good is the generic model on this domain as it would be used off the shelf (frozen encoder +
 * a quickly fitted linear head), how fast and how big is it, where does its time go, and what should be done
 * about it. `recommend` turns the measurements into a strategy with reasons (rules in docs/audit.md).
 */
import { ConfigError } from '../errors.ts';
import type { PreparedDataset } from '../data/index.ts';
import type { TextExample } from '../data/types.ts';
import { evaluate, measureLatency, sessionRunner, type EvalReport, type LatencyReport } from '../eval/index.ts';
import { attachHead } from '../models/head.ts';
import { countParams, toOnnxModel, type Model } from '../models/model.ts';
import { loadBase } from '../models/resolve.ts';
import { numel } from '../onnx/tensor.ts';
import { bytesPerElement } from '../onnx/dtype.ts';
import { Session, type ProviderSpec } from '../runtime/session.ts';
import type { ProfileSummary } from '../runtime/profile.ts';
import { argmaxRows, DEFAULT_MAX_LENGTH, textFeatures, textFeeds } from '../models/text.ts';
import { loadDomainData, perClassCounts, subsample } from './data.ts';
import { fitLinearHead, linearScores, type LinearHead } from '../train/linear-probe.ts';
import { recommend, type Recommendation } from './recommend.ts';
import { modelBehaviour } from './behaviour.ts';
import type { BehaviourReport } from '../eval/behaviour.ts';

export interface AuditOptions {
  /** `--base`: use-lite (default), a model folder, a .onnx file, a hub id, or a loaded Model. */
  base?: string | Model;
  /** Train file(s), or an already prepared dataset in `data`. */
  train?: string | string[];
  /** Held-out evaluation file(s); without them the validation split is used. */
  eval?: string | string[];
  data?: PreparedDataset;
  /** How to name a base given as a Model in the results (default: its hub id, path or architecture). */
  baseSpec?: string;
  textColumn?: string;
  labelColumn?: string;
  targetAccuracy?: number;
  maxLatencyMs?: number;
  /** Subsample train / eval to at most this many examples (stratified, seeded). */
  maxTrainExamples?: number;
  maxEvalExamples?: number;
  /** Longest token sequence. Default 128. */
  maxLength?: number;
  batchSize?: number;
  providers?: ProviderSpec[];
  /** Timed batch-1 runs for latency. Default 30. */
  latencyIterations?: number;
  seed?: number;
  /**
   * Run the behavioural tests (name swap, typos, casing, punctuation, contractions) on the eval texts with the
   * baseline (base + ridge head). Off by default: it scores every eval text several more times.
   */
  behaviour?: boolean;
  /** Progress of the long stages. */
  onProgress?: (stage: AuditStage, done: number, total: number) => void;
}

export type AuditStage = 'features' | 'latency' | 'profile';

/** Compact metric block, snake_case like the CLI's JSON. */
export interface MetricSummary {
  accuracy: number;
  macro_f1: number;
  accuracy_ci?: [number, number];
  macro_f1_ci?: [number, number];
  count: number;
}

export interface AuditResult {
  base: { spec: string; architecture: string; task: string; parameters: number; parameterBytes: number };
  data: {
    fingerprint: string;
    labels: string[];
    train: number;
    validation: number;
    eval: number;
    evalSplit: 'eval' | 'validation';
    examplesPerClass: { min: number; median: number; max: number };
    subsampled: boolean;
  };
  baseline: MetricSummary & { head: 'ridge'; lambda: number; lambdaSearch: LinearHead['search'] };
  latency: LatencyReport;
  memory: { parameterBytes: number; sessionRssBytes: number; peakRssBytes: number };
  profile: Pick<ProfileSummary, 'runs' | 'kernelUs' | 'runUs' | 'byOpType'> & { topNodes: ProfileSummary['byNode'] };
  recommendation: Recommendation;
  settings: { maxLength: number; targetAccuracy?: number; maxLatencyMs?: number; seed: number };
  /** Behavioural tests of the baseline on the eval texts (only with `behaviour: true`). */
  behaviour?: BehaviourReport;
  seconds: { features: number; fit: number; latency: number; total: number };
}

/** What the pipeline reuses after an audit (not serialised). */
export interface AuditState {
  result: AuditResult;
  base: Model;
  /** Base with the fitted linear head: the off-the-shelf baseline model. */
  baselineModel: Model;
  data: PreparedDataset;
  train: TextExample[];
  evalSet: TextExample[];
  /** Baseline predictions (class ids) on `evalSet`, and the truth. */
  evalPred: number[];
  evalTrue: number[];
  report: EvalReport;
  /**
   * The frozen encoder's pooled features ([rows, width] row-major) of `train` and of the validation rows the
   * baseline's ridge λ was picked on (all of `data.validation`, in order, unless subsampled): a search over
   * strategies (customize/search.ts) starts from them instead of encoding the data again.
   */
  features: { train: Float32Array; validation: Float32Array; width: number };
}

function ci(report: EvalReport, key: string): [number, number] | undefined {
  const v = report.intervals?.values[key];
  return v ? [v.lower, v.upper] : undefined;
}

/** The CLI's metric block from an eval report. */
export function metricSummary(report: EvalReport): MetricSummary {
  return {
    accuracy: report.metrics.accuracy,
    macro_f1: report.metrics.macroF1,
    ...(ci(report, 'accuracy') ? { accuracy_ci: ci(report, 'accuracy') } : {}),
    ...(ci(report, 'macroF1') ? { macro_f1_ci: ci(report, 'macroF1') } : {}),
    count: report.count,
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function labelIds(examples: readonly TextExample[], labels: readonly string[]): number[] {
  const index = new Map(labels.map((l, i) => [l, i]));
  return examples.map((e) => {
    const id = index.get(e.label);
    if (id === undefined)
      throw new ConfigError(`label "${e.label}" (${e.file}:${e.line}) is not among the train labels`, {
        file: e.file,
        line: e.line,
        value: e.label,
      });
    return id;
  });
}

function paramBytes(model: Model): number {
  let b = 0;
  for (const p of model.params.values()) b += numel(p.shape) * bytesPerElement(p.dtype);
  return b;
}

/** Loads the base (string spec or Model as is). */
export async function resolveBase(base: string | Model | undefined): Promise<{ model: Model; spec: string }> {
  if (base === undefined || typeof base === 'string') {
    const spec = base ?? 'use-lite';
    return { model: await loadBase(spec), spec };
  }
  return { model: base, spec: base.source.hubId ?? base.source.path ?? base.architecture };
}

/** Runs the audit and keeps what later stages reuse. */
export async function runAudit(opts: AuditOptions): Promise<AuditState> {
  const t0 = performance.now();
  const seed = opts.seed ?? 0;
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  if (!opts.data && opts.train === undefined)
    throw new ConfigError('audit needs train data (--train FILE)', { field: 'train' });
  // Data first: it is the cheapest thing to get wrong, and a bad file should fail before a model loads.
  const data =
    opts.data ??
    (await loadDomainData({
      train: opts.train!,
      eval: opts.eval,
      textColumn: opts.textColumn,
      labelColumn: opts.labelColumn,
      seed,
    }));
  const resolved = await resolveBase(opts.base);
  const base = resolved.model;
  const spec = opts.baseSpec ?? resolved.spec;
  const labels = data.labels;
  const train = subsample(data.train, opts.maxTrainExamples, seed);
  const validation = subsample(
    data.validation,
    opts.maxTrainExamples ? Math.max(50, Math.round(opts.maxTrainExamples / 5)) : undefined,
    seed,
  );
  const evalSplit = data.eval && data.eval.length > 0 ? 'eval' : 'validation';
  const evalSet = subsample(evalSplit === 'eval' ? data.eval! : data.validation, opts.maxEvalExamples, seed + 1);
  if (evalSet.length === 0)
    throw new ConfigError('the evaluation split is empty: give --eval FILE or more train data', { field: 'eval' });

  const run = { batchSize: opts.batchSize, maxLength, providers: opts.providers };
  const texts = [...train, ...validation, ...evalSet].map((e) => e.text);
  const tf = performance.now();
  const { features, width } = await textFeatures(base, texts, {
    ...run,
    onProgress: (d, t) => opts.onProgress?.('features', d, t),
  });
  const fTrain = features.subarray(0, train.length * width);
  const fVal = features.subarray(train.length * width, (train.length + validation.length) * width);
  const fEval = features.subarray((train.length + validation.length) * width);
  const featuresSeconds = (performance.now() - tf) / 1000;

  const tfit = performance.now();
  const yTrain = labelIds(train, labels);
  const yVal = labelIds(validation, labels);
  const yEval = labelIds(evalSet, labels);
  const head = await fitLinearHead(
    fTrain,
    yTrain,
    width,
    labels.length,
    validation.length ? { validation: { features: fVal, labels: yVal } } : {},
  );
  const evalPred = argmaxRows(linearScores(head, fEval), labels.length);
  const fitSeconds = (performance.now() - tfit) / 1000;
  const report = await evaluate({
    labels,
    yTrue: yEval,
    yPred: evalPred,
    model: `${spec} + linear head`,
    datasetFingerprint: data.fingerprint,
    bootstrap: { iterations: 1000, seed },
  });

  const baselineModel = attachHead(base, { labels, weight: head.weight, bias: head.bias });
  // Latency, memory and the per-op profile, on the whole baseline model at batch 1 with a typical eval text.
  const tl = performance.now();
  const byLength = [...evalSet].sort((a, b) => a.text.length - b.text.length);
  const typical = byLength[byLength.length >> 1].text;
  const rssBefore = process.memoryUsage().rss;
  const onnx = toOnnxModel(baselineModel);
  const session = await Session.create(onnx, { providers: opts.providers, label: `${spec} baseline` });
  const latencyIterations = opts.latencyIterations ?? 30;
  let latency: LatencyReport;
  try {
    const batchTexts = byLength.slice(0, 8).map((e) => e.text);
    // Feeds are built once per batch size, outside the timed runs (the shared adapter in src/eval).
    const run = sessionRunner(
      session,
      (size) =>
        textFeeds(
          baselineModel,
          size === 1 ? [typical] : Array.from({ length: size }, (_, i) => batchTexts[i % batchTexts.length]),
          { maxLength },
        ),
      ['logits'],
    );
    let done = 0;
    latency = await measureLatency(
      async (size) => {
        await run(size);
        opts.onProgress?.('latency', ++done, latencyIterations + 5 + 2 + 5);
      },
      { warmup: 5, iterations: latencyIterations, throughputBatchSize: 8, throughputIterations: 5 },
    );
  } finally {
    await session.release();
  }
  const sessionRssBytes = Math.max(0, process.memoryUsage().rss - rssBefore);
  const prof = await Session.create(onnx, {
    providers: opts.providers,
    label: `${spec} baseline (profiled)`,
    profile: true,
  });
  let profile: ProfileSummary;
  try {
    const feeds1 = textFeeds(baselineModel, [typical], { maxLength });
    for (let i = 0; i < 10; i++) {
      await prof.run(feeds1, ['logits']);
      opts.onProgress?.('profile', i + 1, 10);
    }
    profile = await prof.endProfiling();
  } finally {
    await prof.release();
  }
  const latencySeconds = (performance.now() - tl) / 1000;

  const behaviour = opts.behaviour
    ? await modelBehaviour(
        baselineModel,
        labels,
        evalSet.map((e) => e.text),
        { seed, maxLength, providers: opts.providers },
      )
    : undefined;
  const counts = perClassCounts(data.train, labels);
  const recommendation = recommend({
    baselineAccuracy: report.metrics.accuracy,
    targetAccuracy: opts.targetAccuracy,
    latencyP50Ms: latency.batch1.p50Ms,
    maxLatencyMs: opts.maxLatencyMs,
    examplesPerClass: counts,
  });
  const pBytes = paramBytes(base);
  const result: AuditResult = {
    base: {
      spec,
      architecture: base.architecture,
      task: base.task,
      parameters: countParams(base).total,
      parameterBytes: pBytes,
    },
    data: {
      fingerprint: data.fingerprint,
      labels,
      train: train.length,
      validation: validation.length,
      eval: evalSet.length,
      evalSplit,
      examplesPerClass: { min: Math.min(...counts), median: median(counts), max: Math.max(...counts) },
      subsampled:
        train.length < data.train.length ||
        evalSet.length < (evalSplit === 'eval' ? data.eval!.length : data.validation.length),
    },
    baseline: { ...metricSummary(report), head: 'ridge', lambda: head.lambda, lambdaSearch: head.search },
    latency,
    memory: { parameterBytes: pBytes, sessionRssBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024 },
    profile: {
      runs: profile.runs,
      kernelUs: profile.kernelUs,
      runUs: profile.runUs,
      byOpType: profile.byOpType.slice(0, 12),
      topNodes: profile.byNode.slice(0, 8),
    },
    recommendation,
    settings: { maxLength, targetAccuracy: opts.targetAccuracy, maxLatencyMs: opts.maxLatencyMs, seed },
    ...(behaviour ? { behaviour } : {}),
    seconds: {
      features: featuresSeconds,
      fit: fitSeconds,
      latency: latencySeconds,
      total: (performance.now() - t0) / 1000,
    },
  };
  return {
    result,
    base,
    baselineModel,
    data,
    train,
    evalSet,
    evalPred,
    evalTrue: yEval,
    report,
    features: { train: fTrain, validation: fVal, width },
  };
}

/** Measures the off-the-shelf baseline on the domain and recommends a strategy (see docs/audit.md). */
export async function audit(opts: AuditOptions): Promise<AuditResult> {
  return (await runAudit(opts)).result;
}

export {
  recommend,
  THRESHOLDS,
  type Recommendation,
  type RecommendedStrategy,
  type Compression,
  type Reason,
  type RuleId,
  type RecommendInput,
} from './recommend.ts';
export { modelBehaviour, type ModelBehaviourOptions } from './behaviour.ts';
export { loadDomainData, subsample, perClassCounts, assertReadable, type DomainDataOptions } from './data.ts';
