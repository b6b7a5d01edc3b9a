/**
 * `evaluateModel`: scores a model (registry reference or folder) on labelled files, optionally against a baseline
 * model on the same rows (McNemar), with latency, disaggregated metrics by sensitive columns, behavioural tests and
 * a fairness budget (behind `tailor evaluate`).
 */
import { loadDomainData } from '../audit/data.ts';
import { ConfigError } from '../errors.ts';
import {
  argmax,
  checkFairnessBudget,
  evaluate,
  measureLatency,
  runBehaviourTests,
  sessionRunner,
  softmax,
  type BehaviourReport,
  type BudgetResult,
  type EvalReport,
  type FairnessBudget,
} from '../eval/index.ts';
import { readGroupThresholds } from '../models/group-thresholds.ts';
import { toOnnxModel } from '../models/model.ts';
import { argmaxRows, predictTexts, textFeeds } from '../models/text.ts';
import { formatProfile } from '../runtime/profile.ts';
import { Session, type ProviderSpec } from '../runtime/session.ts';
import { readSensitive, sensitiveFor } from './sensitive.ts';
import { resolveModelRef } from './sources.ts';
import { readAbstainRule } from '../models/abstain.ts';
import type { OutOfScopeReport } from '../eval/abstain.ts';
import { outOfScopeReport } from './oos.ts';
import type { WorkflowProgress } from './tailor.ts';

export interface EvaluateModelOptions {
  model: string;
  eval: string[];
  baseline?: string;
  textColumn: string;
  labelColumn: string;
  maxLength?: number;
  latency: boolean;
  sensitiveColumn?: string[];
  minGroupSize: number;
  positiveLabel?: string[];
  behaviour?: boolean;
  nameTemplate?: string[];
  seed: number;
  bootstrap: number;
  maxParityDifference?: number;
  minDisparateImpact?: number;
  maxEqualizedOddsDifference?: number;
  maxFlipRate?: number;
  home?: string;
  providers?: ProviderSpec[];
  /** Also return ONNX Runtime's per-op profile at batch 1. */
  profile?: boolean;
  progress?: WorkflowProgress;
  /**
   * The label of out-of-scope rows in the eval files: rows with it count as out of scope (when the model does not
   * have it as a class they are left out of the main report), and `outOfScope` reports in-scope accuracy and
   * out-of-scope recall, through the model's abstain rule when it has one.
   */
  oosLabel?: string;
}

/** What `evaluateModel` measured; the CLI prints it, and exits 1 when the fairness budget failed. */
export interface EvaluateModelResult {
  report: EvalReport;
  /**
   * Set when the model carries group thresholds (`tailor mitigate`) for one of the sensitive columns: the
   * predictions (and so every metric but top-k and calibration) are the thresholded ones.
   */
  groupThresholds?: { column: string; thresholds: Record<string, number>; positiveLabel: string };
  behaviour?: BehaviourReport;
  fairnessBudget?: BudgetResult;
  profile?: string;
  /** With `oosLabel`, or for a model with an abstain rule: out-of-scope detection on the eval rows. */
  outOfScope?: OutOfScopeReport;
}

