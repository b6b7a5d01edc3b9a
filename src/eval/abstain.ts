/**
 * Out-of-scope detection by abstention: a classifier trained on a closed set of intents answers every input with
 * one of them, so an input outside them ("what's the weather on Mars" to a banking assistant; CLINC150's "oos"
 * queries, Larson et al. 2019) gets a confident wrong intent. An abstain rule scores each row's logits and answers
 * `OUT_OF_SCOPE` below a threshold chosen on validation data:
 *
 * - `msp`: the maximum softmax probability (Hendrycks & Gimpel 2017), scored as its logarithm: the same order, but a
 *   confident row's MSP rounds to 1 in floating point (from a logit margin of about 37) while its log keeps apart
 *   rows that would otherwise tie at 1, so a threshold can still be placed among them;
 * - `energy`: the negative free energy T·logsumexp(logits / T) (Liu et al. 2020), which unlike the MSP keeps the
 *   logits' scale (an input far from every class has small logits everywhere, not only a flat softmax).
 *
 * Both are "higher = more in scope", and a row is rejected when its score is strictly below the threshold. The
 * threshold is placed for a target in-scope false-rejection rate (the share of in-scope validation rows rejected),
 * or, with out-of-scope validation rows, for a target in-scope precision (the share of accepted rows that are in
 * scope). A model trained with an explicit out-of-scope class rejects rows it predicts as that class anyway; the
 * rule then rejects more on top, and the targets count both.
 */
import { ConfigError } from '../errors.ts';
import { renderTable } from '../util/table.ts';

/** The label of an abstained prediction (never one of a model's own labels). */
export const OUT_OF_SCOPE = '__out_of_scope__';

/** The abstention scores. */
export const ABSTAIN_SCORES = ['msp', 'energy'] as const;
export type AbstainScore = (typeof ABSTAIN_SCORES)[number];

/** Default target in-scope false-rejection rate: 5% of in-scope validation rows rejected. */
export const DEFAULT_TARGET_FRR = 0.05;

/** How the threshold was chosen. */
export type AbstainTarget = { kind: 'false_rejection_rate'; value: number } | { kind: 'precision'; value: number };

/** The rule's figures on the validation rows it was fitted on. */
export interface AbstainValidation {
  inScope: number;
  outOfScope: number;
  /** In-scope rows rejected (abstained, or predicted as the out-of-scope class). */
  falseRejectionRate: number;
  /** Out-of-scope rows rejected; null without out-of-scope rows. */
  outOfScopeRecall: number | null;
  /** Share of accepted rows that are in scope; null without out-of-scope rows. */
  inScopePrecision: number | null;
  /** Whether the target was reached (a precision target may be out of reach of the scores). */
  targetMet: boolean;
}

/** The serialisable form, stored with a model (models/abstain.ts). */
export interface AbstainSpec {
  kind: 'tailor.abstain';
  version: 1;
  labels: string[];
  score: AbstainScore;
  /** Energy temperature T (1 for msp, where it is unused). */
  temperature: number;
  /** A row is rejected when its score is below this (for msp: the log of the MSP). */
  threshold: number;
  target: AbstainTarget;
  /** A label of the model that itself means "out of scope" (trained as a class), if any. */
  outOfScopeClass?: string;
  validation: AbstainValidation;
}

/** The score of one row of logits: higher means more in scope (msp: log MSP; energy: T·logsumexp(logits / T)). */
export function abstainScore(logits: ArrayLike<number>, score: AbstainScore, temperature = 1): number {
  let top = 0;
  for (let j = 1; j < logits.length; j++) if (logits[j] > logits[top]) top = j;
  const max = logits[top];
  if (score === 'msp') {
    // log max_j softmax(l)_j = −log(1 + Σ_{j≠top} exp(l_j − max)); log1p keeps the tiny sums of confident rows.
    let rest = 0;
    for (let j = 0; j < logits.length; j++) if (j !== top) rest += Math.exp(logits[j] - max);
    return -Math.log1p(rest);
  }
  // T·logsumexp(l / T), shifted by the maximum so large logits do not overflow.
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += Math.exp((logits[j] - max) / temperature);
  return max + temperature * Math.log(sum);
}

