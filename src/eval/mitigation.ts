/**
 * Mitigation of group disparities.
 * - Post-processing (Fairlearn's ThresholdOptimizer idea, Hardt et al. 2016): one decision threshold per group on
 *   the positive class's probability, chosen on validation data to maximise accuracy under a parity constraint.
 *   Unlike Fairlearn, the thresholds are deterministic (no randomisation between two thresholds), so parity is met
 *   to within what the validation scores allow; the achieved difference is reported, not assumed.
 *   Multi-class: one class is the favourable outcome; its probability is thresholded per group, and an example
 *   below the threshold gets the most probable of the other classes.
 * - Pre-processing (AIF360's Reweighing, Kamiran & Calders 2012): sample weights w(g, y) = P(g) P(y) / P(g, y) that
 *   make label and group independent in the weighted training set.
 */
import { ConfigError } from '../errors.ts';

/** Which rate the thresholds equalise across groups. */
export type ParityConstraint = 'demographic_parity' | 'true_positive_rate_parity';

export interface ThresholdStats {
  accuracy: number;
  /** Max − min selection rate of the positive class over the groups that have thresholds. */
  demographicParityDifference: number;
  /** Max − min true-positive rate of the positive class over the same groups. */
  equalOpportunityDifference: number;
}

/** The serialisable form, stored with a model. */
export interface GroupThresholdSpec {
  kind: 'tailor.group-thresholds';
  version: 1;
  labels: string[];
  positiveLabel: string;
  constraint: ParityConstraint;
  tolerance: number;
  /** Group → threshold on P(positive): positive when P ≥ threshold. 2 means never, 0 always. */
  thresholds: Record<string, number>;
  /** On the validation data the thresholds were chosen on: the model's argmax vs the thresholds. */
  validation: { count: number; before: ThresholdStats; after: ThresholdStats };
}

export interface FitThresholdsInput {
  labels: string[];
  /** Default: the second label of a two-class task; required for multi-class. */
  positiveLabel?: string;
  /** Validation class probabilities, one row per example, columns in `labels` order. */
  probabilities: ArrayLike<ArrayLike<number>>;
  yTrue: ArrayLike<number>;
  groups: ArrayLike<string>;
  /** Default 'demographic_parity'. */
  constraint?: ParityConstraint;
  /** Largest allowed difference of the constrained rate between groups. Default 0.02. */
  tolerance?: number;
  /** Target rates tried between 0 and 1. Default 201. */
  gridSize?: number;
  /** Groups with fewer validation examples keep the model's argmax (no threshold). Default 30. */
  minGroupSize?: number;
}

/** Group-specific thresholds: `apply` turns one probability row and a group into a class id. */
export class GroupThresholds {
  readonly spec: GroupThresholdSpec;
  private readonly pos: number;

  constructor(spec: GroupThresholdSpec) {
    this.spec = spec;
    this.pos = spec.labels.indexOf(spec.positiveLabel);
  }

  /**
   * The class for one example: the positive class when its probability reaches the group's threshold, otherwise
   * the most probable other class. A group without a threshold (unseen, or too small on validation) gets argmax.
   */
  apply(probabilities: ArrayLike<number>, group: string): number {
    if (probabilities.length !== this.spec.labels.length)
      throw new ConfigError(
        `probabilities has ${probabilities.length} entries, expected ${this.spec.labels.length} (one per label)`,
        { field: 'probabilities' },
      );
    const t = Object.hasOwn(this.spec.thresholds, group) ? this.spec.thresholds[group] : undefined;
    if (t === undefined) return argmaxOf(probabilities);
    return probabilities[this.pos] >= t ? this.pos : argmaxExcept(probabilities, this.pos);
  }

