/**
 * Ops that move or compute shapes: Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Gather,
 * Expand, Tile, Pad, Shape, Size, Constant, ConstantOfShape, Range, OneHot, Scatter*, TopK. Where the shape-tensor
 * inputs are known (possibly symbolic) values, outputs get exact shapes; small integer outputs carry their values
 * forward so that Optimum's Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains fold.
 */
import { isInteger, type DType } from '../dtype.ts';
import type { Dim, Tensor } from '../ir.ts';
import { sliceBounds } from '../slice.ts';
import { tensorToNumbers } from '../tensor.ts';
import type { InferContext, InferFn, OutType } from './context.ts';
import { canon, dimAdd, dimDiv, dimMul, dimProduct, dimSub, isStatic } from './dims.ts';
import { broadcastShapes } from './elementwise.ts';

/** Integer tensors up to this many elements have their values tracked. */
export const MAX_KNOWN = 64;

function numelOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function withKnown(out: OutType, known: Dim[] | undefined): OutType {
  if (
    known &&
    isStatic(out.shape) &&
    numelOf(out.shape) === known.length &&
    known.length <= MAX_KNOWN &&
    isInteger(out.dtype)
  ) {
    out.known = known.map(canon);
  }
  return out;
}

/** Known values of a constant tensor, for integer tensors small enough to track. */
export function knownFromTensor(t: Tensor): Dim[] | undefined {
  if (!isInteger(t.dtype) || numelOf(t.dims) > MAX_KNOWN) return undefined;
  try {
    return tensorToNumbers(t);
  } catch {
    return undefined;
  }
}

/** ONNX's "very large end" sentinels (INT64_MAX, INT32_MAX) as JavaScript numbers. */
function isHuge(v: Dim): boolean {
  return typeof v === 'number' && Math.abs(v) >= 2 ** 31 - 1;
}

export const reshape: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const target = ctx.known(1);
  const allowZero = ctx.int('allowzero', 0) !== 0;
  if (!target) {
    const sShape = ctx.opt(1)?.shape;
    if (isStatic(sShape) && sShape.length === 1)
      return [{ dtype: x.dtype, shape: Array.from({ length: sShape[0] }, () => ctx.fresh()) }];
    return [{ dtype: x.dtype }];
  }
  if (!x.shape) {
    if (target.some((d) => d === 0 || d === -1))
      return [{ dtype: x.dtype, shape: target.map((d) => (d === 0 || d === -1 ? ctx.fresh() : d)) }];
    return [withKnown({ dtype: x.dtype, shape: [...target] }, x.known)];
  }
  const out: (Dim | undefined)[] = [];
  let minus = -1;
  target.forEach((d, i) => {
    if (d === 0 && !allowZero) {
      if (i >= x.shape!.length)
        ctx.fail(
          `shape ${ctx.shapeStr(target)} copies dimension ${i} (0) but the input ${ctx.shapeStr(x.shape)} has rank ${x.shape!.length}`,
        );
      out.push(canon(x.shape![i]));
    } else if (d === -1) {
      if (minus >= 0) ctx.fail(`shape ${ctx.shapeStr(target)} has more than one -1`);
      minus = i;
      out.push(undefined);
    } else if (typeof d === 'number' && d < 0) {
      ctx.fail(`shape ${ctx.shapeStr(target)} has an invalid entry ${d}`);
    } else out.push(canon(d));
  });
  const total = dimProduct(x.shape);
  const rest = dimProduct(out.filter((d): d is Dim => d !== undefined));
  if (minus >= 0) {
    const q = dimDiv(total, rest);
    if (q === undefined && typeof total === 'number' && typeof rest === 'number') {
      ctx.fail(`cannot reshape ${ctx.shapeStr(x.shape)} (${total} elements) to ${ctx.shapeStr(target)}`);
    }
    out[minus] = q ?? ctx.fresh();
  } else if (typeof total === 'number' && typeof rest === 'number' && total !== rest) {
    ctx.fail(`cannot reshape ${ctx.shapeStr(x.shape)} (${total} elements) to ${ctx.shapeStr(target)}`);
  }
  return [withKnown({ dtype: x.dtype, shape: out as Dim[] }, x.known)];
};

