/**
 * Group fairness with Fairlearn's definitions (fairlearn.metrics, method="between_groups"):
 * - selection rate of a group: share of its examples predicted positive;
 * - demographic_parity_difference = max − min selection rate over groups; _ratio = min / max;
 * - equal_opportunity_difference = max − min true-positive rate;
 * - equalized_odds_difference = max(TPR difference, FPR difference); _ratio = min(TPR ratio, FPR ratio).
 * A rate whose denominator is empty in a group (no actual positives/negatives) is 0, as sklearn's normalised
 * confusion matrix that Fairlearn uses gives. Fairlearn's disparity metrics are binary; for multi-class
 * models each class is scored one-vs-rest and the headline is the worst class.
 */
import { ConfigError } from '../errors.ts';
import { classificationMetrics } from './metrics.ts';

/** One row of the per-group table (a MetricFrame's by_group). */
export interface GroupRow {
  group: string;
  count: number;
  accuracy: number;
  macroF1: number;
  selectionRate: number;
  truePositiveRate: number;
  falsePositiveRate: number;
}

export interface BinaryFairness {
  byGroup: GroupRow[];
  overall: GroupRow;
  demographicParityDifference: number;
  /** NaN when no group selects anything (0/0). */
  demographicParityRatio: number;
  equalOpportunityDifference: number;
  equalizedOddsDifference: number;
  equalizedOddsRatio: number;
  /** max − min accuracy over groups (MetricFrame.difference() of accuracy). */
  accuracyDifference: number;
}

const div0 = (a: number, b: number): number => (b === 0 ? 0 : a / b);

function groupRow(group: string, yTrue: boolean[], yPred: boolean[]): Omit<GroupRow, 'macroF1'> {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < yTrue.length; i++) {
    if (yTrue[i] && yPred[i]) tp++;
    else if (yTrue[i]) fn++;
    else if (yPred[i]) fp++;
    else tn++;
  }
  const n = yTrue.length;
  return {
    group,
    count: n,
    accuracy: div0(tp + tn, n),
    selectionRate: div0(tp + fp, n),
    truePositiveRate: div0(tp, tp + fn),
    falsePositiveRate: div0(fp, fp + tn),
  };
}

const spread = (v: number[]): number => Math.max(...v) - Math.min(...v);
const ratio = (v: number[]): number => {
  const max = Math.max(...v);
  return max === 0 ? NaN : Math.min(...v) / max;
};

function groupIndices(groups: ArrayLike<string>, n: number): Map<string, number[]> {
  if (groups.length !== n)
    throw new ConfigError(`groups has ${groups.length} entries but there are ${n} examples`, { field: 'groups' });
  const by = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const list = by.get(groups[i]);
    if (list) list.push(i);
    else by.set(groups[i], [i]);
  }
  if (by.size < 2)
    throw new ConfigError(`fairness metrics need at least two groups, found ${by.size}`, { field: 'groups' });
  return by;
}

/** Fairlearn-style disparity metrics for binary outcomes (true = positive). */
export function binaryFairness(yTrue: boolean[], yPred: boolean[], groups: ArrayLike<string>): BinaryFairness {
  if (yPred.length !== yTrue.length) throw new ConfigError('yTrue and yPred differ in length', { field: 'yPred' });
  const by = groupIndices(groups, yTrue.length);
  const byGroup: GroupRow[] = [...by.keys()].sort().map((g) => {
    const idx = by.get(g)!;
    const r = groupRow(
      g,
      idx.map((i) => yTrue[i]),
      idx.map((i) => yPred[i]),
    );
    return {
      ...r,
      macroF1: binaryMacroF1(
        idx.map((i) => yTrue[i]),
        idx.map((i) => yPred[i]),
      ),
    };
  });
  const overall = { ...groupRow('(overall)', yTrue, yPred), macroF1: binaryMacroF1(yTrue, yPred) };
  const tpr = byGroup.map((r) => r.truePositiveRate);
  const fpr = byGroup.map((r) => r.falsePositiveRate);
  const sel = byGroup.map((r) => r.selectionRate);
  return {
    byGroup,
    overall,
    demographicParityDifference: spread(sel),
    demographicParityRatio: ratio(sel),
    equalOpportunityDifference: spread(tpr),
    equalizedOddsDifference: Math.max(spread(tpr), spread(fpr)),
    equalizedOddsRatio: Math.min(ratio(tpr), ratio(fpr)),
    accuracyDifference: spread(byGroup.map((r) => r.accuracy)),
  };
}

function binaryMacroF1(yTrue: boolean[], yPred: boolean[]): number {
  return classificationMetrics(yTrue.map(Number), yPred.map(Number), ['0', '1']).macroF1;
}

export interface FairnessReport {
  /** Per-group multi-class quality (count, accuracy, macro F1). */
  byGroup: Array<{ group: string; count: number; accuracy: number; macroF1: number }>;
  accuracyDifference: number;
  macroF1Difference: number;
  /** Disparity metrics per positive class (one-vs-rest), worst first. */
  perClass: Array<{ positiveLabel: string } & Omit<BinaryFairness, 'byGroup' | 'overall' | 'accuracyDifference'>>;
  /** The worst class on each disparity metric. */
  worst: {
    demographicParityDifference: { value: number; label: string };
    equalOpportunityDifference: { value: number; label: string };
    equalizedOddsDifference: { value: number; label: string };
  };
}

/**
 * Fairness of a multi-class classifier. `positiveLabels` selects which classes are scored as "positive"
 * (default: class 1 for a two-class problem, every class otherwise).
 */
export function fairnessReport(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  groups: ArrayLike<string>,
  labels: string[],
  positiveLabels?: string[],
): FairnessReport {
  const by = groupIndices(groups, yTrue.length);
  const byGroup = [...by.keys()].sort().map((g) => {
    const idx = by.get(g)!;
    const m = classificationMetrics(
      idx.map((i) => yTrue[i]),
      idx.map((i) => yPred[i]),
      labels,
    );
    return { group: g, count: idx.length, accuracy: m.accuracy, macroF1: m.macroF1 };
  });
  const positives = positiveLabels ?? (labels.length === 2 ? [labels[1]] : labels);
  const perClass = positives.map((label) => {
    const c = labels.indexOf(label);
    if (c < 0)
      throw new ConfigError(`positive label "${label}" is not one of the model's labels`, {
        field: 'positiveLabel',
        value: label,
      });
    const t = Array.from(yTrue, (v) => v === c);
    const p = Array.from(yPred, (v) => v === c);
    const { byGroup: _b, overall: _o, accuracyDifference: _a, ...rest } = binaryFairness(t, p, groups);
    return { positiveLabel: label, ...rest };
  });
  perClass.sort(
    (a, b) => b.equalizedOddsDifference - a.equalizedOddsDifference || a.positiveLabel.localeCompare(b.positiveLabel),
  );
  const worstOf = (
    k: 'demographicParityDifference' | 'equalOpportunityDifference' | 'equalizedOddsDifference',
  ): { value: number; label: string } => {
    let best = perClass[0];
    for (const r of perClass) if (r[k] > best[k]) best = r;
    return { value: best[k], label: best.positiveLabel };
  };
  return {
    byGroup,
    accuracyDifference: spread(byGroup.map((g) => g.accuracy)),
    macroF1Difference: spread(byGroup.map((g) => g.macroF1)),
    perClass,
    worst: {
      demographicParityDifference: worstOf('demographicParityDifference'),
      equalOpportunityDifference: worstOf('equalOpportunityDifference'),
      equalizedOddsDifference: worstOf('equalizedOddsDifference'),
    },
  };
}
