/**
 * Out-of-scope detection in the product loop (`tailorModel`'s `oosLabel` and `abstain` options, `tailor customize
 * --oos-label --abstain`): the data's out-of-scope rows are set aside unless train has them as a class, the abstain
 * rule is fitted on the final model's validation logits (eval/abstain.ts), and the eval rows are scored for in-scope
 * accuracy and out-of-scope recall, without and with abstention.
 */
import { ConfigError } from '../errors.ts';
import {
  abstainedLabel,
  argmax,
  checkAbstainOptions,
  fitAbstainRule,
  outOfScopeMetrics,
  type AbstainRule,
  type AbstainScore,
  type OutOfScopeReport,
} from '../eval/index.ts';
import type { PreparedDataset } from '../data/index.ts';
import type { TextExample } from '../data/types.ts';
import type { Model } from '../models/model.ts';
import { predictTexts } from '../models/text.ts';
import type { ProviderSpec } from '../runtime/session.ts';

/** `tailorModel`'s `abstain` option: fit an abstain rule on validation and store it with the model (abstain.json). */
export interface TailorAbstainOptions {
  /** Default 'msp'. */
  score?: AbstainScore;
  /** Target share of in-scope validation rows rejected, in (0, 1); default 0.05. */
  targetFrr?: number;
  /** Target share of accepted validation rows that are in scope, in (0, 1): needs out-of-scope validation rows. */
  targetPrecision?: number;
  /** Energy temperature (default 1). */
  temperature?: number;
  /**
   * Out-of-scope validation texts besides the validation rows labelled `oosLabel`: they let the fit report
   * out-of-scope recall, and `targetPrecision` needs some.
   */
  oosValidation?: readonly string[];
}

/** Checks `oosLabel` and `abstain` before any data is read. */
export function checkOutOfScopeOptions(o: { oosLabel?: string; abstain?: TailorAbstainOptions }): void {
  if (o.oosLabel !== undefined && (typeof o.oosLabel !== 'string' || o.oosLabel.trim() === ''))
    throw new ConfigError(`oosLabel (--oos-label) must be a non-empty label, got ${JSON.stringify(o.oosLabel)}`, {
      field: 'oosLabel',
      value: String(o.oosLabel),
    });
  if (o.abstain) checkAbstainOptions(o.abstain);
}

/** The data with the out-of-scope rows of an untrained out-of-scope label set aside. */
export interface OutOfScopeSplit {
  /** The data for the audit and customize: every label of it is a class. */
  data: PreparedDataset;
  /** Whether train has `oosLabel` as a class (then nothing was set aside). */
  trained: boolean;
  /** Out-of-scope validation and eval rows set aside. */
  validation: TextExample[];
  eval: TextExample[];
}

/**
 * Sets aside the validation and eval rows labelled `oosLabel` when train does not have it (they cannot be a class);
 * a label found in no split at all is a ConfigError (a misspelt `--oos-label` must not pass silently).
 */
export function splitOutOfScope(data: PreparedDataset, oosLabel: string | undefined): OutOfScopeSplit {
  if (oosLabel === undefined) return { data, trained: false, validation: [], eval: [] };
  const trained = data.labels.includes(oosLabel);
  const isOos = (e: TextExample): boolean => e.label === oosLabel;
  const validation = trained ? [] : data.validation.filter(isOos);
  const evalRows = trained ? [] : (data.eval ?? []).filter(isOos);
  if (!trained && validation.length === 0 && evalRows.length === 0)
    throw new ConfigError(
      `no row of the train, validation or eval data has the out-of-scope label '${oosLabel}' (--oos-label); labels are ${data.labels.slice(0, 10).join(', ')}${data.labels.length > 10 ? ', ...' : ''}`,
      { field: 'oosLabel', value: oosLabel },
    );
  if (trained) return { data, trained, validation, eval: evalRows };
  return {
    data: {
      ...data,
      validation: data.validation.filter((e) => !isOos(e)),
      ...(data.eval ? { eval: data.eval.filter((e) => !isOos(e)) } : {}),
    },
    trained,
    validation,
    eval: evalRows,
  };
}

/**
 * Fails before training when `abstain.targetPrecision` has no out-of-scope validation rows to be measured on (the
 * validation rows labelled `oosLabel`, those set aside, or `abstain.oosValidation`).
 */