export const flatten: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const axis = ctx.int('axis', 1);
  const a = axis < 0 ? axis + x.shape.length : axis;
  if (a < 0 || a > x.shape.length) ctx.fail(`axis ${axis} is out of range for rank ${x.shape.length}`);
  return [
    withKnown({ dtype: x.dtype, shape: [dimProduct(x.shape.slice(0, a)), dimProduct(x.shape.slice(a))] }, x.known),
  ];
};

export const transpose: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  const perm = ctx.ints('perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
  if (perm.length !== r || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    ctx.fail(`perm [${perm.join(', ')}] is not a permutation of the axes of ${ctx.shapeStr(x.shape)}`);
  }
  return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }];
};

export const squeeze: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const axesIn = ctx.axesFrom(1);
  if (axesIn === 'unknown') return [{ dtype: x.dtype }];
  const r = x.shape.length;
  let drop: Set<number>;
  if (axesIn === undefined || axesIn.length === 0) {
    drop = new Set(x.shape.flatMap((d, i) => (d === 1 ? [i] : [])));
  } else {
    drop = new Set(axesIn.map((a) => ctx.axis(a, r)));
    for (const a of drop) {
      const d = x.shape[a];
      if (typeof d === 'number' && d !== 1)
        ctx.fail(`cannot squeeze axis ${a} of ${ctx.shapeStr(x.shape)}: size ${d} is not 1`);
    }
  }
  return [withKnown({ dtype: x.dtype, shape: x.shape.filter((_, i) => !drop.has(i)) }, x.known)];
};

export const unsqueeze: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const axesIn = ctx.axesFrom(1);
  if (axesIn === 'unknown') return [{ dtype: x.dtype }];
  if (!axesIn) return ctx.fail('missing axes');
  const r = x.shape.length + axesIn.length;
  const axes = new Set(axesIn.map((a) => ctx.axis(a, r)));
  if (axes.size !== axesIn.length) ctx.fail(`axes [${axesIn.join(', ')}] repeat an axis`);
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < r; i++) out.push(axes.has(i) ? 1 : x.shape[j++]);
  return [withKnown({ dtype: x.dtype, shape: out }, x.known)];
};

export const concat: InferFn = (ctx: InferContext) => {
  const ins = ctx.inputs.map((_, i) => ctx.in(i));
  if (ins.length === 0) ctx.fail('needs at least one input');
  const r = ins[0].shape.length;
  const axisAttr = ctx.int('axis', Number.NaN);
  if (Number.isNaN(axisAttr)) ctx.fail('missing axis');
  const axis = ctx.axis(axisAttr, r);
  const out = [...ins[0].shape];
  for (let k = 1; k < ins.length; k++) {
    const s = ins[k].shape;
    if (ins[k].dtype !== ins[0].dtype) ctx.fail(`input types differ: ${ins[0].dtype} vs ${ins[k].dtype}`);
    if (s.length !== r) ctx.fail(`inputs have different ranks: ${ins.map((i) => ctx.shapeStr(i.shape)).join(', ')}`);
    for (let i = 0; i < r; i++) {
      if (i === axis) out[i] = dimAdd(out[i], s[i]);
      else if (typeof out[i] === 'number' && typeof s[i] === 'number' && out[i] !== s[i]) {
        ctx.fail(`inputs differ outside axis ${axis}: ${ins.map((x) => ctx.shapeStr(x.shape)).join(', ')}`);
      } else if (typeof out[i] !== 'number' && typeof s[i] === 'number') out[i] = s[i];
    }
  }
  const known = r === 1 && ins.every((x) => x.known) ? ins.flatMap((x) => x.known as Dim[]) : undefined;
  return [withKnown({ dtype: ins[0].dtype, shape: out.map(canon) }, known)];
};

