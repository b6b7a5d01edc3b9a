/**
 * `tailorModel`: the product loop, one call from data to a registered customized model (behind `tailor customize`
 * and `tailor demo`): load and check everything first (data, base, registry,
 * output folder), audit the off-the-shelf baseline, customize with the chosen (or recommended) strategy, evaluate
 * both on the same eval examples, write the artifact folder atomically, and record two runs (baseline and
 * customized, with predictions so `runs compare` has McNemar) plus a model version with lineage.
 */
import path from 'node:path';
import { ConfigError } from '../errors.ts';
import { customize, type CustomizeResult, type Strategy } from '../customize/customize.ts';
import type { CustomizeOptions } from '../customize/types.ts';
import type { CalibrationReport } from '../customize/customize.ts';
import type { TargetKind } from '../customize/sites.ts';
import {
  checkFairnessBudget,
  compareBehaviour,
  evaluate,
  evalReportToJson,
  formatEvalReport,
  type BehaviourChange,
  type BehaviourReport,
  type BudgetResult,
  type EvalReport,
  type FairnessBudget,
  reweighingWeights,
  type ReweighingFactor,
} from '../eval/index.ts';
import { readSensitive, sensitiveFor } from './sensitive.ts';
import { countParams, type Model } from '../models/model.ts';
import type { HeadKind } from '../models/head.ts';
import { openRegistry, type ParentSpec, type Registry } from '../registry/index.ts';
import type { ProviderSpec } from '../runtime/session.ts';
import {
  loadDomainData,
  metricSummary,
  modelBehaviour,
  resolveBase,
  runAudit,
  type AuditResult,
  type AuditState,
  type MetricSummary,
  type Recommendation,
} from '../audit/index.ts';
import { argmaxRows, predictTexts } from '../models/text.ts';
import { softmaxRows } from '../models/classifier.ts';
import { assertFreshOut } from '../models/artifact.ts';
import { mergedModel, saveCustomizedModel } from '../customize/save.ts';
import { makeLineage } from '../customize/lineage.ts';
import {
  defaultCandidates,
  fixCandidates,
  formatSearchTrials,
  searchCustomize,
  searchReport,
  type SearchConfig,
  type SearchReport,
} from '../customize/search.ts';
import { parseDuration } from '../util/duration.ts';
import { abstainFileText } from '../models/abstain.ts';
import type { OutOfScopeReport } from '../eval/abstain.ts';
import {
  checkOutOfScopeOptions,
  checkPrecisionTarget,
  outOfScopeStage,
  splitOutOfScope,
  type TailorAbstainOptions,
} from './oos.ts';

import { STRATEGY_CHOICES, type StrategyChoice } from './strategies.ts';
export { STRATEGY_CHOICES, type StrategyChoice };

/** Where long library calls report what they are doing (the CLI draws bars from it; a server may log it). */
export interface WorkflowProgress {
  /** A line for a person. */
  log?(message: string): void;
  /** Progress of a long stage: `done` of `total` units. */
  stage?(stage: string, done: number, total: number): void;
}

