/** Test helpers shared by the builder and block tests: run a built graph in ORT, seeded data, JS references. */
import type { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph } from '../../src/onnx/ir.ts';
import { inferShapes } from '../../src/onnx/shapes/index.ts';
import { Session, ort } from '../../src/runtime/session.ts';

/** Infers output types, runs the graph once in ORT and returns each output as plain numbers. */
export async function runBuilt(
  b: GraphBuilder,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, { dims: number[]; data: number[] }>> {
  const g = inferShapes(b.graph);
  const session = await Session.create(modelFromGraph(g), { intraOpThreads: 1, label: b.graph.name });
  try {
    const res = await session.run(feeds);
    const out: Record<string, { dims: number[]; data: number[] }> = {};
    for (const [k, v] of Object.entries(res))
      out[k] = { dims: [...v.dims], data: Array.from(v.data as ArrayLike<number | bigint>, Number) };
    return out;
  } finally {
    await session.release();
  }
}

/** A seeded generator of uniform numbers in [-scale, scale). */
export function seeded(seed: number): (scale?: number) => number {
  let s = seed >>> 0;
  return (scale = 1) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  };
}

export function randArray(n: number, rnd: (scale?: number) => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rnd(scale));
}

/** erf to ~1e-12 via its Maclaurin series (small |x|) or the continued fraction of erfc (large |x|). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return (Math.sign(x) * sum * 2) / Math.sqrt(Math.PI);
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= tol * (1 + Math.abs(expected[i]))))
      throw new Error(`${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (|diff| ${d} > ${tol})`);
  }
}
