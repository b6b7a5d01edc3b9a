/**
 * Training-graph construction: model graph + loss + trainable set -> the graphs the engine runs.
 *
 * - Trainable initializers become graph inputs (their current values are fed each step, as ORT tensors that the
 *   previous step produced); frozen weights stay initializers, so ORT keeps them in place with no per-step copy.
 * - Symbolic input dims are bound to the batch's static shape (`bindings`) before differentiation, because gradient
 *   rules undo broadcasting from static shapes; the engine caches one compiled session per shape.
 * - Dropout is lowered to `x · mask` with `mask` (0 or 1/(1-ratio)) a graph input filled each step from the run's
 *   seeded generator: ONNX Dropout's fixed `seed` attribute would repeat the same mask at every step. One Mul forward
 *   and one backward (dX = dY·mask) is all a dropout site costs in the graph.
 * - The optimizer is either fused into the same graph (one `run` does forward, backward and update) or a separate
 *   graph fed with the gradients (`mode: 'separate'`).
 */
import { ConfigError, GraphError } from '../errors.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import type { DType } from '../onnx/dtype.ts';
import { cloneGraph, type Dim, type Graph, type Node, type Shape, type Tensor } from '../onnx/ir.ts';
import { tensorToNumbers } from '../onnx/tensor.ts';
import { fuseGelu } from '../autodiff/fuse.ts';
import { appendOptimizerStep, nextName, type OptimizerConfig, type ParamGrad, updateRule } from './optim/index.ts';

/** The forward+backward graph builder (src/autodiff): gradients of `loss` w.r.t. `wrt` as extra graph outputs. */
export type GradientBuilder = (
  graph: Graph,
  opts: { loss: string; wrt: string[] },
) => { graph: Graph; gradients: Map<string, string> };

/** Static shapes of values, after symbolic dims are bound (used to size dropout noise). */
export type ShapeOracle = (graph: Graph, bindings: Record<string, number>) => (value: string) => number[] | undefined;

/**
 * The loss: the name of a scalar value already in the graph, or a function that appends loss nodes (and label
 * inputs) with a GraphBuilder over the model graph and returns the scalar loss value's name.
 */
export type LossSpec = string | ((b: GraphBuilder) => string);

export interface ParamInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Initial value, as stored in the model. */
  init: Tensor;
  decay: boolean;
}

/**
 * A non-trainable state tensor that the training graph updates each step: BatchNormalization's running mean and
 * variance. Fed as input `name`, produced as output `<name>::next`, carried between steps like optimizer state.
 */
export interface BufferInfo {
  name: string;
  shape: number[];
  /** Initial value, as stored in the model. */
  init: Tensor;
}

export interface DropoutSite {
  /** The float32 mask input fed each step: 1/(1-ratio) where kept, 0 where dropped (`TrainRng.fillDropoutMask`). */
  input: string;
  shape: number[];
  ratio: number;
}

export interface TrainingGraphOptions {
  loss: LossSpec;
  /** Initializer names to train, or a predicate over initializer names. */
  trainable: readonly string[] | ((name: string) => boolean);
  optimizer: OptimizerConfig;
  maxGradNorm?: number;
  /** Parameters excluded from weight decay (default: none). */
  noDecay?: (name: string) => boolean;
  /** 'fused' (default): one graph does forward, backward and update. 'separate': gradients graph + optimizer graph. */
  mode?: 'fused' | 'separate';
  /** Gradients add into `accum::<param>` inputs (gradient accumulation). */
  accumulate?: boolean;
  /** Values of symbolic dims (batch, seq). */
  bindings?: Record<string, number>;
  /** Forward outputs kept as outputs of the training graph besides the loss (default none). */
  keepOutputs?: readonly string[];
  gradients: GradientBuilder;
  shapes?: ShapeOracle;
  /**
   * Replace exact GELU written in standard ops with com.microsoft Gelu before differentiating (default true): ORT
   * cannot fuse it in a training graph, whose backward pass reads the intermediates (see src/autodiff/fuse.ts).
   */
  fuseGelu?: boolean;
}

