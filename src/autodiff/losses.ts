/**
 * Loss builders: each appends a loss to a graph with a GraphBuilder and returns the loss value's name. They emit
 * ops that ORT's inference build runs and that Tailor's autodiff differentiates (SoftmaxCrossEntropyLoss has its
 * own rule; the others are compositions of elementwise ops and reductions).
 */
import { ConfigError } from '../errors.ts';
import type { GraphBuilder } from '../onnx/builder.ts';

export type Reduction = 'mean' | 'sum' | 'none';

export interface SoftmaxCrossEntropyOptions {
  /** ε in [0, 1): loss = (1 − ε)·NLL + ε·mean over classes of −log p (PyTorch's label_smoothing). */
  labelSmoothing?: number;
  /** Label value whose positions contribute nothing (and are not counted by the mean), e.g. -100. */
  ignoreIndex?: number;
  reduction?: Reduction;
  /**
   * Name of a float value with one weight per flattened label position (e.g. a graph input [N] fed per batch, such
   * as AIF360-style reweighing weights): loss = Σ wᵢℓᵢ / Σ wᵢ ('mean'), Σ wᵢℓᵢ ('sum') or wᵢℓᵢ ('none'); ignored
   * positions count in neither sum.
   */
  sampleWeights?: string;
}

/** Last axis of `x` as a 1-element int64 tensor, and a [-1, C] shape tensor to flatten to. */
function flattenToClasses(b: GraphBuilder, logits: string): string {
  const shape = b.op('Shape', [logits]);
  const last = b.op('Slice', [shape, b.ints([-1]), b.ints([Number.MAX_SAFE_INTEGER])]);
  return b.op('Concat', [b.ints([-1]), last], { axis: 0 });
}

/**
 * Softmax cross-entropy of `logits` [..., C] against integer class `labels` [...] (int64 or int32); the leading
 * axes are flattened, so reduction 'none' returns one loss per flattened position.
 */
export function softmaxCrossEntropy(
  b: GraphBuilder,
  logits: string,
  labels: string,
  opts: SoftmaxCrossEntropyOptions = {},
): string {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1))
    throw new ConfigError(`labelSmoothing must be in [0, 1), got ${eps}`, {
      field: 'labelSmoothing',
      value: String(eps),
    });
  const reduction = opts.reduction ?? 'mean';
  if (opts.sampleWeights !== undefined) {
    // Per-position losses (smoothing and ignore_index applied), then weighted and reduced here.
    const per = softmaxCrossEntropy(b, logits, labels, { ...opts, sampleWeights: undefined, reduction: 'none' });
    let w = b.op('CastLike', [b.op('Reshape', [opts.sampleWeights, b.ints([-1])]), per]);
    if (opts.ignoreIndex !== undefined) {
      const lab = b.op('Reshape', [labels, b.ints([-1])]);
      const ign = b.op('CastLike', [b.scalar(opts.ignoreIndex, 'int64'), lab]);
      w = b.mul(w, b.op('CastLike', [b.op('Not', [b.op('Equal', [lab, ign])]), per]));
    }
    const weighted = b.mul(per, w);
    if (reduction === 'none') return weighted;
    const total = b.op('ReduceSum', [weighted], { keepdims: 0 });
    return reduction === 'sum' ? total : b.div(total, b.op('ReduceSum', [w], { keepdims: 0 }));
  }
  const scores = b.op('Reshape', [logits, flattenToClasses(b, logits)]);
  const lab = b.op('Reshape', [labels, b.ints([-1])]);
  const attrs = { reduction, ...(opts.ignoreIndex !== undefined ? { ignore_index: opts.ignoreIndex } : {}) };
  const [nll, logp] = b.node('SoftmaxCrossEntropyLoss', [scores, lab], attrs, { outputs: 2 });
  if (eps === 0) return nll;
  // −mean_c log p per position, masked and reduced like the NLL term
  let smooth = b.neg(b.op('ReduceMean', [logp], { axes: [1], keepdims: 0 }));
  let count: string | undefined;
  if (opts.ignoreIndex !== undefined) {
    const ign = b.op('CastLike', [b.scalar(opts.ignoreIndex, 'int64'), lab]);
    const valid = b.op('CastLike', [b.op('Not', [b.op('Equal', [lab, ign])]), logits]);
    smooth = b.mul(smooth, valid);
    count = b.op('ReduceSum', [valid], { keepdims: 0 });
  }
  if (reduction === 'sum') smooth = b.op('ReduceSum', [smooth], { keepdims: 0 });
  else if (reduction === 'mean') {
    smooth = count
      ? b.div(b.op('ReduceSum', [smooth], { keepdims: 0 }), count)
      : b.op('ReduceMean', [smooth], { keepdims: 0 });
  }
  const one = b.op('CastLike', [b.scalar(1 - eps), logits]);
  const e = b.op('CastLike', [b.scalar(eps), logits]);
  return b.add(b.mul(nll, one), b.mul(smooth, e));
}

