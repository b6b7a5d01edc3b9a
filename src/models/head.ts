/**
 * Classification heads as graph transforms. Every strategy trains a model whose head is the module `classifier`
 * (HF's name, so PEFT's `modules_to_save: ["classifier"]` maps onto it) producing `logits` [batch, labels], of one
 * of the kinds in `HEAD_KINDS`: a linear layer (`classifier.weight|bias`), or RoBERTa's classification head, a
 * small MLP (`classifier.dense` D -> D, tanh, `classifier.out_proj` D -> labels). The head's input, the *feature*
 * value, is what the head strategy caches.
 */
import { ConfigError, GraphError } from '../errors.ts';
import { paramValues, withParamValues, type Model, type Parameter } from './model.ts';
import { initValues } from './zoo/params.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { extractSubgraph } from '../onnx/graph.ts';
import type { Graph } from '../onnx/ir.ts';
import { inferShapes, valueType } from '../onnx/shapes/index.ts';

export const LOGITS = 'logits';
export const HEAD_WEIGHT = 'classifier.weight';
export const HEAD_BIAS = 'classifier.bias';
export const MLP_DENSE_WEIGHT = 'classifier.dense.weight';
export const MLP_DENSE_BIAS = 'classifier.dense.bias';
export const MLP_OUT_WEIGHT = 'classifier.out_proj.weight';
export const MLP_OUT_BIAS = 'classifier.out_proj.bias';

/** A head's parameters: the layer that reads the features, the layer that writes the logits, and all of them. */
export interface HeadLayout {
  /** The weight whose MatMul reads the feature value. */
  input: string;
  /** The output layer (its values are the head's `weight`/`bias` in HeadSpec; temperature folds into them). */
  out: { weight: string; bias: string };
  /** Every parameter of the head, in a fixed order. */
  params: readonly string[];
}

/**
 * The head kinds, a table (add a kind: a row here and its graph in `attachHead`). `mlp` is RoBERTa's
 * `RobertaClassificationHead` without its dropout: a hidden layer can draw class boundaries the linear head cannot
 * (on USE-lite's CLINC150 embeddings it did not need to: level with the linear head, docs/customize.md), and its
 * names are the ones PEFT saves for such a head.
 */
export const HEAD_KINDS = {
  linear: { input: HEAD_WEIGHT, out: { weight: HEAD_WEIGHT, bias: HEAD_BIAS }, params: [HEAD_WEIGHT, HEAD_BIAS] },
  mlp: {
    input: MLP_DENSE_WEIGHT,
    out: { weight: MLP_OUT_WEIGHT, bias: MLP_OUT_BIAS },
    params: [MLP_DENSE_WEIGHT, MLP_DENSE_BIAS, MLP_OUT_WEIGHT, MLP_OUT_BIAS],
  },
} as const satisfies Record<string, HeadLayout>;

/** A head kind's name. */
export type HeadKind = keyof typeof HEAD_KINDS;

/** Every head kind, in table order. */
export const HEAD_KIND_NAMES: readonly HeadKind[] = Object.keys(HEAD_KINDS) as HeadKind[];

/** The kind of `model`'s head, or undefined for a headless model. */
export function headKind(model: Model): HeadKind | undefined {
  return HEAD_KIND_NAMES.find((k) => model.params.has(HEAD_KINDS[k].input));
}

/** The head layout of `model`; a ConfigError when it has no head of a known kind. */
export function headLayout(model: Model): HeadLayout {
  const k = headKind(model);
  if (!k)
    throw new ConfigError(
      `the model has no classification head (none of ${HEAD_KIND_NAMES.map((n) => `'${HEAD_KINDS[n].input}'`).join(', ')})`,
      { field: 'head' },
    );
  return HEAD_KINDS[k];
}

/** The head kind named `name`; a ConfigError listing the kinds when there is none. */
export function headKindOf(name: string): HeadKind {
  if (!Object.hasOwn(HEAD_KINDS, name))
    throw new ConfigError(`unknown head type '${name}' (head types: ${HEAD_KIND_NAMES.join(', ')})`, {
      field: 'headType',
      value: name,
    });
  return name as HeadKind;
}

/** Whether parameter `path` belongs to the classification head (any kind). */
export const isHeadPath = (path: string): boolean => /^classifier\./.test(path);

