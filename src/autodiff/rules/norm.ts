/** Gradients of LayerNormalization and BatchNormalization. */
import type { GradRule } from '../context.ts';
import { normAxes } from '../context.ts';

/**
 * LayerNormalization-17. Uses the node's own Mean and InvStdDev outputs (added to the forward node when absent),
 * so the statistics are not recomputed: x̂ = (x − mean)·inv_std, g = dY·scale,
 * dX = inv_std·(g − mean(g) − x̂·mean(g·x̂)), dScale = Σ dY·x̂, dBias = Σ dY over the outer axes.
 */
export const layerNorm: GradRule = (c) => {
  const x = c.x(0);
  const rank = c.rankOf(x);
  const axis = normAxes([c.int('axis', -1)], rank)[0];
  const inner = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const outer = Array.from({ length: axis }, (_, i) => i);
  let mean = c.ensureOutput(1, 'Mean');
  let invStd = c.ensureOutput(2, 'InvStdDev');
  // the statistics come in stash_type (float32) even for float64 inputs
  if (c.dtype !== 'float32') {
    mean = c.op('CastLike', [mean, x]);
    invStd = c.op('CastLike', [invStd, x]);
  }
  const dy = c.dy()!;
  const xhat = c.mul(c.sub(x, mean), invStd);
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (c.needs(0)) {
    const g = c.mul(dy, c.x(1));
    const meanG = c.op('ReduceMean', [g], { axes: inner, keepdims: 1 });
    const meanGX = c.op('ReduceMean', [c.mul(g, xhat)], { axes: inner, keepdims: 1 });
    let dx = c.mul(invStd, c.sub(c.sub(g, meanG), c.mul(xhat, meanGX)));
    // gradients reaching the Mean / InvStdDev outputs themselves (rare: a loss on the statistics)
    const dMean = c.dy(1);
    const dInv = c.dy(2);
    if (dMean || dInv) {
      const xs = c.shapeOf(x).slice(axis);
      const n = xs.every((d) => typeof d === 'number')
        ? c.scalar((xs as number[]).reduce((a, b) => a * b, 1))
        : c.op('CastLike', [
            c.op('ReduceProd', [c.op('Slice', [c.op('Shape', [x]), c.ints([axis]), c.ints([rank])])], { keepdims: 0 }),
            x,
          ]);
      let extra: string | undefined;
      if (dMean) extra = c.op('CastLike', [dMean, x]);
      if (dInv) {
        const i3 = c.mul(c.mul(invStd, invStd), invStd);
        const t = c.neg(c.mul(c.mul(c.op('CastLike', [dInv, x]), i3), c.sub(x, mean)));
        extra = extra ? c.add(extra, t) : t;
      }
      dx = c.add(dx, c.div(extra!, n));
    }
    out[0] = dx;
  }
  const innerShape = c.shapeOf(x).slice(axis);
  if (c.needs(1)) out[1] = c.unbroadcast(c.reduceSum(c.mul(dy, xhat), outer, false), c.x(1), innerShape);
  if (c.hasInput(2) && c.needs(2)) out[2] = c.unbroadcast(c.reduceSum(dy, outer, false), c.x(2), innerShape);
  return out;
};

/**
 * BatchNormalization-15 over N and the spatial axes. In training mode (training_mode=1) the batch statistics are
 * recomputed in the backward graph (opset 15 does not output the saved mean/variance); in inference mode the
 * running statistics are constants: dX = dY·scale/√(var+ε).
 */
export const batchNorm: GradRule = (c) => {
  const x = c.x(0);
  const rank = c.rankOf(x);
  const eps = c.float('epsilon', 1e-5);
  const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const bshape = c.ints([1, -1, ...Array.from({ length: rank - 2 }, () => 1)]);
  const scale = c.reshape(c.x(1), bshape);
  const dy = c.dy()!;
  const training = c.int('training_mode', 0) === 1;
  const out: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  let mean: string;
  let invStd: string;
  if (training) {
    mean = c.op('ReduceMean', [x], { axes, keepdims: 1 });
    const d = c.sub(x, mean);
    const v = c.op('ReduceMean', [c.mul(d, d)], { axes, keepdims: 1 });
    invStd = c.op('Reciprocal', [c.op('Sqrt', [c.add(v, c.scalar(eps))])]);
  } else {
    mean = c.reshape(c.x(3), bshape);
    invStd = c.op('Reciprocal', [c.op('Sqrt', [c.add(c.reshape(c.x(4), bshape), c.scalar(eps))])]);
  }
  const xhat = c.mul(c.sub(x, mean), invStd);
  if (c.needs(0)) {
    if (training) {
      const mdy = c.op('ReduceMean', [dy], { axes, keepdims: 1 });
      const mdyx = c.op('ReduceMean', [c.mul(dy, xhat)], { axes, keepdims: 1 });
      out[0] = c.mul(c.mul(scale, invStd), c.sub(c.sub(dy, mdy), c.mul(xhat, mdyx)));
    } else {
      out[0] = c.mul(dy, c.mul(scale, invStd));
    }
  }
  if (c.needs(1)) out[1] = c.reduceSum(c.mul(dy, xhat), axes, false);
  if (c.needs(2)) out[2] = c.reduceSum(dy, axes, false);
  return out;
};