export interface TrainingGraphs {
  /** forward + backward (+ update when fused). Outputs: `loss`, kept outputs, then `grad::<p>` or updated values. */
  train: Graph;
  /** The separate optimizer graph (mode 'separate'). */
  optimizer?: Graph;
  params: ParamInfo[];
  /** BatchNorm running statistics the training graph updates (outputs `<name>::next`). */
  buffers: BufferInfo[];
  dropout: DropoutSite[];
  /** Name of the loss output. */
  loss: string;
}

export const LOSS_OUTPUT = 'loss';
export function gradName(param: string): string {
  return `grad::${param}`;
}
export function accumName(param: string): string {
  return `accum::${param}`;
}

/** Initializers holding BatchNormalization running statistics (inputs 3 and 4 of each node), in node order. */
export function batchNormStats(graph: Graph): string[] {
  const out: string[] = [];
  for (const n of graph.nodes) {
    if (n.opType !== 'BatchNormalization' || n.domain !== '') continue;
    for (const v of [n.inputs[3], n.inputs[4]]) if (v && graph.initializers.has(v) && !out.includes(v)) out.push(v);
  }
  return out;
}

/** The BatchNorm running statistics of `graph` as buffers (float32 initializers only). */
export function bufferInfos(graph: Graph): BufferInfo[] {
  return batchNormStats(graph).map((name) => {
    const t = graph.initializers.get(name) as Tensor;
    if (t.dtype !== 'float32')
      throw new ConfigError(
        `BatchNorm statistic '${name}' is ${t.dtype}; only float32 running statistics can be trained`,
        { field: name },
      );
    return { name, shape: [...t.dims], init: t };
  });
}

/**
 * Which initializers are trainable, in initializer order (a predicate only sees float32 initializers, and never
 * BatchNorm running statistics, which are updated by the forward pass, not by gradients).
 */
export function resolveTrainable(graph: Graph, trainable: TrainingGraphOptions['trainable']): string[] {
  const stats = new Set(batchNormStats(graph));
  if (typeof trainable === 'function')
    return [...graph.initializers.values()]
      .filter((t) => t.dtype === 'float32' && !stats.has(t.name) && trainable(t.name))
      .map((t) => t.name);
  for (const n of trainable) {
    if (!graph.initializers.has(n))
      throw new ConfigError(`trainable parameter '${n}' is not an initializer of graph '${graph.name}'`, {
        field: 'trainable',
        value: n,
      });
    if (stats.has(n))
      throw new ConfigError(
        `'${n}' is a BatchNormalization running statistic, updated by training itself; it cannot be a trainable parameter`,
        { field: 'trainable', value: n },
      );
  }
  return [...trainable];
}

/** Replaces symbolic dims in the graph inputs with `bindings`; the rest of the graph is left to shape inference. */
export function bindInputs(graph: Graph, bindings: Record<string, number>): Graph {
  const g = cloneGraph(graph);
  g.inputs = g.inputs.map((v) =>
    v.shape ? { ...v, shape: v.shape.map((d: Dim) => (typeof d === 'string' && d in bindings ? bindings[d] : d)) } : v,
  );
  return g;
}

/** Binds symbolic dims of `graph`'s inputs from concrete batch dims: input name -> dims. */
export function bindingsFromDims(graph: Graph, dims: Record<string, readonly number[]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of graph.inputs) {
    const d = dims[v.name];
    const shape = v.shape;
    if (!d || !shape) continue;
    if (d.length !== shape.length) {
      throw new GraphError(
        `input '${v.name}' has rank ${shape.length} [${shape.join(', ')}] but the batch gives [${d.join(', ')}]`,
        { field: v.name },
      );
    }
    shape.forEach((s, i) => {
      if (typeof s === 'string') {
        if (out[s] !== undefined && out[s] !== d[i])
          throw new GraphError(`dim '${s}' is ${out[s]} in one input and ${d[i]} in '${v.name}'`, { field: v.name });
        out[s] = d[i];
      } else if (s !== d[i] && s > 0) {
        throw new GraphError(`input '${v.name}' expects [${shape.join(', ')}] but the batch gives [${d.join(', ')}]`, {
          field: v.name,
        });
      }
    });
  }
  return out;
}