/** Outputs that hold a pooled sentence representation, by preference. */
const EMBEDDING_OUTPUTS = ['sentence_embedding', 'embeddings', 'pooler_output'];

/** The value the model's head reads: the classifier's input, or a pooled embedding output of a headless model. */
export function featureValue(model: Model): string {
  const kind = headKind(model);
  if (kind) {
    const path = HEAD_KINDS[kind].input;
    const w = model.params.get(path)!;
    const n = model.graph.nodes.find(
      (x) => (x.opType === 'MatMul' || x.opType === 'Gemm') && x.inputs[1] === w.initializer,
    );
    if (!n)
      throw new GraphError(`parameter '${path}' is not the right operand of a MatMul or Gemm`, {
        field: path,
      });
    return n.inputs[0];
  }
  for (const name of EMBEDDING_OUTPUTS) if (model.graph.outputs.some((o) => o.name === name)) return name;
  const rank2 = model.graph.outputs.filter((o) => o.shape?.length === 2 && o.dtype === 'float32');
  if (rank2.length === 1) return rank2[0].name;
  throw new ConfigError(
    `cannot find where to put a classification head: the model has no '${HEAD_WEIGHT}' and none of the outputs [${model.graph.outputs.map((o) => o.name).join(', ')}] is a pooled embedding`,
    { field: 'outputs' },
  );
}

/** Width of the feature value (its last dim, which must be static). */
export function featureWidth(model: Model, feature: string): number {
  const g = inferShapes(model.graph, { allowUnknown: true });
  const t = valueType(g, feature);
  const d = t?.shape?.[t.shape.length - 1];
  if (typeof d !== 'number')
    throw new GraphError(
      `the width of feature value '${feature}' is not known statically (shape [${t?.shape?.join(', ') ?? '?'}])`,
      { value: feature },
    );
  return d;
}

export interface HeadSpec {
  labels: readonly string[];
  /** The head's kind (default `linear`). */
  kind?: HeadKind;
  /** Seed of the head's initialisation (default 0). */
  seed?: number;
  /**
   * Values of the output layer in graph layout (weight [inputs, labels], inputs = features, or the MLP's hidden
   * width); default: normal(0, 0.02), zero bias.
   */
  weight?: Float32Array;
  bias?: Float32Array;
  /** mlp: values of the hidden layer (weight [features, features], bias [features]); default normal(0, 0.02), zero bias. */
  dense?: { weight: Float32Array; bias: Float32Array };
}

function headParam(path: string, shape: number[], role: 'weight' | 'bias'): Parameter {
  return {
    path,
    initializer: path,
    dtype: 'float32',
    shape,
    trainable: true,
    role,
    layout: role === 'weight' ? 'in_out' : 'same',
  };
}

function checkValues(what: string, w: Float32Array, bias: Float32Array, rows: number, cols: number): void {
  if (w.length !== rows * cols || bias.length !== cols)
    throw new ConfigError(
      `${what} values have ${w.length} + ${bias.length} elements; a [${rows}, ${cols}] layer needs ${rows * cols} + ${cols}`,
      { field: 'head' },
    );
}

/**
 * Replaces the model's head (or puts one on a headless encoder) with a `classifier` head of `spec.kind` (default
 * linear) over the feature value. Everything after the feature value is dropped; the body's parameters and their
 * trainable flags are kept. Pure: returns a new Model.
 *
 * @example
 * const m = attachHead(encoder, { labels: ['billing', 'login', 'other'], kind: 'mlp' });
 * headKind(m); // 'mlp': classifier.dense [D, D] + tanh + classifier.out_proj [D, 3]
 */