/** Options of `tailorModel` (the CLI's `customize` flags, camel-cased). */
export interface TailorOptions {
  base?: string;
  train: string | string[];
  eval?: string | string[];
  textColumn?: string;
  labelColumn?: string;
  strategy?: StrategyChoice;
  out: string;
  /** Model name in the registry (default: the out folder's name). */
  name?: string;
  home?: string;
  targetAccuracy?: number;
  maxLatencyMs?: number;
  maxTrainExamples?: number;
  maxEvalExamples?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  maxLength?: number;
  rank?: number;
  targets?: string;
  layers?: number;
  /** The head's kind: `linear` (default) or `mlp` (customize/types.ts `headType`); with `auto`, fixed in every trial. */
  headType?: HeadKind;
  seed?: number;
  providers?: ProviderSpec[];
  threads?: number;
  progress?: WorkflowProgress;
  /** Aliases to set on the new model version. */
  aliases?: string[];
  /**
   * `strategy: 'auto'`: the wall-clock budget of the search over strategies and hyper-parameters (customize/search.ts),
   * in seconds or as a duration (`'90s'`, `'10m'`, `'1h'`); default DEFAULT_SEARCH_BUDGET_SECONDS. The search
   * ends at most one trial's time past it. `epochs` is then the last rung's maximum, and `lr`, `rank`, `targets`,
   * `layers` and `headType` fix those hyper-parameters in every configuration they apply to.
   */
  budget?: number | string;
  /** Training checkpoints (and resume from them): see CustomizeOptions.checkpoint (a search's trials are not checkpointed). */
  checkpoint?: CustomizeOptions['checkpoint'];
  /** Extra tags on both runs (a job queue tags them with the job id, to find a job's results again). */
  tags?: Record<string, string>;
  /** Move `aliases` even when the customized model is significantly worse than the baseline (default false). */
  allowRegression?: boolean;
  /**
   * Called once the model is trained and evaluated, before its folder is written and registered: returns extra
   * files for the model folder (path inside model/ -> text), which so become part of the registered version.
   * Monitoring uses it to store the reference profile (monitor/ sits above workflow/, so it hooks in here).
   */
  beforeRegister?: (ctx: RegistrationContext) => Promise<Record<string, string>>;
  /** Lineage parents besides the base (e.g. `{ relation: 'retrained_from', model: 'tickets:3' }`). */
  parents?: ParentSpec[];
  /**
   * Run the behavioural tests (name swap, typos, casing, punctuation, contractions; eval/behaviour.ts) on the eval
   * texts with the baseline and the customized model and compare their flip rates. Off by default: every eval text
   * is scored several more times per model.
   */
  behaviour?: boolean;
  /**
   * Fairness budget: the largest allowed flip rate of any behavioural test on the customized model (implies
   * `behaviour`). A model above it is registered, but `aliases` are not moved (like a regression; `allowRegression`
   * does not override it).
   */
  maxFlipRate?: number;
  /**
   * Columns of the train/eval files holding a sensitive attribute: the customized model's eval metrics are
   * disaggregated by them (`evaluate({ sensitive })`), for the group limits below.
   */
  sensitiveColumn?: string[];
  /** Fairness budget: largest allowed demographic parity difference (needs `sensitiveColumn`; gates aliases like `maxFlipRate`). */
  maxParityDifference?: number;
  /** Fairness budget: smallest allowed disparate impact ratio (needs `sensitiveColumn`; gates aliases like `maxFlipRate`). */
  minDisparateImpact?: number;
  /** Fairness budget: largest allowed equalized odds difference (needs `sensitiveColumn`; gates aliases like `maxFlipRate`). */
  maxEqualizedOddsDifference?: number;
  /** Groups with fewer eval rows are shown but not judged by the group limits (default 30; needs `sensitiveColumn`). */
  minGroupSize?: number;
  /**
   * Classes that are the favourable outcome for the group disparities (needs `sensitiveColumn`; default: the second
   * of two labels in sorted order, else every class one-vs-rest). Named as the CLI flag (`--positive-label`).
   */
  positiveLabel?: string[];
  /**
   * A column of the training files holding a sensitive attribute: training rows are reweighed by AIF360's Reweighing
   * (w(g, y) = P(g) P(y) / P(g, y), eval/mitigation.ts `reweighingWeights`), so that label and group are independent
   * in the weighted training set (CustomizeOptions.sampleWeights). Needs a trained strategy (not 'none'). Named
   * as the CLI flag, so `tailor customize --reweigh` and a queued customize job pass it through unchanged.
   */
  reweigh?: string;
  /**
   * The label of out-of-scope rows in the data (CLINC150's "oos"). Rows with it in train make it a class (the model
   * rejects by predicting it); rows with it only in validation/eval are set aside from the classes. Either way the
   * result gets `out_of_scope`: in-scope accuracy and out-of-scope recall on the eval rows.
   */
  oosLabel?: string;
  /**
   * Fit an abstain rule on validation (eval/abstain.ts: MSP or energy threshold for a target false-rejection rate or
   * in-scope precision) and store it with the model (model/abstain.json): `Classifier.predict` and the server then
   * answer OUT_OF_SCOPE for the texts it rejects.
   */
  abstain?: TailorAbstainOptions;
}

/** What a `beforeRegister` hook sees: the model about to be registered and the data it was made from. */
export interface RegistrationContext {
  name: string;
  /** The version the registry will assign unless another writer registers the same name first (latest + 1). */
  version: number;
  labels: string[];
  strategy: Strategy | 'none';
  /** The training rows customize saw (after any subsampling). */
  train: Array<{ text: string; label: string }>;
  /** Validation rows with the final model's (calibrated) class probabilities, aligned with `labels`. */
  validation: { texts: string[]; labels: string[]; probabilities: number[][] };
  /** The held-out eval rows the model was scored on. */
  eval: Array<{ text: string; label: string }>;
  /** The final model (weights merged) and the base it came from. */
  model: Model;
  base: Model;
  maxLength: number;
}

