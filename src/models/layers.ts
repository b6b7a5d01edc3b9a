/**
 * Layer surgery on any graph whose node names are module-scoped (`/encoder/layer.1/attention/self/query/MatMul`,
 * `/bert/encoder/layer.1/...`) and whose parameters carry the same paths (`encoder.layer.1.*`): zoo BERT, Optimum
 * exports, USE-lite, and the plain classifier folders `tailor customize` writes. Unlike `dropLayers` (modules.ts),
 * which rebuilds a zoo model from its config, these work on the graph itself, so the result is exactly the
 * source architecture minus what was removed — the DistilBERT-style student of a teacher the zoo cannot build.
 *
 * Pure functions Model -> Model: the input model, its graph and its tensors are never modified.
 */
import { ConfigError } from '../errors.ts';
import { consumerMap, pruneDead, uniqueName } from '../onnx/graph.ts';
import { cloneGraph, type Graph, type Node, type Shape } from '../onnx/ir.ts';
import { inferShapes, valueType } from '../onnx/shapes/index.ts';
import { tensorFromArray, tensorToArray } from '../onnx/tensor.ts';
import type { Model, Parameter } from './model.ts';

/** `encoder/layer.N/` as a node-name segment (after `/` or at the start). */
const NODE_LAYER = /(?:^|\/)encoder\/layer\.(\d+)\//;