function reduce(b: GraphBuilder, x: string, reduction: Reduction): string {
  if (reduction === 'none') return x;
  return b.op(reduction === 'mean' ? 'ReduceMean' : 'ReduceSum', [x], { keepdims: 0 });
}

/**
 * Binary cross-entropy on logits, in the overflow-free form max(x, 0) − x·t + log(1 + e^(−|x|)); targets are
 * probabilities in [0, 1] of the logits' dtype and shape (or broadcastable to it).
 */
export function binaryCrossEntropyWithLogits(
  b: GraphBuilder,
  logits: string,
  targets: string,
  opts: { reduction?: Reduction } = {},
): string {
  const one = b.op('CastLike', [b.scalar(1), logits]);
  const softplusNegAbs = b.log(b.add(one, b.exp(b.neg(b.abs(logits)))));
  const per = b.add(b.sub(b.relu(logits), b.mul(logits, targets)), softplusNegAbs);
  return reduce(b, per, opts.reduction ?? 'mean');
}

/** Mean squared error over all elements (or summed / elementwise). */
export function mse(b: GraphBuilder, pred: string, target: string, opts: { reduction?: Reduction } = {}): string {
  const d = b.sub(pred, target);
  return reduce(b, b.mul(d, d), opts.reduction ?? 'mean');
}

export interface KlDivergenceOptions {
  /** Softening temperature T (Hinton et al.); the loss is scaled by T² so gradients keep their size. */
  temperature?: number;
}

/**
 * Distillation loss T²·KL(softmax(t/T) ‖ softmax(s/T)) over the last axis, summed over classes and divided by the
 * batch size (the first axis of the logits), like PyTorch's `kl_div(..., reduction='batchmean')`. Gradients flow
 * into the student logits; the teacher logits are treated as data.
 */
export function klDivergence(
  b: GraphBuilder,
  studentLogits: string,
  teacherLogits: string,
  opts: KlDivergenceOptions = {},
): string {
  const T = opts.temperature ?? 1;
  if (!(T > 0)) throw new ConfigError(`temperature must be > 0, got ${T}`, { field: 'temperature', value: String(T) });
  const invT = b.op('CastLike', [b.scalar(1 / T), studentLogits]);
  const logPs = b.logSoftmax(b.mul(studentLogits, invT), -1);
  const logPt = b.logSoftmax(b.mul(teacherLogits, invT), -1);
  const pt = b.exp(logPt);
  const total = b.op('ReduceSum', [b.mul(pt, b.sub(logPt, logPs))], { keepdims: 0 });
  const batch = b.op('CastLike', [
    b.op('Gather', [b.op('Shape', [studentLogits]), b.scalar(0, 'int64')]),
    studentLogits,
  ]);
  const t2 = b.op('CastLike', [b.scalar(T * T), studentLogits]);
  return b.mul(b.div(total, batch), t2);
}
