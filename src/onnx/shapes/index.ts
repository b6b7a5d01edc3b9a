/**
 * Static shape and dtype inference over Tailor's graph IR, with symbolic dims (`batch`, `seq`) that propagate
 * through every op and can be bound to numbers with `specialize`. Small integer tensors (the Shape -> Gather ->
 * Unsqueeze -> Concat -> Reshape chains that exports emit, Constant, ConstantOfShape, Range) are folded to known
 * values, possibly with symbolic entries, so Reshape/Expand/Slice/Tile get exact output shapes.
 */
import { topoOrder } from '../graph.ts';
import { ConfigError, ShapeError } from '../../errors.ts';
import { cloneGraph, type Graph, type Node, type Shape, type Tensor, type ValueInfo } from '../ir.ts';
import { InferContext, type InType } from './context.ts';
import { bindDim, canon } from './dims.ts';
import { inferFnFor } from './registry.ts';
import { knownFromTensor } from './shapeops.ts';

export { supportedOps } from './registry.ts';
export type { InferFn, InType, OutType } from './context.ts';
export { InferContext } from './context.ts';
export {
  bindDim,
  broadcastDim,
  canon,
  dimAdd,
  dimDiv,
  dimEq,
  dimMul,
  dimProduct,
  dimSub,
  dimSymbols,
  formatShape,
  isStatic,
} from './dims.ts';

export interface InferOptions {
  /** Symbol values to substitute into the graph inputs before inference (what `specialize` uses). */
  bindings?: Record<string, number>;
  /**
   * Leave the outputs of ops without an inference rule (and everything downstream of them) untyped instead of
   * throwing. Existing valueInfo entries for those values are kept.
   */
  allowUnknown?: boolean;
}

/** Where inference gets each value's type from while walking the graph. */
export type TypeEnv = Map<string, InType>;

/** The type (and, for small integer tensors, the values) of a constant tensor as inference sees it. */
export function tensorType(t: Tensor, name = t.name): InType {
  const known = knownFromTensor(t);
  return { name, dtype: t.dtype, shape: [...t.dims], ...(known ? { known } : {}) };
}

/** Types of the graph's inputs and initializers (an input of the same name wins over its initializer). */
export function seedEnv(graph: Graph, bindings?: Record<string, number>): TypeEnv {
  const env: TypeEnv = new Map();
  for (const [name, t] of graph.initializers) env.set(name, tensorType(t, name));
  for (const v of graph.inputs) {
    const shape = v.shape?.map((d) => (bindings ? bindDim(d, bindings) : canon(d)));
    env.set(v.name, { name: v.name, dtype: v.dtype, ...(shape ? { shape } : {}) });
  }
  return env;
}

/**
 * Infers one node's output types from the environment and records them there. Returns false when the node's op
 * has no rule or an input is untyped and `allowUnknown` is set; throws ShapeError otherwise.
 */
export function inferNode(node: Node, env: TypeEnv, fresh: { n: number }, allowUnknown = false): boolean {
  const fn = inferFnFor(node.domain, node.opType);
  const opName = node.domain ? `${node.domain}.${node.opType}` : node.opType;
  if (!fn) {
    if (allowUnknown) return false;
    throw new ShapeError(`${node.opType} node '${node.name}': no shape inference rule for op ${opName}`, {
      node: node.name,
      op: node.opType,
    });
  }
  const inputs: (InType | undefined)[] = [];
  for (const name of node.inputs) {
    if (name === '') {
      inputs.push(undefined);
      continue;
    }
    const t = env.get(name);
    if (!t) {
      if (allowUnknown) return false;
      throw new ShapeError(
        `${node.opType} node '${node.name}': input '${name}' is not a graph input, initializer or output of an earlier node`,
        {
          node: node.name,
          op: node.opType,
          value: name,
        },
      );
    }
    inputs.push(t);
  }
  // trailing omitted inputs behave as absent
  while (inputs.length && inputs[inputs.length - 1] === undefined) inputs.pop();
  const outs = fn(new InferContext(node, inputs, fresh));
  node.outputs.forEach((name, i) => {
    if (name === '') return;
    const o = outs[i];
    if (!o) {
      throw new ShapeError(`${node.opType} node '${node.name}': op has no output ${i} ('${name}')`, {
        node: node.name,
        op: node.opType,
      });
    }
    env.set(name, {
      name,
      dtype: o.dtype,
      ...(o.shape ? { shape: o.shape.map(canon) } : {}),
      ...(o.known ? { known: o.known } : {}),
      ...(o.tensor ? { tensor: o.tensor } : {}),
    });
  });
  return true;
}