  /** apply over rows. */
  predict(probabilities: ArrayLike<ArrayLike<number>>, groups: ArrayLike<string>): number[] {
    if (groups.length !== probabilities.length)
      throw new ConfigError(`groups has ${groups.length} entries but there are ${probabilities.length} rows`, {
        field: 'groups',
      });
    return Array.from(probabilities, (row, i) => this.apply(row, groups[i]));
  }

  toJSON(): GroupThresholdSpec {
    return this.spec;
  }

  /** Reads a spec back (e.g. from a model folder's JSON), checking every field; `source` names it in errors. */
  static fromJSON(value: unknown, source = 'thresholds'): GroupThresholds {
    const bad = (field: string, why: string): never => {
      throw new ConfigError(`${source}: ${field} ${why}`, { file: source, field });
    };
    if (typeof value !== 'object' || value === null) return bad('(root)', 'is not an object');
    const v = value as Record<string, unknown>;
    if (v.kind !== 'tailor.group-thresholds')
      bad('kind', `is ${JSON.stringify(v.kind)}, expected "tailor.group-thresholds"`);
    if (v.version !== 1) bad('version', `is ${JSON.stringify(v.version)}, expected 1`);
    if (!Array.isArray(v.labels) || v.labels.length < 2 || !v.labels.every((l) => typeof l === 'string'))
      bad('labels', 'must be an array of at least two strings');
    const labels = v.labels as string[];
    if (typeof v.positiveLabel !== 'string' || !labels.includes(v.positiveLabel))
      bad('positiveLabel', `must be one of the labels, got ${JSON.stringify(v.positiveLabel)}`);
    if (v.constraint !== 'demographic_parity' && v.constraint !== 'true_positive_rate_parity')
      bad('constraint', `is ${JSON.stringify(v.constraint)}`);
    if (typeof v.thresholds !== 'object' || v.thresholds === null || Array.isArray(v.thresholds))
      bad('thresholds', 'must be an object of group → number');
    for (const [g, t] of Object.entries(v.thresholds as Record<string, unknown>))
      if (typeof t !== 'number' || !Number.isFinite(t)) bad(`thresholds.${g}`, `is ${JSON.stringify(t)}, not a number`);
    return new GroupThresholds(value as GroupThresholdSpec);
  }
}

