/**
 * The monitoring policy file (YAML): which tests run with which thresholds, window and minimum window size,
 * schedule, cool-down, what fires the retraining trigger, and the promotion gate. Parsed with the `yaml` package,
 * validated with zod; every error names the file and the field path (e.g. `drift.numeric.test`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { TEST_NAMES, type DriftOptions } from './drift.ts';
import type { GateThresholds } from './gate.ts';
import { parseDuration } from './log.ts';

const duration = z.string().regex(/^\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)$/, 'expected a duration like 90s, 30m, 24h or 7d');
const share = z.number().min(0).max(1);
const columnTest = z.strictObject({ test: z.enum(TEST_NAMES).optional(), threshold: z.number().positive().optional() });

const schema = z.strictObject({
  version: z.literal(1),
  model: z.string().min(1),
  schedule: z.strictObject({ every: duration }).optional(),
  window: duration.default('1h'),
  lookback: duration.default('24h'),
  min_window_size: z.int().min(1).default(100),
  cooldown: duration.default('6h'),
  drift: z
    .strictObject({
      drift_share: share.default(0.5),
      large_reference: z.int().min(1).default(1000),
      numeric: columnTest.optional(),
      categorical: columnTest.optional(),
      binary: columnTest.optional(),
      columns: z.record(z.string(), columnTest).optional(),
      text: z
        .strictObject({ enabled: z.boolean().default(true), threshold: z.number().min(0.5).max(1).default(0.55) })
        .default({ enabled: true, threshold: 0.55 }),
      embeddings: z
        .strictObject({
          enabled: z.boolean().default(false),
          method: z.enum(['model', 'mmd', 'ratio']).default('model'),
        })
        .default({ enabled: false, method: 'model' }),
    })
    .default({
      drift_share: 0.5,
      large_reference: 1000,
      text: { enabled: true, threshold: 0.55 },
      embeddings: { enabled: false, method: 'model' },
    }),
  performance: z
    .strictObject({
      min_estimated_accuracy: share.optional(),
      min_realized_accuracy: share.optional(),
      min_labels: z.int().min(1).default(30),
    })
    .default({ min_labels: 30 }),
  trigger: z
    .strictObject({
      on: z
        .array(z.enum(['dataset_drift', 'text_drift', 'embedding_drift', 'prediction_drift', 'performance']))
        .min(1)
        .default(['dataset_drift', 'text_drift', 'performance']),
      consecutive_windows: z.int().min(1).default(1),
    })
    .default({ on: ['dataset_drift', 'text_drift', 'performance'], consecutive_windows: 1 }),
  retrain: z
    .strictObject({
      strategy: z.string().default('same'),
      hyperparameters: z.record(z.string(), z.unknown()).optional(),
    })
    .default({ strategy: 'same' }),
  gate: z
    .strictObject({
      min_accuracy: share.optional(),
      min_macro_f1: share.optional(),
      min_accuracy_change: z.number().max(0).default(-0.005),
      require_significant_gain: z.boolean().default(false),
      alpha: z.number().gt(0).lt(1).default(0.05),
      latency_budget_ms: z.number().positive().optional(),
      fairness_gap_budget: share.optional(),
      // The fairness budget of `customize` (eval/gate.ts), checked on the challenger.
      max_parity_difference: share.optional(),
      min_disparate_impact: share.optional(),
      max_equalized_odds_difference: share.optional(),
      max_flip_rate: share.optional(),
      // Labelled rows with a sensitive column: the group limits (and the fairness gap) are measured on them.
      fairness_data: z
        .strictObject({
          file: z.string().min(1),
          text_column: z.string().min(1).default('text'),
          label_column: z.string().min(1).default('label'),
          sensitive_column: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
          min_group_size: z.int().min(1).default(30),
        })
        .optional(),
    })
    .superRefine((g, ctx) => {
      for (const k of ['max_parity_difference', 'min_disparate_impact', 'max_equalized_odds_difference'] as const)
        if (g[k] !== undefined && !g.fairness_data)
          ctx.addIssue({
            code: 'custom',
            path: [k],
            message: 'a group limit needs gate.fairness_data (labelled rows with a sensitive column to measure it on)',
          });
    })
    .default({ min_accuracy_change: -0.005, require_significant_gain: false, alpha: 0.05 }),
});

/** Where the promotion gate measures group fairness: labelled rows with one or more sensitive columns. */
export interface FairnessData {
  /** Resolved against the policy file's folder by `loadPolicy`. */
  file: string;
  textColumn: string;
  labelColumn: string;
  sensitiveColumns: string[];
  minGroupSize: number;
}