export const split: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const axis = ctx.axis(ctx.int('axis', 0), x.shape.length);
  const n = ctx.node.outputs.length;
  const d = x.shape[axis];
  let sizes: Dim[];
  const fromInput = ctx.has(1) ? ctx.known(1) : ctx.ints('split');
  if (ctx.has(1) && !fromInput) {
    sizes = Array.from({ length: n }, () => ctx.fresh());
  } else if (fromInput) {
    if (fromInput.length !== n) ctx.fail(`split has ${fromInput.length} sizes but the node has ${n} outputs`);
    sizes = fromInput;
    const total = sizes.reduce<Dim>((a, b) => dimAdd(a, b), 0);
    if (typeof total === 'number' && typeof d === 'number' && total !== d) {
      ctx.fail(
        `split sizes [${sizes.join(', ')}] sum to ${total}, but axis ${axis} of ${ctx.shapeStr(x.shape)} has ${d}`,
      );
    }
  } else {
    const parts = ctx.int('num_outputs', n);
    if (typeof d === 'number') {
      const chunk = Math.ceil(d / parts);
      sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, d - chunk * i)));
      if (!ctx.attr('num_outputs') && d % parts !== 0)
        ctx.fail(`axis ${axis} of ${ctx.shapeStr(x.shape)} does not split evenly into ${parts}`);
    } else {
      const q = dimDiv(d, parts);
      sizes = Array.from({ length: parts }, () => q ?? ctx.fresh());
    }
  }
  return sizes.map((s) => {
    const shape = [...x.shape];
    shape[axis] = canon(s);
    return { dtype: x.dtype, shape };
  });
};

/** One axis of Slice: the output length, assuming symbolic dims are large enough to hold the bounds. */
function sliceLen(ctx: InferContext, d: Dim, s0: Dim, e0: Dim, step: number): Dim {
  if (step === 0) ctx.fail('slice step must not be 0');
  if (typeof d === 'number' && typeof s0 === 'number' && typeof e0 === 'number')
    return sliceBounds(d, s0, e0, step).count;
  if (step > 0) {
    const s = typeof s0 === 'number' && s0 < 0 ? dimAdd(d, s0) : s0;
    const e = isHuge(e0) ? d : typeof e0 === 'number' && e0 < 0 ? dimAdd(d, e0) : e0;
    const len = dimSub(e, s);
    if (typeof len === 'number') return Math.max(0, Math.ceil(len / step));
    return step === 1 ? len : (dimDiv(len, step) ?? ctx.fresh());
  }
  if (step === -1 && (s0 === -1 || isHuge(s0)) && isHuge(e0)) return d;
  return ctx.fresh();
}

export const slice: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  let starts: Dim[] | undefined;
  let ends: Dim[] | undefined;
  let axes: Dim[] | undefined;
  let steps: Dim[] | undefined;
  if (ctx.has(1)) {
    starts = ctx.known(1);
    ends = ctx.known(2);
    axes = ctx.has(3) ? ctx.known(3) : undefined;
    steps = ctx.has(4) ? ctx.known(4) : undefined;
    if (!starts || !ends || (ctx.has(3) && !axes) || (ctx.has(4) && !steps)) {
      // unknown bounds: only the sliced axes change, and we do not know which unless axes are known
      if (axes && axes.every((a) => typeof a === 'number')) {
        const shape = [...x.shape];
        for (const a of axes as number[]) shape[ctx.axis(a, r)] = ctx.fresh();
        return [{ dtype: x.dtype, shape }];
      }
      return [{ dtype: x.dtype, shape: x.shape.map(() => ctx.fresh()) }];
    }
  } else {
    starts = ctx.ints('starts');
    ends = ctx.ints('ends');
    axes = ctx.ints('axes');
    if (!starts || !ends) return ctx.fail('missing starts/ends');
  }
  if (starts.length !== ends.length) ctx.fail(`starts has ${starts.length} entries, ends ${ends.length}`);
  const ax = (axes ?? starts.map((_, i) => i)).map((a) =>
    ctx.axis(typeof a === 'number' ? a : ctx.fail(`axes must be constants, got ${a}`), r),
  );
  const st = (steps ?? starts.map(() => 1)).map((s) =>
    typeof s === 'number' ? s : ctx.fail(`steps must be constants, got ${s}`),
  );
  const shape = [...x.shape];
  ax.forEach((a, i) => {
    shape[a] = canon(sliceLen(ctx, x.shape[a], starts![i], ends![i], st[i]));
  });
  let known: Dim[] | undefined;
  if (
    x.known &&
    r === 1 &&
    isStatic(x.shape) &&
    isStatic(shape) &&
    starts.every((v) => typeof v === 'number') &&
    ends.every((v) => typeof v === 'number')
  ) {
    const d = x.shape[0];
    const s0 = starts[0] as number;
    const step = st[0];
    let s = s0 < 0 ? s0 + d : s0;
    s = step > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
    known = Array.from({ length: shape[0] }, (_, i) => x.known![s + i * step]);
  }
  return [withKnown({ dtype: x.dtype, shape }, known)];
};

