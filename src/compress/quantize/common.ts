/**
 * Shared pieces of the quantizers: which MatMuls can be quantized (a float32 activation times a constant 2-D
 * float32 weight), their module paths (from Optimum-style node names), include/exclude patterns, and the
 * rounding/packing numerics that the tests check against plain-JS references.
 */
import { ConfigError, GraphError } from '../../errors.ts';
import { cloneGraph, type Graph, type ModelProto, type Node, type Tensor } from '../../onnx/ir.ts';
import { nameAllocator } from '../../onnx/graph.ts';
import { tensorFromArray, tensorToArray } from '../../onnx/tensor.ts';
import { nodeNameToModulePath } from '../../models/hf/names.ts';

/** A module-path pattern: a regular expression (string or RegExp) searched in the path. */
export type ModulePattern = string | RegExp;

export interface SelectOptions {
  /** Only MatMuls whose module path matches one of these (default: all). */
  include?: readonly ModulePattern[];
  /** MatMuls whose module path matches one of these stay float (e.g. `classifier`, `layer\.11\.output`). */
  exclude?: readonly ModulePattern[];
  /** Skip weights with fewer elements than this (tiny heads gain nothing). Default 0. */
  minWeightElements?: number;
}

/** A MatMul that a quantizer may rewrite. */
export interface MatMulSite {
  node: Node;
  /** Module path (`bert.encoder.layer.0.attention.self.query`), or the node name when it is not scoped. */
  module: string;
  activation: string;
  weight: Tensor;
  /** Input features (rows of the [K, N] weight). */
  k: number;
  /** Output features. */
  n: number;
}

/** What a quantizer did to one MatMul, for reports and exclusion lists. */
export interface QuantizedNode {
  module: string;
  /** Name of the original MatMul node. */
  node: string;
  /** The value both the float and the quantized model compute (the MatMul's output), for error probes. */
  output: string;
  /** Ops that replaced the MatMul. */
  ops: string[];
  k: number;
  n: number;
}

export interface SkippedNode {
  module: string;
  node: string;
  reason: string;
}

/** Module path of a node: Optimum's `/a/b.3/c/MatMul` form, else the node name itself. */
export function moduleOf(node: Node): string {
  return nodeNameToModulePath(node.name) ?? node.name;
}

function compile(p: ModulePattern, field: string): RegExp {
  if (p instanceof RegExp) return p;
  try {
    return new RegExp(p);
  } catch (e) {
    throw new ConfigError(
      `invalid ${field} pattern '${p}': ${(e as Error).message}`,
      { field, value: p },
      { cause: e },
    );
  }
}

/**
 * Every MatMul of `graph` with a constant float32 [K, N] right-hand side, with the reason each other candidate is
 * skipped. Activation x activation MatMuls (attention scores) are not candidates: they have no weight to store.
 */
export function selectMatMuls(graph: Graph, opts: SelectOptions = {}): { sites: MatMulSite[]; skipped: SkippedNode[] } {
  const include = (opts.include ?? []).map((p) => compile(p, 'include'));
  const exclude = (opts.exclude ?? []).map((p) => compile(p, 'exclude'));
  const minEl = opts.minWeightElements ?? 0;
  const sites: MatMulSite[] = [];
  const skipped: SkippedNode[] = [];
  for (const node of graph.nodes) {
    if (node.opType !== 'MatMul' || node.domain !== '') continue;
    const w = graph.initializers.get(node.inputs[1]);
    if (!w || graph.initializers.has(node.inputs[0])) continue;
    const module = moduleOf(node);
    if (w.dtype !== 'float32' || w.dims.length !== 2) {
      skipped.push({
        module,
        node: node.name,
        reason: `weight is ${w.dtype}[${w.dims.join(', ')}], not a 2-D float32 matrix`,
      });
      continue;
    }
    if (include.length && !include.some((r) => r.test(module))) {
      skipped.push({ module, node: node.name, reason: 'not matched by include' });
      continue;
    }
    const ex = exclude.find((r) => r.test(module));
    if (ex) {
      skipped.push({ module, node: node.name, reason: `excluded by /${ex.source}/` });
      continue;
    }
    if (w.dims[0] * w.dims[1] < minEl) {
      skipped.push({ module, node: node.name, reason: `weight has ${w.dims[0] * w.dims[1]} elements (< ${minEl})` });
      continue;
    }
    sites.push({ node, module, activation: node.inputs[0], weight: w, k: w.dims[0], n: w.dims[1] });
  }
  return { sites, skipped };
}