export function attachHead(model: Model, spec: HeadSpec): Model {
  const C = spec.labels.length;
  const kind = spec.kind ?? 'linear';
  const layout: HeadLayout = HEAD_KINDS[headKindOf(kind)];
  if (C < 2) throw new ConfigError(`a classification head needs at least 2 labels, got ${C}`, { field: 'labels' });
  if (new Set(spec.labels).size !== C) throw new ConfigError('label names must be distinct', { field: 'labels' });
  if (spec.dense && kind !== 'mlp')
    throw new ConfigError(`hidden-layer values were given for a '${kind}' head, which has no hidden layer`, {
      field: 'head.dense',
    });
  const feature = featureValue(model);
  const D = featureWidth(model, feature);
  const typed = inferShapes(model.graph, { allowUnknown: true });
  const body = extractSubgraph(typed, [feature]);
  body.valueInfo = new Map();
  const g: Graph = { ...body, name: model.graph.name, outputs: [] };
  const b = new GraphBuilder(g);
  // The body may already hold old head initializers under these names when they fed nodes kept in the body.
  for (const n of Object.values(HEAD_KINDS).flatMap((k) => k.params))
    if (g.initializers.has(n))
      throw new GraphError(`initializer '${n}' is still used by the model's body`, { field: n });
  const seed = spec.seed ?? 0;
  const normal = (n: number, path: string): Float32Array => initValues({ kind: 'normal', std: 0.02 }, n, seed, path);
  const headParams: Parameter[] = [];
  let x = feature;
  if (kind === 'mlp') {
    const dw = spec.dense?.weight ?? normal(D * D, MLP_DENSE_WEIGHT);
    const db = spec.dense?.bias ?? new Float32Array(D);
    checkValues('hidden-layer', dw, db, D, D);
    b.initializer(MLP_DENSE_WEIGHT, 'float32', dw, [D, D]);
    b.initializer(MLP_DENSE_BIAS, 'float32', db, [D]);
    headParams.push(headParam(MLP_DENSE_WEIGHT, [D, D], 'weight'), headParam(MLP_DENSE_BIAS, [D], 'bias'));
    x = b.scope('classifier.dense', () =>
      b.op('Tanh', [b.op('Add', [b.matmul(feature, MLP_DENSE_WEIGHT), MLP_DENSE_BIAS])]),
    );
  }
  const { weight: W, bias: B } = layout.out;
  const w = spec.weight ?? normal(D * C, W);
  const bias = spec.bias ?? new Float32Array(C);
  checkValues('head', w, bias, D, C);
  b.initializer(W, 'float32', w, [D, C]);
  b.initializer(B, 'float32', bias, [C]);
  headParams.push(headParam(W, [D, C], 'weight'), headParam(B, [C], 'bias'));
  b.scope(kind === 'mlp' ? 'classifier.out_proj' : 'classifier', () => {
    b.node('Add', [b.matmul(x, W), B], {}, { outputs: [LOGITS] });
  });
  b.output(LOGITS, 'float32', ['batch', C]);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) if (g.initializers.has(p.initializer) && !isHeadPath(k)) params.set(k, p);
  for (const p of headParams) params.set(p.path, p);
  const labels = [...spec.labels];
  const given = new Set([...(spec.weight ? [W, B] : []), ...(spec.dense ? [MLP_DENSE_WEIGHT, MLP_DENSE_BIAS] : [])]);
  return {
    ...model,
    task: 'sequence-classification',
    graph: g,
    params,
    labels,
    config: {
      ...model.config,
      num_labels: C,
      id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
      label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
    },
    newlyInitialized: headParams.map((p) => p.path).filter((p) => !given.has(p)),
  };
}

/**
 * Head values that start a head of `kind` as the linear head (`weight` [D, C], `bias` [C]) on `features` (rows of
 * width D): linear: those values; mlp: the hidden layer s·I (s = min(1, 0.05 / rms of the features), which keeps tanh in its
 * linear range, where tanh(s·x)/s ≈ x) and the output layer weight/s, so its logits start within ~1% of the linear
 * head's (exactly for s·x → 0), and training moves on from the warm head instead of a random one. Pure.
 */
export function warmHeadValues(
  kind: HeadKind,
  linear: { weight: Float32Array; bias: Float32Array },
  D: number,
  features: Float32Array,
): Pick<HeadSpec, 'weight' | 'bias' | 'dense'> {
  if (kind === 'linear') return { weight: linear.weight, bias: linear.bias };
  let sq = 0;
  for (const v of features) sq += v * v;
  const rms = features.length ? Math.sqrt(sq / features.length) : 0;
  const s = rms > 0 ? Math.min(1, 0.05 / rms) : 1;
  const dense = new Float32Array(D * D);
  for (let i = 0; i < D; i++) dense[i * D + i] = s;
  return {
    dense: { weight: dense, bias: new Float32Array(D) },
    weight: Float32Array.from(linear.weight, (v) => v / s),
    bias: linear.bias,
  };
}