/** A fitted abstain rule: `abstains(logits)` says whether a row is answered `OUT_OF_SCOPE`. */
export class AbstainRule {
  readonly spec: AbstainSpec;

  constructor(spec: AbstainSpec) {
    this.spec = spec;
  }

  /** The row's score (see `abstainScore`). */
  score(logits: ArrayLike<number>): number {
    if (logits.length !== this.spec.labels.length)
      throw new ConfigError(
        `logits has ${logits.length} entries, expected ${this.spec.labels.length} (one per label)`,
        { field: 'logits' },
      );
    return abstainScore(logits, this.spec.score, this.spec.temperature);
  }

  /** Whether the row is rejected: its score is below the threshold. */
  abstains(logits: ArrayLike<number>): boolean {
    return this.score(logits) < this.spec.threshold;
  }

  toJSON(): AbstainSpec {
    return this.spec;
  }

  /** Reads a spec back (e.g. from a model folder's JSON), checking every field; `source` names it in errors. */
  static fromJSON(value: unknown, source = 'abstain rule'): AbstainRule {
    const bad = (field: string, why: string): never => {
      throw new ConfigError(`${source}: ${field} ${why}`, { file: source, field });
    };
    if (typeof value !== 'object' || value === null) return bad('(root)', 'is not an object');
    const v = value as Record<string, unknown>;
    if (v.kind !== 'tailor.abstain') bad('kind', `is ${JSON.stringify(v.kind)}, expected "tailor.abstain"`);
    if (v.version !== 1) bad('version', `is ${JSON.stringify(v.version)}, expected 1`);
    if (!Array.isArray(v.labels) || v.labels.length < 2 || !v.labels.every((l) => typeof l === 'string'))
      bad('labels', 'must be an array of at least two strings');
    if (!ABSTAIN_SCORES.includes(v.score as AbstainScore))
      bad('score', `is ${JSON.stringify(v.score)}, expected one of ${ABSTAIN_SCORES.join(', ')}`);
    if (typeof v.temperature !== 'number' || !(v.temperature > 0) || !Number.isFinite(v.temperature))
      bad('temperature', `is ${JSON.stringify(v.temperature)}, expected a positive number`);
    if (typeof v.threshold !== 'number' || !Number.isFinite(v.threshold))
      bad('threshold', `is ${JSON.stringify(v.threshold)}, expected a finite number`);
    const t = v.target as Record<string, unknown> | undefined;
    if (
      typeof t !== 'object' ||
      t === null ||
      (t.kind !== 'false_rejection_rate' && t.kind !== 'precision') ||
      typeof t.value !== 'number'
    )
      bad('target', `is ${JSON.stringify(t)}, expected { kind: "false_rejection_rate" | "precision", value }`);
    if (v.outOfScopeClass !== undefined && !(v.labels as string[]).includes(v.outOfScopeClass as string))
      bad('outOfScopeClass', `is ${JSON.stringify(v.outOfScopeClass)}, which is not one of the labels`);
    return new AbstainRule(value as AbstainSpec);
  }
}

/**
 * The label to answer for one row: `label` (the model's choice), or `OUT_OF_SCOPE` when `rule` rejects the row's
 * logits. The one place `Classifier.predict` and the server's engines decide abstention.
 */
export function abstainedLabel(label: string, logits: ArrayLike<number>, rule: AbstainRule | undefined): string {
  return rule?.abstains(logits) ? OUT_OF_SCOPE : label;
}

/** What `fitAbstainRule` fits on. Logit rows are in the model's label order. */
export interface FitAbstainInput {
  labels: readonly string[];
  /** Default 'msp'. */
  score?: AbstainScore;
  /** Energy temperature T (default 1). */
  temperature?: number;
  /** Logits of the in-scope validation rows. */
  inScope: ArrayLike<ArrayLike<number>>;
  /** Logits of out-of-scope validation rows (optional; needed for `targetPrecision`). */
  outOfScope?: ArrayLike<ArrayLike<number>>;
  /** Target share of in-scope rows rejected, in (0, 1); default 0.05 (unless `targetPrecision` is given). */
  targetFrr?: number;
  /** Target share of accepted rows that are in scope, in (0, 1); needs `outOfScope` rows. */
  targetPrecision?: number;
  /** A label that itself means "out of scope" (a class trained on out-of-scope rows): rows predicted as it are rejected. */
  outOfScopeClass?: string;
}

