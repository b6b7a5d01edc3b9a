/**
 * Mixed-adapter graphs: one ORT run serves a batch whose rows use *different* LoRA adapters (and different
 * classification heads) over one shared base — the CPU analogue of Punica/S-LoRA's batched LoRA kernels.
 *
 * Every adapter lives in a *slot* of stacked graph inputs:
 *   `<module>.lora_A.stack`       [slots, in, R]     (R = maxRank; a smaller rank is zero-padded, exactly equivalent)
 *   `<module>.lora_B.stack`       [slots, R, out]
 *   `<module>.lora_scaling.stack` [slots]
 *   `classifier.weight.stack`     [slots, D, C]      (C = maxLabels; columns past an adapter's labels are zero)
 *   `classifier.bias.stack`       [slots, C]         (past an adapter's labels: MASKED_LOGIT, so softmax ignores them)
 *   `adapter_index`               [batch] int64      (the slot of each row)
 * and at each adapted linear site `y = x·W` the graph adds, per row b,
 *   ((x[b] · A[idx[b]]) · s[idx[b]]) · B[idx[b]]
 * with Gather on the slot axis and a batched MatMul, i.e. exactly what `applyAdapter` computes for that row's
 * adapter. A module an adapter does not adapt has zero A, B and scaling in its slot. The output `logits` is
 * [batch, C]; row b's first `labels(idx[b])` columns are its adapter's logits. Heads are linear: an adapter with an
 * MLP head (models/head.ts kind `mlp`) is refused by `checkAdapterFits` and is served as its merged model.
 */
import { ConfigError, GraphError } from '../errors.ts';
import type { Model, Parameter } from '../models/model.ts';
import { feedInputs } from '../models/model.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { extractSubgraph, topoSort } from '../onnx/graph.ts';
import type { Graph } from '../onnx/ir.ts';
import { inferShapes, valueType } from '../onnx/shapes/index.ts';
import { featureValue, featureWidth, LOGITS } from '../models/head.ts';
import { baseHash } from './lineage.ts';
import { adapterScaling, checkAdapterBase, type LoraAdapter } from './peft.ts';
import { HEAD_MODULE, linearSites, selectSites, type TargetSpec } from './sites.ts';

export const ADAPTER_INDEX = 'adapter_index';
export const HEAD_WEIGHT_STACK = 'classifier.weight.stack';
export const HEAD_BIAS_STACK = 'classifier.bias.stack';
/** Bias of a class an adapter lacks: its logit is so low that its probability is exactly 0 in float32. */
export const MASKED_LOGIT = -1e9;

export const stackAName = (module: string): string => `${module}.lora_A.stack`;
export const stackBName = (module: string): string => `${module}.lora_B.stack`;
export const stackScalingName = (module: string): string => `${module}.lora_scaling.stack`;

export interface MultiLoraOptions {
  /** Modules that get a LoRA branch (default: every linear module of the body). An adapter may adapt any subset. */
  modules?: TargetSpec;
  /** Largest adapter rank the graph accepts (R); smaller ranks are zero-padded. */
  maxRank: number;
  /** Most labels an adapter's head may have (C). */
  maxLabels: number;
}

export interface MultiLoraSite {
  module: string;
  inFeatures: number;
  outFeatures: number;
}

/** A mixed-adapter model and the layout of its stacked inputs. */
export interface MultiLoraModel {
  /** The base body with LoRA branches and the stacked head; base weights are initializers, adapters are inputs. */
  model: Model;
  sites: MultiLoraSite[];
  /** Width of the feature the heads read (D). */
  features: number;
  maxRank: number;
  maxLabels: number;
  /** The base's hash (adapters trained on another base are refused). */
  baseHash: string;
}

function positiveInt(v: number, field: string): void {
  if (!Number.isInteger(v) || v < 1)
    throw new ConfigError(`${field} must be a positive integer, got ${v}`, { field, value: String(v) });
}

/** The symbolic batch dimension of the model's text inputs (the dim every per-row value must start with). */
function batchDim(model: Model): string | number {
  const ins = feedInputs(model);
  const d = ins[0]?.shape?.[0];
  if (d === undefined)
    throw new GraphError(`the model's first input has no batch dimension`, { value: ins[0]?.name ?? '(none)' });
  return d;
}

/**
 * Builds the mixed-adapter model of `base` (pure). The base's own head, if any, is dropped: heads come from the
 * adapters, stacked. Every LoRA site's input must be [batch, seq, in] or [batch, in] with the inputs' batch
 * dimension first, so that a row of the batch is a row of every site (a GraphError names the site otherwise).
 */
