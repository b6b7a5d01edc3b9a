/**
 * Reverse-mode automatic differentiation over ONNX graphs. `buildGradientGraph` appends, to a forward graph, the
 * standard-op (plus ORT-inference-build contrib op) nodes that compute d(loss)/d(w) for each requested tensor,
 * and exposes each gradient as a graph output `<w>_grad`.
 *
 * Only nodes on a path from a `wrt` tensor to the loss are differentiated; integer/bool values stop gradients;
 * gradients of a value used several times are summed with one Sum node. Static types come from shape inference
 * (src/onnx/shapes); rules that need concrete sizes (Conv, Slice, pooling) ask for static shapes, so graphs with
 * symbolic batch/sequence dims should be specialised first (broadcast undoing falls back to run-time Shape-based
 * reduction where a symbolic dim cannot be decided).
 */
import { GraphError } from '../errors.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { isFloat } from '../onnx/dtype.ts';
import type { Graph, Node, Tensor, ValueInfo } from '../onnx/ir.ts';
import { inferShapes, topoOrder } from '../onnx/shapes/index.ts';
import { GradContext, isStaticShape, type GraphView } from './context.ts';
import { gradientRule } from './registry.ts';

export { differentiableOps, gradientRule } from './registry.ts';
export { GradContext, type GradRule } from './context.ts';
export { fuseGelu } from './fuse.ts';

export interface GradientOptions {
  /** Name of the scalar (or any-shape: seeded with ones) float value to differentiate. */
  loss: string;
  /** Initializer or graph-input names to differentiate with respect to. */
  wrt: string[];
}

export interface GradientResult {
  /** Forward + backward graph: the original outputs, then one output `<name>_grad` per wrt, in wrt order. */
  graph: Graph;
  /** wrt name -> gradient value name (a graph output). */
  gradients: Map<string, string>;
}

function constantTensors(graph: Graph): Map<string, Tensor> {
  const out = new Map(graph.initializers);
  for (const n of graph.nodes) {
    if (n.opType !== 'Constant' || n.domain !== '') continue;
    const v = n.attrs.value;
    if (v && v.type === 'tensor') out.set(n.outputs[0], v.value);
  }
  return out;
}