export type PolicyFile = z.infer<typeof schema>;
export type TriggerKind = PolicyFile['trigger']['on'][number];

/** A validated policy with durations in milliseconds and library option shapes. */
export interface Policy {
  model: string;
  scheduleMs?: number;
  windowMs: number;
  lookbackMs: number;
  minWindowSize: number;
  cooldownMs: number;
  drift: DriftOptions;
  text: { enabled: boolean; threshold: number };
  embeddings: { enabled: boolean; method: 'model' | 'mmd' | 'ratio' };
  performance: { minEstimatedAccuracy?: number; minRealizedAccuracy?: number; minLabels: number };
  trigger: { on: TriggerKind[]; consecutiveWindows: number };
  retrain: { strategy: string; hyperparameters?: Record<string, unknown> };
  gate: GateThresholds;
  /** With group limits in the gate: the labelled rows with sensitive columns they are measured on. */
  fairnessData?: FairnessData;
  /** The file as validated (snake_case), for the run record. */
  source: PolicyFile;
}

function describe(issue: z.core.$ZodIssue): string {
  const field = issue.path.length ? issue.path.join('.') : '(top level)';
  return `field "${field}": ${issue.message}`;
}

/** Validates a parsed policy object. `file` names the source in errors. */
export function policyFromObject(raw: unknown, file = 'policy'): Policy {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues;
    const first = issues[0];
    throw new ConfigError(`${file}: ${issues.map(describe).join('; ')}`, {
      file,
      field: first.path.join('.'),
      details: { issues: issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  const p = r.data;
  const ms = (text: string, field: string): number => parseDuration(text, field);
  const budget = Object.fromEntries(
    Object.entries({
      maxParityDifference: p.gate.max_parity_difference,
      minDisparateImpact: p.gate.min_disparate_impact,
      maxEqualizedOddsDifference: p.gate.max_equalized_odds_difference,
      maxFlipRate: p.gate.max_flip_rate,
    }).filter(([, v]) => v !== undefined),
  );
  const fd = p.gate.fairness_data;
  return {
    model: p.model,
    ...(p.schedule ? { scheduleMs: ms(p.schedule.every, 'schedule.every') } : {}),
    windowMs: ms(p.window, 'window'),
    lookbackMs: ms(p.lookback, 'lookback'),
    minWindowSize: p.min_window_size,
    cooldownMs: ms(p.cooldown, 'cooldown'),
    drift: {
      driftShare: p.drift.drift_share,
      largeReference: p.drift.large_reference,
      ...(p.drift.numeric ? { numeric: p.drift.numeric } : {}),
      ...(p.drift.categorical ? { categorical: p.drift.categorical } : {}),
      ...(p.drift.binary ? { binary: p.drift.binary } : {}),
      ...(p.drift.columns ? { columns: p.drift.columns } : {}),
    },
    text: p.drift.text,
    embeddings: p.drift.embeddings,
    performance: {
      minEstimatedAccuracy: p.performance.min_estimated_accuracy,
      minRealizedAccuracy: p.performance.min_realized_accuracy,
      minLabels: p.performance.min_labels,
    },
    trigger: { on: p.trigger.on, consecutiveWindows: p.trigger.consecutive_windows },
    retrain: p.retrain,
    gate: {
      minAccuracy: p.gate.min_accuracy,
      minMacroF1: p.gate.min_macro_f1,
      minAccuracyChange: p.gate.min_accuracy_change,
      requireSignificantGain: p.gate.require_significant_gain,
      alpha: p.gate.alpha,
      latencyBudgetMs: p.gate.latency_budget_ms,
      fairnessGapBudget: p.gate.fairness_gap_budget,
      ...(Object.keys(budget).length ? { fairnessBudget: budget } : {}),
    },
    ...(fd
      ? {
          fairnessData: {
            file: fd.file,
            textColumn: fd.text_column,
            labelColumn: fd.label_column,
            sensitiveColumns: [fd.sensitive_column].flat(),
            minGroupSize: fd.min_group_size,
          },
        }
      : {}),
    source: p,
  };
}

/** Parses policy YAML text. */
export function parsePolicy(text: string, file = 'policy.yaml'): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid YAML: ${(e as Error).message}`, { file }, { cause: e });
  }
  return policyFromObject(raw, file);
}

/** Reads and validates a policy file. */
export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read policy file ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  const policy = parsePolicy(text, file);
  // A relative fairness_data file is relative to the policy file, not to wherever `tailor watch` runs.
  if (policy.fairnessData && !path.isAbsolute(policy.fairnessData.file))
    policy.fairnessData.file = path.resolve(path.dirname(file), policy.fairnessData.file);
  return policy;
}

/** What one monitoring window found, as far as the trigger is concerned. */
export interface WindowSignals {
  start: string;
  count: number;
  datasetDrift?: boolean;
  textDrift?: boolean;
  embeddingDrift?: boolean;
  predictionDrift?: boolean;
  estimatedAccuracy?: number;
  cbpeAlert?: boolean;
  realized?: { count: number; accuracy: number };
}

export interface TriggerDecision {
  fire: boolean;
  /** Why it fires (the signals), or why it does not. */
  reasons: string[];
  /** Set when signals fired but the policy held the trigger back. */
  heldBy?: 'cooldown';
}

/** The signals of one window that the policy listens to. */
export function windowReasons(policy: Policy, w: WindowSignals): string[] {
  const r: string[] = [];
  const on = new Set(policy.trigger.on);
  if (w.count < policy.minWindowSize) return r;
  if (on.has('dataset_drift') && w.datasetDrift) r.push('dataset drift');
  if (on.has('text_drift') && w.textDrift) r.push('text drift');
  if (on.has('embedding_drift') && w.embeddingDrift) r.push('embedding drift');
  if (on.has('prediction_drift') && w.predictionDrift) r.push('prediction drift');
  if (on.has('performance')) {
    const p = policy.performance;
    if (w.cbpeAlert) r.push('CBPE estimated accuracy outside the reference limits');
    if (
      p.minEstimatedAccuracy !== undefined &&
      w.estimatedAccuracy !== undefined &&
      w.estimatedAccuracy < p.minEstimatedAccuracy
    )
      r.push(`estimated accuracy ${w.estimatedAccuracy.toFixed(3)} < ${p.minEstimatedAccuracy}`);
    if (
      p.minRealizedAccuracy !== undefined &&
      w.realized &&
      w.realized.count >= p.minLabels &&
      w.realized.accuracy < p.minRealizedAccuracy
    )
      r.push(
        `realized accuracy ${w.realized.accuracy.toFixed(3)} < ${p.minRealizedAccuracy} on ${w.realized.count} labels`,
      );
  }
  return r;
}

/**
 * Whether the policy fires on the latest windows: the last `consecutive_windows` windows with at least
 * `min_window_size` predictions all show a listened-to signal, and the last trigger is older than the cool-down.
 */
export function decideTrigger(
  policy: Policy,
  windows: WindowSignals[],
  lastTriggered: Date | undefined,
  now: Date,
): TriggerDecision {
  const full = windows.filter((w) => w.count >= policy.minWindowSize);
  const k = policy.trigger.consecutiveWindows;
  if (full.length < k)
    return {
      fire: false,
      reasons: [`${full.length} window(s) with at least ${policy.minWindowSize} predictions; need ${k}`],
    };
  const last = full.slice(-k);
  const perWindow = last.map((w) => windowReasons(policy, w));
  if (perWindow.some((r) => r.length === 0)) return { fire: false, reasons: ['no drift or performance signal'] };
  const reasons = [...new Set(perWindow.flat())];
  if (lastTriggered && now.getTime() - lastTriggered.getTime() < policy.cooldownMs)
    return {
      fire: false,
      reasons: [
        ...reasons,
        `held: last trigger at ${lastTriggered.toISOString()} is within the ${policy.source.cooldown} cool-down`,
      ],
      heldBy: 'cooldown',
    };
  return { fire: true, reasons };
}