/** Nodes in dependency order (re-exported: one implementation in graph.ts). */
export { topoOrder };

function toValueInfo(t: InType): ValueInfo {
  return { name: t.name, dtype: t.dtype, ...(t.shape ? { shape: [...t.shape] } : {}) };
}

/**
 * A copy of the graph whose `valueInfo` holds a type for every node output and whose `outputs` have dtype and
 * shape filled. Inputs and initializers keep their own types. Throws ShapeError naming the node, op and shapes
 * when values disagree, or when an op has no rule (unless `allowUnknown`).
 */
export function inferShapes(graph: Graph, opts: InferOptions = {}): Graph {
  const g = cloneGraph(graph);
  if (opts.bindings) {
    g.inputs = g.inputs.map((v) => (v.shape ? { ...v, shape: v.shape.map((d) => bindDim(d, opts.bindings!)) } : v));
  }
  const env = seedEnv(g);
  const fresh = { n: 0 };
  const valueInfo = new Map<string, ValueInfo>();
  for (const node of topoOrder(g)) {
    if (inferNode(node, env, fresh, opts.allowUnknown)) {
      for (const o of node.outputs) if (o) valueInfo.set(o, toValueInfo(env.get(o)!));
    } else {
      for (const o of node.outputs) {
        const old = graph.valueInfo.get(o);
        if (!o || !old) continue;
        const shape = old.shape?.map((d) => (opts.bindings ? bindDim(d, opts.bindings) : d));
        valueInfo.set(o, { ...old, ...(shape ? { shape } : {}) });
        env.set(o, { name: o, dtype: old.dtype, ...(shape ? { shape } : {}) });
      }
    }
  }
  g.valueInfo = valueInfo;
  g.outputs = g.outputs.map((o) => {
    const t = env.get(o.name);
    if (!t) {
      if (opts.allowUnknown) return o;
      throw new ShapeError(`graph output '${o.name}' is not produced by any node, input or initializer`, {
        value: o.name,
      });
    }
    return toValueInfo(t);
  });
  return g;
}

/**
 * Binds symbolic dims (`batch`, `seq`, and any dim derived from them such as `batch*seq`) to numbers throughout
 * the graph and re-infers every value's type.
 */
export function specialize(
  graph: Graph,
  bindings: Record<string, number>,
  opts: Omit<InferOptions, 'bindings'> = {},
): Graph {
  for (const [k, v] of Object.entries(bindings)) {
    if (!Number.isInteger(v) || v < 0)
      throw new ConfigError(`binding for '${k}' must be a non-negative integer, got ${v}`, {
        field: k,
        value: String(v),
      });
  }
  const g = inferShapes(graph, { ...opts, bindings });
  g.outputs = g.outputs.map((o) => (o.shape ? { ...o, shape: o.shape.map((d) => bindDim(d, bindings)) } : o));
  return g;
}

/** The declared or inferred type of a value: graph inputs first, then initializers, then valueInfo. */
export function valueType(graph: Graph, name: string): ValueInfo | undefined {
  const inp = graph.inputs.find((v) => v.name === name);
  if (inp) return inp;
  const t = graph.initializers.get(name);
  if (t) return { name, dtype: t.dtype, shape: [...t.dims] };
  return graph.valueInfo.get(name) ?? graph.outputs.find((v) => v.name === name);
}

/** A shape with every dim bound (throws ShapeError naming the value when a symbol stays unbound). */
export function staticShape(name: string, shape: Shape | undefined): number[] {
  if (!shape) throw new ShapeError(`value '${name}' has unknown rank`, { value: name });
  return shape.map((d) => {
    if (typeof d !== 'number')
      throw new ShapeError(
        `value '${name}' has symbolic dim '${d}' in [${shape.join(', ')}]; specialize the graph first`,
        { value: name },
      );
    return d;
  });
}
