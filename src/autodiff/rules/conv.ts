/** Gradients of Conv (N-D, groups, strides, dilations, pads) and the pooling ops. Static shapes required. */
import type { GradContext, GradRule } from '../context.ts';

interface Geometry {
  spatial: number[];
  outSpatial: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
}

function geometry(c: GradContext, kernel: number[]): Geometry {
  const xs = c.staticShape(c.x(0));
  const ys = c.staticShape(c.y(0));
  const S = xs.length - 2;
  const spatial = xs.slice(2);
  const outSpatial = ys.slice(2);
  const strides = c.intsAttr('strides') ?? new Array<number>(S).fill(1);
  const dilations = c.intsAttr('dilations') ?? new Array<number>(S).fill(1);
  if (c.int('ceil_mode', 0) === 1) throw c.error('ceil_mode=1 is not supported by the gradient; use explicit pads');
  const autoPad = c.str('auto_pad', 'NOTSET');
  let padsBegin: number[];
  let padsEnd: number[];
  if (autoPad === 'NOTSET') {
    const pads = c.intsAttr('pads') ?? new Array<number>(2 * S).fill(0);
    padsBegin = pads.slice(0, S);
    padsEnd = pads.slice(S);
  } else if (autoPad === 'VALID') {
    padsBegin = new Array<number>(S).fill(0);
    padsEnd = new Array<number>(S).fill(0);
  } else {
    padsBegin = [];
    padsEnd = [];
    for (let i = 0; i < S; i++) {
      const total = Math.max(0, (outSpatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i]);
      const small = Math.floor(total / 2);
      padsBegin.push(autoPad === 'SAME_UPPER' ? small : total - small);
      padsEnd.push(total - padsBegin[i]);
    }
  }
  return { spatial, outSpatial, kernel, strides, dilations, padsBegin, padsEnd };
}

/** output_padding that makes ConvTranspose(dY) come back exactly to the input's spatial size. */
function outputPadding(g: Geometry): number[] {
  return g.spatial.map(
    (n, i) =>
      n -
      (g.strides[i] * (g.outSpatial[i] - 1) + (g.kernel[i] - 1) * g.dilations[i] + 1 - g.padsBegin[i] - g.padsEnd[i]),
  );
}

function convTranspose(c: GradContext, dy: string, w: string, geo: Geometry, group: number): string {
  return c.op('ConvTranspose', [dy, w], {
    strides: geo.strides,
    dilations: geo.dilations,
    pads: [...geo.padsBegin, ...geo.padsEnd],
    output_padding: outputPadding(geo),
    group,
    kernel_shape: geo.kernel,
  });
}