export function multiLoraModel(base: Model, opts: MultiLoraOptions): MultiLoraModel {
  positiveInt(opts.maxRank, 'maxRank');
  if (!Number.isInteger(opts.maxLabels) || opts.maxLabels < 2)
    throw new ConfigError(`maxLabels must be an integer of at least 2, got ${opts.maxLabels}`, {
      field: 'maxLabels',
      value: String(opts.maxLabels),
    });
  const feature = featureValue(base);
  const D = featureWidth(base, feature);
  const typed = inferShapes(base.graph, { allowUnknown: true });
  const body: Graph = {
    ...extractSubgraph(typed, [feature]),
    name: base.graph.name,
    outputs: [],
    valueInfo: new Map(),
  };
  const params = new Map<string, Parameter>();
  for (const [k, p] of base.params)
    if (body.initializers.has(p.initializer) && !HEAD_MODULE.test(k.replace(/\.(weight|bias)$/, '')))
      params.set(k, { ...p, trainable: false });
  const bodyModel: Model = { ...base, graph: body, params };
  const all = linearSites(bodyModel).filter((s) => !HEAD_MODULE.test(s.module));
  const chosen = opts.modules === undefined ? all : selectSites(bodyModel, opts.modules);
  const B = batchDim(base);
  const R = opts.maxRank;
  const C = opts.maxLabels;
  const g = body;
  const b = new GraphBuilder(g);
  const idx = b.input(ADAPTER_INDEX, 'int64', [B]);
  const sites: MultiLoraSite[] = [];
  const rowScale = b.ints([-1, 1, 1]);
  for (const s of chosen) {
    if (R > Math.min(s.inFeatures, s.outFeatures))
      throw new ConfigError(
        `maxRank ${R} is larger than module '${s.module}' allows: its weight is [${s.inFeatures}, ${s.outFeatures}]`,
        { field: 'maxRank', value: String(R) },
      );
    const node = g.nodes.find((n) => n.name === s.node);
    if (!node) throw new GraphError(`linear site '${s.module}': node '${s.node}' vanished`, { node: s.node });
    const x = node.inputs[0];
    const shape = valueType(typed, x)?.shape;
    if (!shape || (shape.length !== 2 && shape.length !== 3) || shape[0] !== B)
      throw new GraphError(
        `linear site '${s.module}' reads '${x}' of shape [${shape?.join(', ') ?? '?'}]; a mixed-adapter graph needs [${B}, seq, ${s.inFeatures}] or [${B}, ${s.inFeatures}] (rows of the batch first)`,
        { node: s.node, value: x },
      );
    const a = b.input(stackAName(s.module), 'float32', ['slots', s.inFeatures, R]);
    const bb = b.input(stackBName(s.module), 'float32', ['slots', R, s.outFeatures]);
    const sc = b.input(stackScalingName(s.module), 'float32', ['slots']);
    const y = node.outputs[0];
    const baseOut = b.uniqueName(`${y}/base`);
    node.outputs = [baseOut];
    b.scope(`${s.module}.multi_lora`, () => {
      const x3 = shape.length === 2 ? b.unsqueeze(x, [1]) : x;
      // Scale the [batch, seq, R] intermediate, not the [batch, seq, out] product (R ≪ out), as injectLora does.
      const h = b.mul(b.matmul(x3, b.gather(a, idx)), b.reshape(b.gather(sc, idx), rowScale));
      const d3 = b.matmul(h, b.gather(bb, idx));
      const delta = shape.length === 2 ? b.squeeze(d3, [1]) : d3;
      // `y` keeps its name (its consumers read it); the builder already counts it as used, so add the node directly.
      g.nodes.push({
        name: b.uniqueName(`/${s.module.replace(/\./g, '/')}/multi_lora/Add`),
        opType: 'Add',
        domain: '',
        inputs: [baseOut, delta],
        outputs: [y],
        attrs: {},
      });
    });
    sites.push({ module: s.module, inFeatures: s.inFeatures, outFeatures: s.outFeatures });
  }
  const fShape = valueType(typed, feature)?.shape;
  if (!fShape || fShape.length !== 2 || fShape[0] !== B)
    throw new GraphError(
      `the feature value '${feature}' has shape [${fShape?.join(', ') ?? '?'}]; stacked heads need [${B}, ${D}]`,
      { value: feature },
    );
  const w = b.input(HEAD_WEIGHT_STACK, 'float32', ['slots', D, C]);
  const bias = b.input(HEAD_BIAS_STACK, 'float32', ['slots', C]);
  b.scope('classifier.multi', () => {
    const l = b.squeeze(b.matmul(b.unsqueeze(feature, [1]), b.gather(w, idx)), [1]);
    b.node('Add', [l, b.gather(bias, idx)], {}, { outputs: [LOGITS] });
  });
  b.output(LOGITS, 'float32', [B, C]);
  return {
    model: {
      ...bodyModel,
      graph: topoSort(g),
      task: 'sequence-classification',
      labels: undefined,
      newlyInitialized: [],
    },
    sites,
    features: D,
    maxRank: R,
    maxLabels: C,
    baseHash: baseHash(base),
  };
}

