/**
 * IA3 (Liu et al., 2022; PEFT's `IA3`): learned per-feature scaling vectors, initialised to ones, on chosen linear
 * modules. Like PEFT's IA3 Linear layer:
 *   - an ordinary target (key, value) scales its *output*, bias included: y = (x·W + b) ⊙ l, l of width `out`;
 *   - a feed-forward target (the FFN's `output.dense`) scales its *input*, the FFN intermediate activations:
 *     y = (x ⊙ l)·W + b, l of width `in`.
 * The base weights are frozen; only the vectors (and the head) train. Merging folds the vectors into the weights
 * (W[i, o]·l[o] and b[o]·l[o], or W[i, o]·l[i]) and removes the Mul nodes.
 */
import * as path from 'node:path';
import { ConfigError, GraphError, ModelFileError } from '../errors.ts';
import { paramValues, type Model, type Parameter } from '../models/model.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { topoSort } from '../onnx/graph.ts';
import { cloneGraph } from '../onnx/ir.ts';
import { tensorFromArray } from '../onnx/tensor.ts';
import { attachHead, featureValue, featureWidth } from '../models/head.ts';
import { baseHash, type Lineage } from './lineage.ts';
import {
  ADAPTER_CONFIG,
  HeadReader,
  adapterFloat32,
  addHeadTensors,
  adapterHeadSpec,
  checkAdapterBase,
  readAdapterWeights,
  readJson,
  readLineage,
  upcastNotes,
  writeAdapterFolder,
  type AdapterHead,
} from './peft.ts';
import { HEAD_MODULE, linearSites, peftModuleNames, selectSites, targetMatches, type TargetSpec } from './sites.ts';

/**
 * Tailor's IA3 defaults for BERT, the paper's choice: key, value and the FFN output projection (feed-forward: scaled
 * on its input). PEFT's default list for BERT (utils/constants.py: ["key", "value", "output.dense"], feed-forward
 * ["output.dense"]) also reaches attention.output.dense, on its input side; adapters made so load and run as PEFT's.
 */
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
  /** What loading changed or assumed (e.g. float16 tensors upcast to float32); absent when nothing. */
  notes?: string[];
}

