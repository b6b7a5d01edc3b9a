/**
 * Finite-difference gradient checker. A case builds a forward graph with GraphBuilder; the checker adds
 * loss = Σ_k Σ(out_k · R_k) with fixed random R_k (so every output element gets a distinct weight), builds the
 * gradient graph with buildGradientGraph, runs it once, and compares each requested gradient with central
 * differences (L(x+h) − L(x−h)) / 2h computed by one reused ORT session in which the wrt tensors are inputs.
 */
import assert from 'node:assert/strict';
import { buildGradientGraph } from '../../src/autodiff/index.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import type { DType, TypedArray } from '../../src/onnx/dtype.ts';
import { cloneGraph, modelFromGraph, type Graph } from '../../src/onnx/ir.ts';
import { inferShapes } from '../../src/onnx/shapes/index.ts';
import { numel, tensorToArray } from '../../src/onnx/tensor.ts';
import { ort, Session } from '../../src/runtime/session.ts';

export type FloatDType = 'float32' | 'float64';

/** Deterministic uniform numbers (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function floats(dtype: FloatDType, values: ArrayLike<number>): Float32Array | Float64Array {
  return dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values);
}

/** n uniform values in [lo, hi). */
export function uniform(r: () => number, n: number, lo = -1, hi = 1): number[] {
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

export interface Feed {
  dtype: DType;
  dims: number[];
  data: TypedArray;
}

export interface CheckOptions {
  /** Names (graph inputs or initializers) to check gradients for. */
  wrt: string[];
  /** Values that were declared with b.input, and their data. */
  feeds: Record<string, Feed>;
  /** Outputs of the forward graph that make up the loss (weighted by random tensors); or `loss` directly. */
  outputs?: string[];
  loss?: string;
  dtype: FloatDType;
  /** Perturbation; default 1e-6 (float64) / 1e-2 (float32). */
  h?: number;
  atol?: number;
  rtol?: number;
  /** Check at most this many elements per wrt tensor (spread evenly); default all. */
  maxElems?: number;
  seed?: number;
  /** gradCheck feeds: keep |x| at least this far from 0, where Relu-like kinks would break central differences. */
  kinkMargin?: number;
}

export interface CheckReport {
  worst: number;
  checked: number;
  grads: Map<string, Float64Array>;
}

function toOrt(f: Feed): ort.Tensor {
  return new ort.Tensor(f.dtype as 'float32', f.data as Float32Array, f.dims);
}

/** Builds loss, gradient graph and FD estimate; asserts agreement. */
export async function checkGradients(graph: Graph, opts: CheckOptions): Promise<CheckReport> {
  const dtype = opts.dtype;
  const h = opts.h ?? (dtype === 'float64' ? 1e-6 : 1e-2);
  const atol = opts.atol ?? (dtype === 'float64' ? 1e-6 : 5e-3);
  const rtol = opts.rtol ?? (dtype === 'float64' ? 1e-5 : 1e-2);
  const r = rng(opts.seed ?? 7);
  const g = cloneGraph(graph);
  const b = new GraphBuilder(g);
  let loss = opts.loss;
  if (!loss) {
    const typed = inferShapes(g);
    const terms: string[] = [];
    for (const o of opts.outputs ?? []) {
      const vi = typed.valueInfo.get(o) ?? typed.inputs.find((v) => v.name === o);
      const shape = vi?.shape;
      if (!shape || !shape.every((d) => typeof d === 'number')) throw new Error(`output ${o} has no static shape`);
      const dims = shape as number[];
      const w = b.constant(
        dtype,
        floats(
          dtype,
          uniform(r, numel(dims), 0.5, 1.5).map((v, i) => (i % 2 ? -v : v)),
        ),
        dims,
        'loss_w',
      );
      terms.push(b.op('ReduceSum', [b.mul(o, w)], { keepdims: 0 }));
    }
    loss = terms.length === 1 ? terms[0] : b.op('Sum', terms);
  }
  g.outputs = [{ name: loss, dtype }];

  // analytic
  const { graph: gg, gradients } = buildGradientGraph(g, { loss, wrt: opts.wrt });
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, f] of Object.entries(opts.feeds)) feeds[k] = toOrt(f);
  const sess = await Session.create(modelFromGraph(gg), { label: 'gradient graph', intraOpThreads: 1 });
  const res = await sess.run(feeds);
  await sess.release();
  const analytic = new Map<string, Float64Array>();
  for (const w of opts.wrt) analytic.set(w, Float64Array.from(res[gradients.get(w)!].data as Float32Array));

  // numeric: wrt initializers become inputs of a loss-only session
  const fg = cloneGraph(g);
  const values = new Map<string, Feed>();
  for (const w of opts.wrt) {
    const init = fg.initializers.get(w);
    if (init) {
      fg.initializers.delete(w);
      fg.inputs.push({ name: w, dtype: init.dtype, shape: [...init.dims] });
      const arr = tensorToArray(init);
      values.set(w, {
        dtype: init.dtype,
        dims: [...init.dims],
        data: dtype === 'float64' ? Float64Array.from(arr as Float64Array) : Float32Array.from(arr as Float32Array),
      });
    } else {
      const f = opts.feeds[w];
      values.set(w, { dtype: f.dtype, dims: f.dims, data: (f.data as Float64Array).slice() });
    }
  }
  const fs = await Session.create(modelFromGraph(fg), { label: 'loss graph', intraOpThreads: 1 });
  const fdFeeds: Record<string, ort.Tensor> = { ...feeds };
  for (const [w, f] of values) fdFeeds[w] = toOrt(f);
  const evalLoss = async (): Promise<number> => Number((await fs.run(fdFeeds, [loss]))[loss].data[0]);
  let worst = 0;
  let checked = 0;
  const problems: string[] = [];
  for (const w of opts.wrt) {
    const f = values.get(w)!;
    const data = f.data as Float64Array;
    const n = data.length;
    const ana = analytic.get(w)!;
    assert.equal(ana.length, n, `gradient of ${w} has ${ana.length} elements, expected ${n}`);
    const stride = opts.maxElems && n > opts.maxElems ? n / opts.maxElems : 1;
    for (let t = 0; t < n; t += stride) {
      const j = Math.floor(t);
      const x0 = data[j];
      data[j] = x0 + h;
      const lp = await evalLoss();
      data[j] = x0 - h;
      const lm = await evalLoss();
      data[j] = x0;
      const num = (lp - lm) / (2 * h);
      const err = Math.abs(num - ana[j]) / (atol + rtol * Math.abs(num));
      checked++;
      if (err > worst) worst = err;
      if (err > 1 && problems.length < 5) problems.push(`${w}[${j}]: analytic ${ana[j]} vs numeric ${num}`);
    }
  }
  await fs.release();
  assert.ok(problems.length === 0, `gradient mismatch (atol ${atol}, rtol ${rtol}):\n${problems.join('\n')}`);
  return { worst, checked, grads: analytic };
}

/** Convenience: a fresh builder, a case body, and the check. */
export async function gradCheck(
  dtype: FloatDType,
  body: (
    b: GraphBuilder,
    feed: (name: string, dims: number[], lo?: number, hi?: number) => string,
    r: () => number,
  ) => { outputs: string[]; wrt: string[]; loss?: string },
  opts: Partial<CheckOptions> = {},
): Promise<CheckReport> {
  const b = new GraphBuilder('case');
  const r = rng(opts.seed ?? 1234);
  const feeds: Record<string, Feed> = {};
  const feed = (name: string, dims: number[], lo = -1, hi = 1): string => {
    b.input(name, dtype, dims);
    const m = opts.kinkMargin ?? 0;
    const vals = uniform(r, numel(dims), lo, hi).map((v) => (Math.abs(v) < m ? (v < 0 ? -m : m) : v));
    feeds[name] = { dtype, dims, data: floats(dtype, vals) };
    return name;
  };
  const spec = body(b, feed, r);
  return checkGradients(b.graph, {
    dtype,
    ...opts,
    feeds: { ...feeds, ...(opts.feeds ?? {}) },
    wrt: spec.wrt,
    outputs: spec.outputs,
    ...(spec.loss ? { loss: spec.loss } : {}),
  });
}