export const conv: GradRule = (c) => {
  const xs = c.staticShape(c.x(0));
  const ws = c.staticShape(c.x(1));
  const S = xs.length - 2;
  const kernel = ws.slice(2);
  const geo = geometry(c, kernel);
  const group = c.int('group', 1);
  const dy = c.dy()!;
  const N = xs[0];
  const C = xs[1];
  const M = ws[0];
  const sp = Array.from({ length: S }, (_, i) => i + 3);
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (c.needs(0)) out[0] = convTranspose(c, dy, c.x(1), geo, group);
  if (c.needs(1)) {
    // dW[m, c, k] = Σ_n Σ_pos X[n, c, pos·s + k·d] dY[n, m, pos]: a Conv whose batch is X's channels and whose
    // input channels are the batch, with strides and dilations swapped.
    let xt: string;
    let dyt: string;
    if (group === 1) {
      xt = c.op('Transpose', [c.x(0)], { perm: [1, 0, ...sp.map((a) => a - 1)] });
      dyt = c.op('Transpose', [dy], { perm: [1, 0, ...sp.map((a) => a - 1)] });
    } else {
      xt = c.reshape(c.x(0), c.ints([N, group, C / group, ...geo.spatial]));
      xt = c.op('Transpose', [xt], { perm: [2, 1, 0, ...sp] });
      xt = c.reshape(xt, c.ints([C / group, group * N, ...geo.spatial]));
      dyt = c.reshape(dy, c.ints([N, group, M / group, ...geo.outSpatial]));
      dyt = c.op('Transpose', [dyt], { perm: [1, 2, 0, ...sp] });
      dyt = c.reshape(dyt, c.ints([M, N, ...geo.outSpatial]));
    }
    let dw = c.op('Conv', [xt, dyt], {
      strides: geo.dilations,
      dilations: geo.strides,
      pads: [...geo.padsBegin, ...geo.padsEnd],
      group,
      kernel_shape: geo.outSpatial,
    });
    // the swapped Conv can overrun the kernel by the positions the forward stride skipped at the end
    const full = geo.spatial.map(
      (n, i) =>
        Math.floor(
          (n + geo.padsBegin[i] + geo.padsEnd[i] - ((geo.outSpatial[i] - 1) * geo.strides[i] + 1)) / geo.dilations[i],
        ) + 1,
    );
    if (full.some((f, i) => f !== kernel[i])) {
      dw = c.op('Slice', [dw, c.ints(kernel.map(() => 0)), c.ints(kernel), c.ints(kernel.map((_, i) => i + 2))]);
    }
    out[1] = c.op('Transpose', [dw], { perm: [1, 0, ...sp.map((a) => a - 1)] });
  }
  if (c.hasInput(2) && c.needs(2)) out[2] = c.reduceSum(dy, [0, ...sp.map((a) => a - 1)], false);
  return out;
};

/** MaxPool: the forward node's Indices output (flat positions in X) routes dY back with a ScatterElements add. */
export const maxPool: GradRule = (c) => {
  if (c.int('storage_order', 0) !== 0) throw c.error('storage_order=1 is not supported');
  const xs = c.staticShape(c.x(0));
  const indices = c.ensureOutput(1, 'Indices');
  const n = xs.reduce((a, b) => a * b, 1);
  const flat = c.op(
    'ScatterElements',
    [c.fill(c.ints([n]), 0, c.dtype), c.reshape(indices, c.ints([-1])), c.reshape(c.dy()!, c.ints([-1]))],
    { axis: 0, reduction: 'add' },
  );
  return [c.reshape(flat, c.ints(xs))];
};

/**
 * AveragePool: a depthwise ConvTranspose with a constant kernel. With count_include_pad=0 and padding, each
 * window's divisor is its count of real elements, computed by a Conv of ones (constant-folded by ORT).
 */
export const averagePool: GradRule = (c) => {
  const xs = c.staticShape(c.x(0));
  const kernel = c.intsAttr('kernel_shape');
  if (!kernel) throw c.error('kernel_shape is required');
  const geo = geometry(c, kernel);
  const C = xs[1];
  const K = kernel.reduce((a, b) => a * b, 1);
  const padded = [...geo.padsBegin, ...geo.padsEnd].some((p) => p !== 0);
  const exact = c.int('count_include_pad', 0) === 1 || !padded;
  let dy = c.dy()!;
  const fillW = (v: number, shape: number[]): string => c.fill(c.ints(shape), v, c.dtype);
  if (!exact) {
    const counts = c.op('Conv', [fillW(1, [1, 1, ...geo.spatial]), fillW(1, [1, 1, ...kernel])], {
      strides: geo.strides,
      pads: [...geo.padsBegin, ...geo.padsEnd],
      kernel_shape: kernel,
    });
    dy = c.div(dy, counts);
  }
  const w = fillW(exact ? 1 / K : 1, [C, 1, ...kernel]);
  return [convTranspose(c, dy, w, geo, C)];
};

export const globalAveragePool: GradRule = (c) => {
  const xs = c.staticShape(c.x(0));
  const n = xs.slice(2).reduce((a, b) => a * b, 1);
  return [c.div(c.op('Expand', [c.dy()!, c.ints(xs)]), c.scalar(n))];
};
