/**
 * Evaluation entry points. `evaluate` turns predictions (scores or class ids) into an EvalReport;
 * `evaluatePredictor` drives any model behind the small Predictor interface over a dataset, including
 * latency, so the trainer, the CLI and the server share one path.
 */
import { ConfigError } from '../errors.ts';
import { bootstrapIntervals, type BootstrapOptions } from './bootstrap.ts';
import { calibrationFromConfidence } from './calibration.ts';
import { disaggregate, type SensitiveFeatures } from './disaggregate.ts';
import { fairnessReport } from './fairness.ts';
import {
  countParameters,
  measureLatency,
  modelSizeOnDisk,
  type BatchRunner,
  type LatencyOptions,
  type ParameterInfo,
} from './latency.ts';
import { argmax, confusionMatrix, metricsFromConfusion, softmax } from './metrics.ts';
import type { EvalReport } from './report.ts';
import { compareModels } from './significance.ts';

export interface EvaluateInput {
  /** Class names; index = class id. */
  labels: string[];
  yTrue: ArrayLike<number>;
  /** Per-example class scores. Needed for top-k and calibration. */
  scores?: ArrayLike<ArrayLike<number>>;
  /** Default 'probabilities'; 'logits' are softmaxed first. */
  scoresAre?: 'probabilities' | 'logits';
  /** Predicted class ids; derived from scores (argmax) when omitted. */
  yPred?: ArrayLike<number>;
  model?: string;
  datasetFingerprint?: string;
  /** Sensitive-feature value per example: enables the fairness section. */
  groups?: ArrayLike<string>;
  /** Classes scored as "positive" for the fairness disparities (default: all, one-vs-rest). */
  positiveLabels?: string[];
  /**
   * Sensitive columns (name → value per example): enables the disaggregated section (per group and intersection,
   * differences and ratios with bootstrap CIs, disparate impact). Uses `bootstrap` and `positiveLabels`.
   */
  sensitive?: SensitiveFeatures;
  /** Groups smaller than this are shown but not judged. Default 30. */
  minGroupSize?: number;
  /** Predictions of a baseline on the same examples: enables the McNemar comparison. */
  baseline?: { name?: string; yPred: ArrayLike<number> };
  /** Default [1, 3, 5], limited to k < number of classes (k = 1 is accuracy and is shown as such). */
  topK?: number[];
  /** Default 15. */
  calibrationBins?: number;
  /** Bootstrap for every headline metric; false to skip. Default 1000 iterations, seed 0. */
  bootstrap?: BootstrapOptions | false;
  latency?: { run: BatchRunner; options?: LatencyOptions };
  /** Model file or folder for the size on disk. */
  modelPath?: string;
  parameters?: readonly ParameterInfo[];
}

