/**
 * The audit's decision rules, as data. Each rule has a stable id (docs/audit.md lists them with their
 * thresholds); a recommendation names the rules that fired and why, so `customize --strategy auto` can record
 * the reasoning with the run.
 */
import { ConfigError } from '../errors.ts';

/** Strategies the audit can recommend (a subset of src/customize's, plus "none"). */
export type RecommendedStrategy = 'none' | 'head' | 'lora' | 'full' | 'setfit';
/** Compression steps recommended on top of the strategy when latency is over budget. */
export type Compression = 'quantize' | 'distill';

export type RuleId =
  'R1-meets-target' | 'R2-large-gap' | 'R3-moderate-gap' | 'R4-no-target' | 'R5-latency' | 'R6-little-data';

export interface Reason {
  rule: RuleId;
  text: string;
}

export interface Recommendation {
  strategy: RecommendedStrategy;
  compression: Compression[];
  /** Hyper-parameters the rules chose (regularisation for little data); merged into the customize options. */
  hyperparameters: Record<string, number | string>;
  reasons: Reason[];
  /** Ids of the rules that fired, in order. */
  rules: RuleId[];
}

/** Thresholds of the rules (docs/audit.md). */
export const THRESHOLDS = {
  /** Relative gap to target above which only full fine-tuning is expected to close it. */
  largeGap: 0.2,
  /** Median train examples per class below which data is "little". */
  littleData: 20,
  /** Below this no label has a same-label pair for setfit: train the head only. */
  veryLittleData: 2,
  /** Latency more than this many times over budget: distil as well as quantize. */
  distillFactor: 2,
} as const;

export interface RecommendInput {
  /** Baseline (frozen encoder + linear head) accuracy on the eval split. */
  baselineAccuracy: number;
  targetAccuracy?: number;
  /** Baseline latency, p50 at batch 1. */
  latencyP50Ms: number;
  maxLatencyMs?: number;
  /** Train examples per class (after preparation). */
  examplesPerClass: readonly number[];
}

const pct = (v: number): string => `${(v * 100).toFixed(1)}%`;

function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Applies the rules in order R1..R6 (docs/audit.md) and returns the strategy with its reasons. */
export function recommend(input: RecommendInput): Recommendation {
  const { baselineAccuracy: acc, targetAccuracy: target, latencyP50Ms: p50, maxLatencyMs: budget } = input;
  if (target !== undefined && !(target > 0 && target <= 1))
    throw new ConfigError(`target accuracy must be in (0, 1], got ${target}`, {
      field: 'targetAccuracy',
      value: String(target),
    });
  if (budget !== undefined && !(budget > 0))
    throw new ConfigError(`max latency must be a positive number of ms, got ${budget}`, {
      field: 'maxLatencyMs',
      value: String(budget),
    });
  const reasons: Reason[] = [];
  let strategy: RecommendedStrategy;
  const hyperparameters: Record<string, number | string> = {};

  if (target === undefined) {
    strategy = 'lora';
    reasons.push({
      rule: 'R4-no-target',
      text: `no target accuracy given (baseline ${pct(acc)}): LoRA adapts the encoder to the domain while training a few percent of the weights`,
    });
  } else if (acc >= target) {
    strategy = 'none';
    reasons.push({
      rule: 'R1-meets-target',
      text: `the off-the-shelf baseline reaches ${pct(acc)}, at or above the target ${pct(target)}: no customization needed (the fitted linear head is the model)`,
    });
  } else {
    const gap = (target - acc) / target;
    // The tolerance keeps a gap of exactly 20% (0.2000000000000001 in floating point) on the LoRA side.
    if (gap > THRESHOLDS.largeGap + 1e-9) {
      strategy = 'full';
      reasons.push({
        rule: 'R2-large-gap',
        text: `baseline ${pct(acc)} is ${pct(gap)} (relative) below the target ${pct(target)}, more than ${pct(THRESHOLDS.largeGap)}: the representation itself must change, so fine-tune every weight`,
      });
    } else {
      strategy = 'lora';
      reasons.push({
        rule: 'R3-moderate-gap',
        text: `baseline ${pct(acc)} is ${pct(gap)} (relative) below the target ${pct(target)}, within ${pct(THRESHOLDS.largeGap)}: low-rank adapters close gaps of this size at a fraction of the cost`,
      });
    }
  }

  const perClass = median(input.examplesPerClass);
  if (strategy !== 'none' && perClass < THRESHOLDS.littleData) {
    const before = strategy;
    // SetFit beat the head and LoRA on every seed of the few-shot table (CLINC150, 5 and 10 per class).
    strategy = perClass < THRESHOLDS.veryLittleData ? 'head' : 'setfit';
    hyperparameters.weightDecay = 0.1;
    hyperparameters.loraDropout = 0.1;
    reasons.push({
      rule: 'R6-little-data',
      text:
        `only ${perClass} train examples per class (median; under ${THRESHOLDS.littleData}): ${strategy} instead of ${before}` +
        (strategy === 'setfit'
          ? ': contrastive pairs of training texts give the encoder many signals from few examples'
          : ': too few for a same-label pair') +
        ` with strong regularisation (weight decay 0.1, adapter dropout 0.1 for LoRA) to avoid memorising the training set`,
    });
  }

  const compression: Compression[] = [];
  if (budget !== undefined && p50 > budget) {
    compression.push('quantize');
    if (p50 > THRESHOLDS.distillFactor * budget) compression.push('distill');
    reasons.push({
      rule: 'R5-latency',
      text:
        `p50 latency at batch 1 is ${p50.toFixed(2)} ms, over the ${budget} ms budget: ` +
        (compression.includes('distill')
          ? `more than ${THRESHOLDS.distillFactor}x over, so distil into a smaller student and quantize it (int8)`
          : 'quantize the weights to int8 (about 2x faster MatMuls on CPU)'),
    });
  }
  // Reasons are listed in rule order so the output reads the same way every time.
  reasons.sort((a, b) => a.rule.localeCompare(b.rule, 'en', { numeric: true }));
  return { strategy, compression, hyperparameters, reasons, rules: reasons.map((r) => r.rule) };
}
