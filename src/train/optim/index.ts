/**
 * Optimizer steps as ONNX graph ops. `appendOptimizerStep` adds, to a graph that already computes gradients, the
 * global gradient norm, optional clipping, and every parameter's update; per-step scalars (learning rate, bias
 * corrections) are graph inputs computed in JS by `optimizerScalars`, so one compiled session serves every step.
 *
 * Names (shared with the training engine and checkpoints):
 * - `optim::<scalar>` float32 scalar inputs, `optim::grad_scale` (1 / accumulation steps);
 * - `optim::<slot>::<param>` state inputs, `<name>::next` for every updated value (param or slot);
 * - `optim::grad_norm` the global L2 norm of the (unclipped, scaled) gradients, a float32 scalar output.
 */
import { ConfigError } from '../../errors.ts';
import type { GraphBuilder } from '../../onnx/builder.ts';
import type { Shape } from '../../onnx/ir.ts';
import { adamwRule } from './adamw.ts';
import { sgdRule } from './sgd.ts';
import type { OptimizerConfig, UpdateRule } from './types.ts';

export type { AdamWConfig, SgdConfig, OptimizerConfig, UpdateRule } from './types.ts';
export { adamwRule } from './adamw.ts';
export { sgdRule } from './sgd.ts';
export { learningRateAt, lrMultiplier, type ScheduleConfig } from './schedule.ts';

export const GRAD_NORM = 'optim::grad_norm';
export const GRAD_SCALE = 'optim::grad_scale';

export function scalarInputName(name: string): string {
  return `optim::${name}`;
}
export function slotName(slot: string, param: string): string {
  return `optim::${slot}::${param}`;
}
export function nextName(value: string): string {
  return `${value}::next`;
}

/** The update rule for a config. */
export function updateRule(cfg: OptimizerConfig): UpdateRule {
  if (!(cfg.lr >= 0)) throw new ConfigError(`optimizer.lr must be >= 0, got ${cfg.lr}`, { field: 'optimizer.lr' });
  switch (cfg.type) {
    case 'adamw':
      return adamwRule(cfg);
    case 'sgd':
      return sgdRule(cfg);
    default:
      throw new ConfigError(`unknown optimizer type '${(cfg as { type: string }).type}' (expected adamw or sgd)`, {
        field: 'optimizer.type',
      });
  }
}

/** One trainable parameter in the graph: the value holding it and the value holding its gradient. */
export interface ParamGrad {
  param: string;
  grad: string;
  shape: Shape;
  /** Weight decay applies (default true). */
  decay?: boolean;
}

export interface OptimizerStepOptions {
  /** Clip the global gradient norm to this value (torch.nn.utils.clip_grad_norm_). */
  maxGradNorm?: number;
  /**
   * Multiply gradients by the `optim::grad_scale` input (default true; gradient accumulation needs it). Without it
   * the graph has no such input and skips one elementwise pass over every gradient.
   */
  gradScale?: boolean;
}

/**
 * Appends the optimizer step for `params` to `b`'s graph: adds scalar and state inputs, and outputs for the updated
 * parameters, states and the gradient norm. Returns the names of the state inputs per parameter.
 */
export function appendOptimizerStep(
  b: GraphBuilder,
  params: readonly ParamGrad[],
  rule: UpdateRule,
  opts: OptimizerStepOptions = {},
): void {
  const scalars: Record<string, string> = {};
  for (const s of rule.scalarNames) scalars[s] = b.input(scalarInputName(s), 'float32', []);
  const gradScale = (opts.gradScale ?? true) ? b.input(GRAD_SCALE, 'float32', []) : undefined;
  const grads = params.map((p) => (gradScale ? b.mul(p.grad, gradScale) : p.grad));
  const sq = grads.map((g) => b.op('ReduceSumSquare', [g], { keepdims: 0 }));
  const norm = b.op('Sqrt', [sq.length === 1 ? sq[0] : b.op('Sum', sq)], {}, { outputs: [GRAD_NORM] });
  b.output(norm, 'float32', []);
  let coef: string | undefined;
  if (opts.maxGradNorm !== undefined) {
    if (!(opts.maxGradNorm > 0))
      throw new ConfigError(`maxGradNorm must be > 0, got ${opts.maxGradNorm}`, { field: 'maxGradNorm' });
    // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1.
    coef = b.op('Min', [b.div(b.scalar(opts.maxGradNorm), b.add(norm, b.scalar(1e-6))), b.scalar(1)]);
  }
  const first = b.graph.nodes.length;
  const renames = new Map<string, string>();
  const emitted = new Set<string>();
  // The updated values get their `::next` names by renaming the emitted nodes' outputs: an Identity per output
  // would copy every parameter and slot once more per step (ORT cannot elide an Identity that feeds a graph output).
  const nameOutput = (value: string, name: string, shape: Shape): void => {
    if (emitted.has(value) && !renames.has(value)) renames.set(value, name);
    else b.node('Identity', [value], {}, { outputs: [name] });
    b.output(name, 'float32', shape);
  };
  params.forEach((p, i) => {
    const g = coef ? b.mul(grads[i], coef) : grads[i];
    const slots: Record<string, string> = {};
    for (const s of rule.slots) slots[s] = b.input(slotName(s, p.param), 'float32', p.shape);
    const start = b.graph.nodes.length;
    const out = rule.emit(b, p.param, g, slots, scalars, p.decay ?? true);
    emitted.clear();
    for (const n of b.graph.nodes.slice(start)) for (const o of n.outputs) emitted.add(o);
    nameOutput(out.param, nextName(p.param), p.shape);
    for (const s of rule.slots) nameOutput(out.slots[s], nextName(slots[s]), p.shape);
  });
  if (renames.size === 0) return;
  for (const n of b.graph.nodes.slice(first)) {
    n.inputs = n.inputs.map((v) => renames.get(v) ?? v);
    n.outputs = n.outputs.map((v) => renames.get(v) ?? v);
  }
}

/** The per-step scalar feeds (`optim::*` names) for optimizer step `step` (1-based) at learning rate `lr`. */
export function optimizerScalars(rule: UpdateRule, step: number, lr: number, gradScale = 1): Record<string, number> {
  const out: Record<string, number> = { [GRAD_SCALE]: gradScale };
  for (const [k, v] of Object.entries(rule.scalars(step, lr))) out[scalarInputName(k)] = v;
  return out;
}