export const gather: InferFn = (ctx: InferContext) => {
  const data = ctx.in(0);
  const idx = ctx.in(1);
  if (!isInteger(idx.dtype)) ctx.fail(`indices must be integers, got ${idx.dtype}`);
  const axis = ctx.axis(ctx.int('axis', 0), data.shape.length);
  const shape = [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)];
  let known: Dim[] | undefined;
  const iv = ctx.numbers(1);
  if (data.known && data.shape.length === 1 && iv && typeof data.shape[0] === 'number') {
    const n = data.shape[0];
    known = iv.map((i) => data.known![i < 0 ? i + n : i]);
    if (known.some((v) => v === undefined))
      ctx.fail(`indices [${iv.join(', ')}] out of range for ${ctx.shapeStr(data.shape)}`);
  }
  return [withKnown({ dtype: data.dtype, shape }, known)];
};

export const gatherElements: InferFn = (ctx: InferContext) => {
  const data = ctx.in(0);
  const idx = ctx.in(1);
  if (idx.shape.length !== data.shape.length)
    ctx.fail(`indices ${ctx.shapeStr(idx.shape)} and data ${ctx.shapeStr(data.shape)} have different ranks`);
  return [{ dtype: data.dtype, shape: idx.shape }];
};

/** ScatterND / ScatterElements: the output is the data tensor's type. */
export const scatter: InferFn = (ctx: InferContext) => {
  const data = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const upd = ctx.opt(2);
  if (upd && upd.dtype !== data.dtype) ctx.fail(`updates type ${upd.dtype} differs from data type ${data.dtype}`);
  return [{ dtype: data.dtype, shape: data.shape }];
};

export const expand: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const target = ctx.known(1);
  if (!target) {
    const s = ctx.opt(1)?.shape;
    if (isStatic(s) && s.length === 1 && x.shape) {
      const r = Math.max(s[0], x.shape.length);
      return [{ dtype: x.dtype, shape: Array.from({ length: r }, () => ctx.fresh()) }];
    }
    return [{ dtype: x.dtype }];
  }
  const shape = broadcastShapes(ctx, [x.shape, target]);
  let known: Dim[] | undefined;
  if (x.known && isStatic(shape) && isStatic(x.shape) && numelOf(x.shape) === 1)
    known = Array.from({ length: numelOf(shape) }, () => x.known![0]);
  else if (x.known && isStatic(shape) && isStatic(x.shape) && numelOf(x.shape) === numelOf(shape)) known = x.known;
  return [withKnown({ dtype: x.dtype, shape }, known)];
};

export const tile: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const reps = ctx.known(1);
  if (!reps) return [{ dtype: x.dtype, shape: x.shape.map(() => ctx.fresh()) }];
  if (reps.length !== x.shape.length) ctx.fail(`repeats has ${reps.length} entries for input ${ctx.shapeStr(x.shape)}`);
  return [{ dtype: x.dtype, shape: x.shape.map((d, i) => dimMul(d, reps[i])) }];
};

export const pad: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  const pads = ctx.has(1) ? ctx.known(1) : ctx.ints('pads');
  if (!pads) return [{ dtype: x.dtype, shape: x.shape.map(() => ctx.fresh()) }];
  let axes: number[] = Array.from({ length: r }, (_, i) => i);
  if (ctx.has(3)) {
    const a = ctx.numbers(3);
    if (!a) return [{ dtype: x.dtype, shape: x.shape.map(() => ctx.fresh()) }];
    axes = a.map((v) => ctx.axis(v, r));
  }
  if (pads.length !== 2 * axes.length)
    ctx.fail(`pads has ${pads.length} entries, expected ${2 * axes.length} for ${ctx.shapeStr(x.shape)}`);
  const shape = [...x.shape];
  axes.forEach((a, i) => {
    shape[a] = canon(dimAdd(dimAdd(x.shape[a], pads[i]), pads[i + axes.length]));
  });
  return [{ dtype: x.dtype, shape }];
};

export const shapeOp: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const r = x.shape.length;
  const clampAxis = (a: number): number => Math.min(Math.max(a < 0 ? a + r : a, 0), r);
  const start = clampAxis(ctx.int('start', 0));
  const end = clampAxis(ctx.int('end', r));
  const vals = x.shape.slice(start, Math.max(start, end));
  return [{ dtype: 'int64', shape: [vals.length], known: vals.map(canon) }];
};