/** Encoder layer indices that occur in the graph's node names, ascending. */
export function layerScopes(graph: Graph): number[] {
  const found = new Set<number>();
  for (const n of graph.nodes) {
    const m = NODE_LAYER.exec(n.name);
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

function inLayer(n: Node, k: number): boolean {
  const m = NODE_LAYER.exec(n.name);
  return m !== null && Number(m[1]) === k;
}

const fmt = (s: Shape | undefined): string => (s ? `[${s.join(', ')}]` : '[?]');
const sameShape = (a: Shape | undefined, b: Shape | undefined): boolean =>
  !!a && !!b && a.length === b.length && a.every((d, i) => d === b[i]);

/** What removing one layer scope does: the value it read as its residual stream and the value it produced. */
export interface RemovedLayer {
  layer: number;
  /** The scope's single external output (its consumers now read `residual`). */
  output: string;
  /** The external input of the same shape as the output, which replaces it. */
  residual: string;
  nodes: number;
}

/** Removes one width-preserving layer scope from the graph (no renumbering). */
function removeScope(graph: Graph, k: number, typed: Graph): { graph: Graph; removed: RemovedLayer } {
  const scope = graph.nodes.filter((n) => inLayer(n, k));
  const produced = new Set(scope.flatMap((n) => n.outputs.filter(Boolean)));
  const externalIns: string[] = [];
  for (const n of scope) {
    for (const v of n.inputs) {
      if (v && !produced.has(v) && !graph.initializers.has(v) && !externalIns.includes(v)) externalIns.push(v);
    }
  }
  const consumers = consumerMap(graph);
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const externalOuts = [...produced].filter(
    (v) => graphOutputs.has(v) || (consumers.get(v) ?? []).some((c) => !inLayer(c, k)),
  );
  if (externalOuts.length !== 1) {
    throw new ConfigError(
      `encoder layer ${k} of graph '${graph.name}' has ${externalOuts.length} values used outside it ([${externalOuts.join(', ')}]); only a layer with one output (its hidden states) can be removed`,
      { field: 'layers', value: String(k), details: { outputs: externalOuts } },
    );
  }
  const output = externalOuts[0];
  const outShape = valueType(typed, output)?.shape;
  const candidates = externalIns.filter((v) => sameShape(valueType(typed, v)?.shape, outShape));
  if (candidates.length !== 1) {
    const ins = externalIns.map((v) => `${v} ${fmt(valueType(typed, v)?.shape)}`).join(', ');
    const why =
      candidates.length === 0
        ? `it changes the width: its output ${output} has shape ${fmt(outShape)} but none of its inputs (${ins}) does, so no residual stream can take its place`
        : `more than one of its inputs has its output's shape ${fmt(outShape)} (${candidates.join(', ')}), so the residual stream is ambiguous`;
    throw new ConfigError(`encoder layer ${k} of graph '${graph.name}' cannot be removed: ${why}`, {
      field: 'layers',
      value: String(k),
      details: { output, inputs: externalIns },
    });
  }
  const residual = candidates[0];
  const g = cloneGraph(graph);
  g.nodes = g.nodes.map((n) =>
    inLayer(n, k) ? n : { ...n, inputs: n.inputs.map((v) => (v === output ? residual : v)) },
  );
  if (graphOutputs.has(output)) {
    // The graph's interface keeps its output name: the residual stream is passed through under it.
    g.nodes.push({
      name: uniqueName(g, `removed_layer_${k}`),
      opType: 'Identity',
      domain: '',
      inputs: [residual],
      outputs: [output],
      attrs: {},
    });
  }
  return { graph: pruneDead(g), removed: { layer: k, output, residual, nodes: scope.length } };
}

/** Renames `encoder.layer.N` / `encoder/layer.N` segments by `map` in a value, node or parameter name. */
function renumberName(s: string, map: ReadonlyMap<number, number>): string {
  return s.replace(/((?:^|[/.])encoder[/.]layer\.)(\d+)(?=[/.])/g, (m, pre: string, n: string) => {
    const to = map.get(Number(n));
    return to === undefined ? m : `${pre}${to}`;
  });
}

function renumberGraph(g: Graph, map: ReadonlyMap<number, number>): Graph {
  const r = (s: string): string => (s ? renumberName(s, map) : s);
  const out = cloneGraph(g);
  out.nodes = out.nodes.map((n) => ({ ...n, name: r(n.name), inputs: n.inputs.map(r), outputs: n.outputs.map(r) }));
  out.inputs = out.inputs.map((v) => ({ ...v, name: r(v.name) }));
  out.outputs = out.outputs.map((v) => ({ ...v, name: r(v.name) }));
  out.initializers = new Map([...out.initializers].map(([k, t]) => [r(k), r(k) === k ? t : { ...t, name: r(k) }]));
  out.valueInfo = new Map([...out.valueInfo].map(([k, v]) => [r(k), { ...v, name: r(k) }]));
  return out;
}

/** Per-layer config fields (USE-lite's `hidden_sizes`, ...) and BERT's `num_hidden_layers`, for the kept layers. */
function configFor(config: Record<string, unknown>, before: number, kept: readonly number[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  if (typeof config.num_hidden_layers === 'number') out.num_hidden_layers = kept.length;
  for (const [k, v] of Object.entries(config)) {
    if (Array.isArray(v) && v.length === before && k !== 'architectures') out[k] = kept.map((i) => v[i] as unknown);
  }
  return out;
}

export interface RemoveLayersOptions {
  /** Renumber the kept layers 0..n-1 in node, value and parameter names (default true). */
  renumber?: boolean;
}

/**
 * Removes encoder layers `indices` from the model's graph: each layer's scope (nodes named `.../encoder/layer.K/...`)
 * must have exactly one output used outside it and, among the values it reads, exactly one of that output's shape
 * (the residual stream, found by shape inference); consumers of the output then read the residual stream, and the
 * scope's nodes, the initializers only they used and their parameters are dropped. The kept layers are renumbered
 * 0..n-1 (names and parameter paths) unless `renumber: false`; per-layer config fields follow. Throws ConfigError
 * when a layer is not in the graph (naming the layers that are) or changes the width (USE-lite's layer 0).
 */
export function removeLayers(model: Model, indices: readonly number[], opts: RemoveLayersOptions = {}): Model {
  const present = layerScopes(model.graph);
  if (present.length === 0) {
    throw new ConfigError(
      `graph '${model.graph.name}' has no encoder layer scopes (node names like '/encoder/layer.0/...'), so layers cannot be removed from it`,
      { field: 'layers' },
    );
  }
  for (const i of indices) {
    if (!present.includes(i)) {
      throw new ConfigError(
        `encoder layer ${i} is not in graph '${model.graph.name}': its node names show layers ${present.join(', ')}`,
        { field: 'layers', value: String(i) },
      );
    }
  }
  const drop = [...new Set(indices)].sort((a, b) => b - a);
  if (drop.length === present.length)
    throw new ConfigError(`removing layers ${[...drop].reverse().join(', ')} would leave no encoder layer`, {
      field: 'layers',
    });
  let graph = model.graph;
  for (const k of drop) {
    // Shapes are inferred on the current graph: an earlier removal does not change the others' widths.
    const typed = inferShapes(graph, { allowUnknown: true });
    graph = removeScope(graph, k, typed).graph;
  }
  const kept = present.filter((i) => !drop.includes(i));
  const map = new Map(kept.map((old, i) => [old, i] as [number, number]));
  const renumber = opts.renumber !== false && kept.some((old, i) => old !== i);
  if (renumber) graph = renumberGraph(graph, map);
  const r = (s: string): string => (renumber ? renumberName(s, map) : s);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) {
    const init = r(p.initializer);
    if (graph.initializers.has(init)) params.set(r(k), { ...p, path: r(p.path), initializer: init });
  }
  return { ...model, graph, params, config: configFor(model.config, present.length, kept) };
}

/** Parameter `encoder.layer.<layer>.<leaf>` (with any module prefix, e.g. `bert.`), if the model has it. */
export function encoderParam(model: Model, layer: number, leaf: string): Parameter | undefined {
  const re = new RegExp(`(?:^|\\.)encoder\\.layer\\.${layer}\\.${leaf.replace(/\./g, '\\.')}$`);
  return [...model.params.values()].find((p) => re.test(p.path));
}

/** The kept layer's FFN parameters: input dense (hidden -> intermediate) and output dense (intermediate -> hidden). */
function ffnParams(model: Model, layer: number): { w1: Parameter; b1?: Parameter; w2: Parameter } {
  const find = (leaf: string): Parameter | undefined => encoderParam(model, layer, leaf);
  const w1 = find('intermediate.dense.weight');
  const w2 = find('output.dense.weight');
  if (!w1 || !w2) {
    throw new ConfigError(
      `encoder layer ${layer} has no FFN parameters 'encoder.layer.${layer}.intermediate.dense.weight' and 'encoder.layer.${layer}.output.dense.weight'`,
      { field: 'intermediate', value: String(layer) },
    );
  }
  const b1 = find('intermediate.dense.bias');
  return { w1, w2, ...(b1 ? { b1 } : {}) };
}

/**
 * Narrows the FFN of encoder layer `layer` to its `keep` highest-magnitude intermediate units: unit j scores
 * ‖w_in[:, j]‖₂ · ‖w_out[j, :]‖₂ (its input column times its output row), the top `keep` are kept in their original
 * order and the others' columns, bias entries and rows are dropped. Exact for every input when the dropped units'
 * output rows are zero; otherwise an approximation that distillation then trains. Needs an element-wise activation
 * between the two linears (ReLU, GELU), as in BERT and USE-lite. Pure.
 */
export function pruneFfn(model: Model, layer: number, keep: number): Model {
  const { w1, b1, w2 } = ffnParams(model, layer);
  const t1 = model.graph.initializers.get(w1.initializer),
    t2 = model.graph.initializers.get(w2.initializer);
  if (
    !t1 ||
    !t2 ||
    w1.shape.length !== 2 ||
    w2.shape.length !== 2 ||
    [w1, w2, ...(b1 ? [b1] : [])].some((p) => p.dtype !== 'float32')
  ) {
    throw new ConfigError(`encoder layer ${layer}: FFN weights are not 2-D float32 initializers`, {
      field: 'intermediate',
    });
  }
  // Graph layout: 'in_out' stores [in, out] (MatMul operand), 'out_in' stores [out, in] (Gemm transB).
  const inter = w1.layout === 'out_in' ? w1.shape[0] : w1.shape[1];
  const hidden = w1.layout === 'out_in' ? w1.shape[1] : w1.shape[0];
  const w2Inter = w2.layout === 'out_in' ? w2.shape[1] : w2.shape[0];
  if (w2Inter !== inter || (b1 && b1.shape[0] !== inter)) {
    throw new ConfigError(
      `encoder layer ${layer}: FFN widths disagree (intermediate.dense ${fmt(w1.shape)}, output.dense ${fmt(w2.shape)})`,
      { field: 'intermediate' },
    );
  }
  if (!Number.isInteger(keep) || keep < 1 || keep > inter)
    throw new ConfigError(`encoder layer ${layer}: keep must be 1..${inter} FFN units, got ${keep}`, {
      field: 'intermediate',
      value: String(keep),
    });
  if (keep === inter) return model;
  const v1 = tensorToArray(t1) as Float32Array,
    v2 = tensorToArray(t2) as Float32Array;
  const out = w2.layout === 'out_in' ? w2.shape[0] : w2.shape[1];
  // Element (unit j, other i) of each weight, whatever its layout.
  const at1 = (j: number, i: number): number => (w1.layout === 'out_in' ? v1[j * hidden + i] : v1[i * inter + j]);
  const at2 = (j: number, i: number): number => (w2.layout === 'out_in' ? v2[i * inter + j] : v2[j * out + i]);
  const score = Array.from({ length: inter }, (_, j) => {
    let a = 0,
      b = 0;
    for (let i = 0; i < hidden; i++) a += at1(j, i) ** 2;
    for (let i = 0; i < out; i++) b += at2(j, i) ** 2;
    return Math.sqrt(a * b);
  });
  const units = Array.from({ length: inter }, (_, j) => j)
    .sort((a, b) => score[b] - score[a] || a - b)
    .slice(0, keep)
    .sort((a, b) => a - b);
  const graph = cloneGraph(model.graph);
  const params = new Map(model.params);
  const set = (p: Parameter, values: Float32Array, shape: number[]): void => {
    graph.initializers.set(p.initializer, tensorFromArray(p.initializer, 'float32', values, shape));
    params.set(p.path, { ...p, shape });
  };
  const n1 = new Float32Array(keep * hidden),
    n2 = new Float32Array(keep * out);
  units.forEach((j, u) => {
    for (let i = 0; i < hidden; i++) n1[w1.layout === 'out_in' ? u * hidden + i : i * keep + u] = at1(j, i);
    for (let i = 0; i < out; i++) n2[w2.layout === 'out_in' ? i * keep + u : u * out + i] = at2(j, i);
  });
  set(w1, n1, w1.layout === 'out_in' ? [keep, hidden] : [hidden, keep]);
  set(w2, n2, w2.layout === 'out_in' ? [out, keep] : [keep, out]);
  if (b1) {
    const vb = tensorToArray(graph.initializers.get(b1.initializer)!) as Float32Array;
    set(
      b1,
      Float32Array.from(units, (j) => vb[j]),
      [keep],
    );
  }
  // Recorded intermediate shapes are now stale; ORT infers them again.
  graph.valueInfo = new Map();
  const config: Record<string, unknown> = { ...model.config };
  if (Array.isArray(config.intermediate_sizes))
    config.intermediate_sizes = (config.intermediate_sizes as unknown[]).map((v, i) => (i === layer ? keep : v));
  return { ...model, graph, params, config };
}

/** Encoder block index of a parameter path (`...layer.3...`), or undefined. */
export function layerIndex(path: string): number | undefined {
  const m = /(?:^|\.)layers?\.(\d+)\./.exec(path);
  return m ? Number(m[1]) : undefined;
}
