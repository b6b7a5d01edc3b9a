/** Elementwise ops: unary (same type), broadcasting binary/variadic, comparisons, Where, Cast, Clip, Dropout. */
import { dtypeFromOnnx, type DType } from '../dtype.ts';
import type { Dim, Shape } from '../ir.ts';
import type { InferContext, InferFn, InType, OutType } from './context.ts';
import { broadcastDim, dimAdd, dimDiv, dimEq, dimMul, dimSub, isStatic } from './dims.ts';

/** Multidirectional (numpy) broadcast of several shapes; undefined when any rank is unknown. */
export function broadcastShapes(ctx: InferContext, shapes: (Shape | undefined)[]): Shape | undefined {
  if (shapes.some((s) => s === undefined)) return undefined;
  const ss = shapes as Shape[];
  const rank = Math.max(0, ...ss.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of ss) {
      const j = s.length - rank + i;
      if (j < 0) continue;
      const r = broadcastDim(d, s[j]);
      if (r === undefined) {
        ctx.fail(
          `cannot broadcast ${ss.map((x) => ctx.shapeStr(x)).join(' and ')}: dimension ${i} (from the right: ${rank - i}) differs`,
        );
      }
      d = r;
    }
    out.push(d);
  }
  return out;
}

const MAX_KNOWN = 64;

/** Elementwise evaluation over known values of static-shape inputs (numpy broadcasting), for shape arithmetic. */
function evalKnown(
  inputs: InType[],
  outShape: Shape | undefined,
  fn: (xs: Dim[]) => Dim | undefined,
): Dim[] | undefined {
  if (!isStatic(outShape)) return undefined;
  let n = 1;
  for (const d of outShape) n *= d;
  if (n > MAX_KNOWN) return undefined;
  if (!inputs.every((x) => x.known && isStatic(x.shape))) return undefined;
  const out: Dim[] = [];
  const rank = outShape.length;
  for (let flat = 0; flat < n; flat++) {
    const idx: number[] = new Array(rank);
    let r = flat;
    for (let i = rank - 1; i >= 0; i--) {
      idx[i] = r % outShape[i];
      r = Math.floor(r / outShape[i]);
    }
    const args: Dim[] = [];
    for (const x of inputs) {
      const s = x.shape as number[];
      let off = 0;
      for (let i = 0; i < s.length; i++) {
        const k = idx[rank - s.length + i];
        off = off * s[i] + (s[i] === 1 ? 0 : k);
      }
      args.push((x.known as Dim[])[off]);
    }
    const v = fn(args);
    if (v === undefined) return undefined;
    out.push(v);
  }
  return out;
}

const INT_TYPES = new Set<DType>(['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64']);

function arith(op: string): ((xs: Dim[]) => Dim | undefined) | undefined {
  switch (op) {
    case 'Add':
      return ([a, b]) => dimAdd(a, b);
    case 'Sub':
      return ([a, b]) => dimSub(a, b);
    case 'Mul':
      return ([a, b]) => dimMul(a, b);
    case 'Div':
      return ([a, b]) => {
        if (typeof a === 'number' && typeof b === 'number') return b === 0 ? undefined : Math.trunc(a / b);
        return dimDiv(a, b);
      };
    case 'Max':
      return (xs) => (xs.every((x) => typeof x === 'number') ? Math.max(...(xs as number[])) : undefined);
    case 'Min':
      return (xs) => (xs.every((x) => typeof x === 'number') ? Math.min(...(xs as number[])) : undefined);
    case 'Equal':
      return ([a, b]) => {
        if (typeof a === 'number' && typeof b === 'number') return a === b ? 1 : 0;
        if (dimEq(a, b)) return 1;
        // a symbolic dim is a size (>= 0): it never equals a negative number such as Reshape's -1
        if ((typeof a === 'number' && a < 0) || (typeof b === 'number' && b < 0)) return 0;
        return undefined;
      };
    default:
      return undefined;
  }
}

/** Output keeps the input's type. */
export const unary: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const out: OutType = { dtype: x.dtype, shape: x.shape };
  if (ctx.node.opType === 'Neg' && x.known) out.known = x.known.map((d) => dimMul(d, -1));
  if (ctx.node.opType === 'Identity' && x.known) out.known = x.known;
  if (ctx.node.opType === 'Identity' && x.tensor) out.tensor = x.tensor;
  return [out];
};