/** What `tailorModel` returns: the object `tailor customize --json` prints. */
export interface TailorResult {
  run_id: string;
  baseline_run_id: string;
  strategy: Strategy | 'none';
  requested_strategy: StrategyChoice;
  recommendation?: Recommendation;
  /** `strategy: 'auto'`: the search (schedule, every trial, the winner and why; also the run's `search.json`). */
  search?: SearchReport;
  trainable_params: number;
  total_params: number;
  train_seconds: number;
  baseline: MetricSummary;
  customized: MetricSummary;
  /** McNemar's exact test, customized vs baseline on the same eval examples. */
  comparison: { only_baseline_right: number; only_customized_right: number; p_value: number };
  model: { name: string; version: number; ref: string; aliases: string[] };
  out: string;
  artifacts: { model: string; adapter?: string; report: string };
  data: AuditResult['data'];
  /** The full audit of the base on this data (baseline, latency, memory, profile, recommendation). */
  audit: AuditResult;
  curve: CustomizeResult['report']['curve'];
  /** Temperature scaling fitted on validation and folded into the head (absent for strategy 'none'). */
  calibration?: CalibrationReport;
  /** Whether the requested aliases moved to the new version, and why not when they did not. */
  alias_decision: {
    requested: string[];
    moved: boolean;
    regression: boolean;
    /** True when the fairness budget (`maxFlipRate` and the group limits) was checked and failed. */
    fairness_failed: boolean;
    reason: string;
  };
  /** Behavioural tests of both models on the same perturbed eval texts (with `behaviour` or `maxFlipRate`). */
  behaviour?: { baseline: BehaviourReport; customized: BehaviourReport; comparison: BehaviourChange[] };
  /** The fairness budget checked on the customized model (with `maxFlipRate` or any of the group limits). */
  fairness_budget?: BudgetResult;
  /** With `reweigh`: the weight of each (group, label) cell of the training rows (AIF360's Reweighing). */
  reweighing?: { column: string; factors: ReweighingFactor[] };
  /** Out-of-scope detection on the eval rows (with `oosLabel` or `abstain`), with the stored abstain rule. */
  out_of_scope?: OutOfScopeReport;
  seconds: number;
}

/** The search budget of `strategy: 'auto'` when none is given: a few minutes. */
export const DEFAULT_SEARCH_BUDGET_SECONDS = 300;

function strategyOptions(
  strategy: Strategy,
  o: TailorOptions,
  rec: Recommendation | undefined,
  labels: string[],
  progress?: WorkflowProgress,
): CustomizeOptions {
  const hp = rec?.hyperparameters ?? {};
  const c: CustomizeOptions = {
    strategy,
    labels,
    seed: o.seed ?? 0,
    ...(o.epochs !== undefined ? { epochs: o.epochs } : {}),
    ...(o.lr !== undefined ? { lr: o.lr } : {}),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    ...(o.maxLength !== undefined ? { maxLength: o.maxLength } : {}),
    ...(o.headType !== undefined ? { headType: o.headType } : {}),
    ...(typeof hp.weightDecay === 'number' ? { weightDecay: hp.weightDecay } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}),
  };
  // Options of one strategy are ignored by the others, so they are passed whatever the strategy.
  const lora: NonNullable<CustomizeOptions['lora']> = {
    ...(o.rank !== undefined ? { r: o.rank, alpha: 2 * o.rank } : {}),
    ...(typeof hp.loraDropout === 'number' ? { dropout: hp.loraDropout } : {}),
    ...(o.targets
      ? {
          targets:
            o.targets === 'attention' || o.targets === 'ffn' || o.targets === 'all-linear'
              ? { kind: o.targets as TargetKind }
              : o.targets,
        }
      : {}),
  };
  if (Object.keys(lora).length) c.lora = lora;
  if (o.layers !== undefined) c.partial = { layers: o.layers };
  c.onEpoch = (e) => {
    progress?.log?.(
      `epoch ${e.epoch + 1}: train loss ${e.trainLoss.toFixed(4)}, val accuracy ${(e.accuracy * 100).toFixed(2)}%, ${e.seconds.toFixed(1)} s`,
    );
  };
  return c;
}

/** The out-of-scope figures as run metrics (absent ones, like recall without out-of-scope rows, left out). */
function oosRunMetrics(r: OutOfScopeReport | undefined): Record<string, number> {
  if (!r) return {};
  const m = r.withAbstention ?? r.withoutAbstention;
  const out: Record<string, number | null> = {
    in_scope_accuracy: m.inScopeAccuracy,
    oos_recall: m.outOfScopeRecall,
    false_rejection_rate: m.falseRejectionRate,
  };
  return Object.fromEntries(Object.entries(out).filter((e): e is [string, number] => e[1] !== null));
}

