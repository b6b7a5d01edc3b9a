/**
 * The promotion gate, with TFX Evaluator's "blessing" semantics: a challenger is blessed only if it passes every
 * value threshold (absolute bars such as accuracy >= X, latency and fairness budgets) and every change threshold
 * against the champion scored on the same held-out rows (no worse than −0.5 pt, or — when asked — better with
 * McNemar's exact p < 0.05). Without a champion only the value thresholds apply. Pure: measurements come in,
 * a verdict with reasons comes out; the caller records it and moves the alias.
 */
import { ConfigError } from '../errors.ts';
import type { BehaviourReport } from '../eval/behaviour.ts';
import type { DisaggregatedReport } from '../eval/disaggregate.ts';
import { checkFairnessBudget, type FairnessBudget } from '../eval/gate.ts';
import { classificationMetrics } from '../eval/metrics.ts';
import { compareModels, type ModelComparison } from '../eval/significance.ts';

export interface GateCandidate {
  /** Predicted class ids on the held-out rows. */
  predictions: ArrayLike<number>;
  /** Measured latency (e.g. p95 in ms), if a latency budget is set. */
  latencyMs?: number;
  /** Measured fairness gap (e.g. largest accuracy difference between groups), if a budget is set. */
  fairnessGap?: number;
  /**
   * What the fairness budget reads (`fairnessBudget`): metrics disaggregated by a sensitive column (for the group
   * limits) and behavioural tests (for the flip rate). A limit whose report is missing fails, as in customize.
   */
  fairnessReports?: { fairness?: DisaggregatedReport; behaviour?: BehaviourReport };
}

export interface GateThresholds {
  /** Value thresholds on the challenger. */
  minAccuracy?: number;
  minMacroF1?: number;
  latencyBudgetMs?: number;
  fairnessGapBudget?: number;
  /**
   * The fairness budget `customize` checks (eval/gate.ts: parity difference, disparate impact, equalized odds
   * difference, flip rate), checked on the challenger; each limit is one check, failed like an accuracy bar.
   */
  fairnessBudget?: FairnessBudget;
  /** Change threshold: challenger accuracy − champion accuracy must be >= this (default −0.005, i.e. −0.5 pt). */
  minAccuracyChange?: number;
  /** Instead of non-inferiority, require a better accuracy with McNemar p < `alpha`. Default false. */
  requireSignificantGain?: boolean;
  /** McNemar level. Default 0.05. */
  alpha?: number;
}

export interface GateCheck {
  name: string;
  passed: boolean;
  value: number;
  threshold: number;
  detail: string;
}

export interface GateResult {
  blessed: boolean;
  checks: GateCheck[];
  /** One line per failed check. */
  reasons: string[];
  challenger: { accuracy: number; macroF1: number };
  champion?: { accuracy: number; macroF1: number };
  comparison?: ModelComparison;
}

/** Gate check names of the fairness budget's limits, and what each measures. */
const BUDGET_CHECK: Record<keyof FairnessBudget, string> = {
  maxParityDifference: 'parity_difference',
  minDisparateImpact: 'disparate_impact',
  maxEqualizedOddsDifference: 'equalized_odds_difference',
  maxFlipRate: 'flip_rate',
};
const BUDGET_NAME: Record<keyof FairnessBudget, string> = {
  maxParityDifference: 'demographic parity difference',
  minDisparateImpact: 'disparate impact ratio',
  maxEqualizedOddsDifference: 'equalized odds difference',
  maxFlipRate: 'flip rate',
};

const pt = (x: number): string => `${(x * 100).toFixed(2)} pt`;
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

