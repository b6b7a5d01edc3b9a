/** Gradients of activations and of Softmax/LogSoftmax. */
import type { GradContext, GradRule } from '../context.ts';
import { normAxes } from '../context.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export const tanh: GradRule = (c) => {
  const y = c.y(0);
  return [c.mul(c.dy()!, c.sub(c.scalar(1), c.mul(y, y)))];
};

export const sigmoid: GradRule = (c) => {
  const y = c.y(0);
  return [c.mul(c.dy()!, c.mul(y, c.sub(c.scalar(1), y)))];
};

export const relu: GradRule = (c) => [c.op('Where', [c.op('Greater', [c.x(0), c.scalar(0)]), c.dy()!, c.scalar(0)])];

export const leakyRelu: GradRule = (c) => {
  const dy = c.dy()!;
  const alpha = c.float('alpha', 0.01);
  return [c.op('Where', [c.op('Greater', [c.x(0), c.scalar(0)]), dy, c.mul(dy, c.scalar(alpha))])];
};

/** Elu: y = x (x > 0), alpha*(e^x - 1) otherwise, so dy/dx = y + alpha there. */
export const elu: GradRule = (c) => {
  const dy = c.dy()!;
  const alpha = c.float('alpha', 1);
  return [c.op('Where', [c.op('Greater', [c.x(0), c.scalar(0)]), dy, c.mul(dy, c.add(c.y(0), c.scalar(alpha)))])];
};

export const erf: GradRule = (c) => {
  const x = c.x(0);
  const e = c.op('Exp', [c.neg(c.mul(x, x))]);
  return [c.mul(c.dy()!, c.mul(e, c.scalar(2 / Math.sqrt(Math.PI))))];
};

/**
 * dY·d/dx[x·Φ(x)] = (0.5·dY)·(1 + erf(a) + x·2φ(x)) with a = x/√2 and 2φ(x) = exp(ln(2/√(2π)) − a²): the constants
 * sit in the exponent, the three-term sum is one Sum node (it broadcasts the 1), and ORT folds the 0.5 into the
 * FusedMatMul that produced dY (MatMulScaleFusion), so 8 elementwise passes over the (large) FFN tensor remain.
 */
function exactGeluGrad(c: GradContext, x: string, dy: string): string {
  const a = c.mul(x, c.scalar(Math.SQRT1_2));
  const twoPdf = c.op('Exp', [c.sub(c.scalar(Math.log(2 * INV_SQRT_2PI)), c.mul(a, a))]);
  const twice = c.op('Sum', [c.op('Erf', [a]), c.mul(x, twoPdf), c.scalar(1)]);
  return c.mul(c.mul(dy, c.scalar(0.5)), twice);
}

/** tanh approximation: y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). */
function tanhGeluDeriv(c: GradContext, x: string): string {
  const x2 = c.mul(x, x);
  const u = c.mul(c.mul(x, c.add(c.mul(x2, c.scalar(0.044715)), c.scalar(1))), c.scalar(SQRT_2_OVER_PI));
  const t = c.op('Tanh', [u]);
  const du = c.mul(c.add(c.mul(x2, c.scalar(3 * 0.044715)), c.scalar(1)), c.scalar(SQRT_2_OVER_PI));
  const half1pt = c.mul(c.add(t, c.scalar(1)), c.scalar(0.5));
  const sech2 = c.sub(c.scalar(1), c.mul(t, t));
  return c.add(half1pt, c.mul(c.mul(c.mul(x, c.scalar(0.5)), sech2), du));
}

/** com.microsoft Gelu (exact) and ONNX Gelu-20 (approximate = none | tanh). */
export const gelu: GradRule = (c) => {
  const approx = c.str('approximate', 'none');
  return [approx === 'tanh' ? c.mul(c.dy()!, tanhGeluDeriv(c, c.x(0))) : exactGeluGrad(c, c.x(0), c.dy()!)];
};

/** com.microsoft FastGelu(X, bias?) = tanh-GELU(X + bias). */
export const fastGelu: GradRule = (c) => {
  const x = c.hasInput(1) ? c.add(c.x(0), c.x(1)) : c.x(0);
  const dx = c.mul(c.dy()!, tanhGeluDeriv(c, x));
  return [
    c.needs(0) ? c.unbroadcast(dx, c.x(0)) : undefined,
    c.hasInput(1) && c.needs(1) ? c.unbroadcast(dx, c.x(1)) : undefined,
  ];
};

/** com.microsoft BiasGelu(X, bias) = exact GELU(X + bias). */
export const biasGelu: GradRule = (c) => {
  const dx = exactGeluGrad(c, c.add(c.x(0), c.x(1)), c.dy()!);
  return [c.needs(0) ? c.unbroadcast(dx, c.x(0)) : undefined, c.needs(1) ? c.unbroadcast(dx, c.x(1)) : undefined];
};

export const softplus: GradRule = (c) => [c.mul(c.dy()!, c.op('Sigmoid', [c.x(0)]))];

function softmaxAxis(c: GradContext): number {
  return normAxes([c.int('axis', -1)], c.rankOf(c.x(0)))[0];
}

export const softmax: GradRule = (c) => {
  const y = c.y(0);
  const dy = c.dy()!;
  const s = c.reduceSum(c.mul(dy, y), [softmaxAxis(c)], true);
  return [c.mul(y, c.sub(dy, s))];
};

export const logSoftmax: GradRule = (c) => {
  const dy = c.dy()!;
  const s = c.reduceSum(dy, [softmaxAxis(c)], true);
  return [c.sub(dy, c.mul(c.op('Exp', [c.y(0)]), s))];
};
