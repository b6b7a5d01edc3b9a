/** Reductions, normalisation, convolution and pooling, losses and quantisation ops. */
import { dtypeFromOnnx, isFloat, type DType } from '../dtype.ts';
import type { Dim, Shape } from '../ir.ts';
import type { InferContext, InferFn } from './context.ts';
import { canon, dimAdd, dimEq, dimMul } from './dims.ts';

export const reduce: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  const keep = ctx.int('keepdims', 1) !== 0;
  const axesIn = ctx.axesFrom(1);
  if (axesIn === 'unknown') return [{ dtype: x.dtype, ...(keep ? { shape: x.shape.map(() => ctx.fresh()) } : {}) }];
  let axes: Set<number>;
  if (!axesIn || axesIn.length === 0) {
    if (ctx.int('noop_with_empty_axes', 0)) return [{ dtype: x.dtype, shape: x.shape }];
    axes = new Set(x.shape.map((_, i) => i));
  } else axes = new Set(axesIn.map((a) => ctx.axis(a, r)));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.has(i)) shape.push(d);
    else if (keep) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
};

export const argReduce: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  const axis = ctx.axis(ctx.int('axis', 0), r);
  const keep = ctx.int('keepdims', 1) !== 0;
  const shape = x.shape.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
  return [{ dtype: 'int64', shape }];
};

function checkParam(ctx: InferContext, what: string, p: Shape | undefined, expected: Shape): void {
  if (!p) return;
  // the parameter must broadcast onto the normalised dims
  const ok =
    p.length <= expected.length &&
    p.every((d, i) => {
      const e = expected[expected.length - p.length + i];
      return d === 1 || typeof d !== 'number' || typeof e !== 'number' || d === e;
    });
  if (!ok) ctx.fail(`${what} ${ctx.shapeStr(p)} does not match the normalised dimensions ${ctx.shapeStr(expected)}`);
}

export const layerNorm: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  const axis = ctx.axis(ctx.int('axis', -1), r);
  const normalised = x.shape.slice(axis);
  checkParam(ctx, 'scale', ctx.opt(1)?.shape, normalised);
  checkParam(ctx, 'bias', ctx.opt(2)?.shape, normalised);
  const stash = dtypeFromOnnx(ctx.int('stash_type', 1)) ?? 'float32';
  const statShape = [...x.shape.slice(0, axis), ...normalised.map(() => 1)];
  return [
    { dtype: x.dtype, shape: x.shape },
    { dtype: stash, shape: statShape },
    { dtype: stash, shape: statShape },
  ];
};

export const batchNorm: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  if (x.shape.length < 2) ctx.fail(`input must have rank >= 2, got ${ctx.shapeStr(x.shape)}`);
  const c = x.shape[1];
  for (let i = 1; i <= 4; i++) {
    const p = ctx.opt(i)?.shape;
    if (p && (p.length !== 1 || (typeof p[0] === 'number' && typeof c === 'number' && p[0] !== c))) {
      ctx.fail(`parameter ${i} ${ctx.shapeStr(p)} does not match channels ${c} of ${ctx.shapeStr(x.shape)}`);
    }
  }
  const stat = { dtype: ctx.opt(3)?.dtype ?? x.dtype, shape: [c] };
  return [{ dtype: x.dtype, shape: x.shape }, stat, stat, stat, stat];
};

type Rounding = 'floor' | 'ceil';

/** Output length of one spatial axis of a conv/pool window. */
function windowLen(
  ctx: InferContext,
  d: Dim,
  k: number,
  s: number,
  dil: number,
  pb: number,
  pe: number,
  autoPad: string,
  round: Rounding,
): Dim {
  const span = (k - 1) * dil + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    if (typeof d === 'number') return Math.ceil(d / s);
    return s === 1 ? d : ctx.fresh();
  }
  const [b, e] = autoPad === 'VALID' ? [0, 0] : [pb, pe];
  if (typeof d === 'number') {
    const v = (d + b + e - span) / s;
    const out = (round === 'ceil' ? Math.ceil(v) : Math.floor(v)) + 1;
    if (out <= 0) ctx.fail(`window (kernel ${k}, dilation ${dil}) is larger than the padded input ${d + b + e}`);
    return out;
  }
  return s === 1 ? canon(dimAdd(d, b + e - span + 1)) : ctx.fresh();
}

interface WindowAttrs {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  autoPad: string;
}

function windowAttrs(ctx: InferContext, nSpatial: number, kernel: number[]): WindowAttrs {
  const strides = ctx.ints('strides') ?? kernel.map(() => 1);
  const dilations = ctx.ints('dilations') ?? kernel.map(() => 1);
  const pads = ctx.ints('pads') ?? kernel.flatMap(() => [0, 0]);
  if (
    kernel.length !== nSpatial ||
    strides.length !== nSpatial ||
    dilations.length !== nSpatial ||
    pads.length !== 2 * nSpatial
  ) {
    ctx.fail(
      `kernel/strides/dilations/pads [${kernel}]/[${strides}]/[${dilations}]/[${pads}] do not fit ${nSpatial} spatial dimensions`,
    );
  }
  return { kernel, strides, dilations, pads, autoPad: ctx.str('auto_pad', 'NOTSET') };
}