function dropoutRatio(graph: Graph, node: Node): number {
  const r = node.inputs[1];
  if (!r) return 0.5;
  const t = graph.initializers.get(r);
  if (!t)
    throw new GraphError(`Dropout node '${node.name}': ratio '${r}' must be a constant initializer to train`, {
      node: node.name,
      op: 'Dropout',
    });
  return tensorToNumbers(t)[0];
}

/**
 * Dropout for evaluation: every Dropout becomes Identity (a mask output becomes all-true), BatchNormalization uses
 * running statistics.
 */
export function evalGraph(graph: Graph): Graph {
  const g = cloneGraph(graph);
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    if (n.opType === 'Dropout' && n.domain === '') {
      nodes.push({
        name: n.name,
        opType: 'Identity',
        domain: '',
        inputs: [n.inputs[0]],
        outputs: [n.outputs[0]],
        attrs: {},
      });
      if (n.outputs[1]) {
        const shp = `${n.name}/mask_shape`;
        nodes.push({ name: shp, opType: 'Shape', domain: '', inputs: [n.inputs[0]], outputs: [shp], attrs: {} });
        nodes.push({
          name: `${n.name}/mask`,
          opType: 'ConstantOfShape',
          domain: '',
          inputs: [shp],
          outputs: [n.outputs[1]],
          attrs: { value: { type: 'tensor', value: { name: '', dtype: 'bool', dims: [1], data: Uint8Array.of(1) } } },
        });
      }
    } else if (n.opType === 'BatchNormalization' && n.domain === '') {
      nodes.push({ ...n, outputs: [n.outputs[0]], attrs: { ...n.attrs, training_mode: { type: 'int', value: 0 } } });
    } else nodes.push(n);
  }
  g.nodes = nodes;
  return g;
}

/** Lowers training-mode Dropout to mask inputs (see the module comment). Needs the static shape of each input. */
export function lowerDropout(
  graph: Graph,
  shapeOf: (value: string) => number[] | undefined,
): { graph: Graph; sites: DropoutSite[] } {
  const g = cloneGraph(graph);
  const b = new GraphBuilder(g);
  const sites: DropoutSite[] = [];
  // The replacement nodes keep the Dropout's output names, which the builder already counts as used.
  const reuse = (opType: string, inputs: string[], output: string): void => {
    g.nodes.push({
      name: b.uniqueName(`${output}/${opType}`),
      opType,
      domain: '',
      inputs,
      outputs: [output],
      attrs: {},
    });
  };
  const old = g.nodes;
  g.nodes = [];
  for (const n of old) {
    if (n.opType !== 'Dropout' || n.domain !== '') {
      g.nodes.push(n);
      continue;
    }
    const ratio = dropoutRatio(graph, n);
    const x = n.inputs[0];
    if (ratio === 0) {
      reuse('Identity', [x], n.outputs[0]);
      continue;
    }
    const shape = shapeOf(x);
    if (!shape)
      throw new GraphError(`Dropout node '${n.name}': the shape of its input '${x}' is not known statically`, {
        node: n.name,
        op: 'Dropout',
      });
    const mask = b.input(`dropout::mask::${sites.length}`, 'float32', shape);
    sites.push({ input: mask, shape, ratio });
    // the optional bool mask output, for graphs that use it
    if (n.outputs[1]) reuse('Greater', [mask, b.scalar(0)], n.outputs[1]);
    reuse('Mul', [x, mask], n.outputs[0]);
  }
  return { graph: g, sites };
}

