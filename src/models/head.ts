/**
 * Classification heads as graph transforms. Every strategy trains a model that ends in one linear layer named
 * `classifier` (HF's name, so PEFT's `modules_to_save: ["classifier"]` maps onto it) producing `logits`
 * [batch, labels]. Its input, the *feature* value, is what the head strategy caches.
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

/** Outputs that hold a pooled sentence representation, by preference. */
const EMBEDDING_OUTPUTS = ['sentence_embedding', 'embeddings', 'pooler_output'];

/** The value the model's head reads: the classifier's input, or a pooled embedding output of a headless model. */
export function featureValue(model: Model): string {
  const w = model.params.get(HEAD_WEIGHT);
  if (w) {
    const n = model.graph.nodes.find(
      (x) => (x.opType === 'MatMul' || x.opType === 'Gemm') && x.inputs[1] === w.initializer,
    );
    if (!n)
      throw new GraphError(`parameter '${HEAD_WEIGHT}' is not the right operand of a MatMul or Gemm`, {
        field: HEAD_WEIGHT,
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
  /** Seed of the head's initialisation (default 0). */
  seed?: number;
  /** Values for the head in graph layout (weight [features, labels]); default: normal(0, 0.02), zero bias. */
  weight?: Float32Array;
  bias?: Float32Array;
}

/**
 * Replaces the model's head (or puts one on a headless encoder) with a linear `classifier` over the feature
 * value. Everything after the feature value is dropped; the body's parameters and their trainable flags are kept.
 * Pure: returns a new Model.
 */
export function attachHead(model: Model, spec: HeadSpec): Model {
  const C = spec.labels.length;
  if (C < 2) throw new ConfigError(`a classification head needs at least 2 labels, got ${C}`, { field: 'labels' });
  if (new Set(spec.labels).size !== C) throw new ConfigError('label names must be distinct', { field: 'labels' });
  const feature = featureValue(model);
  const D = featureWidth(model, feature);
  const typed = inferShapes(model.graph, { allowUnknown: true });
  const body = extractSubgraph(typed, [feature]);
  body.valueInfo = new Map();
  const g: Graph = { ...body, name: model.graph.name, outputs: [] };
  const b = new GraphBuilder(g);
  const w = spec.weight ?? initValues({ kind: 'normal', std: 0.02 }, D * C, spec.seed ?? 0, HEAD_WEIGHT);
  const bias = spec.bias ?? new Float32Array(C);
  if (w.length !== D * C || bias.length !== C) {
    throw new ConfigError(
      `head values have ${w.length} + ${bias.length} elements; a [${D}, ${C}] head needs ${D * C} + ${C}`,
      { field: 'head' },
    );
  }
  // The body may already hold old head initializers under these names when they fed nodes kept in the body.
  for (const n of [HEAD_WEIGHT, HEAD_BIAS])
    if (g.initializers.has(n))
      throw new GraphError(`initializer '${n}' is still used by the model's body`, { field: n });
  b.initializer(HEAD_WEIGHT, 'float32', w, [D, C]);
  b.initializer(HEAD_BIAS, 'float32', bias, [C]);
  b.scope('classifier', () => {
    b.node('Add', [b.matmul(feature, HEAD_WEIGHT), HEAD_BIAS], {}, { outputs: [LOGITS] });
  });
  b.output(LOGITS, 'float32', ['batch', C]);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params)
    if (g.initializers.has(p.initializer) && !/^classifier\./.test(k)) params.set(k, p);
  params.set(HEAD_WEIGHT, {
    path: HEAD_WEIGHT,
    initializer: HEAD_WEIGHT,
    dtype: 'float32',
    shape: [D, C],
    trainable: true,
    role: 'weight',
    layout: 'in_out',
  });
  params.set(HEAD_BIAS, {
    path: HEAD_BIAS,
    initializer: HEAD_BIAS,
    dtype: 'float32',
    shape: [C],
    trainable: true,
    role: 'bias',
    layout: 'same',
  });
  const labels = [...spec.labels];
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
    newlyInitialized: spec.weight ? [] : [HEAD_WEIGHT, HEAD_BIAS],
  };
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
 * The model with its head's weight and bias multiplied by `factor`, so that its logits are exactly the old logits
 * times `factor` (temperature scaling folded into the head: factor 1/T). Refused unless `logits` is the plain
 * linear head Add(MatMul(feature, classifier.weight), classifier.bias) with nothing else reading those values (an
 * adapter on the classifier would make the fold inexact). Pure.
 */
export function scaleHead(model: Model, factor: number): Model {
  if (!(factor > 0 && Number.isFinite(factor)))
    throw new ConfigError(`head scale must be a positive finite number, got ${factor}`, {
      field: 'temperature',
      value: String(factor),
    });
  const w = model.params.get(HEAD_WEIGHT);
  const b = model.params.get(HEAD_BIAS);
  if (!w || !b)
    throw new ConfigError(`the model has no '${HEAD_WEIGHT}'/'${HEAD_BIAS}' head to scale`, { field: 'head' });
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
      `'${LOGITS}' is not the plain linear head Add(MatMul(feature, ${HEAD_WEIGHT}), ${HEAD_BIAS}); cannot fold a scale into it`,
      { node: add?.name ?? LOGITS },
    );
  const scaled = (path: string): Float32Array =>
    Float32Array.from(paramValues(model, path) as Float32Array, (v) => v * factor);
  return withParamValues(withParamValues(model, HEAD_WEIGHT, scaled(HEAD_WEIGHT)), HEAD_BIAS, scaled(HEAD_BIAS));
}