export function checkPrecisionTarget(
  split: OutOfScopeSplit,
  o: { oosLabel?: string; abstain?: TailorAbstainOptions },
): void {
  if (o.abstain?.targetPrecision === undefined) return;
  const n =
    split.validation.length +
    (o.abstain.oosValidation?.length ?? 0) +
    (split.trained ? split.data.validation.filter((e) => e.label === o.oosLabel).length : 0);
  if (n === 0)
    throw new ConfigError(
      `abstain.targetPrecision (--abstain-precision) needs out-of-scope validation rows: ${o.oosLabel === undefined ? 'name their label with oosLabel (--oos-label)' : `no validation row is labelled '${o.oosLabel}'`}, or pass abstain.oosValidation texts`,
      { field: 'abstain.targetPrecision' },
    );
}

/** What `outOfScopeStage` needs: the final model, the split data and the eval logits already computed. */
export interface OutOfScopeStageInput {
  model: Model;
  labels: readonly string[];
  oosLabel?: string;
  abstain?: TailorAbstainOptions;
  split: OutOfScopeSplit;
  /** The validation rows customize used (with an out-of-scope class: its rows too). */
  validation: readonly TextExample[];
  /** The eval rows the model was scored on, and their logits (row-major, one row per label set). */
  evalSet: readonly TextExample[];
  evalLogits: Float32Array;
  maxLength: number;
  providers?: ProviderSpec[];
}

/**
 * Fits the abstain rule (with `abstain`) and measures out-of-scope detection on the eval rows plus the out-of-scope
 * eval rows set aside. Returns nothing when there is neither an `oosLabel` nor an `abstain` option.
 */
export async function outOfScopeStage(
  input: OutOfScopeStageInput,
): Promise<{ report?: OutOfScopeReport; rule?: AbstainRule }> {
  const { model, labels, oosLabel, abstain, split, maxLength, providers } = input;
  if (oosLabel === undefined && !abstain) return {};
  const k = labels.length;
  const logitRows = async (texts: string[]): Promise<Float32Array[]> => {
    if (texts.length === 0) return [];
    const r = await predictTexts(model, texts, { maxLength, providers, batchSize: 32 });
    return texts.map((_, i) => r.logits.subarray(i * k, (i + 1) * k));
  };
  let rule: AbstainRule | undefined;
  if (abstain) {
    const isOos = (e: TextExample): boolean => oosLabel !== undefined && e.label === oosLabel;
    const inScope = input.validation.filter((e) => !isOos(e)).map((e) => e.text);
    const outOfScope = [
      ...input.validation.filter(isOos).map((e) => e.text),
      ...split.validation.map((e) => e.text),
      ...(abstain.oosValidation ?? []),
    ];
    const rows = await logitRows([...inScope, ...outOfScope]);
    rule = fitAbstainRule({
      labels,
      ...(abstain.score !== undefined ? { score: abstain.score } : {}),
      ...(abstain.temperature !== undefined ? { temperature: abstain.temperature } : {}),
      ...(abstain.targetFrr !== undefined ? { targetFrr: abstain.targetFrr } : {}),
      ...(abstain.targetPrecision !== undefined ? { targetPrecision: abstain.targetPrecision } : {}),
      inScope: rows.slice(0, inScope.length),
      outOfScope: rows.slice(inScope.length),
      ...(split.trained ? { outOfScopeClass: oosLabel } : {}),
    });
  }
  const rows = [
    ...input.evalSet.map((_, i) => input.evalLogits.subarray(i * k, (i + 1) * k)),
    ...(await logitRows(split.eval.map((e) => e.text))),
  ];
  const yTrue = [...input.evalSet, ...split.eval].map((e) => e.label);
  return {
    report: outOfScopeReport({ labels, logits: rows, yTrue, oosLabel, rule, trainedClass: split.trained }),
    ...(rule ? { rule } : {}),
  };
}

/**
 * In-scope accuracy and out-of-scope recall of logit rows against their true labels, by argmax and (with `rule`)
 * through the abstain rule; rows labelled `oosLabel` are out of scope.
 */
export function outOfScopeReport(input: {
  labels: readonly string[];
  logits: readonly ArrayLike<number>[];
  yTrue: readonly string[];
  oosLabel?: string;
  rule?: AbstainRule;
  trainedClass: boolean;
}): OutOfScopeReport {
  const { labels, logits, yTrue, oosLabel, rule } = input;
  const plain = logits.map((r) => labels[argmax(r)]);
  const opts = oosLabel !== undefined ? { oosLabel } : {};
  return {
    ...(oosLabel !== undefined ? { oosLabel } : {}),
    trainedClass: input.trainedClass,
    withoutAbstention: outOfScopeMetrics(yTrue, plain, opts),
    ...(rule
      ? {
          withAbstention: outOfScopeMetrics(
            yTrue,
            logits.map((r, i) => abstainedLabel(plain[i], r, rule)),
            opts,
          ),
          abstain: rule.toJSON(),
        }
      : {}),
  };
}