/** Builds the gradient graph of `opts.loss` with respect to `opts.wrt`. The input graph is not modified. */
export function buildGradientGraph(graph: Graph, opts: GradientOptions): GradientResult {
  const g = inferShapes(graph, { allowUnknown: true });
  const types = new Map<string, ValueInfo>();
  for (const [name, t] of g.initializers) types.set(name, { name, dtype: t.dtype, shape: [...t.dims] });
  for (const [name, v] of g.valueInfo) types.set(name, v);
  for (const v of g.inputs) types.set(v.name, v);
  const consts = constantTensors(g);
  const view: GraphView = { typeOf: (n) => types.get(n), constantOf: (n) => consts.get(n) };

  const lossType = types.get(opts.loss);
  if (!lossType)
    throw new GraphError(`loss '${opts.loss}' is not a value of graph '${graph.name}'`, { value: opts.loss });
  if (!isFloat(lossType.dtype))
    throw new GraphError(`loss '${opts.loss}' has dtype ${lossType.dtype}; it must be a float`, { value: opts.loss });
  const seen = new Set<string>();
  for (const w of opts.wrt) {
    const t = types.get(w);
    if (!t)
      throw new GraphError(`wrt '${w}' is neither an initializer nor an input of graph '${graph.name}'`, { value: w });
    if (!isFloat(t.dtype))
      throw new GraphError(`wrt '${w}' has dtype ${t.dtype}; only float tensors have gradients`, { value: w });
    if (seen.has(w)) throw new GraphError(`wrt '${w}' is listed twice`, { value: w });
    seen.add(w);
  }

  const order = topoOrder(g);
  const floatValue = (name: string): boolean => {
    const t = types.get(name);
    return t === undefined || isFloat(t.dtype);
  };
  // forward: values that depend on a wrt tensor through float values
  const reach = new Set(opts.wrt);
  for (const n of order) {
    if (n.inputs.some((i) => i && reach.has(i))) for (const o of n.outputs) if (o && floatValue(o)) reach.add(o);
  }
  // backward: nodes whose outputs lead to the loss and whose inputs come from a wrt tensor
  const needed = new Set([opts.loss]);
  const relevant: Node[] = [];
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    if (!n.outputs.some((o) => o && needed.has(o))) continue;
    if (!n.inputs.some((i) => i && reach.has(i))) continue;
    relevant.push(n);
    for (const i of n.inputs) if (i && reach.has(i)) needed.add(i);
  }

  const b = new GraphBuilder(g);
  const contributions = new Map<string, string[]>();
  const push = (value: string, grad: string): void => {
    const list = contributions.get(value);
    if (list) list.push(grad);
    else contributions.set(value, [grad]);
  };
  const total = (value: string): string | undefined => {
    const list = contributions.get(value);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const s = b.op('Sum', list, {}, { name: `grad/${value}/Sum` });
      contributions.set(value, [s]);
      return s;
    }
    return list[0];
  };

  if (reach.has(opts.loss)) push(opts.loss, seed(b, lossType));
  for (const n of relevant) {
    const outGrads = n.outputs.map((o) => (o && reach.has(o) ? total(o) : undefined));
    if (outGrads.every((x) => x === undefined)) continue;
    if (n.attrs.then_branch || n.attrs.body || n.attrs.else_branch) {
      throw new GraphError(`cannot differentiate control-flow node '${n.name}' (${n.opType})`, {
        node: n.name,
        op: n.opType,
      });
    }
    const rule = gradientRule(n.opType, n.domain);
    if (!rule) {
      throw new GraphError(
        `no gradient rule for op ${n.domain ? `${n.domain}.` : ''}${n.opType} (node '${n.name}'), which lies between a trainable tensor and the loss`,
        { node: n.name, op: n.opType },
      );
    }
    const needs = n.inputs.map((i) => i !== '' && reach.has(i) && needed.has(i));
    const grads = rule(new GradContext(b, n, view, outGrads, needs));
    n.inputs.forEach((inp, i) => {
      const gi = grads[i];
      if (needs[i] && gi) push(inp, gi);
    });
  }

  const gradients = new Map<string, string>();
  for (const w of opts.wrt) {
    const t = types.get(w)!;
    let gw = total(w);
    if (!gw) {
      // not connected to the loss: an exact zero gradient keeps optimizers uniform
      gw = zerosOf(b, t);
    }
    const name = b.node('Identity', [gw], {}, { name: `grad/${w}`, outputs: [`${w}_grad`] })[0];
    g.outputs.push({ name, dtype: t.dtype, ...(t.shape ? { shape: [...t.shape] } : {}) });
    gradients.set(w, name);
  }
  return { graph: g, gradients };
}

function seed(b: GraphBuilder, t: ValueInfo): string {
  if (isStaticShape(t.shape)) {
    const n = t.shape.reduce((a, c) => a * c, 1);
    if (t.dtype === 'float64') return b.constant('float64', new Float64Array(n).fill(1), t.shape, 'grad_seed');
    if (t.dtype === 'float32') return b.constant('float32', new Float32Array(n).fill(1), t.shape, 'grad_seed');
  }
  const one = b.constant(
    t.dtype === 'float64' ? 'float64' : 'float32',
    t.dtype === 'float64' ? Float64Array.of(1) : Float32Array.of(1),
    [],
    'grad_seed',
  );
  return b.op('Expand', [b.op('CastLike', [one, t.name]), b.op('Shape', [t.name])], {}, { name: 'grad/seed' });
}

function zerosOf(b: GraphBuilder, t: ValueInfo): string {
  const zero = b.constant(
    t.dtype === 'float64' ? 'float64' : 'float32',
    t.dtype === 'float64' ? Float64Array.of(0) : Float32Array.of(0),
    [],
    'grad_zero',
  );
  const shape = isStaticShape(t.shape) ? b.ints(t.shape) : b.op('Shape', [t.name]);
  return b.op('Expand', [zero, shape], {}, { name: `grad/${t.name}/zeros` });
}