/** The model with its head's parameters set to `values` (HeadSpec's names: output layer, and the MLP's hidden layer). Pure. */
export function withHeadValues(model: Model, values: Pick<HeadSpec, 'weight' | 'bias' | 'dense'>): Model {
  const layout = headLayout(model);
  let m = model;
  if (values.weight) m = withParamValues(m, layout.out.weight, values.weight);
  if (values.bias) m = withParamValues(m, layout.out.bias, values.bias);
  if (values.dense) {
    if (layout !== HEAD_KINDS.mlp)
      throw new ConfigError(`hidden-layer values were given for a head without a hidden layer`, {
        field: 'head.dense',
      });
    m = withParamValues(withParamValues(m, MLP_DENSE_WEIGHT, values.dense.weight), MLP_DENSE_BIAS, values.dense.bias);
  }
  return m;
}

/** The head alone as a graph: input `features` [batch, D] -> `logits`, with the model's current head values. */
export function headGraph(model: Model): { graph: Graph; feature: string } {
  const feature = featureValue(model);
  const typed = inferShapes(model.graph, { allowUnknown: true });
  const g = extractSubgraph(typed, [LOGITS], [feature]);
  g.inputs = g.inputs.map((v) => ({ ...v, shape: ['batch', ...(v.shape ?? []).slice(1)] }));
  g.outputs = g.outputs.map((v) => ({ ...v, shape: ['batch', ...(v.shape ?? []).slice(1)] }));
  g.valueInfo = new Map();
  return { graph: g, feature };
}

/** The body alone: the model's inputs -> the feature value (what the head strategy runs once per example). */
export function bodyGraph(model: Model): { graph: Graph; feature: string } {
  const feature = featureValue(model);
  const typed = inferShapes(model.graph, { allowUnknown: true });
  const g = extractSubgraph(typed, [feature]);
  g.valueInfo = new Map();
  return { graph: g, feature };
}

/**
 * The model with its head's output layer (weight and bias) multiplied by `factor`, so that its logits are exactly the
 * old logits times `factor` (temperature scaling folded into the head: factor 1/T). Refused unless `logits` is the
 * plain linear layer Add(MatMul(x, weight), bias) of the head's output layer with nothing else reading those values
 * (an adapter on the classifier would make the fold inexact). Pure.
 */
export function scaleHead(model: Model, factor: number): Model {
  if (!(factor > 0 && Number.isFinite(factor)))
    throw new ConfigError(`head scale must be a positive finite number, got ${factor}`, {
      field: 'temperature',
      value: String(factor),
    });
  const kind = headKind(model);
  if (!kind) throw new ConfigError(`the model has no '${HEAD_WEIGHT}'/'${HEAD_BIAS}' head to scale`, { field: 'head' });
  const { weight: W, bias: B } = HEAD_KINDS[kind].out;
  const w = model.params.get(W);
  const b = model.params.get(B);
  if (!w || !b) throw new ConfigError(`the model has no '${W}'/'${B}' head layer to scale`, { field: 'head' });
  const nodes = model.graph.nodes;
  const add = nodes.find((n) => n.outputs.includes(LOGITS));
  const mm = add && nodes.find((n) => n.outputs.includes(add.inputs[0]));
  const readers = (v: string): number => nodes.filter((n) => n.inputs.includes(v)).length;
  if (
    !add ||
    !mm ||
    add.opType !== 'Add' ||
    add.inputs[1] !== b.initializer ||
    mm.opType !== 'MatMul' ||
    mm.inputs[1] !== w.initializer ||
    readers(mm.outputs[0]) !== 1 ||
    readers(w.initializer) !== 1 ||
    readers(b.initializer) !== 1
  )
    throw new GraphError(
      `'${LOGITS}' is not the plain linear layer Add(MatMul(x, ${W}), ${B}); cannot fold a scale into it`,
      { node: add?.name ?? LOGITS },
    );
  const scaled = (path: string): Float32Array =>
    Float32Array.from(paramValues(model, path) as Float32Array, (v) => v * factor);
  return withParamValues(withParamValues(model, W, scaled(W)), B, scaled(B));
}
