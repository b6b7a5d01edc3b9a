/**
 * LoRA as graph transforms. For a linear site `y = x·W (+ b)` with W `[in, out]` (ONNX layout),
 * `injectLora` rewrites it to `y = x·W + ((dropout(x)·A)·scaling)·B (+ b)` with graph tensors
 * `<module>.lora_A.weight` `[in, r]` and `<module>.lora_B.weight` `[r, out]` (both `layout: 'in_out'`: PEFT's
 * `[r, in]` / `[out, r]` are their PyTorch-layout transposes). PEFT's init: A ~ kaiming-uniform(a=√5) =
 * U(±1/√in), B = 0, so the adapted model starts equal to the base. `mergeLora` folds
 * W' = W + scaling·A·B (= (B_pt·A_pt)ᵀ) and `unmergeLora` puts the original tensors back untouched.
 */
import { ConfigError, GraphError } from '../errors.ts';
import { paramValues, type Model, type Parameter } from '../models/model.ts';
import { fnv1a } from '../util/hash.ts';
import { mulberry32 } from '../util/rng.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { topoSort } from '../onnx/graph.ts';
import { cloneGraph, type Tensor } from '../onnx/ir.ts';
import { tensorFromArray } from '../onnx/tensor.ts';
import { linearSites, selectSites, type LinearSite, type TargetSpec } from './sites.ts';

export interface LoraOptions {
  targets: TargetSpec;
  /** Rank (default 8). */
  r?: number;
  /** Default: r (PEFT's default lora_alpha is 8 with r 8). */
  alpha?: number;
  dropout?: number;
  /** Scale by alpha/√r instead of alpha/r. */
  rslora?: boolean;
  /** Seed of A's initialisation (default 0). */
  seed?: number;
}

/** One adapted module's tensors, in graph layout. */
export interface LoraWeights {
  /** [in, r] */
  A: Float32Array;
  /** [r, out] */
  B: Float32Array;
  r: number;
  inFeatures: number;
  outFeatures: number;
}

export interface LoraSpec {
  r: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  /** Adapted module paths. */
  modules: string[];
}

export function loraScaling(alpha: number, r: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

export function loraAName(module: string): string {
  return `${module}.lora_A.weight`;
}
export function loraBName(module: string): string {
  return `${module}.lora_B.weight`;
}

/** PEFT's initial A for a `[r, in]` Linear weight, returned in graph layout `[in, r]`. Seeded per module. */
export function initLoraA(module: string, r: number, inF: number, seed: number): Float32Array {
  // kaiming_uniform_(a=√5): gain √(2/(1+5)), bound = gain·√(3/fan_in) = 1/√in.
  const bound = 1 / Math.sqrt(inF);
  const rnd = mulberry32(fnv1a(module, (seed ^ 0x5bd1e995) >>> 0));
  const out = new Float32Array(inF * r);
  for (let i = 0; i < out.length; i++) out[i] = (rnd() * 2 - 1) * bound;
  return out;
}

function checkSpec(r: number, alpha: number, dropout: number): void {
  if (!Number.isInteger(r) || r < 1)
    throw new ConfigError(`LoRA rank r must be a positive integer, got ${r}`, { field: 'r', value: String(r) });
  if (!(alpha > 0))
    throw new ConfigError(`lora_alpha must be > 0, got ${alpha}`, { field: 'alpha', value: String(alpha) });
  if (!(dropout >= 0 && dropout < 1))
    throw new ConfigError(`lora_dropout must lie in [0, 1), got ${dropout}`, {
      field: 'dropout',
      value: String(dropout),
    });
}

/** How the adapter tensors enter the graph: as trainable initializers, or as graph inputs (adapter switching). */
export type LoraBinding = 'initializers' | 'inputs';

/**
 * Injects LoRA at the selected sites. Base weights are untouched and frozen; only the new A/B tensors (and
 * parameters already trainable that the caller keeps, such as a head) are trainable. `weights` supplies values
 * per module (loading an adapter); missing modules get PEFT's init. With `binding: 'inputs'` A, B and the
 * scaling become graph inputs (`<module>.lora_scaling`, a float32 scalar) and no values are stored.
 */
export function injectLora(
  model: Model,
  opts: LoraOptions,
  weights?: ReadonlyMap<string, LoraWeights>,
  binding: LoraBinding = 'initializers',
): { model: Model; spec: LoraSpec } {
  const r = opts.r ?? 8;
  const alpha = opts.alpha ?? r;
  const dropout = opts.dropout ?? 0;
  const rslora = opts.rslora ?? false;
  checkSpec(r, alpha, dropout);
  const sites = selectSites(model, opts.targets);
  for (const s of sites) {
    const wr = weights?.get(s.module)?.r ?? r;
    if (wr > Math.min(s.inFeatures, s.outFeatures)) {
      throw new ConfigError(
        `LoRA rank ${wr} is larger than module '${s.module}' allows: its weight is [${s.inFeatures}, ${s.outFeatures}] (rank at most ${Math.min(s.inFeatures, s.outFeatures)})`,
        { field: 'r', value: String(wr) },
      );
    }
  }
  const g = cloneGraph(model.graph);
  const b = new GraphBuilder(g);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params)
    params.set(k, p.trainable && !/^classifier\.|^score\./.test(k) ? { ...p, trainable: false } : p);
  const scaling = loraScaling(alpha, r, rslora);
  for (const s of sites) {
    const node = g.nodes.find((n) => n.name === s.node);
    if (!node) throw new GraphError(`linear site '${s.module}': node '${s.node}' vanished`, { node: s.node });
    const w = weights?.get(s.module);
    const rank = w?.r ?? r;
    if (w && (w.inFeatures !== s.inFeatures || w.outFeatures !== s.outFeatures)) {
      throw new ConfigError(
        `adapter for '${s.module}' is for a [${w.inFeatures}, ${w.outFeatures}] weight but the model's is [${s.inFeatures}, ${s.outFeatures}]`,
        { field: s.module },
      );
    }
    const aName = loraAName(s.module);
    const bName = loraBName(s.module);
    let scaleName: string;
    if (binding === 'initializers') {
      b.initializer(aName, 'float32', w?.A ?? initLoraA(s.module, rank, s.inFeatures, opts.seed ?? 0), [
        s.inFeatures,
        rank,
      ]);
      b.initializer(bName, 'float32', w?.B ?? new Float32Array(rank * s.outFeatures), [rank, s.outFeatures]);
      params.set(aName, {
        path: aName,
        initializer: aName,
        dtype: 'float32',
        shape: [s.inFeatures, rank],
        trainable: true,
        role: 'weight',
        layout: 'in_out',
      });
      params.set(bName, {
        path: bName,
        initializer: bName,
        dtype: 'float32',
        shape: [rank, s.outFeatures],
        trainable: true,
        role: 'weight',
        layout: 'in_out',
      });
      scaleName = b.scalar(scaling);
    } else {
      b.input(aName, 'float32', [s.inFeatures, `r::${s.module}`]);
      b.input(bName, 'float32', [`r::${s.module}`, s.outFeatures]);
      scaleName = b.input(`${s.module}.lora_scaling`, 'float32', []);
    }
    const x = node.inputs[0];
    const y = node.outputs[0];
    const base = b.uniqueName(`${y}/base`);
    node.outputs = [base];
    b.scope(`${s.module}.lora`, () => {
      const xd = dropout > 0 ? b.op('Dropout', [x, b.scalar(dropout)]) : x;
      // Scale the [tokens, r] intermediate, not the [tokens, out] product: r ≪ out, so this saves a full-size
      // elementwise pass forward and another in the backward per adapted layer and step.
      const delta = b.matmul(b.mul(b.matmul(xd, aName), scaleName), bName);
      // `y` keeps its name (its consumers read it); the builder already counts it as used, so add the node directly.
      g.nodes.push({
        name: b.uniqueName(`/${s.module.replace(/\./g, '/')}/lora/Add`),
        opType: 'Add',
        domain: '',
        inputs: [base, delta],
        outputs: [y],
        attrs: {},
      });
    });
  }
  return {
    model: { ...model, graph: topoSort(g), params },
    spec: { r, alpha, dropout, rslora, modules: sites.map((s) => s.module) },
  };
}

