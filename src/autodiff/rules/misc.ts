/** Gradients of Dropout and of the ONNX loss ops. */
import type { GradRule } from '../context.ts';

/**
 * Dropout-13 in training mode: dX = dY·mask/(1 − ratio), with the forward node's own mask output (added when
 * absent), so the backward pass drops exactly what the forward pass dropped. Inference mode is the identity.
 * A training_mode that is a graph input selects the scale at run time.
 */
export const dropout: GradRule = (c) => {
  const dy = c.dy()!;
  let training: 'yes' | 'no' | 'dynamic' = 'no';
  if (c.hasInput(2)) {
    const t = c.constInput(2);
    training = t ? (t[0] ? 'yes' : 'no') : 'dynamic';
  }
  if (training === 'no') return [dy];
  const mask = c.ensureOutput(1, 'mask');
  const ratio = c.hasInput(1) ? c.op('CastLike', [c.x(1), c.x(0)]) : c.scalar(0.5);
  let scale = c.div(c.scalar(1), c.sub(c.scalar(1), ratio));
  if (training === 'dynamic') scale = c.op('Where', [c.x(2), scale, c.scalar(1)]);
  return [c.mul(c.op('Where', [mask, dy, c.scalar(0)]), scale)];
};

/**
 * SoftmaxCrossEntropyLoss-13 (scores [N, C, d...], integer labels [N, d...], optional class weights [C]):
 * dScores = (softmax − onehot)·w·dY (÷ Σw for reduction=mean), zero on ignore_index; plus the gradient that
 * reaches the optional log_prob output (label smoothing uses it).
 */
export const softmaxCrossEntropyLoss: GradRule = (c) => {
  const scores = c.x(0);
  const labels = c.x(1);
  const ss = c.shapeOf(scores);
  const C = ss[1];
  if (typeof C !== 'number') throw c.error(`the class count of '${scores}' must be static, found ${String(C)}`);
  const rank = ss.length;
  const logp = c.ensureOutput(1, 'log_prob');
  const p = c.op('Exp', [logp]);
  let result: string | undefined;
  const dy = c.dy(0);
  if (dy) {
    const ignore = c.attr('ignore_index');
    let safe = labels;
    let valid: string | undefined;
    if (ignore && ignore.type === 'int') {
      const ign = c.op('CastLike', [c.b.scalar(ignore.value, 'int64'), labels]);
      valid = c.op('Not', [c.op('Equal', [labels, ign])]);
      safe = c.op('Where', [valid, labels, c.op('CastLike', [c.b.scalar(0, 'int64'), labels])]);
    }
    // one-hot by comparison with 0..C-1 laid along axis 1 (OneHot has no float64 kernel in ORT)
    const classes = c.reshape(
      c.ints(Array.from({ length: C }, (_, i) => i)),
      c.ints([1, C, ...new Array<number>(rank - 2).fill(1)]),
    );
    const lab1 = c.op('Unsqueeze', [c.op('Cast', [safe], { to: 7 }), c.ints([1])]);
    const onehot = c.op('CastLike', [c.op('Equal', [lab1, classes]), scores]);
    let w: string | undefined;
    if (c.hasInput(2)) w = c.op('Gather', [c.x(2), safe]);
    if (valid) {
      const v = c.op('CastLike', [valid, scores]);
      w = w ? c.mul(w, v) : v;
    }
    const reduction = c.str('reduction', 'mean');
    let coef = dy;
    if (w) coef = c.mul(coef, w);
    if (reduction === 'mean') {
      const denom = w ? c.op('ReduceSum', [w], { keepdims: 0 }) : c.op('CastLike', [c.op('Size', [labels]), scores]);
      coef = c.div(coef, denom);
    }
    const coefShaped = reduction === 'none' || w ? c.op('Unsqueeze', [coef, c.ints([1])]) : coef;
    result = c.mul(c.sub(p, onehot), coefShaped);
  }
  const dlp = c.dy(1);
  if (dlp) {
    const g = c.sub(dlp, c.mul(p, c.reduceSum(dlp, [1], true)));
    result = result ? c.add(result, g) : g;
  }
  return [result, undefined, undefined];
};
