/**
 * Disaggregated evaluation in the manner of Fairlearn's MetricFrame: every metric per group of one or more
 * sensitive columns and per intersection of them, the largest difference (max − min) and smallest ratio
 * (min / max) between groups with seeded bootstrap intervals, and the group-fairness disparities with the
 * definitions of src/eval/fairness.ts (demographic parity, equal opportunity, equalized odds) plus the
 * disparate impact ratio with the four-fifths flag.
 *
 * Two things differ from Fairlearn on purpose:
 * - groups smaller than `minGroupSize` are still shown but left out of every difference, ratio and disparity,
 *   because a rate over a handful of examples is noise (Fairlearn reports them and leaves the caution to the
 *   reader; set minGroupSize to 1 for its numbers);
 * - multi-class tasks: each binary definition is applied one-vs-rest to every class (or to `positiveLabels`), and
 *   the headline is the worst class, named in the report.
 */
import { ConfigError } from '../errors.ts';
import { bootstrapIntervals, type BootstrapOptions } from './bootstrap.ts';

/** Sensitive column name → one value per example. Several columns give per-column views and their intersection. */
export type SensitiveFeatures = Record<string, ArrayLike<string>>;

/** A metric of one group's examples, as Fairlearn's metric functions: (yTrue, yPred) → number. */
export type GroupMetricFn = (yTrue: number[], yPred: number[]) => number;

/** Groups with fewer examples than this are reported but not judged, unless the caller says otherwise. */
export const DEFAULT_MIN_GROUP_SIZE = 30;
/** The four-fifths rule (US EEOC Uniform Guidelines, 29 CFR 1607.4(D)): a selection rate below 80% of the highest flags adverse impact. */
export const FOUR_FIFTHS = 0.8;

export interface DisaggregateInput {
  /** Class names; index = class id. */
  labels: string[];
  yTrue: ArrayLike<number>;
  yPred: ArrayLike<number>;
  sensitive: SensitiveFeatures;
  /** Extra metrics computed per group (and their difference and ratio), next to the built-in ones. */
  metrics?: Record<string, GroupMetricFn>;
  /** Classes scored as positive. Default: the second label of a two-class task, every class otherwise. */
  positiveLabels?: string[];
  /** Default DEFAULT_MIN_GROUP_SIZE (30). */
  minGroupSize?: number;
  /** Intervals for every difference, ratio and disparity; false to skip. Default 1000 resamples, seed 0. */
  bootstrap?: BootstrapOptions | false;
  /** With two or more columns, also the view of their intersection. Default true. */
  intersection?: boolean;
}

/** A point estimate with its bootstrap percentile interval when one was computed. */
export interface Estimate {
  estimate: number;
  lower?: number;
  upper?: number;
}

/** A disparity's headline: its worst value over the positive classes and the class it came from. */
export interface Disparity extends Estimate {
  label: string;
}

export interface GroupResult {
  /** The group's values joined with " × " (one value for a single column). */
  group: string;
  values: string[];
  count: number;
  /** Fewer than minGroupSize examples: shown, not judged. */
  tooSmall: boolean;
  /** count, accuracy, macroF1; for binary tasks selectionRate, truePositiveRate, falsePositiveRate; custom metrics. */
  metrics: Record<string, number>;
}

/** The binary disparities of one positive class (one-vs-rest in multi-class tasks), over the judged groups. */
export interface ClassDisparity {
  label: string;
  demographicParityDifference: number;
  demographicParityRatio: number;
  equalOpportunityDifference: number;
  equalizedOddsDifference: number;
  equalizedOddsRatio: number;
  /** Lowest selection rate / highest selection rate (equal to Fairlearn's demographic_parity_ratio). */
  disparateImpact: number;
  /** Selection rate per judged group. */
  selectionRates: Record<string, number>;
}