/** Evaluates the challenger (and the champion, when there is one) on the same held-out labels. */
export function evaluateGate(
  yTrue: ArrayLike<number>,
  labels: string[],
  challenger: GateCandidate,
  champion: GateCandidate | undefined,
  thresholds: GateThresholds = {},
): GateResult {
  for (const [name, c] of [
    ['challenger', challenger],
    ['champion', champion],
  ] as const)
    if (c && c.predictions.length !== yTrue.length)
      throw new ConfigError(
        `${name} has ${c.predictions.length} predictions for ${yTrue.length} held-out rows; both models must be scored on the same rows`,
        { field: `${name}.predictions` },
      );
  const cm = classificationMetrics(yTrue, challenger.predictions, labels);
  const checks: GateCheck[] = [];
  const add = (name: string, passed: boolean, value: number, threshold: number, detail: string): void => {
    checks.push({ name, passed, value, threshold, detail });
  };
  if (thresholds.minAccuracy !== undefined)
    add(
      'accuracy',
      cm.accuracy >= thresholds.minAccuracy,
      cm.accuracy,
      thresholds.minAccuracy,
      `accuracy ${pct(cm.accuracy)} ${cm.accuracy >= thresholds.minAccuracy ? '>=' : '<'} ${pct(thresholds.minAccuracy)}`,
    );
  if (thresholds.minMacroF1 !== undefined)
    add(
      'macro_f1',
      cm.macroF1 >= thresholds.minMacroF1,
      cm.macroF1,
      thresholds.minMacroF1,
      `macro-F1 ${pct(cm.macroF1)} ${cm.macroF1 >= thresholds.minMacroF1 ? '>=' : '<'} ${pct(thresholds.minMacroF1)}`,
    );
  if (thresholds.latencyBudgetMs !== undefined) {
    if (challenger.latencyMs === undefined)
      throw new ConfigError('a latency budget is set but the challenger has no latencyMs', { field: 'latencyMs' });
    const ok = challenger.latencyMs <= thresholds.latencyBudgetMs;
    add(
      'latency',
      ok,
      challenger.latencyMs,
      thresholds.latencyBudgetMs,
      `latency ${challenger.latencyMs} ms ${ok ? '<=' : '>'} budget ${thresholds.latencyBudgetMs} ms`,
    );
  }
  if (thresholds.fairnessGapBudget !== undefined) {
    if (challenger.fairnessGap === undefined)
      throw new ConfigError('a fairness gap budget is set but the challenger has no fairnessGap', {
        field: 'fairnessGap',
      });
    const ok = challenger.fairnessGap <= thresholds.fairnessGapBudget;
    add(
      'fairness_gap',
      ok,
      challenger.fairnessGap,
      thresholds.fairnessGapBudget,
      `fairness gap ${pt(challenger.fairnessGap)} ${ok ? '<=' : '>'} budget ${pt(thresholds.fairnessGapBudget)}`,
    );
  }
  const budget = thresholds.fairnessBudget;
  if (budget && Object.values(budget).some((v) => v !== undefined)) {
    const verdict = checkFairnessBudget(budget, challenger.fairnessReports ?? {});
    let failed = 0;
    for (const c of verdict.checks) {
      const measured = c.value === null ? 'not measured' : `${c.value.toFixed(4)} in ${c.where}`;
      const bound = c.limit === 'minDisparateImpact' ? '>=' : '<=';
      add(
        BUDGET_CHECK[c.limit],
        c.pass,
        c.value ?? Number.NaN,
        c.bound,
        // A failed limit reads as customize's budget reason; checkFairnessBudget keeps the failed ones in order.
        c.pass ? `${BUDGET_NAME[c.limit]} ${measured} ${bound} ${c.bound}` : verdict.reasons[failed++],
      );
    }
  }
  let comparison: ModelComparison | undefined;
  let championMetrics: GateResult['champion'];
  if (champion) {
    const m = classificationMetrics(yTrue, champion.predictions, labels);
    championMetrics = { accuracy: m.accuracy, macroF1: m.macroF1 };
    comparison = compareModels(yTrue, champion.predictions, challenger.predictions);
    const diff = comparison.difference;
    if (thresholds.requireSignificantGain) {
      const alpha = thresholds.alpha ?? 0.05;
      const ok = diff > 0 && comparison.pValue < alpha;
      add(
        'significant_gain',
        ok,
        comparison.pValue,
        alpha,
        `change ${diff >= 0 ? '+' : ''}${pt(diff)} vs champion, McNemar p = ${comparison.pValue.toPrecision(3)} ${ok ? '<' : 'not <'} ${alpha}${diff > 0 ? '' : ' (not better)'}`,
      );
    } else {
      const floor = thresholds.minAccuracyChange ?? -0.005;
      // A tiny tolerance, so a change exactly at the bar (-0.5 pt = 1 row in 200) is not failed by float rounding.
      const ok = diff >= floor - 1e-12;
      add(
        'no_regression',
        ok,
        diff,
        floor,
        `change ${diff >= 0 ? '+' : ''}${pt(diff)} vs champion ${ok ? '>=' : '<'} ${pt(floor)}`,
      );
    }
  }
  const reasons = checks.filter((c) => !c.passed).map((c) => c.detail);
  return {
    blessed: reasons.length === 0,
    checks,
    reasons,
    challenger: { accuracy: cm.accuracy, macroF1: cm.macroF1 },
    ...(championMetrics ? { champion: championMetrics } : {}),
    ...(comparison ? { comparison } : {}),
  };
}