/** Computes the full evaluation report. */
export async function evaluate(input: EvaluateInput): Promise<EvalReport> {
  const { labels, yTrue } = input;
  const n = yTrue.length;
  const k = labels.length;
  let probs: number[][] | undefined;
  if (input.scores) {
    if (input.scores.length !== n)
      throw new ConfigError(`scores has ${input.scores.length} rows but there are ${n} labels`, { field: 'scores' });
    probs = Array.from(input.scores, (row, i) => {
      if (row.length !== k)
        throw new ConfigError(`scores row ${i} has ${row.length} entries, expected ${k} (one per class)`, {
          field: 'scores',
        });
      return input.scoresAre === 'logits' ? softmax(row) : Array.from(row);
    });
  }
  const yPred = input.yPred ?? (probs ? probs.map(argmax) : undefined);
  if (!yPred) throw new ConfigError('evaluate needs scores or yPred', { field: 'yPred' });
  const confusion = confusionMatrix(yTrue, yPred, k);
  const m = metricsFromConfusion(confusion, labels);

  const ks = probs ? (input.topK ?? [1, 3, 5]).filter((t) => t > 1 && t < k) : [];
  // Per-example facts, computed once so bootstrap resamples only sum them.
  const topHits: number[][] = ks.map((t) =>
    probs!.map((row, i): number => {
      const s = row[yTrue[i]];
      let higher = 0;
      for (const v of row) if (v > s) higher++;
      return higher < t ? 1 : 0;
    }),
  );
  const topK: Record<string, number> = {};
  ks.forEach((t, j) => (topK[`top${t}`] = n ? topHits[j].reduce((a, b) => a + b, 0) / n : 0));

  const bins = input.calibrationBins ?? 15;
  const confidence = probs?.map((row, i) => row[yPred[i]]);
  const correct = Array.from(yPred, (p, i) => p === yTrue[i]);
  const calibration = confidence ? calibrationFromConfidence(confidence, correct, bins) : undefined;

  const report: EvalReport = {
    model: input.model,
    datasetFingerprint: input.datasetFingerprint,
    count: n,
    labels,
    metrics: {
      accuracy: m.accuracy,
      macroF1: m.macroF1,
      microF1: m.microF1,
      weightedF1: m.weightedF1,
      macroPrecision: m.macroPrecision,
      macroRecall: m.macroRecall,
      topK,
    },
    perClass: m.perClass,
    confusion,
    calibration,
  };

  if (input.bootstrap !== false && n > 0) {
    const opts = input.bootstrap ?? {};
    const cm = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    const values = bootstrapIntervals(
      n,
      (idx) => {
        for (const row of cm) row.fill(0);
        for (const i of idx) cm[yTrue[i]][yPred[i]]++;
        const r = metricsFromConfusion(cm, labels);
        const s: Record<string, number> = {
          accuracy: r.accuracy,
          macroF1: r.macroF1,
          microF1: r.microF1,
          weightedF1: r.weightedF1,
          macroPrecision: r.macroPrecision,
          macroRecall: r.macroRecall,
        };
        ks.forEach((t, j) => (s[`top${t}`] = idx.reduce((a, i) => a + topHits[j][i], 0) / idx.length));
        if (confidence) {
          const c = Array.from(idx, (i) => confidence[i]);
          const ok = Array.from(idx, (i) => correct[i]);
          s.ece = calibrationFromConfidence(c, ok, bins).ece;
        }
        return s;
      },
      opts,
    );
    report.intervals = {
      confidence: opts.confidence ?? 0.95,
      iterations: opts.iterations ?? 1000,
      seed: opts.seed ?? 0,
      values,
    };
  }

  if (input.baseline) {
    report.comparison = {
      ...compareModels(yTrue, input.baseline.yPred, yPred),
      baseline: input.baseline.name ?? 'baseline',
      candidate: input.model ?? 'model',
    };
  }
  if (input.groups) report.fairness = fairnessReport(yTrue, yPred, input.groups, labels, input.positiveLabels);
  if (input.sensitive)
    report.disaggregated = disaggregate({
      labels,
      yTrue,
      yPred,
      sensitive: input.sensitive,
      positiveLabels: input.positiveLabels,
      minGroupSize: input.minGroupSize,
      bootstrap: input.bootstrap,
    });
  if (input.latency) report.latency = await measureLatency(input.latency.run, input.latency.options);
  if (input.modelPath) report.size = await modelSizeOnDisk(input.modelPath);
  if (input.parameters) report.parameters = countParameters(input.parameters);
  return report;
}

/** Any model that maps a batch of inputs to one score row per input (probabilities or logits). */
export interface Predictor<I> {
  predict(inputs: I[]): Promise<ArrayLike<ArrayLike<number>>>;
}

export interface PredictorEvalOptions extends Omit<
  EvaluateInput,
  'labels' | 'yTrue' | 'scores' | 'yPred' | 'groups' | 'latency'
> {
  /** Batch size for scoring the dataset. Default 32. */
  batchSize?: number;
  /** Measure latency with inputs drawn from the dataset. Default true. */
  measureLatency?: boolean | LatencyOptions;
}