export const size: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  return [{ dtype: 'int64', shape: [], known: [dimProduct(x.shape)] }];
};

export const constant: InferFn = (ctx: InferContext) => {
  const v = ctx.attr('value');
  if (v?.type === 'tensor') {
    const t = v.value;
    const known = knownFromTensor(t);
    return [{ dtype: t.dtype, shape: [...t.dims], ...(known ? { known } : {}), tensor: t }];
  }
  const vi = ctx.attr('value_int');
  if (vi?.type === 'int') return [{ dtype: 'int64', shape: [], known: [vi.value] }];
  const vis = ctx.attr('value_ints');
  if (vis?.type === 'ints') return [withKnown({ dtype: 'int64', shape: [vis.value.length] }, vis.value)];
  if (ctx.attr('value_float')) return [{ dtype: 'float32', shape: [] }];
  const vfs = ctx.attr('value_floats');
  if (vfs?.type === 'floats') return [{ dtype: 'float32', shape: [vfs.value.length] }];
  return ctx.fail('no supported value attribute (value, value_int(s), value_float(s))');
};

export const constantOfShape: InferFn = (ctx: InferContext) => {
  const target = ctx.known(0);
  const v = ctx.attr('value');
  const t = v?.type === 'tensor' ? v.value : undefined;
  const dtype: DType = t?.dtype ?? 'float32';
  if (!target) {
    const s = ctx.opt(0)?.shape;
    if (isStatic(s) && s.length === 1) return [{ dtype, shape: Array.from({ length: s[0] }, () => ctx.fresh()) }];
    return [{ dtype }];
  }
  const out: OutType = { dtype, shape: target.map(canon) };
  if (t && isStatic(out.shape)) {
    const fill = knownFromTensor(t);
    if (fill && fill.length === 1)
      withKnown(
        out,
        Array.from({ length: numelOf(out.shape) }, () => fill[0]),
      );
  }
  return [out];
};

export const range: InferFn = (ctx: InferContext) => {
  const start = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  const [s] = ctx.known(0) ?? [undefined];
  const [l] = ctx.known(1) ?? [undefined];
  const [d] = ctx.known(2) ?? [undefined];
  const dtype = start.dtype;
  if (typeof s === 'number' && typeof l === 'number' && typeof d === 'number') {
    if (d === 0) ctx.fail('delta must not be 0');
    const n = Math.max(Math.ceil((l - s) / d), 0);
    const known = n <= MAX_KNOWN ? Array.from({ length: n }, (_, i) => s + i * d) : undefined;
    return [withKnown({ dtype, shape: [n] }, known)];
  }
  if (s !== undefined && l !== undefined && d === 1) return [{ dtype, shape: [canon(dimSub(l, s))] }];
  return [{ dtype, shape: [ctx.fresh()] }];
};

export const oneHot: InferFn = (ctx: InferContext) => {
  const idx = ctx.in(0);
  const vals = ctx.opt(2) ?? ctx.fail('input 2 (values) is missing');
  const [depth] = ctx.known(1) ?? [undefined];
  const r = idx.shape.length + 1;
  const axis = ctx.axis(ctx.int('axis', -1), r);
  const shape = [...idx.shape];
  shape.splice(axis, 0, depth === undefined ? ctx.fresh() : canon(depth));
  return [{ dtype: vals.dtype, shape }];
};

export const topK: InferFn = (ctx: InferContext) => {
  const x = ctx.in(0);
  const [k] = ctx.known(1) ?? [undefined];
  const axis = ctx.axis(ctx.int('axis', -1), x.shape.length);
  const shape = [...x.shape];
  const d = x.shape[axis];
  if (typeof k === 'number' && typeof d === 'number' && k > d)
    ctx.fail(`k=${k} exceeds axis ${axis} of ${ctx.shapeStr(x.shape)}`);
  shape[axis] = k === undefined ? ctx.fresh() : canon(k);
  return [
    { dtype: x.dtype, shape },
    { dtype: 'int64', shape },
  ];
};

/** Ops whose single output has the type of the first input (Trilu, etc.). */
export const sameAsFirst: InferFn = (ctx: InferContext) => {
  const x = ctx.opt(0) ?? ctx.fail('input 0 is missing');
  return [{ dtype: x.dtype, shape: x.shape }];
};