export const conv: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const w = ctx.in(1);
  if (x.shape.length < 3) ctx.fail(`input must be [N, C, spatial...], got ${ctx.shapeStr(x.shape)}`);
  if (w.shape.length !== x.shape.length)
    ctx.fail(`weight ${ctx.shapeStr(w.shape)} and input ${ctx.shapeStr(x.shape)} have different ranks`);
  const group = ctx.int('group', 1);
  const cIn = x.shape[1];
  const wc = w.shape[1];
  if (typeof cIn === 'number' && typeof wc === 'number' && cIn !== wc * group) {
    ctx.fail(
      `input channels ${cIn} do not match weight ${ctx.shapeStr(w.shape)} x group ${group} (input ${ctx.shapeStr(x.shape)})`,
    );
  }
  const nSp = x.shape.length - 2;
  const kernel =
    ctx.ints('kernel_shape') ??
    w.shape.slice(2).map((d) => (typeof d === 'number' ? d : ctx.fail(`kernel size ${d} must be static`)));
  const a = windowAttrs(ctx, nSp, kernel);
  const spatial = x.shape
    .slice(2)
    .map((d, i) =>
      windowLen(ctx, d, a.kernel[i], a.strides[i], a.dilations[i], a.pads[i], a.pads[i + nSp], a.autoPad, 'floor'),
    );
  const b = ctx.opt(2)?.shape;
  if (b && (b.length !== 1 || !dimEq(b[0], w.shape[0])))
    ctx.fail(`bias ${ctx.shapeStr(b)} does not match ${w.shape[0]} output channels`);
  return [{ dtype: x.dtype, shape: [x.shape[0], w.shape[0], ...spatial] }];
};

export const convTranspose: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const w = ctx.in(1);
  if (x.shape.length < 3) ctx.fail(`input must be [N, C, spatial...], got ${ctx.shapeStr(x.shape)}`);
  const group = ctx.int('group', 1);
  if (!dimEq(x.shape[1], w.shape[0]) && typeof x.shape[1] === 'number' && typeof w.shape[0] === 'number') {
    ctx.fail(`input channels ${x.shape[1]} do not match weight ${ctx.shapeStr(w.shape)}`);
  }
  const nSp = x.shape.length - 2;
  const kernel =
    ctx.ints('kernel_shape') ??
    w.shape.slice(2).map((d) => (typeof d === 'number' ? d : ctx.fail(`kernel size ${d} must be static`)));
  const a = windowAttrs(ctx, nSp, kernel);
  const outPad = ctx.ints('output_padding') ?? kernel.map(() => 0);
  const given = ctx.ints('output_shape');
  const spatial: Dim[] = x.shape.slice(2).map((d, i) => {
    if (given) return given[given.length - nSp + i];
    if (a.autoPad === 'SAME_UPPER' || a.autoPad === 'SAME_LOWER') return dimMul(d, a.strides[i]);
    const span = (a.kernel[i] - 1) * a.dilations[i] + 1;
    const pads = a.autoPad === 'VALID' ? 0 : a.pads[i] + a.pads[i + nSp];
    return canon(dimAdd(dimMul(dimAdd(d, -1), a.strides[i]), outPad[i] + span - pads));
  });
  return [{ dtype: x.dtype, shape: [x.shape[0], dimMul(w.shape[1], group), ...spatial] }];
};

export const pool: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  if (x.shape.length < 3) ctx.fail(`input must be [N, C, spatial...], got ${ctx.shapeStr(x.shape)}`);
  const nSp = x.shape.length - 2;
  const kernel = ctx.ints('kernel_shape') ?? ctx.fail('missing kernel_shape');
  const a = windowAttrs(ctx, nSp, kernel);
  const round: Rounding = ctx.int('ceil_mode', 0) ? 'ceil' : 'floor';
  const spatial = x.shape
    .slice(2)
    .map((d, i) =>
      windowLen(ctx, d, a.kernel[i], a.strides[i], a.dilations[i], a.pads[i], a.pads[i + nSp], a.autoPad, round),
    );
  const shape = [x.shape[0], x.shape[1], ...spatial];
  return [
    { dtype: x.dtype, shape },
    { dtype: 'int64', shape },
  ];
};

export const globalPool: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  if (x.shape.length < 3) ctx.fail(`input must be [N, C, spatial...], got ${ctx.shapeStr(x.shape)}`);
  return [{ dtype: x.dtype, shape: [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)] }];
};

/** SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: scores [N, C, d...], labels [N, d...]. */
export const loss: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const t = ctx.in(1);
  if (x.shape.length < 2) ctx.fail(`scores must be [N, C, ...], got ${ctx.shapeStr(x.shape)}`);
  const expected = [x.shape[0], ...x.shape.slice(2)];
  if (
    t.shape.length !== expected.length ||
    t.shape.some((d, i) => typeof d === 'number' && typeof expected[i] === 'number' && d !== expected[i])
  ) {
    ctx.fail(
      `labels ${ctx.shapeStr(t.shape)} do not match scores ${ctx.shapeStr(x.shape)} (expected ${ctx.shapeStr(expected)})`,
    );
  }
  if (!isFloat(x.dtype)) ctx.fail(`scores must be floating point, got ${x.dtype}`);
  const reduction = ctx.str('reduction', 'mean');
  const out = { dtype: x.dtype, shape: reduction === 'none' ? expected : [] };
  return [out, { dtype: x.dtype, shape: x.shape }];
};

export const dynamicQuantize: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  return [
    { dtype: 'uint8', shape: x.shape },
    { dtype: 'float32', shape: [] },
    { dtype: 'uint8', shape: [] },
  ];
};

export const quantize: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const zp = ctx.opt(2);
  const code = ctx.int('output_dtype', 0);
  const dtype: DType = zp?.dtype ?? (code ? dtypeFromOnnx(code) : undefined) ?? 'uint8';
  return [{ dtype, shape: x.shape }];
};

export const dequantize: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const scale = ctx.opt(1) ?? ctx.fail('input 1 (scale) is missing');
  return [{ dtype: scale.dtype, shape: x.shape }];
};
