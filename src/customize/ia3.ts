/**
 * IA3 (Liu et al., 2022; PEFT's `IA3`): learned per-feature scaling vectors, initialised to ones, on chosen linear
 * modules. Like PEFT's IA3 Linear layer:
 *   - an ordinary target (key, value) scales its *output*, bias included: y = (x·W + b) ⊙ l, l of width `out`;
 *   - a feed-forward target (the FFN's `output.dense`) scales its *input*, the FFN intermediate activations:
 *     y = (x ⊙ l)·W + b, l of width `in`.
 * The base weights are frozen; only the vectors (and the head) train. Merging folds the vectors into the weights
 * (W[i, o]·l[o] and b[o]·l[o], or W[i, o]·l[i]) and removes the Mul nodes.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, GraphError, ModelFileError } from '../errors.ts';
import { paramValues, type Model, type Parameter } from '../models/model.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { topoSort } from '../onnx/graph.ts';
import { cloneGraph } from '../onnx/ir.ts';
import { parseSafetensors } from '../onnx/safetensors.ts';
import { tensorFromArray, tensorToArray, transpose2d } from '../onnx/tensor.ts';
import type { Lineage } from './lineage.ts';
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  TAILOR_JSON,
  addHeadTensors,
  writeAdapterFolder,
  type AdapterHead,
} from './peft.ts';
import { peftTargetModules, selectSites, targetMatches, type TargetSpec } from './sites.ts';

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

export interface Ia3Spec {
  sites: Ia3Site[];
}

export function ia3Name(module: string): string {
  return `${module}.ia3_l`;
}

/**
 * Injects IA3 vectors (ones, or `values` by module) at the selected sites. Pure; the adapted model's outputs equal
 * the base's exactly while the vectors are ones (x·1 = x in floating point).
 */
export function injectIa3(
  model: Model,
  opts: Ia3Options = {},
  values?: ReadonlyMap<string, Float32Array>,
): { model: Model; spec: Ia3Spec } {
  const targets = opts.targets ?? IA3_DEFAULT_TARGETS;
  const ffSpec = opts.feedforward ?? IA3_DEFAULT_FEEDFORWARD;
  const sites = selectSites(model, targets);
  const g = cloneGraph(model.graph);
  const b = new GraphBuilder(g);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params)
    params.set(k, p.trainable && !/^classifier\.|^score\./.test(k) ? { ...p, trainable: false } : p);
  const out: Ia3Site[] = [];
  for (const s of sites) {
    const node = g.nodes.find((n) => n.name === s.node);
    if (!node) throw new GraphError(`IA3 site '${s.module}': node '${s.node}' vanished`, { node: s.node });
    const feedforward = targetMatches(ffSpec, s.module);
    const width = feedforward ? s.inFeatures : s.outFeatures;
    const name = ia3Name(s.module);
    const v = values?.get(s.module) ?? new Float32Array(width).fill(1);
    if (v.length !== width)
      throw new ConfigError(`IA3 vector for '${s.module}' has ${v.length} values; the module needs ${width}`, {
        field: s.module,
      });
    b.initializer(name, 'float32', v, [width]);
    params.set(name, {
      path: name,
      initializer: name,
      dtype: 'float32',
      shape: [width],
      trainable: true,
      role: 'weight',
      layout: 'same',
    });
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
      const add = biasInit
        ? g.nodes.find((n) => n.opType === 'Add' && n.inputs.includes(node.outputs[0]) && n.inputs.includes(biasInit))
        : undefined;
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
      g.initializers.set(
        bp.initializer,
        tensorFromArray(
          bp.initializer,
          'float32',
          Float32Array.from(bv, (v, o) => v * l[o]),
          [O],
        ),
      );
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

/** PEFT's IA3Config as JSON (the fields PEFT writes). */
export interface PeftIa3Config {
  peft_type: 'IA3';
  task_type: string | null;
  base_model_name_or_path: string | null;
  target_modules: string[] | string;
  feedforward_modules: string[] | string;
  modules_to_save: string[] | null;
  fan_in_fan_out: boolean;
  init_ia3_weights: boolean;
  inference_mode: boolean;
  revision: string | null;
  [key: string]: unknown;
}

/** An IA3 adapter: vectors by module (with which side they scale), the head, the lineage. */
export interface Ia3Adapter {
  config: PeftIa3Config;
  vectors: Map<string, { feedforward: boolean; data: Float32Array }>;
  head?: AdapterHead;
  lineage?: Lineage;
}

/** The adapter of an IA3-injected model in PEFT's form. */
export function ia3Adapter(
  model: Model,
  spec: Ia3Spec,
  extra: { head?: AdapterHead; lineage?: Lineage; taskType?: string; base?: string | null } = {},
): Ia3Adapter {
  const mods = spec.sites.map((s) => s.module);
  const ff = spec.sites.filter((s) => s.feedforward).map((s) => s.module);
  return {
    config: {
      peft_type: 'IA3',
      task_type: extra.taskType ?? 'SEQ_CLS',
      base_model_name_or_path: extra.base ?? null,
      target_modules: peftTargetModules(model, mods),
      feedforward_modules: ff.length ? peftTargetModules(model, ff) : [],
      modules_to_save: extra.head ? ['classifier'] : null,
      fan_in_fan_out: false,
      init_ia3_weights: true,
      inference_mode: true,
      revision: null,
    },
    vectors: new Map(
      spec.sites.map((s) => [
        s.module,
        { feedforward: s.feedforward, data: paramValues(model, ia3Name(s.module)) as Float32Array },
      ]),
    ),
    ...(extra.head ? { head: extra.head } : {}),
    ...(extra.lineage ? { lineage: extra.lineage } : {}),
  };
}

/** [rows, cols] row-major -> [cols, rows]. */

const PREFIX = 'base_model.model.';

/**
 * PEFT tensor names and shapes: `base_model.model.<module>.ia3_l`, [out, 1] for output-scaled modules and [1, in]
 * for feed-forward ones (PEFT's IA3 Linear layer), and the head via modules_to_save as for LoRA.
 */
export function ia3AdapterTensors(adapter: Ia3Adapter): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [m, v] of adapter.vectors)
    out.set(`${PREFIX}${m}.ia3_l`, { shape: v.feedforward ? [1, v.data.length] : [v.data.length, 1], data: v.data });
  if (adapter.head) addHeadTensors(out, adapter.head);
  return out;
}

