/** Gradients of the arithmetic elementwise ops (with numpy broadcasting undone by ReduceSum). */
import type { GradContext, GradRule } from '../context.ts';

const ub = (c: GradContext, g: string, i: number): string => c.unbroadcast(g, c.x(i), c.shapeOf(c.y(0)));

export const add: GradRule = (c) => {
  const dy = c.dy()!;
  return [c.needs(0) ? ub(c, dy, 0) : undefined, c.needs(1) ? ub(c, dy, 1) : undefined];
};

export const sub: GradRule = (c) => {
  const dy = c.dy()!;
  return [c.needs(0) ? ub(c, dy, 0) : undefined, c.needs(1) ? ub(c, c.neg(dy), 1) : undefined];
};

export const mul: GradRule = (c) => {
  const dy = c.dy()!;
  return [c.needs(0) ? ub(c, c.mul(dy, c.x(1)), 0) : undefined, c.needs(1) ? ub(c, c.mul(dy, c.x(0)), 1) : undefined];
};

export const div: GradRule = (c) => {
  const dy = c.dy()!;
  const dA = c.needs(0) || c.needs(1) ? c.div(dy, c.x(1)) : undefined;
  return [
    c.needs(0) ? ub(c, dA!, 0) : undefined,
    // d(a/b)/db = -(a/b)/b: reuse the forward output instead of recomputing a/b^2
    c.needs(1) ? ub(c, c.neg(c.mul(dA!, c.y(0))), 1) : undefined,
  ];
};

export const neg: GradRule = (c) => [c.neg(c.dy()!)];
export const identity: GradRule = (c) => [c.dy()];

export const pow: GradRule = (c) => {
  const dy = c.dy()!;
  let dA: string | undefined;
  if (c.needs(0)) {
    const p = c.constInput(1);
    const dtype = c.dtype;
    if (p && p.length === 1) {
      const pv = p[0];
      // x^1 and x^2 are common in decomposed LayerNorm/MSE; skip the Pow for them
      const deriv =
        pv === 1
          ? undefined
          : pv === 2
            ? c.mul(c.x(0), c.scalar(2, dtype))
            : c.mul(c.op('Pow', [c.x(0), c.scalar(pv - 1, dtype)]), c.scalar(pv, dtype));
      dA = ub(c, deriv ? c.mul(dy, deriv) : dy, 0);
    } else {
      const pm1 = c.sub(c.x(1), c.op('CastLike', [c.scalar(1, 'float32'), c.x(1)]));
      const pf = c.typeOf(c.x(1)).dtype === dtype ? c.x(1) : c.op('CastLike', [c.x(1), c.x(0)]);
      const pm1f = c.typeOf(c.x(1)).dtype === dtype ? pm1 : c.op('CastLike', [pm1, c.x(0)]);
      dA = ub(c, c.mul(dy, c.mul(c.op('Pow', [c.x(0), pm1f]), pf)), 0);
    }
  }
  // d(a^b)/db = a^b * ln(a)
  const dB = c.needs(1) ? ub(c, c.mul(dy, c.mul(c.y(0), c.op('Log', [c.x(0)]))), 1) : undefined;
  return [dA, dB];
};

export const sqrt: GradRule = (c) => [c.div(c.mul(c.dy()!, c.scalar(0.5)), c.y(0))];
export const reciprocal: GradRule = (c) => [c.neg(c.mul(c.dy()!, c.mul(c.y(0), c.y(0))))];
export const exp: GradRule = (c) => [c.mul(c.dy()!, c.y(0))];
export const log: GradRule = (c) => [c.div(c.dy()!, c.x(0))];
export const abs: GradRule = (c) => [c.mul(c.dy()!, c.op('Sign', [c.x(0)]))];

/** Cast between float types passes the gradient back in the input's dtype; from an integer it stops. */
export const cast: GradRule = (c) => {
  const inT = c.typeOf(c.x(0)).dtype;
  if (c.typeOf(c.y(0)).dtype === inT) return [c.dy()];
  return [c.op('CastLike', [c.dy()!, c.x(0)])];
};

/** CastLike: like Cast; the second input only supplies a dtype and gets no gradient. */
export const castLike: GradRule = (c) => {
  if (!c.needs(0)) return [undefined, undefined];
  return [c.typeOf(c.x(0)).dtype === c.typeOf(c.y(0)).dtype ? c.dy() : c.op('CastLike', [c.dy()!, c.x(0)]), undefined];
};

/** Sum and Mean (variadic, broadcasting). */
export const sum: GradRule = (c) => c.node.inputs.map((_, i) => (c.needs(i) ? ub(c, c.dy()!, i) : undefined));
export const mean: GradRule = (c) => {
  const g = c.mul(c.dy()!, c.scalar(1 / c.node.inputs.length));
  return c.node.inputs.map((_, i) => (c.needs(i) ? ub(c, g, i) : undefined));
};

/**
 * Max/Min: the gradient goes to the input that holds the result; on ties to the first such input (as ONNX
 * evaluates left to right), so that the gradients of all inputs still sum to dY.
 */
export const maxMin: GradRule = (c) => {
  const dy = c.dy()!;
  const zero = c.scalar(0);
  const out: (string | undefined)[] = [];
  let taken: string | undefined;
  c.node.inputs.forEach((x, i) => {
    let hit = c.op('Equal', [x, c.y(0)]);
    if (taken) hit = c.op('And', [hit, c.op('Not', [taken])]);
    if (i < c.node.inputs.length - 1) taken = taken ? c.op('Or', [taken, hit]) : hit;
    out.push(c.needs(i) ? ub(c, c.op('Where', [hit, dy, zero]), i) : undefined);
  });
  return out;
};

export const where: GradRule = (c) => {
  const dy = c.dy()!;
  const zero = c.scalar(0);
  return [
    undefined,
    c.needs(1) ? ub(c, c.op('Where', [c.x(0), dy, zero]), 1) : undefined,
    c.needs(2) ? ub(c, c.op('Where', [c.x(0), zero, dy]), 2) : undefined,
  ];
};

export const expand: GradRule = (c) => [ub(c, c.dy()!, 0)];

/** Clip passes dY where min <= x <= max (PyTorch's convention at the bounds). */
export const clip: GradRule = (c) => {
  let mask: string | undefined;
  if (c.hasInput(1)) mask = c.op('GreaterOrEqual', [c.x(0), c.x(1)]);
  if (c.hasInput(2)) {
    const le = c.op('LessOrEqual', [c.x(0), c.x(2)]);
    mask = mask ? c.op('And', [mask, le]) : le;
  }
  return [mask ? c.op('Where', [mask, c.dy()!, c.scalar(0)]) : c.dy()];
};