/** The current A/B values of an injected model, by module. */
export function loraWeightsOf(model: Model, spec: LoraSpec): Map<string, LoraWeights> {
  const out = new Map<string, LoraWeights>();
  for (const m of spec.modules) {
    const a = model.params.get(loraAName(m));
    const bp = model.params.get(loraBName(m));
    if (!a || !bp) throw new ConfigError(`model has no LoRA tensors for module '${m}'`, { field: m });
    out.set(m, {
      A: paramValues(model, a.path) as Float32Array,
      B: paramValues(model, bp.path) as Float32Array,
      r: a.shape[1],
      inFeatures: a.shape[0],
      outFeatures: bp.shape[1],
    });
  }
  return out;
}

/** A model with adapters folded into its weights, plus the original tensors for an exact `unmergeLora`. */
export interface MergedModel {
  model: Model;
  /** Original initializer tensors, by initializer name, as they were before merging. */
  original: Map<string, Tensor>;
}

/**
 * Folds adapters into the base weights: W' = W + scaling·A·B (graph layout; accumulated in float64, rounded once).
 * `base` is the model without LoRA nodes (with the adapter's head already attached): the result has the base's
 * graph structure and runs in plain onnxruntime.
 */
export function mergeLora(
  base: Model,
  weights: ReadonlyMap<string, LoraWeights>,
  scaling: number | ((module: string) => number),
): MergedModel {
  const sites = new Map<string, LinearSite>(linearSites(base).map((s) => [s.module, s]));
  const g = { ...base.graph, initializers: new Map(base.graph.initializers) };
  const original = new Map<string, Tensor>();
  for (const [m, w] of weights) {
    const s = sites.get(m);
    if (!s) throw new ConfigError(`cannot merge: the base has no linear module '${m}'`, { field: m });
    if (s.inFeatures !== w.inFeatures || s.outFeatures !== w.outFeatures) {
      throw new ConfigError(
        `cannot merge: adapter for '${m}' is [${w.inFeatures}, ${w.outFeatures}], the base weight is [${s.inFeatures}, ${s.outFeatures}]`,
        { field: m },
      );
    }
    const sc = typeof scaling === 'number' ? scaling : scaling(m);
    const W = paramValues(base, s.weight.path) as Float32Array;
    const out = new Float32Array(W.length);
    const { r, inFeatures: I, outFeatures: O } = w;
    for (let i = 0; i < I; i++) {
      for (let o = 0; o < O; o++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += w.A[i * r + k] * w.B[k * O + o];
        out[i * O + o] = W[i * O + o] + sc * acc;
      }
    }
    original.set(s.weight.initializer, base.graph.initializers.get(s.weight.initializer) as Tensor);
    g.initializers.set(s.weight.initializer, tensorFromArray(s.weight.initializer, 'float32', out, [I, O]));
  }
  return { model: { ...base, graph: g }, original };
}

/** Restores the tensors a merge replaced: the result's weights are bit-for-bit the base's. */
export function unmergeLora(merged: MergedModel): Model {
  const g = { ...merged.model.graph, initializers: new Map(merged.model.graph.initializers) };
  for (const [k, t] of merged.original) g.initializers.set(k, t);
  return { ...merged.model, graph: g };
}
