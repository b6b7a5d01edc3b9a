/**
 * Group fairness with Fairlearn's definitions (fairlearn.metrics, method="between_groups"):
 * - selection rate of a group: share of its examples predicted positive;
 * - demographic_parity_difference = max − min selection rate over groups; _ratio = min / max;
 * - equal_opportunity_difference = max − min true-positive rate;
 * - equalized_odds_difference = max(TPR difference, FPR difference); _ratio = min(TPR ratio, FPR ratio).
 * A rate whose denominator is empty in a group (no actual positives/negatives) is 0, as sklearn's normalised
 * confusion matrix that Fairlearn uses gives. Fairlearn's disparity metrics are binary; for multi-class
 * models each class is scored one-vs-rest and the headline is the worst class.
 * Both functions are the single-column view of `disaggregate` (disaggregate.ts) with every group judged and no
 * bootstrap, so there is one implementation of the definitions.
 */
import { ConfigError } from '../errors.ts';
import { disaggregate, type DisaggregatedReport, type Disparity, type FairnessView } from './disaggregate.ts';

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

/** The one-column view of `disaggregate` with every group judged and no bootstrap (Fairlearn's plain numbers). */
function singleView(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  groups: ArrayLike<string>,
  labels: string[],
  positiveLabels?: string[],
): { report: DisaggregatedReport; view: FairnessView } {
  if (groups.length !== yTrue.length)
    throw new ConfigError(`groups has ${groups.length} entries but there are ${yTrue.length} examples`, {
      field: 'groups',
    });
  const distinct = new Set(Array.from(groups)).size;
  if (distinct < 2)
    throw new ConfigError(`fairness metrics need at least two groups, found ${distinct}`, { field: 'groups' });
  const report = disaggregate({
    labels,
    yTrue,
    yPred,
    sensitive: { group: groups },
    positiveLabels,
    minGroupSize: 1,
    bootstrap: false,
  });
  return { report, view: report.views[0] };
}

const row = (group: string, m: Record<string, number>): GroupRow => ({
  group,
  count: m.count,
  accuracy: m.accuracy,
  macroF1: m.macroF1,
  selectionRate: m.selectionRate,
  truePositiveRate: m.truePositiveRate,
  falsePositiveRate: m.falsePositiveRate,
});

/** Fairlearn-style disparity metrics for binary outcomes (true = positive). */
export function binaryFairness(yTrue: boolean[], yPred: boolean[], groups: ArrayLike<string>): BinaryFairness {
  if (yPred.length !== yTrue.length) throw new ConfigError('yTrue and yPred differ in length', { field: 'yPred' });
  const { report, view } = singleView(yTrue.map(Number), yPred.map(Number), groups, ['0', '1']);
  const d = view.perClass[0];
  return {
    byGroup: view.groups.map((g) => row(g.group, g.metrics)),
    overall: row('(overall)', report.overall),
    demographicParityDifference: d.demographicParityDifference,
    demographicParityRatio: d.demographicParityRatio,
    equalOpportunityDifference: d.equalOpportunityDifference,
    equalizedOddsDifference: d.equalizedOddsDifference,
    equalizedOddsRatio: d.equalizedOddsRatio,
    accuracyDifference: view.difference.accuracy.estimate,
  };
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
  const { view } = singleView(yTrue, yPred, groups, labels, positiveLabels);
  const perClass = view.perClass.map((p) => ({
    positiveLabel: p.label,
    demographicParityDifference: p.demographicParityDifference,
    demographicParityRatio: p.demographicParityRatio,
    equalOpportunityDifference: p.equalOpportunityDifference,
    equalizedOddsDifference: p.equalizedOddsDifference,
    equalizedOddsRatio: p.equalizedOddsRatio,
  }));
  const headline = (d: Disparity): { value: number; label: string } => ({ value: d.estimate, label: d.label });
  return {
    byGroup: view.groups.map((g) => ({
      group: g.group,
      count: g.count,
      accuracy: g.metrics.accuracy,
      macroF1: g.metrics.macroF1,
    })),
    accuracyDifference: view.difference.accuracy.estimate,
    macroF1Difference: view.difference.macroF1.estimate,
    perClass,
    worst: {
      demographicParityDifference: headline(view.demographicParityDifference),
      equalOpportunityDifference: headline(view.equalOpportunityDifference),
      equalizedOddsDifference: headline(view.equalizedOddsDifference),
    },
  };
}