function checkUnit(value: number, field: string, flag: string): void {
  if (!(typeof value === 'number' && value > 0 && value < 1))
    throw new ConfigError(`${field} must be in (0, 1) (${flag}), got ${value}`, { field, value: String(value) });
}

/**
 * Checks the choices of an abstain rule before any data is read (fitAbstainRule checks them again): a known score, a
 * positive temperature, targets in (0, 1) and at most one of them. Errors name the option and its CLI flag.
 */
export function checkAbstainOptions(
  o: Pick<FitAbstainInput, 'score' | 'temperature' | 'targetFrr' | 'targetPrecision'>,
): void {
  if (o.score !== undefined && !ABSTAIN_SCORES.includes(o.score))
    throw new ConfigError(
      `abstain.score is "${String(o.score)}" (--abstain), expected one of ${ABSTAIN_SCORES.join(', ')}`,
      { field: 'abstain.score', value: String(o.score) },
    );
  if (o.temperature !== undefined && !(o.temperature > 0 && Number.isFinite(o.temperature)))
    throw new ConfigError(`abstain.temperature must be a positive number, got ${o.temperature}`, {
      field: 'abstain.temperature',
      value: String(o.temperature),
    });
  if (o.targetPrecision !== undefined && o.targetFrr !== undefined)
    throw new ConfigError(
      'give abstain.targetFrr (--abstain-frr) or abstain.targetPrecision (--abstain-precision), not both',
      { field: 'abstain.targetPrecision' },
    );
  if (o.targetFrr !== undefined) checkUnit(o.targetFrr, 'abstain.targetFrr', '--abstain-frr');
  if (o.targetPrecision !== undefined) checkUnit(o.targetPrecision, 'abstain.targetPrecision', '--abstain-precision');
}

/**
 * Chooses the threshold (see the module comment).
 * - False-rejection target t over n in-scope rows: r = ⌊t·n⌋ rows may be rejected; the threshold is the midpoint of
 *   the r-th and (r+1)-th lowest scores (ties at it are accepted, so the achieved rate is at most t), the lowest
 *   score itself when r = 0.
 * - Precision target p: the lowest threshold (the most rows accepted) at which the accepted rows are at least a
 *   share p in scope; when no threshold reaches p, the one with the highest precision (`targetMet: false`).
 */