async function recordBaseline(
  reg: Registry,
  state: AuditState,
  spec: string,
  tags: Record<string, string> = {},
): Promise<string> {
  const r = state.result;
  const run = await reg.startRun({
    name: 'baseline',
    experiment: 'customize',
    params: {
      strategy: 'none',
      head: 'ridge',
      lambda: r.baseline.lambda,
      max_length: r.settings.maxLength,
      seed: r.settings.seed,
    },
    tags: { ...tags, kind: 'audit-baseline' },
    baseModel: spec,
    datasetFingerprint: r.data.fingerprint,
  });
  try {
    await run.logMetrics({
      accuracy: r.baseline.accuracy,
      macro_f1: r.baseline.macro_f1,
      latency_p50_ms: r.latency.batch1.p50Ms,
    });
    const labels = state.data.labels;
    await run.logPredictions(
      'eval',
      state.evalTrue.map((i) => labels[i]),
      state.evalPred.map((i) => labels[i]),
    );
    await run.logArtifactBytes(JSON.stringify(r, null, 2), 'audit.json', 'report');
    await run.finish();
    return run.id;
  } catch (e) {
    await run.fail(e);
    throw e;
  }
}

/**
 * The search the audit's recommendation implies, as `--strategy auto` runs it: its strategy first; the default
 * candidates (with `setfit` on little data, rule R6) with the caller's fixed hyper-parameters and the rule's adapter
 * dropout; the rule's weight decay for every trial.
 *
 * @example
 * const s = await searchCustomize(base, data, { budgetSeconds: 300, ...recommendedSearch(audit.recommendation) });
 */
export function recommendedSearch(
  rec: Pick<Recommendation, 'strategy' | 'rules' | 'hyperparameters'>,
  fixed: { lr?: number; rank?: number; targets?: string; layers?: number; head?: HeadKind } = {},
): { first: string; candidates: SearchConfig[]; weightDecay?: number } {
  const hp = rec.hyperparameters;
  return {
    first: rec.strategy,
    candidates: fixCandidates(defaultCandidates(undefined, { littleData: rec.rules.includes('R6-little-data') }), {
      ...fixed,
      ...(typeof hp.loraDropout === 'number' ? { loraDropout: hp.loraDropout } : {}),
    }),
    ...(typeof hp.weightDecay === 'number' ? { weightDecay: hp.weightDecay } : {}),
  };
}

/**
 * Customizes a base on a domain end to end; see the module comment. Bad input fails before anything is written.
 *
 * @example
 * import { tailorModel } from 'tailor';
 * const r = await tailorModel({ train: 'tickets.csv', textColumn: 'message', labelColumn: 'topic', out: './tickets-model' });
 * console.log(r.customized.accuracy, r.model.ref);
 */