/** Stacked adapter tensors for `slots` adapters, laid out as `multiLoraModel`'s inputs expect. */
export interface AdapterStacks {
  slots: number;
  A: Map<string, Float32Array>;
  B: Map<string, Float32Array>;
  scaling: Map<string, Float32Array>;
  headWeight: Float32Array;
  headBias: Float32Array;
}

/** Bytes one slot occupies across every stacked tensor. */
export function slotBytes(m: MultiLoraModel): number {
  let n = m.features * m.maxLabels + m.maxLabels;
  for (const s of m.sites) n += s.inFeatures * m.maxRank + m.maxRank * s.outFeatures + 1;
  return 4 * n;
}

/** Zeroed stacks with `slots` slots (every slot an identity adapter with a fully masked head). */
export function allocStacks(m: MultiLoraModel, slots: number): AdapterStacks {
  positiveInt(slots, 'slots');
  const st: AdapterStacks = {
    slots,
    A: new Map(),
    B: new Map(),
    scaling: new Map(),
    headWeight: new Float32Array(slots * m.features * m.maxLabels),
    headBias: new Float32Array(slots * m.maxLabels).fill(MASKED_LOGIT),
  };
  for (const s of m.sites) {
    st.A.set(s.module, new Float32Array(slots * s.inFeatures * m.maxRank));
    st.B.set(s.module, new Float32Array(slots * m.maxRank * s.outFeatures));
    st.scaling.set(s.module, new Float32Array(slots));
  }
  return st;
}

/**
 * Checks that `adapter` fits the mixed-adapter model: same base (lineage hash, when it has one), modules among the
 * graph's, rank at most maxRank, a linear head (not an MLP one) over the right features with at most maxLabels labels.
 */
export function checkAdapterFits(m: MultiLoraModel, adapter: LoraAdapter, name: string): void {
  checkAdapterBase(adapter, m.baseHash, `adapter '${name}'`);
  const sites = new Map(m.sites.map((s) => [s.module, s]));
  for (const [mod, w] of adapter.weights) {
    const s = sites.get(mod);
    if (!s)
      throw new ConfigError(
        `adapter '${name}' adapts module '${mod}', which this mixed-adapter graph has no LoRA branch for (it has: ${[...sites.keys()].join(', ')})`,
        { field: mod, value: name },
      );
    if (s.inFeatures !== w.inFeatures || s.outFeatures !== w.outFeatures)
      throw new ConfigError(
        `adapter '${name}': tensors for '${mod}' fit a [${w.inFeatures}, ${w.outFeatures}] weight but the base's is [${s.inFeatures}, ${s.outFeatures}]`,
        { field: mod, value: name },
      );
    if (w.r > m.maxRank)
      throw new ConfigError(
        `adapter '${name}': module '${mod}' has rank ${w.r}, above the graph's maxRank ${m.maxRank}`,
        {
          field: 'maxRank',
          value: String(w.r),
        },
      );
  }
  const h = adapter.head;
  if (!h) throw new ConfigError(`adapter '${name}' has no classifier head; served adapters need one`, { field: name });
  // Stacking an MLP head would add a [slots, D, D] hidden layer per slot (D² floats an adapter, more than its LoRA
  // tensors at typical ranks) and a second batched MatMul; its merged model serves it exactly instead.
  if (h.dense)
    throw new ConfigError(
      `adapter '${name}' has an MLP head (classifier.dense + classifier.out_proj), and the mixed-adapter graph stacks linear heads only; serve its merged model instead (the model/ folder of its saved customization, or mergeAdapter)`,
      { field: 'classifier.dense', value: name },
    );
  if (h.features !== m.features)
    throw new ConfigError(
      `adapter '${name}': its classifier reads ${h.features} features, the base yields ${m.features}`,
      {
        field: 'classifier.weight',
        value: name,
      },
    );
  if (h.labels.length > m.maxLabels)
    throw new ConfigError(
      `adapter '${name}' has ${h.labels.length} labels, above the graph's maxLabels ${m.maxLabels}`,
      { field: 'maxLabels', value: String(h.labels.length) },
    );
}