/**
 * Switches BatchNormalization nodes to training mode (batch statistics) and gives each its running-statistics
 * outputs, which ORT requires in that mode: `<running_mean>::next` and `<running_var>::next` for statistics held in
 * initializers (the buffers the engine carries between steps), throwaway names otherwise. Mutates `graph`.
 */
export function setTrainingMode(graph: Graph): void {
  const stats = new Set(batchNormStats(graph));
  const taken = new Set<string>();
  for (const n of graph.nodes) {
    if (n.opType !== 'BatchNormalization' || n.domain !== '') continue;
    const outs = [n.inputs[3], n.inputs[4]].map((v, i) => {
      if (!v || !stats.has(v)) return `${n.name || n.outputs[0]}/running_${i === 0 ? 'mean' : 'var'}`;
      if (taken.has(v))
        throw new GraphError(
          `BatchNormalization node '${n.name}' shares running statistic '${v}' with another node; each node needs its own to train`,
          { node: n.name, op: n.opType },
        );
      taken.add(v);
      return nextName(v);
    });
    n.attrs = { ...n.attrs, training_mode: { type: 'int', value: 1 } };
    n.outputs = [n.outputs[0], ...outs];
  }
}

/** Appends the loss and returns the graph (a clone) with the loss exposed as output `loss`. */
export function withLoss(graph: Graph, loss: LossSpec, keepOutputs: readonly string[]): { graph: Graph; loss: string } {
  const g = cloneGraph(graph);
  const b = new GraphBuilder(g);
  const lossValue = typeof loss === 'string' ? loss : loss(b);
  const known = new Set<string>([
    ...g.nodes.flatMap((n) => n.outputs),
    ...g.inputs.map((i) => i.name),
    ...g.initializers.keys(),
  ]);
  if (!known.has(lossValue))
    throw new GraphError(`loss value '${lossValue}' is not produced by graph '${g.name}'`, { field: 'loss' });
  const kept = g.outputs.filter((o) => keepOutputs.includes(o.name));
  g.outputs = [];
  b.output(b.op('Identity', [lossValue], {}, { outputs: [LOSS_OUTPUT] }), 'float32', []);
  g.outputs.push(...kept);
  return { graph: g, loss: LOSS_OUTPUT };
}

/** Moves trainable initializers to graph inputs (their values are then fed each step). */
export function paramsToInputs(
  graph: Graph,
  names: readonly string[],
  noDecay?: (name: string) => boolean,
): { graph: Graph; params: ParamInfo[] } {
  const g = cloneGraph(graph);
  const params: ParamInfo[] = [];
  for (const name of names) {
    const t = g.initializers.get(name);
    if (!t)
      throw new ConfigError(`trainable parameter '${name}' is not an initializer`, { field: 'trainable', value: name });
    if (t.dtype !== 'float32')
      throw new ConfigError(`trainable parameter '${name}' is ${t.dtype}; only float32 parameters can be trained`, {
        field: 'trainable',
        value: name,
      });
    g.initializers.delete(name);
    g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
    params.push({ name, dtype: t.dtype, shape: [...t.dims], init: t, decay: !(noDecay?.(name) ?? false) });
  }
  return { graph: g, params };
}

/**
 * Moves BatchNorm running statistics to graph inputs and exposes their updated values (`<name>::next`, produced by
 * the training-mode nodes) as outputs. Returns a clone.
 */
export function statsToInputs(graph: Graph, buffers: readonly BufferInfo[]): Graph {
  if (buffers.length === 0) return graph;
  const g = cloneGraph(graph);
  for (const buf of buffers) {
    g.initializers.delete(buf.name);
    g.inputs.push({ name: buf.name, dtype: 'float32', shape: [...buf.shape] });
    g.outputs.push({ name: nextName(buf.name), dtype: 'float32', shape: [...buf.shape] });
  }
  return g;
}