/** ONNX's rounding (QuantizeLinear, DynamicQuantizeLinear): to nearest, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Per-output-channel symmetric int8 of a [K, N] weight: q[k,n] = round(w[k,n] / scale[n]) in [-127, 127]. */
export function quantizePerChannelInt8(w: Float32Array, k: number, n: number): { q: Int8Array; scales: Float32Array } {
  if (w.length !== k * n) throw new GraphError(`weight has ${w.length} values, expected ${k}x${n}`);
  const absmax = new Float32Array(n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const a = Math.abs(w[i * n + j]);
      if (a > absmax[j]) absmax[j] = a;
    }
  }
  // A zero column still needs a positive scale (DequantizeLinear divides nothing, but QDQ fusions reject 0).
  const scales = Float32Array.from(absmax, (a) => (a > 0 ? a / 127 : 1));
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) q[i * n + j] = Math.max(-127, Math.min(127, roundHalfEven(w[i * n + j] / scales[j])));
  }
  return { q, scales };
}

/** Weight values of a float32 initializer as a Float32Array (copy-free when aligned). */
export function weightValues(t: Tensor): Float32Array {
  return tensorToArray(t) as Float32Array;
}

/**
 * A working copy of the model for a transform: the graph is cloned (node objects, arrays and maps are new, tensor
 * bytes shared and never written), so the caller's model stays exactly as it was.
 */
export function workingCopy(model: ModelProto): { model: ModelProto; graph: Graph; fresh: (base: string) => string } {
  const graph = cloneGraph(model.graph);
  const copy: ModelProto = {
    ...model,
    graph,
    opsetImports: model.opsetImports.map((o) => ({ ...o })),
    metadata: { ...model.metadata },
  };
  return { model: copy, graph, fresh: nameAllocator(model.graph) };
}

/** The model's default-domain opset version. */
export function defaultOpset(model: ModelProto): number {
  return model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 1;
}

/**
 * Checks the default opset is at least `minDefault` (raising it would change the meaning of ops such as Squeeze
 * or ReduceSum in the rest of the graph, so it is an error instead) and adds the com.microsoft import when needed.
 */
export function ensureOpsets(model: ModelProto, minDefault: number, contrib: boolean, mode = 'quantization'): void {
  const v = defaultOpset(model);
  if (v < minDefault) {
    throw new ConfigError(
      `${mode} needs opset ${minDefault} or newer; this model uses opset ${v} (re-export it at a newer opset)`,
      { field: 'opset', value: String(v) },
    );
  }
  if (contrib && !model.opsetImports.some((o) => o.domain === 'com.microsoft'))
    model.opsetImports.push({ domain: 'com.microsoft', version: 1 });
}

/** Removes initializers no node reads any more (the float weights a quantizer replaced). */
export function dropUnusedInitializers(graph: Graph): void {
  const read = new Set<string>();
  const visit = (g: Graph): void => {
    for (const n of g.nodes) {
      for (const i of n.inputs) if (i) read.add(i);
      for (const a of Object.values(n.attrs)) if (a.type === 'graph') visit(a.value);
    }
    for (const o of g.outputs) read.add(o.name);
  };
  visit(graph);
  for (const k of [...graph.initializers.keys()]) if (!read.has(k)) graph.initializers.delete(k);
}

/** Replaces the node `old` in the node list with `replacement` (kept in place so the order stays topological). */
export function replaceNode(graph: Graph, old: Node, replacement: Node[]): void {
  const i = graph.nodes.findIndex((n) => n.name === old.name);
  if (i < 0)
    throw new GraphError(`node '${old.name}' vanished from graph '${graph.name}'`, { node: old.name, op: old.opType });
  graph.nodes.splice(i, 1, ...replacement);
}

/** The node-name prefix of a site (`/bert/encoder/layer.0/attention/self/query/`), so new nodes stay in its module. */
export function scopePrefix(node: Node): string {
  const i = node.name.lastIndexOf('/');
  return i >= 0 ? node.name.slice(0, i + 1) : `${node.name}/`;
}

export function int8Tensor(name: string, values: Int8Array, dims: number[]): Tensor {
  return tensorFromArray(name, 'int8', values, dims);
}

export function uint8Tensor(name: string, values: Uint8Array, dims: number[]): Tensor {
  return tensorFromArray(name, 'uint8', values, dims);
}