export function fitAbstainRule(input: FitAbstainInput): AbstainRule {
  const labels = [...input.labels];
  const k = labels.length;
  const score = input.score ?? 'msp';
  const temperature = input.temperature ?? 1;
  const outOfScope = input.outOfScope ?? [];
  if (k < 2) throw new ConfigError(`an abstain rule needs at least two labels, got ${k}`, { field: 'labels' });
  checkAbstainOptions({ score, temperature, targetFrr: input.targetFrr, targetPrecision: input.targetPrecision });
  if (input.targetPrecision !== undefined && outOfScope.length === 0)
    throw new ConfigError(
      'abstain.targetPrecision needs out-of-scope validation rows (the share of accepted rows that are in scope cannot be measured without them)',
      { field: 'abstain.targetPrecision' },
    );
  const oosClass = input.outOfScopeClass === undefined ? -1 : labels.indexOf(input.outOfScopeClass);
  if (input.outOfScopeClass !== undefined && oosClass < 0)
    throw new ConfigError(`out-of-scope class "${input.outOfScopeClass}" is not one of the model's labels`, {
      field: 'outOfScopeClass',
      value: input.outOfScopeClass,
    });
  const n = input.inScope.length;
  if (n === 0) throw new ConfigError('an abstain rule needs in-scope validation rows, got none', { field: 'inScope' });
  const rows = (set: ArrayLike<ArrayLike<number>>, name: string): Array<number | null> =>
    Array.from(set, (row, i) => {
      if (row.length !== k)
        throw new ConfigError(`${name} row ${i} has ${row.length} logits, expected ${k}`, { field: name });
      let best = 0;
      for (let j = 1; j < k; j++) if (row[j] > row[best]) best = j;
      // null: rejected by the model itself (predicted as the out-of-scope class).
      return best === oosClass ? null : abstainScore(row, score, temperature);
    });
  const inScores = rows(input.inScope, 'inScope');
  const oosScores = rows(outOfScope, 'outOfScope');
  const inOpen = inScores.filter((s): s is number => s !== null).sort((a, b) => a - b);
  if (inOpen.length === 0)
    throw new ConfigError(
      `every in-scope validation row is predicted as the out-of-scope class "${input.outOfScopeClass}"`,
      { field: 'outOfScopeClass' },
    );

  let threshold: number;
  let target: AbstainTarget;
  let targetMet: boolean;
  if (input.targetPrecision === undefined) {
    const t = input.targetFrr ?? DEFAULT_TARGET_FRR;
    target = { kind: 'false_rejection_rate', value: t };
    // Rows the model already rejects count against the budget (the epsilon absorbs 0.05 * 900 = 45.000000000000004).
    const r = Math.floor(t * n + 1e-9) - (n - inOpen.length);
    threshold = r <= 0 ? inOpen[0] : (inOpen[r - 1] + inOpen[r]) / 2;
    targetMet = (n - inOpen.length) / n <= t;
  } else {
    const p = input.targetPrecision;
    target = { kind: 'precision', value: p };
    const all = [
      ...inOpen.map((s) => ({ s, inScope: true })),
      ...oosScores.filter((s): s is number => s !== null).map((s) => ({ s, inScope: false })),
    ].sort((a, b) => a.s - b.s);
    let accIn = inOpen.length;
    let accAll = all.length;
    let best = { j: 0, precision: accIn / accAll };
    let chosen = -1;
    // Rejecting the j lowest rows, at boundaries between distinct scores (a threshold cannot split a tie).
    for (let j = 0; j < all.length; j++) {
      if (j === 0 || all[j - 1].s < all[j].s) {
        const precision = accIn / accAll;
        if (precision >= p) {
          chosen = j;
          break;
        }
        if (precision > best.precision) best = { j, precision };
      }
      if (all[j].inScope) accIn--;
      accAll--;
    }
    targetMet = chosen >= 0;
    const j = targetMet ? chosen : best.j;
    threshold = j === 0 ? all[0].s : (all[j - 1].s + all[j].s) / 2;
  }
  const rejected = (s: number | null): boolean => s === null || s < threshold;
  const inRejected = inScores.filter(rejected).length;
  const oosRejected = oosScores.filter(rejected).length;
  const accepted = n - inRejected + (oosScores.length - oosRejected);
  return new AbstainRule({
    kind: 'tailor.abstain',
    version: 1,
    labels,
    score,
    temperature,
    threshold,
    target,
    ...(input.outOfScopeClass !== undefined ? { outOfScopeClass: input.outOfScopeClass } : {}),
    validation: {
      inScope: n,
      outOfScope: oosScores.length,
      falseRejectionRate: inRejected / n,
      outOfScopeRecall: oosScores.length ? oosRejected / oosScores.length : null,
      inScopePrecision: oosScores.length && accepted ? (n - inRejected) / accepted : null,
      targetMet,
    },
  });
}

/** In-scope and out-of-scope figures of a set of predictions (see `outOfScopeMetrics`). */
export interface OutOfScopeMetrics {
  inScope: number;
  outOfScope: number;
  /** In-scope rows answered with their true label, over all in-scope rows (a rejection counts as wrong). */
  inScopeAccuracy: number | null;
  /** In-scope rows answered with their true label, over the in-scope rows that were not rejected. */
  acceptedAccuracy: number | null;
  /** In-scope rows rejected. */
  falseRejectionRate: number | null;
  /** Out-of-scope rows rejected. */
  outOfScopeRecall: number | null;
  /** Accepted rows that are in scope. */
  inScopePrecision: number | null;
}

/**
 * Metrics of predictions over in-scope and out-of-scope rows, by label: a row is out of scope when its true label is
 * `OUT_OF_SCOPE` or `oosLabel`, and a prediction is a rejection when it is `OUT_OF_SCOPE` or `oosLabel` (a model
 * trained with an explicit out-of-scope class rejects by predicting it). Zero denominators give null.
 */