export interface FairnessView {
  /** "group", or "group × region" for an intersection. */
  name: string;
  columns: string[];
  groups: GroupResult[];
  /** Groups with at least minGroupSize examples; differences and disparities are over these only. */
  judged: string[];
  tooSmall: Array<{ group: string; count: number }>;
  /** MetricFrame.difference() (max − min over judged groups) per metric. */
  difference: Record<string, Estimate>;
  /** MetricFrame.ratio() (min / max over judged groups) per metric; NaN when the max is 0. */
  ratio: Record<string, Estimate>;
  demographicParityDifference: Disparity;
  demographicParityRatio: Disparity;
  equalOpportunityDifference: Disparity;
  equalizedOddsDifference: Disparity;
  equalizedOddsRatio: Disparity;
  disparateImpact: Disparity & {
    /** The estimate is below FOUR_FIFTHS. */
    fourFifthsViolated: boolean;
    lowestGroup: string;
    highestGroup: string;
  };
  /** One entry per positive class, worst equalized odds first. */
  perClass: ClassDisparity[];
  /** Why some numbers are undefined (fewer than two judged groups). */
  note?: string;
}

export interface DisaggregatedReport {
  task: 'binary' | 'multiclass';
  positiveLabels: string[];
  /** How the binary definitions were applied, in words, for the report. */
  method: string;
  minGroupSize: number;
  sensitiveColumns: string[];
  /** The built-in and custom metrics on all examples. */
  overall: Record<string, number>;
  views: FairnessView[];
  bootstrap?: { iterations: number; confidence: number; seed: number | string };
}

const GROUP_SEPARATOR = ' × ';

/** Per-group, per-class counts of one sample (full data or one bootstrap resample). */
interface Counts {
  n: Float64Array;
  truth: Float64Array;
  pred: Float64Array;
  correct: Float64Array;
}

function count(
  gid: Int32Array,
  groups: number,
  k: number,
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  idx: Int32Array,
): Counts {
  const c: Counts = {
    n: new Float64Array(groups),
    truth: new Float64Array(groups * k),
    pred: new Float64Array(groups * k),
    correct: new Float64Array(groups * k),
  };
  for (const i of idx) {
    const g = gid[i];
    const t = yTrue[i];
    const p = yPred[i];
    c.n[g]++;
    c.truth[g * k + t]++;
    c.pred[g * k + p]++;
    if (t === p) c.correct[g * k + t]++;
  }
  return c;
}

const div0 = (a: number, b: number): number => (b === 0 ? 0 : a / b);

function accuracyOf(c: Counts, g: number, k: number): number {
  let s = 0;
  for (let j = 0; j < k; j++) s += c.correct[g * k + j];
  return div0(s, c.n[g]);
}

/** Macro F1 over the classes present in the group's truth or predictions (sklearn's label set, as metrics.ts). */
function macroF1Of(c: Counts, g: number, k: number): number {
  let sum = 0;
  let present = 0;
  for (let j = 0; j < k; j++) {
    const denom = c.truth[g * k + j] + c.pred[g * k + j];
    if (denom === 0) continue;
    present++;
    sum += (2 * c.correct[g * k + j]) / denom;
  }
  return div0(sum, present);
}

/** Selection rate, TPR and FPR of class j one-vs-rest in group g (empty denominators give 0, as fairness.ts). */
function ratesOf(c: Counts, g: number, k: number, j: number): { sel: number; tpr: number; fpr: number } {
  const tp = c.correct[g * k + j];
  const pos = c.truth[g * k + j];
  const fp = c.pred[g * k + j] - tp;
  return { sel: div0(c.pred[g * k + j], c.n[g]), tpr: div0(tp, pos), fpr: div0(fp, c.n[g] - pos) };
}

const spread = (v: number[]): number => (v.length < 2 ? NaN : Math.max(...v) - Math.min(...v));
const ratioOf = (v: number[]): number => {
  if (v.length < 2) return NaN;
  const max = Math.max(...v);
  return max === 0 ? NaN : Math.min(...v) / max;
};

/** min of the defined values: a ratio that is 0/0 (no group has any positive rate) does not decide. */
const minDefined = (a: number, b: number): number => (Number.isNaN(a) ? b : Number.isNaN(b) ? a : Math.min(a, b));

interface ViewSpec {
  name: string;
  columns: string[];
  gid: Int32Array;
  keys: string[][];
}