/** Evaluates a model; see the module comment. */
export async function evaluateModel(o: EvaluateModelOptions): Promise<EvaluateModelResult> {
  const progress = o.progress;
  const providers = o.providers;
  const budget: FairnessBudget = {
    ...(o.maxParityDifference !== undefined ? { maxParityDifference: o.maxParityDifference } : {}),
    ...(o.minDisparateImpact !== undefined ? { minDisparateImpact: o.minDisparateImpact } : {}),
    ...(o.maxEqualizedOddsDifference !== undefined ? { maxEqualizedOddsDifference: o.maxEqualizedOddsDifference } : {}),
    ...(o.maxFlipRate !== undefined ? { maxFlipRate: o.maxFlipRate } : {}),
  };
  const columns = [...new Set(o.sensitiveColumn ?? [])];
  const groupLimits = ['maxParityDifference', 'minDisparateImpact', 'maxEqualizedOddsDifference'] as const;
  const needsColumn = groupLimits.find((k) => budget[k] !== undefined);
  if (needsColumn && columns.length === 0)
    throw new ConfigError(
      `--${needsColumn.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs at least one --sensitive-column`,
      { field: 'sensitive-column' },
    );
  // The eval file doubles as "train" for prepareDataset: only its rows and label set are used.
  const data = await loadDomainData({
    train: o.eval,
    textColumn: o.textColumn,
    labelColumn: o.labelColumn,
    prepare: { validationFraction: 0, minExamplesPerClass: 1, nearDuplicates: 'keep', leakage: 'keep' },
  });
  const all = [...data.train, ...data.validation];
  const m = await resolveModelRef(o.model, o.home);
  const labels = m.info.labels;
  const index = new Map(labels.map((l, i) => [l, i]));
  // Out-of-scope rows the model has no class for are scored for out-of-scope detection only.
  const setAside = o.oosLabel !== undefined && !index.has(o.oosLabel);
  const rows = setAside ? all.filter((r) => r.label !== o.oosLabel) : all;
  const oosRows = setAside ? all.filter((r) => r.label === o.oosLabel) : [];
  if (o.oosLabel !== undefined && !all.some((r) => r.label === o.oosLabel))
    throw new ConfigError(`no eval row has the out-of-scope label '${o.oosLabel}' (--oos-label)`, {
      field: 'oos-label',
      value: o.oosLabel,
    });
  if (rows.length === 0)
    throw new ConfigError(`every eval row has the out-of-scope label '${o.oosLabel}'; give in-scope rows too`, {
      field: 'oos-label',
    });
  const unknown = rows.find((r) => !index.has(r.label));
  if (unknown)
    throw new ConfigError(
      `${unknown.file}:${unknown.line}: label "${unknown.label}" is not one the model ${o.model} knows (${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', ...' : ''})`,
      { file: unknown.file, line: unknown.line, field: o.labelColumn, value: unknown.label },
    );
  const yTrue = rows.map((r) => index.get(r.label)!);
  const sensitive = columns.length ? sensitiveFor(rows, columns, await readSensitive(o.eval, columns)) : undefined;
  const maxLength = o.maxLength ?? m.info.maxLength;
  const texts = rows.map((r) => r.text);
  const { logits, classes } = await predictTexts(m.model, texts, {
    maxLength,
    providers,
    onProgress: (d, t) => progress?.stage?.('scoring', d, t),
  });
  // Group thresholds stored with the model (tailor mitigate) apply when their column is one of the sensitive columns.
  const stored = (m.info.groupThresholds as { sensitiveColumn?: unknown } | undefined)?.sensitiveColumn;
  const thresholdColumn = typeof stored === 'string' && sensitive && columns.includes(stored) ? stored : undefined;
  const thresholds = thresholdColumn ? await readGroupThresholds(m.dir, labels) : undefined;
  const yPred = thresholds
    ? thresholds.predict(
        Array.from({ length: rows.length }, (_, i) => softmax(logits.subarray(i * classes, (i + 1) * classes))),
        sensitive![thresholdColumn!],
      )
    : undefined;
  let baseline: { name: string; yPred: number[] } | undefined;
  if (o.baseline) {
    const b = await resolveModelRef(o.baseline, o.home);
    if (b.info.labels.join('\u0000') !== labels.join('\u0000'))
      throw new ConfigError(`--baseline ${o.baseline} has labels [${b.info.labels.join(', ')}], unlike ${o.model}'s`, {
        field: 'baseline',
      });
    const bl = await predictTexts(b.model, texts, {
      maxLength: o.maxLength ?? b.info.maxLength,
      providers,
      onProgress: (d, t) => progress?.stage?.('scoring baseline', d, t),
    });
    baseline = { name: o.baseline, yPred: argmaxRows(bl.logits, bl.classes) };
  }
  let behaviour: BehaviourReport | undefined;
  if (o.behaviour || o.maxFlipRate !== undefined) {
    behaviour = await runBehaviourTests(
      texts,
      async (batch) => {
        const r = await predictTexts(m.model, batch, { maxLength, providers });
        return Array.from({ length: batch.length }, (_, i) => {
          const probabilities = softmax(r.logits.subarray(i * r.classes, (i + 1) * r.classes));
          return { label: labels[argmax(probabilities)], probabilities };
        });
      },
      { seed: o.seed, templates: o.nameTemplate, batchSize: 4096 },
    );
  }
  let latency: EvalReport['latency'];
  let profile = '';
  if (o.latency || o.profile) {
    const session = await Session.create(toOnnxModel(m.model), {
      providers,
      profile: o.profile === true,
      label: o.model,
    });
    try {
      const run = sessionRunner(
        session,
        (n) =>
          textFeeds(
            m.model,
            Array.from({ length: n }, (_, i) => texts[i % texts.length]),
            { maxLength },
          ),
        ['logits'],
      );
      if (o.latency)
        latency = await measureLatency(run, { iterations: 30, throughputBatchSize: 8, throughputIterations: 5 });
      else for (let i = 0; i < 10; i++) await run(1);
      if (o.profile) profile = formatProfile(await session.endProfiling());
    } finally {
      await session.release();
    }
  }
  const report = await evaluate({
    labels,
    yTrue,
    scores: Array.from({ length: rows.length }, (_, i) => logits.subarray(i * classes, (i + 1) * classes)),
    scoresAre: 'logits',
    ...(yPred ? { yPred } : {}),
    model: o.model,
    datasetFingerprint: data.fingerprint,
    ...(baseline ? { baseline } : {}),
    modelPath: m.dir,
    parameters: [...m.model.params.values()].map((p) => ({ name: p.path, shape: p.shape, trainable: false })),
    bootstrap: { iterations: o.bootstrap, seed: o.seed },
    ...(sensitive ? { sensitive, minGroupSize: o.minGroupSize } : {}),
    ...(o.positiveLabel ? { positiveLabels: o.positiveLabel } : {}),
  });
  if (latency) report.latency = latency;
  const rule = await readAbstainRule(m.dir, labels);
  let outOfScope: OutOfScopeReport | undefined;
  if (o.oosLabel !== undefined || rule) {
    const extra = oosRows.length
      ? await predictTexts(
          m.model,
          oosRows.map((r) => r.text),
          { maxLength, providers },
        )
      : undefined;
    const rowsOf = (l: Float32Array, n: number): Float32Array[] =>
      Array.from({ length: n }, (_, i) => l.subarray(i * classes, (i + 1) * classes));
    outOfScope = outOfScopeReport({
      labels,
      logits: [...rowsOf(logits, rows.length), ...(extra ? rowsOf(extra.logits, oosRows.length) : [])],
      yTrue: [...rows, ...oosRows].map((r) => r.label),
      ...(o.oosLabel !== undefined ? { oosLabel: o.oosLabel } : {}),
      ...(rule ? { rule } : {}),
      trainedClass: o.oosLabel !== undefined && index.has(o.oosLabel),
    });
  }
  const gate: BudgetResult | undefined =
    Object.keys(budget).length > 0
      ? checkFairnessBudget(budget, { fairness: report.disaggregated, behaviour })
      : undefined;
  return {
    report,
    ...(thresholds
      ? {
          groupThresholds: {
            column: thresholdColumn!,
            thresholds: thresholds.spec.thresholds,
            positiveLabel: thresholds.spec.positiveLabel,
          },
        }
      : {}),
    ...(behaviour ? { behaviour } : {}),
    ...(gate ? { fairnessBudget: gate } : {}),
    ...(profile ? { profile } : {}),
    ...(outOfScope ? { outOfScope } : {}),
  };
}