export function f32Tensor(name: string, values: Float32Array, dims: number[]): Tensor {
  return tensorFromArray(name, 'float32', values, dims);
}

export function mkNode(
  name: string,
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Node['attrs'] = {},
  domain = '',
): Node {
  return { name, opType, domain, inputs, outputs, attrs };
}

/** What `quantizeEmbeddingTables` did to one Gather. */
export interface QuantizedEmbedding {
  module: string;
  table: string;
  rows: number;
  dim: number;
}

/**
 * Embedding tables (Gather over a constant 2-D float32 table, axis 0) stored as int8 with one symmetric scale per
 * row; the looked-up rows are dequantized after the Gather: Gather(q, ids) -> Cast -> Mul(Unsqueeze(Gather(scale,
 * ids))). Only the gathered rows are touched at run time (dequantizing the whole table per run would cost more than
 * the model), and for BERT-sized vocabularies the tables are a quarter of the parameters, so leaving them float
 * caps the file at ~2.5x smaller. Standard ONNX ops only.
 */
export function quantizeEmbeddingTables(
  graph: Graph,
  fresh: (base: string) => string,
  opts: SelectOptions = {},
  opset = 13,
): QuantizedEmbedding[] {
  const exclude = (opts.exclude ?? []).map((p) => compile(p, 'exclude'));
  const done: QuantizedEmbedding[] = [];
  const tables = new Map<string, { q: string; s: string }>();
  for (const node of [...graph.nodes]) {
    if (node.opType !== 'Gather' || node.domain !== '') continue;
    const t = graph.initializers.get(node.inputs[0]);
    const axis = node.attrs.axis?.type === 'int' ? node.attrs.axis.value : 0;
    if (!t || t.dtype !== 'float32' || t.dims.length !== 2 || axis !== 0 || graph.initializers.has(node.inputs[1]))
      continue;
    const module = moduleOf(node);
    if (exclude.some((r) => r.test(module))) continue;
    const [rows, dim] = t.dims;
    let qt = tables.get(t.name);
    if (!qt) {
      const w = weightValues(t);
      const q = new Int8Array(rows * dim);
      const scales = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        let amax = 0;
        for (let c = 0; c < dim; c++) amax = Math.max(amax, Math.abs(w[r * dim + c]));
        const s = amax > 0 ? amax / 127 : 1;
        scales[r] = s;
        for (let c = 0; c < dim; c++) q[r * dim + c] = Math.max(-127, Math.min(127, roundHalfEven(w[r * dim + c] / s)));
      }
      qt = { q: fresh(`${t.name}_quantized`), s: fresh(`${t.name}_row_scale`) };
      graph.initializers.set(qt.q, int8Tensor(qt.q, q, [rows, dim]));
      graph.initializers.set(qt.s, f32Tensor(qt.s, scales, [rows]));
      tables.set(t.name, qt);
    }
    const pre = scopePrefix(node);
    const [gq, gs, cast, us, axes] = [
      'Gather_q_output',
      'Gather_scale_output',
      'Cast_output',
      'Unsqueeze_output',
      'unsqueeze_axes',
    ].map((b) => fresh(`${pre}${b}`));
    // Unsqueeze takes its axes as an input from opset 13, as an attribute before.
    if (opset >= 13) graph.initializers.set(axes, tensorFromArray(axes, 'int64', BigInt64Array.of(-1n), [1]));
    replaceNode(graph, node, [
      mkNode(fresh(`${pre}Gather_quantized`), 'Gather', [qt.q, node.inputs[1]], [gq], {
        axis: { type: 'int', value: 0 },
      }),
      mkNode(fresh(`${pre}Gather_scale`), 'Gather', [qt.s, node.inputs[1]], [gs], { axis: { type: 'int', value: 0 } }),
      mkNode(fresh(`${pre}Cast`), 'Cast', [gq], [cast], { to: { type: 'int', value: 1 } }),
      opset >= 13
        ? mkNode(fresh(`${pre}Unsqueeze`), 'Unsqueeze', [gs, axes], [us])
        : mkNode(fresh(`${pre}Unsqueeze`), 'Unsqueeze', [gs], [us], { axes: { type: 'ints', value: [-1] } }),
      mkNode(fresh(`${pre}dequantize_Mul`), 'Mul', [cast, us], [node.outputs[0]]),
    ]);
    done.push({ module, table: t.name, rows, dim });
  }
  return done;
}
