/** Gradients of ReduceSum / ReduceMean / ReduceMax / ReduceMin (axes as attribute, opset < 18, or as input). */
import type { GradContext, GradRule } from '../context.ts';
import { normAxes } from '../context.ts';

/** Reduced axes (normalised); all axes when none are given (unless noop_with_empty_axes). */
function reducedAxes(c: GradContext): number[] | 'noop' {
  const rank = c.rankOf(c.x(0));
  let axes = c.intsAttr('axes');
  if (!axes && c.hasInput(1)) {
    axes = c.constInput(1);
    if (!axes) throw c.error('axes input must be a constant to differentiate through it');
  }
  if (!axes || axes.length === 0) {
    if (c.int('noop_with_empty_axes', 0) === 1) return 'noop';
    return Array.from({ length: rank }, (_, i) => i);
  }
  return normAxes(axes, rank);
}

/** dY brought back to the input's shape: Unsqueeze the dropped axes, Expand. */
function spread(c: GradContext, g: string, axes: number[]): string {
  let out = g;
  if (c.int('keepdims', 1) === 0 && axes.length) out = c.op('Unsqueeze', [out, c.ints(axes)]);
  return c.op('Expand', [out, c.shapeTensor(c.x(0))]);
}

function reducedCount(c: GradContext, axes: number[]): string {
  const s = c.shapeOf(c.x(0));
  if (axes.every((a) => typeof s[a] === 'number')) return c.scalar(axes.reduce((n, a) => n * (s[a] as number), 1));
  const total = c.op('ReduceProd', [c.op('Gather', [c.op('Shape', [c.x(0)]), c.ints(axes)])], { keepdims: 0 });
  return c.op('CastLike', [total, c.x(0)]);
}

export const reduceSum: GradRule = (c) => {
  const axes = reducedAxes(c);
  if (axes === 'noop') return [c.dy()];
  return [spread(c, c.dy()!, axes)];
};

export const reduceMean: GradRule = (c) => {
  const axes = reducedAxes(c);
  if (axes === 'noop') return [c.dy()];
  return [c.div(spread(c, c.dy()!, axes), reducedCount(c, axes))];
};

/** Max/Min: dY goes to the elements equal to the result, split evenly among ties (as PyTorch's amax does). */
export const reduceMaxMin: GradRule = (c) => {
  const axes = reducedAxes(c);
  if (axes === 'noop') return [c.dy()];
  let y = c.y(0);
  let dy = c.dy()!;
  if (c.int('keepdims', 1) === 0 && axes.length) {
    y = c.op('Unsqueeze', [y, c.ints(axes)]);
    dy = c.op('Unsqueeze', [dy, c.ints(axes)]);
  }
  const hit = c.op('CastLike', [c.op('Equal', [c.x(0), y]), c.x(0)]);
  const count = c.reduceSum(hit, axes, true);
  return [c.mul(hit, c.div(dy, count))];
};

/** ReduceSumSquare: d/dx sum(x^2) = 2x. */
export const reduceSumSquare: GradRule = (c) => {
  const axes = reducedAxes(c);
  const g = axes === 'noop' ? c.dy()! : spread(c, c.dy()!, axes);
  return [c.mul(g, c.mul(c.x(0), c.scalar(2)))];
};