function argmaxOf(row: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

function argmaxExcept(row: ArrayLike<number>, skip: number): number {
  let best = -1;
  for (let j = 0; j < row.length; j++) if (j !== skip && (best < 0 || row[j] > row[best])) best = j;
  return best;
}

/** Accuracy and the positive class's parity gaps of `yPred` over the groups in `judged`. */
export function thresholdStats(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  groups: ArrayLike<string>,
  positive: number,
  judged: ReadonlySet<string>,
): ThresholdStats {
  let correct = 0;
  const by = new Map<string, { n: number; sel: number; pos: number; tp: number }>();
  for (let i = 0; i < yTrue.length; i++) {
    if (yTrue[i] === yPred[i]) correct++;
    if (!judged.has(groups[i])) continue;
    let s = by.get(groups[i]);
    if (!s) by.set(groups[i], (s = { n: 0, sel: 0, pos: 0, tp: 0 }));
    s.n++;
    if (yPred[i] === positive) s.sel++;
    if (yTrue[i] === positive) {
      s.pos++;
      if (yPred[i] === positive) s.tp++;
    }
  }
  const sel = [...by.values()].map((s) => s.sel / s.n);
  const tpr = [...by.values()].map((s) => (s.pos ? s.tp / s.pos : 0));
  const spread = (v: number[]): number => (v.length < 2 ? 0 : Math.max(...v) - Math.min(...v));
  return {
    accuracy: yTrue.length ? correct / yTrue.length : 0,
    demographicParityDifference: spread(sel),
    equalOpportunityDifference: spread(tpr),
  };
}

/**
 * Threshold that selects the top `k` of `sortedDesc`: the midpoint between the k-th and (k+1)-th score, the lowest
 * score itself for all of them (so for TPR targets it does not also take every negative below), 2 for none.
 */
function thresholdFor(sortedDesc: number[], k: number): number {
  if (k <= 0) return 2;
  if (k >= sortedDesc.length) return sortedDesc[sortedDesc.length - 1];
  return (sortedDesc[k - 1] + sortedDesc[k]) / 2;
}

/**
 * Chooses one threshold per group on validation data: for each target rate on a grid, every group gets the
 * threshold closest to that rate (selection rate, or true-positive rate); the target with the best accuracy among
 * those whose achieved difference is within `tolerance` wins (if none is, the smallest difference wins).
 */
export function fitGroupThresholds(input: FitThresholdsInput): GroupThresholds {
  const { labels, probabilities, yTrue, groups } = input;
  const n = yTrue.length;
  const k = labels.length;
  const constraint = input.constraint ?? 'demographic_parity';
  const tolerance = input.tolerance ?? 0.02;
  const gridSize = input.gridSize ?? 201;
  const minGroupSize = input.minGroupSize ?? 30;
  if (k < 2) throw new ConfigError(`thresholds need at least two labels, got ${k}`, { field: 'labels' });
  if (input.positiveLabel === undefined && k !== 2)
    throw new ConfigError(`a ${k}-class task needs positiveLabel: the class whose probability is thresholded`, {
      field: 'positiveLabel',
    });
  const positiveLabel = input.positiveLabel ?? labels[1];
  const pos = labels.indexOf(positiveLabel);
  if (pos < 0)
    throw new ConfigError(`positive label "${positiveLabel}" is not one of the labels`, {
      field: 'positiveLabel',
      value: positiveLabel,
    });
  if (constraint !== 'demographic_parity' && constraint !== 'true_positive_rate_parity')
    throw new ConfigError(
      `unknown constraint "${String(constraint)}" (demographic_parity, true_positive_rate_parity)`,
      {
        field: 'constraint',
        value: String(constraint),
      },
    );
  if (!(tolerance >= 0 && tolerance <= 1))
    throw new ConfigError(`tolerance must be in [0, 1], got ${tolerance}`, {
      field: 'tolerance',
      value: String(tolerance),
    });
  if (!Number.isInteger(gridSize) || gridSize < 2)
    throw new ConfigError(`gridSize must be an integer >= 2, got ${gridSize}`, { field: 'gridSize' });
  if (probabilities.length !== n || groups.length !== n)
    throw new ConfigError(
      `probabilities (${probabilities.length}), yTrue (${n}) and groups (${groups.length}) differ in length`,
      { field: 'probabilities' },
    );
  for (let i = 0; i < n; i++) {
    if (probabilities[i].length !== k)
      throw new ConfigError(`probabilities row ${i} has ${probabilities[i].length} entries, expected ${k}`, {
        field: 'probabilities',
      });
    if (!Number.isInteger(yTrue[i]) || yTrue[i] < 0 || yTrue[i] >= k)
      throw new ConfigError(`yTrue[${i}] = ${yTrue[i]} is not a class id in [0, ${k})`, { field: 'yTrue' });
  }

  const score = Float64Array.from(probabilities, (row) => row[pos]);
  const other = Int32Array.from(probabilities, (row) => argmaxExcept(row, pos));
  const base = Array.from(probabilities, argmaxOf);
  const members = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const l = members.get(groups[i]);
    if (l) l.push(i);
    else members.set(groups[i], [i]);
  }
  const fitted = [...members.keys()].filter((g) => members.get(g)!.length >= minGroupSize).sort();
  if (fitted.length < 2)
    throw new ConfigError(
      `thresholds need at least two groups with ${minGroupSize} or more validation examples, found ${fitted.length}`,
      { field: 'groups' },
    );
  const judged = new Set(fitted);
  // Scores each group's threshold is placed between: all its scores (selection rate) or its positives' (TPR).
  const sorted = new Map(
    fitted.map((g) => {
      const ids = members.get(g)!;
      const use = constraint === 'demographic_parity' ? ids : ids.filter((i) => yTrue[i] === pos);
      return [g, use.map((i) => score[i]).sort((a, b) => b - a)];
    }),
  );

  const predictWith = (thr: Map<string, number>): Int32Array =>
    Int32Array.from(base, (b, i) => {
      const t = thr.get(groups[i]);
      return t === undefined ? b : score[i] >= t ? pos : other[i];
    });
  let best: { thr: Map<string, number>; stats: ThresholdStats; gap: number } | undefined;
  for (let s = 0; s < gridSize; s++) {
    const rate = s / (gridSize - 1);
    const thr = new Map<string, number>();
    for (const g of fitted) {
      const sc = sorted.get(g)!;
      // A group without positives cannot be placed on a TPR target: it keeps the model's own 0.5 point.
      thr.set(g, sc.length === 0 ? 0.5 : thresholdFor(sc, Math.round(rate * sc.length)));
    }
    const stats = thresholdStats(yTrue, predictWith(thr), groups, pos, judged);
    const gap =
      constraint === 'demographic_parity' ? stats.demographicParityDifference : stats.equalOpportunityDifference;
    const ok = gap <= tolerance + 1e-12;
    const bestOk = best !== undefined && best.gap <= tolerance + 1e-12;
    const better =
      best === undefined ||
      (ok && !bestOk) ||
      (ok && bestOk && stats.accuracy > best.stats.accuracy) ||
      (!ok && !bestOk && (gap < best.gap || (gap === best.gap && stats.accuracy > best.stats.accuracy)));
    if (better) best = { thr, stats, gap };
  }
  const before = thresholdStats(yTrue, base, groups, pos, judged);
  return new GroupThresholds({
    kind: 'tailor.group-thresholds',
    version: 1,
    labels: [...labels],
    positiveLabel,
    constraint,
    tolerance,
    thresholds: Object.fromEntries(best!.thr),
    validation: { count: n, before, after: best!.stats },
  });
}