export async function tailorModel(o: TailorOptions): Promise<TailorResult> {
  const t0 = performance.now();
  const progress = o.progress;
  const requested = o.strategy ?? 'auto';
  if (!STRATEGY_CHOICES.includes(requested))
    throw new ConfigError(`unknown strategy '${requested}' (choose from ${STRATEGY_CHOICES.join(', ')})`, {
      field: 'strategy',
      value: requested,
    });
  const budgetSeconds =
    o.budget === undefined
      ? DEFAULT_SEARCH_BUDGET_SECONDS
      : typeof o.budget === 'string'
        ? parseDuration(o.budget, 'budget')
        : o.budget;
  if (!(budgetSeconds > 0) || !Number.isFinite(budgetSeconds))
    throw new ConfigError(`budget must be a positive number of seconds, got ${o.budget}`, {
      field: 'budget',
      value: String(o.budget),
    });
  if (o.budget !== undefined && requested !== 'auto')
    throw new ConfigError(
      `budget is the time of the search behind strategy 'auto'; strategy '${requested}' trains one configuration`,
      { field: 'budget', value: String(o.budget) },
    );
  const out = path.resolve(o.out);
  const name = o.name ?? path.basename(out).replace(/[^A-Za-z0-9._-]/g, '-');
  // Check, in order of cost: the output folder, the data, the base, the registry. Nothing is written before all pass.
  // Checked before anything is read, so a bad budget fails fast (the gate validates it again, with the same rule).
  const budget: FairnessBudget = {
    ...(o.maxFlipRate !== undefined ? { maxFlipRate: o.maxFlipRate } : {}),
    ...(o.maxParityDifference !== undefined ? { maxParityDifference: o.maxParityDifference } : {}),
    ...(o.minDisparateImpact !== undefined ? { minDisparateImpact: o.minDisparateImpact } : {}),
    ...(o.maxEqualizedOddsDifference !== undefined ? { maxEqualizedOddsDifference: o.maxEqualizedOddsDifference } : {}),
  };
  const hasBudget = Object.keys(budget).length > 0;
  if (hasBudget) checkFairnessBudget(budget, {});
  const sensitiveColumns = [...new Set(o.sensitiveColumn ?? [])];
  const groupLimit = (['maxParityDifference', 'minDisparateImpact', 'maxEqualizedOddsDifference'] as const).find(
    (k) => budget[k] !== undefined,
  );
  if (groupLimit && sensitiveColumns.length === 0)
    throw new ConfigError(`${groupLimit} needs at least one sensitive column (--sensitive-column)`, {
      field: 'sensitiveColumn',
    });
  if (o.minGroupSize !== undefined && sensitiveColumns.length === 0)
    throw new ConfigError('minGroupSize needs at least one sensitive column (--sensitive-column)', {
      field: 'minGroupSize',
    });
  if (o.positiveLabel?.length && sensitiveColumns.length === 0)
    throw new ConfigError('positiveLabel needs at least one sensitive column (--sensitive-column)', {
      field: 'positiveLabel',
    });
  const withBehaviour = o.behaviour === true || o.maxFlipRate !== undefined;
  checkOutOfScopeOptions(o);
  if (o.reweigh !== undefined && requested === 'none')
    throw new ConfigError("reweigh (--reweigh) reweighs training, but strategy 'none' trains nothing", {
      field: 'reweigh',
      value: o.reweigh,
    });
  await assertFreshOut(out);
  progress?.log?.('reading data');
  const oosSplit = splitOutOfScope(
    await loadDomainData({
      train: o.train,
      eval: o.eval,
      textColumn: o.textColumn,
      labelColumn: o.labelColumn,
      seed: o.seed,
      ...(o.oosLabel !== undefined ? { prepare: { outOfScopeLabel: o.oosLabel } } : {}),
    }),
    o.oosLabel,
  );
  const data = oosSplit.data;
  checkPrecisionTarget(oosSplit, o);
  // Checked here, not by evaluate after training: a typo in a label must not cost a training run.
  for (const l of o.positiveLabel ?? [])
    if (!data.labels.includes(l))
      throw new ConfigError(
        `positive label "${l}" is not one of the labels (${data.labels.slice(0, 10).join(', ')}${data.labels.length > 10 ? ', ...' : ''})`,
        { field: 'positiveLabel', value: l },
      );
  // The prepared rows keep file and line; the sensitive values are read from the files themselves (eval rows may
  // come from the train files when there is no eval file).
  const sensitiveValues = sensitiveColumns.length
    ? await readSensitive(
        [...(Array.isArray(o.train) ? o.train : [o.train]), ...(o.eval === undefined ? [] : [o.eval].flat())],
        sensitiveColumns,
      )
    : undefined;
  const reweighValues = o.reweigh !== undefined ? await readSensitive([o.train].flat(), [o.reweigh]) : undefined;
  progress?.log?.(`loading base ${o.base ?? 'use-lite'}`);
  const { model: base, spec } = await resolveBase(o.base);
  const reg = await openRegistry(o.home !== undefined ? { home: o.home } : {});
  try {
    const state = await runAudit({
      base,
      baseSpec: spec,
      data,
      targetAccuracy: o.targetAccuracy,
      maxLatencyMs: o.maxLatencyMs,
      maxTrainExamples: o.maxTrainExamples,
      maxEvalExamples: o.maxEvalExamples,
      maxLength: o.maxLength,
      providers: o.providers,
      seed: o.seed,
      behaviour: withBehaviour,
      onProgress: (stage, done, total) => progress?.stage?.(`audit: ${stage}`, done, total),
    });
    const audit = state.result;
    const rec = audit.recommendation;
    let strategy: Strategy | 'none' = requested === 'auto' ? rec.strategy : requested;
    // auto searches strategies and hyper-parameters, the audit's strategy first, unless the baseline meets the target.
    // With reweighing it trains the audit's strategy instead: the search's trials share one unweighted warm head and
    // score unweighted validation, so it would pick among models that ignored the weights.
    const searching = requested === 'auto' && strategy !== 'none' && o.reweigh === undefined;
    if (o.reweigh !== undefined && strategy === 'none')
      throw new ConfigError(
        `reweigh (--reweigh) reweighs training, but the audit recommends strategy 'none' (${rec.rules.join(', ')}); choose a strategy`,
        { field: 'reweigh', value: o.reweigh },
      );
    // AIF360's Reweighing on the rows customize trains on (after any subsampling).
    const reweighing =
      o.reweigh !== undefined && reweighValues
        ? {
            column: o.reweigh,
            ...reweighingWeights(
              state.train.map((r) => r.label),
              sensitiveFor(state.train, [o.reweigh], reweighValues)[o.reweigh],
            ),
          }
        : undefined;
    progress?.log?.(
      `baseline (frozen encoder + ridge head): accuracy ${(audit.baseline.accuracy * 100).toFixed(2)}%; ${searching ? `searching strategies for up to ${budgetSeconds} s, ${strategy} first` : `strategy ${strategy}`}${requested === 'auto' ? ` (recommended: ${rec.rules.join(', ')})` : ''}`,
    );
    const baselineRunId = await recordBaseline(reg, state, spec, o.tags);

    const run = await reg.startRun({
      name: searching ? 'auto' : strategy,
      experiment: 'customize',
      params: {
        strategy,
        requested_strategy: requested,
        base: spec,
        seed: o.seed ?? 0,
        ...(requested === 'auto' ? { recommendation_rules: rec.rules } : {}),
        ...(searching ? { search_budget_seconds: budgetSeconds } : {}),
        ...(Object.fromEntries(
          Object.entries({
            epochs: o.epochs,
            lr: o.lr,
            batch_size: o.batchSize,
            max_length: o.maxLength,
            rank: o.rank,
            targets: o.targets,
            head_type: o.headType,
          }).filter(([, v]) => v !== undefined),
        ) as Record<string, string | number>),
        max_train_examples: o.maxTrainExamples ?? null,
        max_eval_examples: o.maxEvalExamples ?? null,
        ...(reweighing ? { reweigh: reweighing.column } : {}),
      },
      tags: { ...o.tags, baseline_run: baselineRunId },
      baseModel: spec,
      datasetFingerprint: audit.data.fingerprint,
      handleSignals: true,
    });
    try {
      // The reasons are prose: an artifact reads better than a table cell (the rule ids are in the params).
      if (requested === 'auto')
        await run.logArtifactBytes(`${JSON.stringify(rec, null, 2)}\n`, 'recommendation.json', 'report');
      const labels = state.data.labels;
      let final: Model;
      let result: CustomizeResult | undefined;
      let search: SearchReport | undefined;
      const tTrain = performance.now();
      if (strategy === 'none') {
        final = state.baselineModel;
      } else if (searching) {
        const s = await searchCustomize(
          base,
          { train: state.train, validation: state.data.validation },
          {
            budgetSeconds,
            seed: o.seed ?? 0,
            ...recommendedSearch(rec, {
              lr: o.lr,
              rank: o.rank,
              targets: o.targets,
              layers: o.layers,
              head: o.headType,
            }),
            labels,
            // The audit's features of the same rows: the search only fits its warm head before the first trial.
            features: state.features,
            ...(o.epochs !== undefined ? { maxEpochs: o.epochs } : {}),
            ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
            ...(o.maxLength !== undefined ? { maxLength: o.maxLength } : {}),
            ...(o.threads !== undefined ? { threads: o.threads } : {}),
            onTrial: (t) =>
              progress?.log?.(
                `trial ${t.config} at rung ${t.rung} (${t.trainRows} rows, ${t.epochs} epoch(s)): ${t.status === 'skipped' ? `skipped, ${t.note}` : `val accuracy ${(100 * t.accuracy!).toFixed(2)}% in ${t.seconds.toFixed(1)} s`}`,
              ),
          },
        );
        result = s.result!;
        strategy = result.report.strategy as Strategy;
        search = searchReport(s);
        final = mergedModel(result, base);
        progress?.log?.(`search done:\n${formatSearchTrials(search)}`);
        await run.logParams({ strategy, search_winner: search.winner.config, search_trials: search.trials.length });
        await run.logArtifactBytes(`${JSON.stringify(search, null, 2)}\n`, 'search.json', 'report');
        for (const e of result.report.curve)
          await run.logMetrics(
            { train_loss: e.trainLoss, val_loss: e.valLoss, val_accuracy: e.accuracy, val_macro_f1: e.macroF1 },
            { epoch: e.epoch },
          );
      } else {
        progress?.log?.(`customizing: ${strategy} on ${state.train.length} train examples`);
        const copts = strategyOptions(strategy, o, requested === 'auto' ? rec : undefined, labels, progress);
        if (reweighing) copts.sampleWeights = reweighing.weights;
        const onEpoch = copts.onEpoch!;
        copts.onEpoch = (e) => {
          onEpoch(e);
          void run.logMetrics(
            { train_loss: e.trainLoss, val_loss: e.valLoss, val_accuracy: e.accuracy, val_macro_f1: e.macroF1 },
            { epoch: e.epoch },
          );
        };
        const validation = state.data.validation;
        result = await customize(base, { train: state.train, validation }, copts);
        final = mergedModel(result, base);
      }
      const trainSeconds = (performance.now() - tTrain) / 1000;
      progress?.log?.('evaluating the customized model');
      const texts = state.evalSet.map((e) => e.text);
      const { logits, classes } = await predictTexts(final, texts, {
        maxLength: o.maxLength,
        providers: o.providers,
        batchSize: 32,
      });
      const yPred = argmaxRows(logits, classes);
      const sensitive = sensitiveValues ? sensitiveFor(state.evalSet, sensitiveColumns, sensitiveValues) : undefined;
      const report: EvalReport = await evaluate({
        ...(sensitive
          ? {
              sensitive,
              ...(o.minGroupSize !== undefined ? { minGroupSize: o.minGroupSize } : {}),
              ...(o.positiveLabel?.length ? { positiveLabels: o.positiveLabel } : {}),
            }
          : {}),
        labels,
        yTrue: state.evalTrue,
        yPred,
        model: `${name} (${strategy})`,
        datasetFingerprint: audit.data.fingerprint,
        baseline: { name: 'baseline', yPred: state.evalPred },
        bootstrap: { iterations: 1000, seed: o.seed ?? 0 },
        parameters: [...final.params.values()].map((p) => ({ name: p.path, shape: p.shape, trainable: p.trainable })),
      });
      const customized = metricSummary(report);
      const counts = result
        ? { trainable: result.report.trainableParams, total: result.report.totalParams }
        : { trainable: countParams(state.baselineModel).trainable, total: countParams(state.baselineModel).total };
      const maxLength = o.maxLength ?? audit.settings.maxLength;
      let behaviour: TailorResult['behaviour'];
      if (withBehaviour && audit.behaviour) {
        progress?.log?.('behavioural tests on the customized model');
        // Same texts, seed and max length as the audit's baseline run, so both models see identical perturbations.
        const after = await modelBehaviour(final, labels, texts, {
          seed: audit.settings.seed,
          maxLength: audit.settings.maxLength,
          providers: o.providers,
        });
        behaviour = {
          baseline: audit.behaviour,
          customized: after,
          comparison: compareBehaviour(audit.behaviour, after),
        };
      }
      const fairnessBudget = hasBudget
        ? checkFairnessBudget(budget, { fairness: report.disaggregated, behaviour: behaviour?.customized })
        : undefined;
      if (o.abstain) progress?.log?.(`fitting the abstain rule (${o.abstain.score ?? 'msp'}) on validation`);
      const oos = await outOfScopeStage({
        model: final,
        labels,
        ...(o.oosLabel !== undefined ? { oosLabel: o.oosLabel } : {}),
        ...(o.abstain ? { abstain: o.abstain } : {}),
        split: oosSplit,
        validation: state.data.validation,
        evalSet: state.evalSet,
        evalLogits: logits,
        maxLength,
        providers: o.providers,
      });

      const summary = {
        strategy,
        requested_strategy: requested,
        base: spec,
        trainable_params: counts.trainable,
        total_params: counts.total,
        train_seconds: trainSeconds,
        baseline: audit.baseline,
        customized,
        comparison: report.comparison,
        ...(requested === 'auto' ? { recommendation: rec } : {}),
        ...(search ? { search } : {}),
        ...(behaviour ? { behaviour } : {}),
        ...(fairnessBudget ? { fairness_budget: fairnessBudget } : {}),
        ...(reweighing ? { reweighing: { column: reweighing.column, factors: reweighing.factors } } : {}),
        ...(oos.report ? { out_of_scope: oos.report } : {}),
      };
      let modelFiles: Record<string, string> = {};
      if (o.beforeRegister) {
        const vt = state.data.validation.map((e) => e.text);
        const vp = await predictTexts(final, vt, { maxLength: o.maxLength, providers: o.providers, batchSize: 32 });
        const latest = (await reg.listModels()).find((m) => m.name === name)?.latestVersion ?? 0;
        const files = await o.beforeRegister({
          name,
          version: latest + 1,
          labels,
          strategy,
          train: state.train.map((e) => ({ text: e.text, label: e.label })),
          validation: {
            texts: vt,
            labels: state.data.validation.map((e) => e.label),
            probabilities: softmaxRows(vp.logits, vp.classes),
          },
          eval: state.evalSet.map((e) => ({ text: e.text, label: e.label })),
          model: final,
          base,
          maxLength,
        });
        for (const f of Object.keys(files))
          if (path.isAbsolute(f) || f.split(/[\\/]/).includes('..'))
            throw new ConfigError(`beforeRegister returned the file name '${f}', which leaves the model folder`, {
              field: 'beforeRegister',
              value: f,
            });
        modelFiles = Object.fromEntries(Object.entries(files).map(([f, text]) => [path.join('model', f), text]));
      }
      // Beside model.onnx, where Classifier.load and the server read it (models/abstain.ts).
      if (oos.rule) modelFiles[path.join('model', 'abstain.json')] = abstainFileText(oos.rule);
      const saved = await saveCustomizedModel(
        out,
        result ?? {
          model: final,
          labels,
          lineage: makeLineage(
            base,
            'none',
            { head: 'ridge', lambda: audit.baseline.lambda, maxLength },
            audit.data.fingerprint,
            o.seed ?? 0,
            labels,
          ),
        },
        {
          base,
          maxLength,
          metrics: { baseline: audit.baseline, customized },
          files: {
            ...modelFiles,
            'report.json': `${JSON.stringify({ ...summary, audit, customize: result?.report ?? null, eval: JSON.parse(evalReportToJson(report)) }, null, 2)}\n`,
            'report.txt': `${formatEvalReport(report)}\n`,
          },
        },
      );
      const c = report.comparison!;
      // No silent regressions: a version significantly worse than the baseline is registered, but takes no alias
      // unless the caller allows it.
      const regression = c.pValue < 0.05 && c.c < c.b;
      // A failed fairness budget withholds aliases whatever allowRegression says: that flag is about accuracy.
      const fairnessFailed = fairnessBudget !== undefined && !fairnessBudget.pass;
      const hasAliases = (o.aliases?.length ?? 0) > 0;
      const withheldForRegression = regression && !o.allowRegression && hasAliases;
      const aliasesWithheld = withheldForRegression || (fairnessFailed && hasAliases);
      const reasons = [
        regression
          ? `the customized model is significantly worse than the baseline on the eval set (${c.c} vs ${c.b} discordant examples right, McNemar p = ${c.pValue.toPrecision(3)})${withheldForRegression ? '; aliases were not moved (allow with allowRegression / --allow-regression)' : o.allowRegression ? '; aliases moved anyway (allowRegression)' : ''}`
          : 'not significantly worse than the baseline',
      ];
      // The accuracy verdict is noise next to a failed budget, unless it is a regression too.
      if (fairnessFailed && !regression) reasons.pop();
      if (fairnessFailed)
        reasons.push(
          `the fairness budget failed: ${fairnessBudget.reasons.join('; ')}${hasAliases ? '; aliases were not moved' : ''}`,
        );
      else if (fairnessBudget) reasons.push('within the fairness budget');
      const aliasDecision: TailorResult['alias_decision'] = {
        requested: o.aliases ?? [],
        moved: !aliasesWithheld,
        regression,
        fairness_failed: fairnessFailed,
        reason: reasons.join('; '),
      };
      if (aliasesWithheld) progress?.log?.(`alias not moved: ${aliasDecision.reason}`);

      await run.logMetrics({
        accuracy: customized.accuracy,
        macro_f1: customized.macro_f1,
        train_seconds: trainSeconds,
        trainable_params: counts.trainable,
        total_params: counts.total,
        ...oosRunMetrics(oos.report),
      });
      await run.logPredictions(
        'eval',
        state.evalTrue.map((i) => labels[i]),
        yPred.map((i) => labels[i]),
      );
      await run.logArtifact(saved.model, { path: 'model', kind: 'model' });
      if (saved.adapter) await run.logArtifact(saved.adapter, { path: 'adapter', kind: 'adapter' });
      await run.logArtifact(path.join(out, 'report.json'), { path: 'report.json', kind: 'report' });
      const mv = await run.registerModel({
        name,
        source: { runId: run.id, artifactPath: 'model' },
        parents: [{ relation: 'base', external: spec }, ...(o.parents ?? [])],
        ...(o.aliases?.length && !aliasesWithheld ? { aliases: o.aliases } : {}),
        description: `${strategy} on ${spec}`,
        metadata: {
          strategy,
          accuracy: customized.accuracy,
          macro_f1: customized.macro_f1,
          baseline_accuracy: audit.baseline.accuracy,
          dataset: audit.data.fingerprint,
        },
      });
      await run.finish();
      return {
        run_id: run.id,
        baseline_run_id: baselineRunId,
        strategy,
        requested_strategy: requested,
        ...(requested === 'auto' ? { recommendation: rec } : {}),
        ...(search ? { search } : {}),
        trainable_params: counts.trainable,
        total_params: counts.total,
        train_seconds: trainSeconds,
        baseline: metricSummary(state.report),
        customized,
        comparison: { only_baseline_right: c.b, only_customized_right: c.c, p_value: c.pValue },
        model: { name, version: mv.version, ref: `${name}:${mv.version}`, aliases: mv.aliases },
        out,
        artifacts: {
          model: saved.model,
          ...(saved.adapter ? { adapter: saved.adapter } : {}),
          report: path.join(out, 'report.json'),
        },
        ...(result?.report.calibration ? { calibration: result.report.calibration } : {}),
        alias_decision: aliasDecision,
        ...(behaviour ? { behaviour } : {}),
        ...(fairnessBudget ? { fairness_budget: fairnessBudget } : {}),
        ...(reweighing ? { reweighing: { column: reweighing.column, factors: reweighing.factors } } : {}),
        ...(oos.report ? { out_of_scope: oos.report } : {}),
        data: audit.data,
        audit,
        curve: result?.report.curve ?? [],
        seconds: (performance.now() - t0) / 1000,
      };
    } catch (e) {
      await run.fail(e);
      throw e;
    }
  } finally {
    await reg.close();
  }
}