/** Broadcasting binary/variadic ops whose output has the first input's type. */
export const broadcastSame: InferFn = (ctx: InferContext) => {
  const ins = ctx.inputs.filter((x): x is InType => x !== undefined);
  if (ins.length === 0) ctx.fail('needs at least one input');
  const dtype = ins[0].dtype;
  // Pow allows a different exponent type; everything else must agree
  if (ctx.node.opType !== 'Pow') {
    for (const x of ins) if (x.dtype !== dtype) ctx.fail(`input types differ: ${ins.map((i) => i.dtype).join(' vs ')}`);
  }
  const shape = broadcastShapes(
    ctx,
    ins.map((x) => x.shape),
  );
  const out: OutType = { dtype, shape };
  const fn = INT_TYPES.has(dtype) ? arith(ctx.node.opType) : undefined;
  if (fn) {
    const k = evalKnown(ins, shape, fn);
    if (k) out.known = k;
  }
  return [out];
};

/** Comparisons and logic ops: broadcasting, bool output. */
export const compare: InferFn = (ctx: InferContext) => {
  const ins = ctx.inputs.filter((x): x is InType => x !== undefined);
  const shape = broadcastShapes(
    ctx,
    ins.map((x) => x.shape),
  );
  const out: OutType = { dtype: 'bool', shape };
  const fn = arith(ctx.node.opType);
  if (fn && INT_TYPES.has(ins[0].dtype)) {
    const k = evalKnown(ins, shape, fn);
    if (k) out.known = k;
  }
  if (ctx.node.opType === 'Not' && ins[0].known)
    out.known = ins[0].known.map((v) => (v === 0 ? 1 : typeof v === 'number' ? 0 : v));
  return [out];
};

export const where: InferFn = (ctx: InferContext) => {
  const c = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const x = ctx.opt(1) ?? ctx.fail('input 1 is missing');
  const y = ctx.opt(2) ?? ctx.fail('input 2 is missing');
  if (c.dtype !== 'bool') ctx.fail(`condition must be bool, got ${c.dtype}`);
  if (x.dtype !== y.dtype) ctx.fail(`X and Y types differ: ${x.dtype} vs ${y.dtype}`);
  const shape = broadcastShapes(ctx, [c.shape, x.shape, y.shape]);
  const out: OutType = { dtype: x.dtype, shape };
  const k = evalKnown([c, x, y], shape, ([cv, xv, yv]) => (typeof cv === 'number' ? (cv ? xv : yv) : undefined));
  if (k) out.known = k;
  return [out];
};

export const cast: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const code = ctx.int('to', -1);
  const to = dtypeFromOnnx(code) ?? ctx.fail(`unsupported target type code ${code}`);
  const out: OutType = { dtype: to, shape: x.shape };
  if (x.known && (INT_TYPES.has(to) || to === 'float32' || to === 'float64')) out.known = x.known;
  return [out];
};

export const castLike: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const t = ctx.opt(1) ?? ctx.fail('input 1 is missing');
  return [{ dtype: t.dtype, shape: x.shape, ...(x.known ? { known: x.known } : {}) }];
};

/** Clip: min/max are optional scalar inputs of the same type. */
export const clip: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  for (const i of [1, 2]) {
    const b = ctx.opt(i);
    if (!b) continue;
    if (b.dtype !== x.dtype) ctx.fail(`bound ${i === 1 ? 'min' : 'max'} has type ${b.dtype}, input has ${x.dtype}`);
    if (b.shape && b.shape.length > 1)
      ctx.fail(`bound ${i === 1 ? 'min' : 'max'} must be a scalar, got ${ctx.shapeStr(b.shape)}`);
  }
  return [{ dtype: x.dtype, shape: x.shape }];
};

/** Dropout: output and a bool mask of the same shape. */
export const dropout: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  return [
    { dtype: x.dtype, shape: x.shape },
    { dtype: 'bool', shape: x.shape },
  ];
};

/** Bool-valued elementwise tests (IsNaN, IsInf). */
export const unaryBool: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  return [{ dtype: 'bool', shape: x.shape }];
};

/** com.microsoft FastGelu/BiasGelu: optional bias added with broadcasting. */
export const biasActivation: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const b = ctx.opt(1);
  const shape = b ? broadcastShapes(ctx, [x.shape, b.shape]) : x.shape;
  return [{ dtype: x.dtype, shape }];
};