export interface ReweighingFactor {
  group: string;
  label: string;
  count: number;
  weight: number;
}

/**
 * AIF360's Reweighing weights: w(g, y) = P(g) P(y) / P(g, y) = n_g n_y / (n n_gy), one per example. Weighted, every
 * group has the overall label distribution; the weights sum to n. Works for any number of groups and labels.
 */
export function reweighingWeights(
  labels: ArrayLike<string>,
  groups: ArrayLike<string>,
): { weights: Float64Array; factors: ReweighingFactor[] } {
  const n = labels.length;
  if (groups.length !== n)
    throw new ConfigError(`groups has ${groups.length} entries but there are ${n} labels`, { field: 'groups' });
  if (n === 0) throw new ConfigError('reweighing needs at least one example', { field: 'labels' });
  const ng = new Map<string, number>();
  const ny = new Map<string, number>();
  const ngy = new Map<string, number>();
  const cell = (g: string, y: string): string => JSON.stringify([g, y]);
  for (let i = 0; i < n; i++) {
    ng.set(groups[i], (ng.get(groups[i]) ?? 0) + 1);
    ny.set(labels[i], (ny.get(labels[i]) ?? 0) + 1);
    const c = cell(groups[i], labels[i]);
    ngy.set(c, (ngy.get(c) ?? 0) + 1);
  }
  const w = (g: string, y: string): number => (ng.get(g)! * ny.get(y)!) / (n * ngy.get(cell(g, y))!);
  const weights = Float64Array.from({ length: n }, (_, i) => w(groups[i], labels[i]));
  const factors = [...ngy.keys()]
    .map((c) => JSON.parse(c) as [string, string])
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
    .map(([group, label]) => ({ group, label, count: ngy.get(cell(group, label))!, weight: w(group, label) }));
  return { weights, factors };
}