/** Scores `examples` with `predictor` and evaluates; example labels must be in `labels`. */
export async function evaluatePredictor<I>(
  predictor: Predictor<I>,
  examples: ReadonlyArray<{ input: I; label: string; group?: string }>,
  labels: string[],
  options: PredictorEvalOptions = {},
): Promise<EvalReport> {
  if (examples.length === 0)
    throw new ConfigError('evaluatePredictor needs at least one example', { field: 'examples' });
  const index = new Map(labels.map((l, i) => [l, i]));
  const yTrue = examples.map((e, i) => {
    const id = index.get(e.label);
    if (id === undefined)
      throw new ConfigError(`example ${i} has label "${e.label}", which the model does not know`, {
        field: 'label',
        value: e.label,
      });
    return id;
  });
  const bs = options.batchSize ?? 32;
  const scores: ArrayLike<number>[] = [];
  for (let s = 0; s < examples.length; s += bs) {
    const batch = examples.slice(s, s + bs).map((e) => e.input);
    const out = await predictor.predict(batch);
    if (out.length !== batch.length)
      throw new ConfigError(`predictor returned ${out.length} rows for a batch of ${batch.length}`, {
        field: 'predict',
      });
    for (let i = 0; i < out.length; i++) scores.push(out[i]);
  }
  const hasGroups = examples.every((e) => e.group !== undefined);
  const lat = options.measureLatency ?? true;
  const inputs = examples.map((e) => e.input);
  const run: BatchRunner = async (size) => {
    const batch: I[] = [];
    for (let i = 0; i < size; i++) batch.push(inputs[i % inputs.length]);
    await predictor.predict(batch);
  };
  return evaluate({
    ...options,
    labels,
    yTrue,
    scores,
    groups: hasGroups ? examples.map((e) => e.group!) : undefined,
    latency: lat === false ? undefined : { run, options: lat === true ? undefined : lat },
  });
}

export { bootstrapIntervals, type BootstrapOptions, type Interval } from './bootstrap.ts';
export {
  calibrationFromConfidence,
  expectedCalibrationError,
  fitTemperature,
  logitCalibration,
  type CalibrationResult,
  type ReliabilityBin,
  type TemperatureSearch,
} from './calibration.ts';
export {
  runBehaviourTests,
  compareBehaviour,
  defaultNameLists,
  addTypo,
  changeCase,
  changeContractions,
  changePunctuation,
  swapNames,
  BEHAVIOUR_TESTS,
  type BehaviourChange,
  type BehaviourOptions,
  type BehaviourReport,
  type BehaviourTestName,
  type BehaviourTestResult,
  type FlipExample,
  type NameLists,
  type Prediction,
  type PredictTexts,
} from './behaviour.ts';
export {
  disaggregate,
  DEFAULT_MIN_GROUP_SIZE,
  FOUR_FIFTHS,
  type ClassDisparity,
  type DisaggregatedReport,
  type DisaggregateInput,
  type Disparity,
  type Estimate,
  type FairnessView,
  type GroupMetricFn,
  type GroupResult,
  type SensitiveFeatures,
} from './disaggregate.ts';
export {
  clipPair,
  formatBehaviour,
  formatBehaviourChange,
  formatBudget,
  formatDisaggregated,
} from './fairness-format.ts';
export {
  ABSTAIN_SCORES,
  AbstainRule,
  abstainedLabel,
  abstainScore,
  checkAbstainOptions,
  DEFAULT_TARGET_FRR,
  fitAbstainRule,
  formatOutOfScope,
  thresholdText,
  OUT_OF_SCOPE,
  outOfScopeMetrics,
  type AbstainScore,
  type AbstainSpec,
  type AbstainTarget,
  type AbstainValidation,
  type FitAbstainInput,
  type OutOfScopeMetrics,
  type OutOfScopeReport,
} from './abstain.ts';
export { checkFairnessBudget, type BudgetCheck, type BudgetResult, type FairnessBudget } from './gate.ts';
export {
  fitGroupThresholds,
  GroupThresholds,
  reweighingWeights,
  thresholdStats,
  type FitThresholdsInput,
  type GroupThresholdSpec,
  type ParityConstraint,
  type ReweighingFactor,
  type ThresholdStats,
} from './mitigation.ts';
export { binaryFairness, fairnessReport, type BinaryFairness, type FairnessReport, type GroupRow } from './fairness.ts';
export { countParameters, latencyStats, measureLatency, modelSizeOnDisk } from './latency.ts';
export type {
  BatchRunner,
  LatencyOptions,
  LatencyReport,
  LatencyStats,
  ModelSize,
  ParameterCount,
  ParameterInfo,
} from './latency.ts';
export {
  argmax,
  classificationMetrics,
  confusionMatrix,
  metricsFromConfusion,
  softmax,
  topKAccuracy,
} from './metrics.ts';
export type { ClassificationMetrics, ClassMetrics } from './metrics.ts';
export { evalReportToJson, formatEvalReport, type EvalReport, type HeadlineMetrics } from './report.ts';
export { compareModels, mcnemarExact, type McNemarResult, type ModelComparison } from './significance.ts';
export { quantile, quantileSorted } from './stats.ts';
export { measureSessionLatency, sessionRunner, type SessionLatencyOptions } from './runtime.ts';
