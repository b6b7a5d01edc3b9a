/**
 * IA3 (Liu et al., 2022; PEFT's `IA3`): learned per-feature scaling vectors, initialised to ones, on chosen linear
 * modules. Like PEFT's IA3 Linear layer:
 *   - an ordinary target (key, value) scales its *output*, bias included: y = (x·W + b) ⊙ l, l of width `out`;
 *   - a feed-forward target (the FFN's `output.dense`) scales its *input*, the FFN intermediate activations:
 *     y = (x ⊙ l)·W + b, l of width `in`.
 * The base weights are frozen; only the vectors (and the head) train. Merging folds the vectors into the weights
 * (W[i, o]·l[o] and b[o]·l[o], or W[i, o]·l[i]) and removes the Mul nodes.
 */
import { ConfigError, GraphError } from '../errors.ts';
import { paramValues, type Model, type Parameter } from '../models/model.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { topoSort } from '../onnx/graph.ts';
import { cloneGraph } from '../onnx/ir.ts';
import { tensorFromArray } from '../onnx/tensor.ts';
import { selectSites, targetMatches, type TargetSpec } from './sites.ts';

/** PEFT's IA3 defaults for BERT: key, value and the FFN output projection (feed-forward: scaled on its input). */
export const IA3_DEFAULT_TARGETS = /attention\.self\.(key|value)$|(?<!attention\.)output\.dense$/;
export const IA3_DEFAULT_FEEDFORWARD = /(?<!attention\.)output\.dense$/;

export interface Ia3Options {
  /** Modules that get a vector (default: key, value and the FFN output dense). */
  targets?: TargetSpec;
  /** Targets scaled on their input (default: the FFN output dense); every one must also be a target. */
  feedforward?: TargetSpec;
}

export interface Ia3Site {
  module: string;
  feedforward: boolean;
  /** Width of the vector: `in` for feed-forward sites, else `out`. */
  width: number;
  /** The Mul node that applies the vector. */
  mulNode: string;
}

export interface Ia3Spec { sites: Ia3Site[] }

export function ia3Name(module: string): string { return `${module}.ia3_l`; }

/**
 * Injects IA3 vectors (ones, or `values` by module) at the selected sites. Pure; the adapted model's outputs equal
 * the base's exactly while the vectors are ones (x·1 = x in floating point).
 */
export function injectIa3(model: Model, opts: Ia3Options = {}, values?: ReadonlyMap<string, Float32Array>): { model: Model; spec: Ia3Spec } {
  const targets = opts.targets ?? IA3_DEFAULT_TARGETS;
  const ffSpec = opts.feedforward ?? IA3_DEFAULT_FEEDFORWARD;
  const sites = selectSites(model, targets);
  const g = cloneGraph(model.graph);
  const b = new GraphBuilder(g);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) params.set(k, p.trainable && !/^classifier\.|^score\./.test(k) ? { ...p, trainable: false } : p);
  const out: Ia3Site[] = [];
  for (const s of sites) {
    const node = g.nodes.find((n) => n.name === s.node);
    if (!node) throw new GraphError(`IA3 site '${s.module}': node '${s.node}' vanished`, { node: s.node });
    const feedforward = targetMatches(ffSpec, s.module);
    const width = feedforward ? s.inFeatures : s.outFeatures;
    const name = ia3Name(s.module);
    const v = values?.get(s.module) ?? new Float32Array(width).fill(1);
    if (v.length !== width) throw new ConfigError(`IA3 vector for '${s.module}' has ${v.length} values; the module needs ${width}`, { field: s.module });
    b.initializer(name, 'float32', v, [width]);
    params.set(name, { path: name, initializer: name, dtype: 'float32', shape: [width], trainable: true, role: 'weight', layout: 'same' });
    const mulName = b.uniqueName(`/${s.module.replace(/\./g, '/')}/ia3/Mul`);
    if (feedforward) {
      const x = node.inputs[0];
      const scaled = b.uniqueName(`${x}/ia3`);
      g.nodes.push({ name: mulName, opType: 'Mul', domain: '', inputs: [x, name], outputs: [scaled], attrs: {} });
      node.inputs = [scaled, ...node.inputs.slice(1)];
    } else {
      // PEFT scales the layer's result, bias included: put the Mul after the bias Add when there is one.
      let last = node;
      const biasInit = model.params.get(`${s.module}.bias`)?.initializer;
      const add = biasInit ? g.nodes.find((n) => n.opType === 'Add' && n.inputs.includes(node.outputs[0]) && n.inputs.includes(biasInit)) : undefined;
      if (add) last = add;
      const y = last.outputs[0];
      const pre = b.uniqueName(`${y}/pre_ia3`);
      last.outputs = [pre, ...last.outputs.slice(1)];
      g.nodes.push({ name: mulName, opType: 'Mul', domain: '', inputs: [pre, name], outputs: [y], attrs: {} });
    }
    out.push({ module: s.module, feedforward, width, mulNode: mulName });
  }
  return { model: { ...model, graph: topoSort(g), params }, spec: { sites: out } };
}

/** The current IA3 vectors of an injected model, by module. */
export function ia3VectorsOf(model: Model, spec: Ia3Spec): Map<string, Float32Array> {
  return new Map(spec.sites.map((s) => [s.module, paramValues(model, ia3Name(s.module)) as Float32Array]));
}

/**
 * Folds the vectors into the weights (and, for output-scaled sites, the bias) and removes the Mul nodes and
 * vector parameters: a plain graph with the base's structure. Products are rounded once from float64.
 */
export function mergeIa3(model: Model, spec: Ia3Spec): Model {
  const g = cloneGraph(model.graph);
  const params = new Map(model.params);
  for (const s of spec.sites) {
    const l = paramValues(model, ia3Name(s.module)) as Float32Array;
    const wp = model.params.get(`${s.module}.weight`);
    if (!wp) throw new ConfigError(`model has no weight for IA3 module '${s.module}'`, { field: s.module });
    const [I, O] = wp.shape;
    const W = paramValues(model, wp.path) as Float32Array;
    const out = new Float32Array(W.length);
    for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) out[i * O + o] = W[i * O + o] * l[s.feedforward ? i : o];
    g.initializers.set(wp.initializer, tensorFromArray(wp.initializer, 'float32', out, [I, O]));
    const bp = model.params.get(`${s.module}.bias`);
    if (bp && !s.feedforward) {
      const bv = paramValues(model, bp.path) as Float32Array;
      g.initializers.set(bp.initializer, tensorFromArray(bp.initializer, 'float32', Float32Array.from(bv, (v, o) => v * l[o]), [O]));
    }
    const mul = g.nodes.find((n) => n.name === s.mulNode);
    if (!mul) throw new GraphError(`IA3 Mul node '${s.mulNode}' is missing`, { node: s.mulNode });
    const [from] = mul.inputs;
    const to = mul.outputs[0];
    g.nodes = g.nodes.filter((n) => n !== mul);
    if (s.feedforward) {
      for (const n of g.nodes) n.inputs = n.inputs.map((v) => (v === to ? from : v));
    } else {
      for (const n of g.nodes) n.outputs = n.outputs.map((v) => (v === from ? to : v));
    }
    g.initializers.delete(ia3Name(s.module));
    params.delete(ia3Name(s.module));
  }
  return { ...model, graph: g, params };
}