function buildView(columns: string[], sensitive: SensitiveFeatures, n: number): ViewSpec {
  const index = new Map<string, number>();
  const keys: string[][] = [];
  const raw = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const values = columns.map((c) => sensitive[c][i]);
    const key = JSON.stringify(values);
    let id = index.get(key);
    if (id === undefined) {
      id = keys.length;
      index.set(key, id);
      keys.push(values);
    }
    raw[i] = id;
  }
  // Renumber so group ids follow the sorted order of their values (stable, readable tables).
  const order = keys.map((_, i) => i).sort((a, b) => compareValues(keys[a], keys[b]));
  const rank = new Int32Array(keys.length);
  order.forEach((old, r) => (rank[old] = r));
  const gid = raw.map((g) => rank[g]);
  return { name: columns.join(GROUP_SEPARATOR), columns, gid, keys: order.map((o) => keys[o]) };
}

function compareValues(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

function validate(input: DisaggregateInput): { n: number; k: number; columns: string[]; positives: number[] } {
  const { labels, yTrue, yPred, sensitive } = input;
  const n = yTrue.length;
  const k = labels.length;
  if (k < 2) throw new ConfigError(`fairness needs at least two classes, got ${k}`, { field: 'labels' });
  if (yPred.length !== n)
    throw new ConfigError(`yTrue has ${n} entries but yPred has ${yPred.length}`, { field: 'yPred' });
  for (const [name, arr] of [
    ['yTrue', yTrue],
    ['yPred', yPred],
  ] as const) {
    for (let i = 0; i < n; i++) {
      const v = arr[i];
      if (!Number.isInteger(v) || v < 0 || v >= k)
        throw new ConfigError(`${name}[${i}] = ${v} is not a class id in [0, ${k})`, { field: name, value: String(v) });
    }
  }
  const columns = Object.keys(sensitive);
  if (columns.length === 0)
    throw new ConfigError('disaggregated evaluation needs at least one sensitive column', { field: 'sensitive' });
  for (const c of columns) {
    const col = sensitive[c];
    if (col.length !== n)
      throw new ConfigError(`sensitive column "${c}" has ${col.length} values but there are ${n} examples`, {
        field: c,
      });
    for (let i = 0; i < n; i++) {
      if (typeof col[i] !== 'string' || col[i] === '')
        throw new ConfigError(`sensitive column "${c}" has no value for example ${i}`, {
          field: c,
          value: String(col[i]),
        });
    }
  }
  const minGroupSize = input.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  if (!Number.isInteger(minGroupSize) || minGroupSize < 1)
    throw new ConfigError(`minGroupSize must be a positive integer, got ${minGroupSize}`, {
      field: 'minGroupSize',
      value: String(minGroupSize),
    });
  const names = input.positiveLabels ?? (k === 2 ? [labels[1]] : labels);
  if (names.length === 0) throw new ConfigError('positiveLabels is empty', { field: 'positiveLabels' });
  const positives = names.map((l) => {
    const j = labels.indexOf(l);
    if (j < 0)
      throw new ConfigError(`positive label "${l}" is not one of the labels (${labels.slice(0, 10).join(', ')})`, {
        field: 'positiveLabels',
        value: l,
      });
    return j;
  });
  return { n, k, columns, positives };
}

const DISPARITIES = [
  'demographicParityDifference',
  'demographicParityRatio',
  'equalOpportunityDifference',
  'equalizedOddsDifference',
  'equalizedOddsRatio',
  'disparateImpact',
] as const;
type DisparityName = (typeof DISPARITIES)[number];
/** Ratios are worst when smallest, differences when largest. */
const worseIsLower = (d: DisparityName): boolean => d.endsWith('Ratio') || d === 'disparateImpact';

/**
 * Disaggregated metrics and group-fairness disparities for each sensitive column and their intersection.
 * Deterministic: the bootstrap is seeded (options.bootstrap.seed, default 0).
 */
export function disaggregate(input: DisaggregateInput): DisaggregatedReport {
  const { labels, yTrue, yPred, sensitive } = input;
  const { n, k, columns, positives } = validate(input);
  const minGroupSize = input.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  const binary = k === 2;
  const custom = Object.entries(input.metrics ?? {});
  const specs = columns.map((c) => buildView([c], sensitive, n));
  if (columns.length > 1 && input.intersection !== false) specs.push(buildView(columns, sensitive, n));

  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  const metricNames = [
    'accuracy',
    'macroF1',
    ...(binary ? ['selectionRate', 'truePositiveRate', 'falsePositiveRate'] : []),
    ...custom.map(([name]) => name),
  ];

  /** Every metric of every group of a view on one sample. */
  const groupMetrics = (spec: ViewSpec, c: Counts, idx: Int32Array): Array<Record<string, number>> => {
    const G = spec.keys.length;
    let members: number[][] | undefined;
    if (custom.length) {
      members = Array.from({ length: G }, () => []);
      for (const i of idx) members[spec.gid[i]].push(i);
    }
    return Array.from({ length: G }, (_, g) => {
      const m: Record<string, number> = { accuracy: accuracyOf(c, g, k), macroF1: macroF1Of(c, g, k) };
      if (binary) {
        const r = ratesOf(c, g, k, positives[0]);
        m.selectionRate = r.sel;
        m.truePositiveRate = r.tpr;
        m.falsePositiveRate = r.fpr;
      }
      for (const [name, fn] of custom) {
        const ids = members![g];
        m[name] = ids.length
          ? fn(
              ids.map((i) => yTrue[i]),
              ids.map((i) => yPred[i]),
            )
          : NaN;
      }
      return m;
    });
  };

  /** Disparities per positive class over the judged groups present in the sample. */
  const classDisparities = (c: Counts, judged: number[]): Array<Record<DisparityName, number> & { sel: number[] }> =>
    positives.map((j) => {
      const present = judged.filter((g) => c.n[g] > 0);
      const r = present.map((g) => ratesOf(c, g, k, j));
      const sel = r.map((x) => x.sel);
      const tpr = r.map((x) => x.tpr);
      const fpr = r.map((x) => x.fpr);
      return {
        demographicParityDifference: spread(sel),
        demographicParityRatio: ratioOf(sel),
        equalOpportunityDifference: spread(tpr),
        equalizedOddsDifference: Math.max(spread(tpr), spread(fpr)),
        equalizedOddsRatio: minDefined(ratioOf(tpr), ratioOf(fpr)),
        disparateImpact: ratioOf(sel),
        sel,
      };
    });

  /** Index of the worst class for a disparity (NaN never wins unless every class is NaN). */
  const worstClass = (per: Array<Record<DisparityName, number>>, d: DisparityName): number => {
    let best = -1;
    for (let i = 0; i < per.length; i++) {
      const v = per[i][d];
      if (Number.isNaN(v)) continue;
      if (best < 0 || (worseIsLower(d) ? v < per[best][d] : v > per[best][d])) best = i;
    }
    return best < 0 ? 0 : best;
  };

  /** All statistics of a view on one sample, flattened for the bootstrap. */
  const statistics = (spec: ViewSpec, judged: number[], idx: Int32Array): Record<string, number> => {
    const c = count(spec.gid, spec.keys.length, k, yTrue, yPred, idx);
    const gm = groupMetrics(spec, c, idx);
    const present = judged.filter((g) => c.n[g] > 0);
    const s: Record<string, number> = {};
    for (const name of metricNames) {
      const v = present.map((g) => gm[g][name]).filter((x) => !Number.isNaN(x));
      s[`difference.${name}`] = spread(v);
      s[`ratio.${name}`] = ratioOf(v);
    }
    const per = classDisparities(c, judged);
    for (const d of DISPARITIES) s[d] = per[worstClass(per, d)][d];
    return s;
  };

  const boot = input.bootstrap === false ? undefined : (input.bootstrap ?? {});
  const views: FairnessView[] = specs.map((spec) => {
    const full = count(spec.gid, spec.keys.length, k, yTrue, yPred, all);
    const gm = groupMetrics(spec, full, all);
    const groups: GroupResult[] = spec.keys.map((values, g) => ({
      group: values.join(GROUP_SEPARATOR),
      values,
      count: full.n[g],
      tooSmall: full.n[g] < minGroupSize,
      metrics: { count: full.n[g], ...gm[g] },
    }));
    const judged = groups.flatMap((g, i) => (g.tooSmall ? [] : [i]));
    const est: Record<string, Estimate> = {};
    if (boot && n > 0) {
      const iv = bootstrapIntervals(n, (idx) => statistics(spec, judged, idx), {
        ...boot,
        // Each view gets its own stream, so adding a column does not change another view's intervals.
        seed: `${boot.seed ?? 0}/${spec.name}`,
      });
      for (const [key, v] of Object.entries(iv)) est[key] = { estimate: v.estimate, lower: v.lower, upper: v.upper };
    } else {
      for (const [key, v] of Object.entries(statistics(spec, judged, all))) est[key] = { estimate: v };
    }
    const per = classDisparities(full, judged);
    const perClass: ClassDisparity[] = per.map((p, i) => {
      const { sel, ...d } = p;
      return {
        label: labels[positives[i]],
        ...d,
        selectionRates: Object.fromEntries(judged.map((g, gi) => [groups[g].group, sel[gi]])),
      };
    });
    const headline = (d: DisparityName): Disparity => ({ ...est[d], label: perClass[worstClass(per, d)].label });
    const di = headline('disparateImpact');
    const diClass = perClass.find((p) => p.label === di.label)!;
    const rates = Object.entries(diClass.selectionRates);
    const lowest = rates.reduce((a, b) => (b[1] < a[1] ? b : a), rates[0] ?? ['', NaN]);
    const highest = rates.reduce((a, b) => (b[1] > a[1] ? b : a), rates[0] ?? ['', NaN]);
    perClass.sort(
      (a, b) =>
        (Number.isNaN(b.equalizedOddsDifference) ? -1 : b.equalizedOddsDifference) -
          (Number.isNaN(a.equalizedOddsDifference) ? -1 : a.equalizedOddsDifference) || a.label.localeCompare(b.label),
    );
    const view: FairnessView = {
      name: spec.name,
      columns: spec.columns,
      groups,
      judged: judged.map((g) => groups[g].group),
      tooSmall: groups.filter((g) => g.tooSmall).map((g) => ({ group: g.group, count: g.count })),
      difference: Object.fromEntries(metricNames.map((m) => [m, est[`difference.${m}`]])),
      ratio: Object.fromEntries(metricNames.map((m) => [m, est[`ratio.${m}`]])),
      demographicParityDifference: headline('demographicParityDifference'),
      demographicParityRatio: headline('demographicParityRatio'),
      equalOpportunityDifference: headline('equalOpportunityDifference'),
      equalizedOddsDifference: headline('equalizedOddsDifference'),
      equalizedOddsRatio: headline('equalizedOddsRatio'),
      disparateImpact: {
        ...di,
        fourFifthsViolated: di.estimate < FOUR_FIFTHS,
        lowestGroup: lowest[0],
        highestGroup: highest[0],
      },
      perClass,
    };
    if (judged.length < 2)
      view.note = `only ${judged.length} group(s) of "${spec.name}" have at least ${minGroupSize} examples: differences, ratios and disparities are undefined`;
    return view;
  });

  const overallCounts = count(new Int32Array(n), 1, k, yTrue, yPred, all);
  const overall: Record<string, number> = {
    count: n,
    accuracy: accuracyOf(overallCounts, 0, k),
    macroF1: macroF1Of(overallCounts, 0, k),
  };
  if (binary) {
    const r = ratesOf(overallCounts, 0, k, positives[0]);
    overall.selectionRate = r.sel;
    overall.truePositiveRate = r.tpr;
    overall.falsePositiveRate = r.fpr;
  }
  for (const [name, fn] of custom) overall[name] = fn(Array.from(yTrue), Array.from(yPred));

  const positiveLabels = positives.map((j) => labels[j]);
  return {
    task: binary ? 'binary' : 'multiclass',
    positiveLabels,
    method: binary
      ? `binary task: "${positiveLabels[0]}" is the positive (selected) outcome`
      : `multi-class task: each binary definition is applied one-vs-rest to each of ${positiveLabels.length} classes and the worst class is reported`,
    minGroupSize,
    sensitiveColumns: columns,
    overall,
    views,
    ...(boot
      ? {
          bootstrap: {
            iterations: boot.iterations ?? 1000,
            confidence: boot.confidence ?? 0.95,
            seed: boot.seed ?? 0,
          },
        }
      : {}),
  };
}