/** The adapter of an IA3-injected model in PEFT's form. */
export function ia3Adapter(
  model: Model,
  spec: Ia3Spec,
  extra: { head?: AdapterHead; lineage?: Lineage; taskType?: string; base?: string | null } = {},
): Ia3Adapter {
  const mods = spec.sites.map((s) => s.module);
  const ff = spec.sites.filter((s) => s.feedforward).map((s) => s.module);
  // One computation for both lists, so feedforward_modules is a string subset of target_modules (IA3Config's rule).
  const names = peftModuleNames(model, mods, ff);
  const problem = ia3SubsetProblem(names.target_modules, names.feedforward_modules);
  // peftModuleNames builds the feed-forward names from the target names; this guards that promise before writing.
  if (problem) throw new ConfigError(`IA3 adapter config: ${problem}`, { field: 'feedforward_modules' });
  return {
    config: {
      peft_type: 'IA3',
      task_type: extra.taskType ?? 'SEQ_CLS',
      base_model_name_or_path: extra.base ?? null,
      target_modules: names.target_modules,
      feedforward_modules: names.feedforward_modules,
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

/**
 * IA3Config's check (PEFT 0.20, tuners/ia3/config.py __post_init__): with both as lists, every feedforward_modules
 * entry must be a target_modules entry, as a string; PEFT refuses the config otherwise. Returns the message, or
 * undefined when the rule holds.
 */
function ia3SubsetProblem(targets: unknown, feedforward: unknown): string | undefined {
  if (!Array.isArray(targets) || !Array.isArray(feedforward)) return undefined;
  const missing = feedforward.filter((f) => !targets.includes(f));
  return missing.length
    ? `feedforward_modules should be a subset of target_modules (PEFT refuses the config otherwise): [${missing.join(', ')}] not in [${targets.join(', ')}]`
    : undefined;
}

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

function parseIa3Config(raw: unknown, file: string): PeftIa3Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ModelFileError(`${file}: expected a JSON object`, { file });
  const o = raw as Record<string, unknown>;
  if (o.peft_type !== 'IA3')
    throw new ModelFileError(`${file}: peft_type ${JSON.stringify(o.peft_type)} is not "IA3"`, {
      file,
      field: 'peft_type',
    });
  if (o.fan_in_fan_out === true)
    throw new ModelFileError(`${file}: fan_in_fan_out adapters are not supported`, { file, field: 'fan_in_fan_out' });
  for (const k of ['target_modules', 'feedforward_modules']) {
    const v = o[k];
    if (!(v == null || typeof v === 'string' || (Array.isArray(v) && v.every((t) => typeof t === 'string'))))
      throw new ModelFileError(`${file}: ${k} must be a string or a list of strings, found ${JSON.stringify(v)}`, {
        file,
        field: k,
      });
  }
  const problem = ia3SubsetProblem(o.target_modules, o.feedforward_modules);
  if (problem) throw new ModelFileError(`${file}: ${problem}`, { file, field: 'feedforward_modules' });
  return o as PeftIa3Config;
}

/**
 * PEFT's feed-forward rule (tuners/ia3/model.py _check_target_module_feedforward): a string is matched with
 * `re.fullmatch`, a list entry with a plain `key.endswith(entry)`.
 */
function isFeedforward(ff: string[] | string | null | undefined, module: string): boolean {
  if (ff == null) return false;
  if (typeof ff === 'string') return new RegExp(`^(?:${ff})$`).test(module);
  return ff.some((t) => module.endsWith(t));
}

/**
 * Reads an IA3 adapter folder (ours or PEFT's). The [1, in] / [out, 1] shape says which side a vector scales; a
 * [1, 1] vector is placed by feedforward_modules as PEFT places it.
 */
export async function loadIa3Adapter(dir: string): Promise<Ia3Adapter> {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const config = parseIa3Config(readJson(cfgFile), cfgFile);
  const { file: wFile, st } = await readAdapterWeights(dir);
  const vectors = new Map<string, { feedforward: boolean; data: Float32Array }>();
  const upcast = new Map<string, string[]>();
  const heads = new HeadReader(wFile);
  for (const [name, t] of st.tensors) {
    const data = adapterFloat32(t, wFile, upcast);
    // `.ia3_l.default` in files that kept the adapter name.
    const m = /^base_model\.model\.(.+)\.ia3_l(?:\.[^.]+)?$/.exec(name);
    if (m) {
      if (HEAD_MODULE.test(m[1]))
        throw new ModelFileError(
          `${wFile}: tensor '${name}' adapts the classification head '${m[1]}', which PEFT keeps whole in modules_to_save and never adapts (PEFT would ignore this tensor)`,
          { file: wFile, field: name },
        );
      const [a, b] = t.dims;
      if (t.dims.length !== 2 || (a !== 1 && b !== 1))
        throw new ModelFileError(`${wFile}: '${name}' is [${t.dims.join(', ')}]; IA3 vectors are [out, 1] or [1, in]`, {
          file: wFile,
          field: name,
        });
      if (vectors.has(m[1]))
        throw new ModelFileError(`${wFile}: module '${m[1]}' has two IA3 vectors (under two adapter names?)`, {
          file: wFile,
          field: name,
        });
      const feedforward = a === 1 && b === 1 ? isFeedforward(config.feedforward_modules, m[1]) : a === 1;
      vectors.set(m[1], { feedforward, data });
    } else if (!heads.take(name, t.dims, data))
      throw new ModelFileError(
        `${wFile}: tensor '${name}' is neither an IA3 vector (base_model.model.<module>.ia3_l) nor a saved classifier`,
        { file: wFile, field: name },
      );
  }
  if (vectors.size === 0) throw new ModelFileError(`${wFile}: no IA3 vectors found`, { file: wFile });
  const lineage = readLineage(dir);
  const notes = upcastNotes(upcast);
  const head = heads.head(lineage?.labels, notes);
  return {
    config,
    vectors,
    ...(head ? { head } : {}),
    ...(lineage ? { lineage } : {}),
    ...(notes.length ? { notes } : {}),
  };
}

/** A regular expression that selects exactly these module paths. */
function exactly(modules: Iterable<string>): RegExp {
  return new RegExp(`^(?:${[...modules].map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
}

/**
 * The base with the adapter's head and IA3 vectors (as initializers), as PEFT runs it. Checks the lineage hash (when
 * the adapter has one), that every module exists with the vector's width, and the head's feature width.
 * `mergeIa3(model, spec)` folds the vectors into the weights.
 */
export function applyIa3Adapter(base: Model, adapter: Ia3Adapter): { model: Model; spec: Ia3Spec } {
  checkAdapterBase(adapter, baseHash(base));
  const sites = new Map(linearSites(base).map((s) => [s.module, s]));
  for (const [m, v] of adapter.vectors) {
    const s = sites.get(m);
    if (!s) {
      // The commonest cause: a task model's prefix (BertForSequenceClassification's `bert.`) on one side only.
      const near = [...sites.keys()].find((x) => m.endsWith(`.${x}`) || x.endsWith(`.${m}`));
      throw new ConfigError(
        `IA3 adapter scales module '${m}', which the base lacks${near ? ` (it has '${near}': the adapter was made on a model with other module prefixes)` : ''}; the base's linear modules are: ${[...sites.keys()].join(', ')}`,
        { field: m },
      );
    }
    const width = v.feedforward ? s.inFeatures : s.outFeatures;
    if (v.data.length !== width)
      throw new ConfigError(
        `IA3 vector for '${m}' has ${v.data.length} values; the module's ${v.feedforward ? 'input' : 'output'} has ${width}`,
        { field: m },
      );
  }
  let headed = base;
  if (adapter.head) {
    const D = featureWidth(base, featureValue(base));
    if (D !== adapter.head.features)
      throw new ConfigError(`adapter's classifier reads ${adapter.head.features} features but the base yields ${D}`, {
        field: 'classifier.weight',
      });
    headed = attachHead(base, adapterHeadSpec(adapter.head));
  }
  const ff = [...adapter.vectors].filter(([, v]) => v.feedforward).map(([m]) => m);
  return injectIa3(
    headed,
    { targets: exactly(adapter.vectors.keys()), feedforward: ff.length ? exactly(ff) : [] },
    new Map([...adapter.vectors].map(([m, v]) => [m, v.data])),
  );
}