export function outOfScopeMetrics(
  yTrue: readonly string[],
  yPred: readonly string[],
  opts: { oosLabel?: string } = {},
): OutOfScopeMetrics {
  if (yTrue.length !== yPred.length)
    throw new ConfigError(`yTrue has ${yTrue.length} entries but yPred has ${yPred.length}`, { field: 'yPred' });
  const oos = (l: string): boolean => l === OUT_OF_SCOPE || (opts.oosLabel !== undefined && l === opts.oosLabel);
  let inScope = 0;
  let outOfScope = 0;
  let correct = 0;
  let inRejected = 0;
  let oosRejected = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const rejected = oos(yPred[i]);
    if (oos(yTrue[i])) {
      outOfScope++;
      if (rejected) oosRejected++;
    } else {
      inScope++;
      if (rejected) inRejected++;
      else if (yPred[i] === yTrue[i]) correct++;
    }
  }
  const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);
  const accepted = inScope - inRejected + outOfScope - oosRejected;
  return {
    inScope,
    outOfScope,
    inScopeAccuracy: ratio(correct, inScope),
    acceptedAccuracy: ratio(correct, inScope - inRejected),
    falseRejectionRate: ratio(inRejected, inScope),
    outOfScopeRecall: ratio(oosRejected, outOfScope),
    inScopePrecision: ratio(inScope - inRejected, accepted),
  };
}

/** Out-of-scope figures of one model on one eval set, without and with its abstain rule (the CLI prints it). */
export interface OutOfScopeReport {
  /** The label naming out-of-scope rows in the data (`--oos-label`), if given. */
  oosLabel?: string;
  /** Whether the model has that label as a class (trained on out-of-scope rows). */
  trainedClass: boolean;
  /** Argmax predictions (a model with an out-of-scope class rejects by predicting it). */
  withoutAbstention: OutOfScopeMetrics;
  /** Predictions through the abstain rule, when the model has one. */
  withAbstention?: OutOfScopeMetrics;
  /** The rule (its score, threshold, target and validation figures). */
  abstain?: AbstainSpec;
}

/** "msp < 0.9512" (the log threshold as a probability, or as 1 − ε when that rounds to 1) or "energy < 7.412". */
export function thresholdText(a: Pick<AbstainSpec, 'score' | 'threshold'>): string {
  if (a.score !== 'msp') return `${a.score} < ${a.threshold.toPrecision(4)}`;
  const p = Math.exp(a.threshold);
  return p > 0.9999 ? `msp < 1 - ${(-Math.expm1(a.threshold)).toPrecision(3)}` : `msp < ${p.toPrecision(4)}`;
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(2)}%`);

/** The report as a table: one row per way of answering, in-scope accuracy to out-of-scope recall. */
export function formatOutOfScope(r: OutOfScopeReport): string {
  const m = r.withoutAbstention;
  const rows: Array<[string, OutOfScopeMetrics]> = [
    [r.trainedClass ? `argmax (class '${r.oosLabel}')` : 'argmax (no abstention)', m],
  ];
  if (r.withAbstention && r.abstain) rows.push([`abstain: ${thresholdText(r.abstain)}`, r.withAbstention]);
  const head = `Out-of-scope detection on ${m.inScope} in-scope and ${m.outOfScope} out-of-scope rows${r.oosLabel !== undefined ? ` (label '${r.oosLabel}')` : ''}:`;
  const table = renderTable(
    ['answers', 'in-scope accuracy', 'accuracy when answered', 'false rejections', 'out-of-scope recall'],
    rows.map(([name, x]) => [
      name,
      pct(x.inScopeAccuracy),
      pct(x.acceptedAccuracy),
      pct(x.falseRejectionRate),
      pct(x.outOfScopeRecall),
    ]),
    ['left', 'right', 'right', 'right', 'right'],
  );
  const a = r.abstain;
  const fit = a
    ? `\nthreshold fitted on ${a.validation.inScope} in-scope${a.validation.outOfScope ? ` and ${a.validation.outOfScope} out-of-scope` : ''} validation rows for ${a.target.kind === 'precision' ? `in-scope precision ${a.target.value}` : `false-rejection rate ${a.target.value}`}: achieved ${pct(a.validation.falseRejectionRate)} false rejections${a.validation.outOfScopeRecall !== null ? `, ${pct(a.validation.outOfScopeRecall)} out-of-scope recall` : ''}${a.validation.targetMet ? '' : ' (target not reached)'}`
    : '';
  return `${head}\n${table}${fit}`;
}
