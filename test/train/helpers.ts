/**
 * A tiny linear-regression model with a hand-written gradient graph, so optimizer and engine tests do not depend on
 * src/autodiff, plus a float64 reference of the same forward/backward.
 */
import { GraphBuilder } from '../../src/onnx/builder.ts';
import type { Graph } from '../../src/onnx/ir.ts';
import { cloneGraph } from '../../src/onnx/ir.ts';
import type { GradientBuilder, LossSpec } from '../../src/train/graph.ts';
import { ort } from '../../src/runtime/session.ts';

export const IN = 3;
export const OUT = 2;

export function linearModel(w: number[], bias: number[]): Graph {
  const b = new GraphBuilder('linear');
  const x = b.input('x', 'float32', ['batch', IN]);
  b.initializer('W', 'float32', Float32Array.from(w), [IN, OUT]);
  b.initializer('B', 'float32', Float32Array.from(bias), [OUT]);
  const y = b.node('Add', [b.matmul(x, 'W'), 'B'], {}, { outputs: ['y'] })[0];
  b.output(y, 'float32', ['batch', OUT]);
  return b.graph;
}

/** MSE against input `t`, mean over all elements (torch's default reduction). */
export const mseLoss: LossSpec = (b) => {
  const t = b.input('t', 'float32', ['batch', OUT]);
  const d = b.node('Sub', ['y', t], {}, { outputs: ['diff'] })[0];
  return b.reduceMean(b.mul(d, d), [0, 1], false);
};

/** Gradient of the MSE loss above w.r.t. W and B, written by hand. */
export const linearGradients: GradientBuilder = (graph, { wrt }) => {
  const g = cloneGraph(graph);
  const b = new GraphBuilder(g);
  const n = (g.inputs.find((i) => i.name === 'x')?.shape?.[0] ?? 0) as number;
  const dy = b.mul('diff', b.scalar(2 / (n * OUT)));
  const grads = new Map<string, string>();
  if (wrt.includes('W')) grads.set('W', b.output(b.matmul(b.transpose('x', [1, 0]), dy)));
  if (wrt.includes('B')) grads.set('B', b.output(b.reduceSum(dy, [0], false)));
  return { graph: g, gradients: grads };
};

export interface RefParams {
  W: number[];
  B: number[];
}

/** Float64 loss and gradients of the same model. */
export function refGrad(p: RefParams, x: number[], t: number[], n: number): { loss: number; W: number[]; B: number[] } {
  const gW = new Array(IN * OUT).fill(0);
  const gB = new Array(OUT).fill(0);
  let loss = 0;
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < OUT; o++) {
      let y = p.B[o];
      for (let i = 0; i < IN; i++) y += x[r * IN + i] * p.W[i * OUT + o];
      const d = y - t[r * OUT + o];
      loss += d * d;
      const dy = (2 * d) / (n * OUT);
      gB[o] += dy;
      for (let i = 0; i < IN; i++) gW[i * OUT + o] += x[r * IN + i] * dy;
    }
  }
  return { loss: loss / (n * OUT), W: gW, B: gB };
}

export function batchOf(x: number[], t: number[], n: number): Record<string, ort.Tensor> {
  return {
    x: new ort.Tensor('float32', Float32Array.from(x), [n, IN]),
    t: new ort.Tensor('float32', Float32Array.from(t), [n, OUT]),
  };
}

/** Deterministic pseudo-random numbers for test data. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}