/** Writes adapter_config.json (peft_type IA3) + adapter_model.safetensors (+ tailor.json), each file atomically. */
export async function saveIa3Adapter(dir: string, adapter: Ia3Adapter): Promise<void> {
  await writeAdapterFolder(dir, ia3AdapterTensors(adapter), adapter.config, 'ia3-adapter', adapter.lineage);
}

/** Reads an IA3 adapter folder (ours or PEFT's). The [1, in] / [out, 1] shape says which side a vector scales. */
export async function loadIa3Adapter(dir: string): Promise<Ia3Adapter> {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const config = JSON.parse(
    await fsp.readFile(cfgFile, 'utf8').catch((e: Error) => {
      throw new ModelFileError(`cannot read ${cfgFile}: ${e.message}`, { file: cfgFile }, { cause: e });
    }),
  ) as PeftIa3Config;
  if (config.peft_type !== 'IA3')
    throw new ModelFileError(`${cfgFile}: peft_type ${JSON.stringify(config.peft_type)} is not "IA3"`, {
      file: cfgFile,
      field: 'peft_type',
    });
  if (config.fan_in_fan_out)
    throw new ModelFileError(`${cfgFile}: fan_in_fan_out adapters are not supported`, {
      file: cfgFile,
      field: 'fan_in_fan_out',
    });
  const wFile = path.join(dir, ADAPTER_WEIGHTS);
  const st = parseSafetensors(
    await fsp.readFile(wFile).catch((e: Error) => {
      throw new ModelFileError(`cannot read ${wFile}: ${e.message}`, { file: wFile }, { cause: e });
    }),
    wFile,
  );
  const vectors = new Map<string, { feedforward: boolean; data: Float32Array }>();
  let headW: { shape: number[]; data: Float32Array } | undefined;
  let headB: Float32Array | undefined;
  for (const [name, t] of st.tensors) {
    if (t.dtype !== 'float32')
      throw new ModelFileError(`${wFile}: tensor '${name}' is ${t.dtype}; only float32 adapters are supported`, {
        file: wFile,
        field: name,
      });
    const data = Float32Array.from(tensorToArray(t) as Float32Array);
    const m = /^base_model\.model\.(.+)\.ia3_l(?:\.[^.]+)?$/.exec(name);
    if (m) {
      const [a, b] = t.dims;
      if (t.dims.length !== 2 || (a !== 1 && b !== 1))
        throw new ModelFileError(`${wFile}: '${name}' is [${t.dims.join(', ')}]; IA3 vectors are [out, 1] or [1, in]`, {
          file: wFile,
          field: name,
        });
      vectors.set(m[1], {
        feedforward:
          a === 1 && b !== 1
            ? true
            : a === 1 && b === 1
              ? targetMatches(config.feedforward_modules as string[], m[1])
              : false,
        data,
      });
    } else if (name === `${PREFIX}classifier.weight`) headW = { shape: [...t.dims], data };
    else if (name === `${PREFIX}classifier.bias`) headB = data;
    else
      throw new ModelFileError(
        `${wFile}: tensor '${name}' is neither an IA3 vector (base_model.model.<module>.ia3_l) nor a saved classifier`,
        { file: wFile, field: name },
      );
  }
  if (vectors.size === 0) throw new ModelFileError(`${wFile}: no IA3 vectors found`, { file: wFile });
  const tFile = path.join(dir, TAILOR_JSON);
  const lineage = fs.existsSync(tFile)
    ? (JSON.parse(fs.readFileSync(tFile, 'utf8')) as { lineage?: Lineage }).lineage
    : undefined;
  let head: AdapterHead | undefined;
  if (headW) {
    const [C, D] = headW.shape;
    if (!headB || headB.length !== C)
      throw new ModelFileError(
        `${wFile}: the saved classifier has a [${headW.shape.join(', ')}] weight but no matching bias`,
        { file: wFile, field: 'classifier.bias' },
      );
    head = {
      weight: transpose2d(headW.data, C, D),
      bias: headB,
      features: D,
      labels: lineage?.labels?.length === C ? lineage.labels : Array.from({ length: C }, (_, i) => `LABEL_${i}`),
    };
  }
  return { config, vectors, ...(head ? { head } : {}), ...(lineage ? { lineage } : {}) };
}