/** Builds the training graph (and, in separate mode, the optimizer graph) for one static shape. */
export function buildTrainingGraphs(model: Graph, opts: TrainingGraphOptions): TrainingGraphs {
  const bindings = opts.bindings ?? {};
  const names = resolveTrainable(model, opts.trainable);
  if (names.length === 0) throw new ConfigError('no trainable parameters selected', { field: 'trainable' });
  const rule = updateRule(opts.optimizer);
  let g = bindInputs(model, bindings);
  const withL = withLoss(g, opts.loss, opts.keepOutputs ?? []);
  g = withL.graph;
  if (opts.fuseGelu ?? true) g = fuseGelu(g).graph;
  setTrainingMode(g);
  const p = paramsToInputs(g, names, opts.noDecay);
  g = p.graph;
  const buffers = bufferInfos(g);
  g = statsToInputs(g, buffers);
  let sites: DropoutSite[] = [];
  if (g.nodes.some((n) => n.opType === 'Dropout' && n.domain === '')) {
    if (!opts.shapes)
      throw new ConfigError('the model has Dropout nodes: a shape oracle is needed to size their noise', {
        field: 'shapes',
      });
    const lowered = lowerDropout(g, opts.shapes(g, bindings));
    g = lowered.graph;
    sites = lowered.sites;
  }
  const grad = opts.gradients(g, { loss: withL.loss, wrt: names });
  const tg = grad.graph;
  // Gradients come back as extra outputs; this module decides what leaves the graph.
  const gradValues = new Set(grad.gradients.values());
  tg.outputs = tg.outputs.filter((o) => !gradValues.has(o.name));
  const b = new GraphBuilder(tg);
  const gradOf = (pi: ParamInfo): string => {
    const gv = grad.gradients.get(pi.name);
    if (!gv) throw new GraphError(`the loss does not depend on trainable parameter '${pi.name}'`, { field: pi.name });
    if (!opts.accumulate) return gv;
    return b.add(b.input(accumName(pi.name), 'float32', pi.shape), gv);
  };
  const mode = opts.mode ?? 'fused';
  if (mode === 'fused') {
    const pg: ParamGrad[] = p.params.map((pi) => ({
      param: pi.name,
      grad: gradOf(pi),
      shape: pi.shape,
      decay: pi.decay,
    }));
    appendOptimizerStep(b, pg, rule, { maxGradNorm: opts.maxGradNorm, gradScale: opts.accumulate === true });
    return { train: tg, params: p.params, buffers, dropout: sites, loss: withL.loss };
  }
  for (const pi of p.params)
    b.output(b.op('Identity', [gradOf(pi)], {}, { outputs: [gradName(pi.name)] }), 'float32', pi.shape);
  return {
    train: tg,
    optimizer: buildOptimizerGraph(p.params, opts.optimizer, opts.maxGradNorm),
    params: p.params,
    buffers,
    dropout: sites,
    loss: withL.loss,
  };
}

/** A standalone optimizer graph: inputs params, `grad::<p>`, slots and scalars; outputs `<name>::next`. */
export function buildOptimizerGraph(
  params: readonly ParamInfo[],
  optimizer: OptimizerConfig,
  maxGradNorm?: number,
): Graph {
  const b = new GraphBuilder('optimizer');
  const pg: ParamGrad[] = params.map((pi) => ({
    param: b.input(pi.name, 'float32', pi.shape),
    grad: b.input(gradName(pi.name), 'float32', pi.shape),
    shape: pi.shape,
    decay: pi.decay,
  }));
  appendOptimizerStep(b, pg, updateRule(optimizer), { maxGradNorm });
  return b.graph;
}

/** Output names of the updated values of a parameter and its optimizer slots. */
export function updatedNames(param: string, slots: readonly string[]): string[] {
  return [nextName(param), ...slots.map((s) => nextName(`optim::${s}::${param}`))];
}

export type { Shape };