/**
 * Writes `adapter` into slot `slot` of `stacks`, in place, zero-padding its rank to R and its head to C labels (the
 * missing labels' bias is MASKED_LOGIT). Every byte of the slot is written, so whatever was there before is gone.
 * Call `checkAdapterFits` first.
 */
export function writeSlot(m: MultiLoraModel, stacks: AdapterStacks, slot: number, adapter: LoraAdapter): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= stacks.slots)
    throw new ConfigError(`slot ${slot} is outside 0..${stacks.slots - 1}`, { field: 'slot', value: String(slot) });
  const R = m.maxRank;
  for (const s of m.sites) {
    const w = adapter.weights.get(s.module);
    const A = stacks.A.get(s.module)!.subarray(slot * s.inFeatures * R, (slot + 1) * s.inFeatures * R);
    const Bs = stacks.B.get(s.module)!.subarray(slot * R * s.outFeatures, (slot + 1) * R * s.outFeatures);
    A.fill(0);
    Bs.fill(0);
    stacks.scaling.get(s.module)![slot] = w ? adapterScaling(adapter, s.module) : 0;
    if (!w) continue;
    for (let i = 0; i < s.inFeatures; i++) A.set(w.A.subarray(i * w.r, (i + 1) * w.r), i * R);
    // B's rows [r, out] are contiguous, and the padded rows r..R stay zero.
    Bs.set(w.B.subarray(0, w.r * s.outFeatures), 0);
  }
  const h = adapter.head!;
  const C = m.maxLabels;
  const k = h.labels.length;
  const W = stacks.headWeight.subarray(slot * m.features * C, (slot + 1) * m.features * C);
  W.fill(0);
  for (let d = 0; d < m.features; d++) W.set(h.weight.subarray(d * k, (d + 1) * k), d * C);
  const bias = stacks.headBias.subarray(slot * C, (slot + 1) * C);
  bias.fill(MASKED_LOGIT);
  bias.set(h.bias.subarray(0, k), 0);
}

/** Empties slot `slot` (zero adapter, fully masked head), e.g. after eviction, so stale weights never serve. */
export function clearSlot(m: MultiLoraModel, stacks: AdapterStacks, slot: number): void {
  const R = m.maxRank;
  for (const s of m.sites) {
    stacks.A.get(s.module)!.fill(0, slot * s.inFeatures * R, (slot + 1) * s.inFeatures * R);
    stacks.B.get(s.module)!.fill(0, slot * R * s.outFeatures, (slot + 1) * R * s.outFeatures);
    stacks.scaling.get(s.module)![slot] = 0;
  }
  stacks.headWeight.fill(0, slot * m.features * m.maxLabels, (slot + 1) * m.features * m.maxLabels);
  stacks.headBias.fill(MASKED_LOGIT, slot * m.maxLabels, (slot + 1) * m.maxLabels);
}

/** The stacked inputs' names and shapes (for building ORT tensors over `stacks`' arrays without copying). */
export function stackShapes(m: MultiLoraModel, slots: number): { name: string; dims: number[] }[] {
  const out: { name: string; dims: number[] }[] = [];
  for (const s of m.sites) {
    out.push({ name: stackAName(s.module), dims: [slots, s.inFeatures, m.maxRank] });
    out.push({ name: stackBName(s.module), dims: [slots, m.maxRank, s.outFeatures] });
    out.push({ name: stackScalingName(s.module), dims: [slots] });
  }
  out.push({ name: HEAD_WEIGHT_STACK, dims: [slots, m.features, m.maxLabels] });
  out.push({ name: HEAD_BIAS_STACK, dims: [slots, m.maxLabels] });
  return out;
}

/** The array of `stacks` behind stacked input `name`. */
export function stackArray(stacks: AdapterStacks, name: string): Float32Array {
  if (name === HEAD_WEIGHT_STACK) return stacks.headWeight;
  if (name === HEAD_BIAS_STACK) return stacks.headBias;
  const m = /^(.*)\.(lora_A|lora_B|lora_scaling)\.stack$/.exec(name);
  const arr = m && (m[2] === 'lora_A' ? stacks.A : m[2] === 'lora_B' ? stacks.B : stacks.scaling).get(m[1]);
  if (!arr) throw new ConfigError(`no stacked adapter input named '${name}'`, { field: name });
  return arr;
}
