/** Gradients of data-movement ops: Reshape family, Transpose, Concat, Split, Slice, Gather, GatherElements. */
import type { GradContext, GradRule } from '../context.ts';
import { normAxes } from '../context.ts';
import { sliceBounds } from '../../onnx/slice.ts';

/** Reshape, Flatten, Squeeze, Unsqueeze: only the shape changes, so dY is reshaped back to X. */
export const reshapeLike: GradRule = (c) => [c.reshape(c.dy()!, c.shapeTensor(c.x(0)))];

export const transpose: GradRule = (c) => {
  const rank = c.rankOf(c.x(0));
  const perm = c.intsAttr('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inv = new Array<number>(rank);
  perm.forEach((p, i) => {
    inv[p] = i;
  });
  return [c.op('Transpose', [c.dy()!], { perm: inv })];
};

/** Sizes of each input along `axis`: a constant when static, gathered from Shape() otherwise. */
function sizesAlong(c: GradContext, names: string[], axis: number): string {
  const dims = names.map((n) => c.shapeOf(n)[axis]);
  if (dims.every((d) => typeof d === 'number')) return c.ints(dims as number[]);
  return c.op(
    'Concat',
    names.map((n) => c.op('Gather', [c.op('Shape', [n]), c.ints([axis])])),
    { axis: 0 },
  );
}

export const concat: GradRule = (c) => {
  const axis = normAxes([c.int('axis', 0)], c.rankOf(c.y(0)))[0];
  const parts = c.nodes(
    'Split',
    [c.dy()!, sizesAlong(c, c.node.inputs, axis)],
    { axis },
    { outputs: c.node.inputs.length },
  );
  return parts.map((p, i) => (c.needs(i) ? p : undefined));
};

export const split: GradRule = (c) => {
  const axis = normAxes([c.int('axis', 0)], c.rankOf(c.x(0)))[0];
  const grads = c.node.outputs.map((_, i) => c.dyOrZeros(i));
  return [c.op('Concat', grads, { axis })];
};

/** Effective (start, step, count) per axis, with ONNX/numpy clamping; needs constant starts/ends/axes/steps. */
function sliceSpec(c: GradContext, shape: number[]): { axis: number; start: number; step: number; count: number }[] {
  const starts = c.constInput(1);
  const ends = c.constInput(2);
  const axesIn = c.hasInput(3) ? c.constInput(3) : starts?.map((_, i) => i);
  const steps = c.hasInput(4) ? c.constInput(4) : starts?.map(() => 1);
  if (!starts || !ends || !axesIn || !steps)
    throw c.error('starts/ends/axes/steps must be constants to differentiate Slice');
  const axes = normAxes(axesIn, shape.length);
  return axes.map((axis, i) => {
    const step = steps[i];
    return { axis, step, ...sliceBounds(shape[axis], starts[i], ends[i], step) };
  });
}

/**
 * Slice: unit steps are undone with one zero Pad; other steps scatter dY's rows back to their positions along
 * that axis (ScatterElements into zeros).
 */
export const slice: GradRule = (c) => {
  const shape = c.staticShape(c.x(0));
  const spec = sliceSpec(c, shape);
  let g = c.dy()!;
  const cur = [...c.staticShape(c.y(0))];
  for (const { axis, start, step, count } of spec) {
    if (step === 1) continue;
    const pos = Array.from({ length: count }, (_, k) => start + k * step);
    const posShape = cur.map((_, k) => (k === axis ? count : 1));
    const idx = c.op('Expand', [c.reshape(c.ints(pos), c.ints(posShape)), c.ints(cur)]);
    cur[axis] = shape[axis];
    g = c.op('ScatterElements', [c.fill(c.ints(cur), 0, c.dtype), idx, g], { axis });
  }
  const pads = new Array<number>(2 * shape.length).fill(0);
  let anyPad = false;
  for (const { axis, start, step, count } of spec) {
    if (step !== 1) continue;
    pads[axis] = start;
    pads[axis + shape.length] = shape[axis] - start - count;
    if (start || pads[axis + shape.length]) anyPad = true;
  }
  if (anyPad) g = c.op('Pad', [g, c.ints(pads)], { mode: 'constant' });
  return [g];
};

/** Gather: dY scattered (ScatterND with reduction=add, so repeated indices accumulate) into zeros of the table. */
export const gather: GradRule = (c) => {
  const data = c.x(0);
  const ds = c.shapeOf(data);
  const axis = normAxes([c.int('axis', 0)], ds.length)[0];
  const qRank = c.rankOf(c.x(1));
  let dy = c.dy()!;
  // negative indices count from the end in Gather but are out of range for ScatterND
  let idx = c.x(1);
  // rank-0 constants, so that a scalar index keeps rank 0
  idx = c.op('Cast', [idx], { to: 7 });
  const dim =
    typeof ds[axis] === 'number'
      ? c.b.scalar(ds[axis] as number, 'int64')
      : c.op('Gather', [c.op('Shape', [data]), c.b.scalar(axis, 'int64')]);
  idx = c.op('Where', [c.op('Less', [idx, c.b.scalar(0, 'int64')]), c.add(idx, dim), idx]);
  idx = c.op('Unsqueeze', [idx, c.ints([-1])]);
  if (axis === 0) {
    return [c.op('ScatterND', [c.zeros(data), idx, dy], { reduction: 'add' })];
  }
  // bring the gathered axis to the front, scatter, and move it back
  const yRank = ds.length - 1 + qRank;
  const permY = [
    ...Array.from({ length: qRank }, (_, i) => axis + i),
    ...Array.from({ length: axis }, (_, i) => i),
    ...Array.from({ length: yRank - axis - qRank }, (_, i) => axis + qRank + i),
  ];
  dy = c.op('Transpose', [dy], { perm: permY });
  const permD = [axis, ...Array.from({ length: ds.length }, (_, i) => i).filter((i) => i !== axis)];
  const zerosT = c.op('Transpose', [c.zeros(data)], { perm: permD });
  const scattered = c.op('ScatterND', [zerosT, idx, dy], { reduction: 'add' });
  const inv = new Array<number>(permD.length);
  permD.forEach((p, i) => {
    inv[p] = i;
  });
  return [c.op('Transpose', [scattered], { perm: inv })];
};

export const gatherElements: GradRule = (c) => {
  const axis = c.int('axis', 0);
  return [c.op('ScatterElements', [c.zeros(c.x(0)), c.x(1), c.dy()!], { axis, reduction: 'add' })];
};
