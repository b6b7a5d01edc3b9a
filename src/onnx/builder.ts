/**
 * A small builder for writing ONNX graphs in TypeScript: `const y = b.matmul(x, w)`.
 * Every helper appends one standard ONNX node (default opset 17) and returns the output value's name.
 * Node names carry the current module scope (`/encoder/layer.0/attention/self/query/MatMul`), the same shape as
 * Optimum's exports, so that later transforms can find modules by node name.
 */
import { GraphError } from '../errors.ts';
import { dtypeToOnnx, type DType, type TypedArray } from './dtype.ts';
import { emptyGraph, type Attribute, type Graph, type Node, type Shape, type Tensor } from './ir.ts';
import { tensorFromArray } from './tensor.ts';

/** Attribute values as written in builder calls; numbers are ints unless the attribute is a float by spec. */
export type AttrInput = number | string | number[] | string[] | Tensor | Attribute;

/** Attribute names that ONNX defines as FLOAT(S), so a plain `1` is written as a float. */
const FLOAT_ATTRS = new Set(['alpha', 'beta', 'epsilon', 'gamma', 'momentum', 'ratio', 'lambd', 'bias', 'scale', 'scales', 'value_float', 'value_floats', 'spatial_scale']);

function toAttribute(name: string, v: AttrInput): Attribute {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && 'type' in v && 'value' in v) return v as Attribute;
  if (typeof v === 'number') return FLOAT_ATTRS.has(name) || !Number.isInteger(v) ? { type: 'float', value: v } : { type: 'int', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { type: 'strings', value: v as string[] };
    const nums = v as number[];
    return FLOAT_ATTRS.has(name) || nums.some((x) => !Number.isInteger(x)) ? { type: 'floats', value: nums } : { type: 'ints', value: nums };
  }
  return { type: 'tensor', value: v as Tensor };
}

export interface NodeOptions {
  /** Number of outputs, or their names. Default 1. */
  outputs?: number | string[];
  domain?: string;
  /** Node name (prefixed with the scope); default: the op type. */
  name?: string;
}

export class GraphBuilder {
  readonly graph: Graph;
  private readonly used = new Set<string>();
  private readonly scopes: string[] = [];

  constructor(graphOrName: Graph | string = 'graph') {
    this.graph = typeof graphOrName === 'string' ? emptyGraph(graphOrName) : graphOrName;
    for (const v of this.graph.inputs) this.used.add(v.name);
    for (const k of this.graph.initializers.keys()) this.used.add(k);
    for (const n of this.graph.nodes) {
      this.used.add(n.name);
      for (const o of n.outputs) this.used.add(o);
    }
  }

  /** A name not yet used by any value or node in the graph. */
  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Runs `fn` with node names prefixed by a module path (`encoder.layer.0` -> `/encoder/layer.0/`). */
  scope<T>(modulePath: string, fn: () => T): T {
    this.scopes.push(modulePath);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** The current module path (dotted). */
  get modulePath(): string {
    return this.scopes.filter((s) => s).join('.');
  }

  input(name: string, dtype: DType, shape: Shape): string {
    if (this.used.has(name)) throw new GraphError(`graph input '${name}' clashes with an existing value`, { field: name });
    this.used.add(name);
    this.graph.inputs.push({ name, dtype, shape: [...shape] });
    return name;
  }

  /** Marks a value as a graph output (dtype/shape may be filled by shape inference). */
  output(value: string, dtype: DType = 'float32', shape?: Shape): string {
    this.graph.outputs.push({ name: value, dtype, ...(shape ? { shape: [...shape] } : {}) });
    return value;
  }

  /** Adds a named initializer (a parameter or a constant). The name is kept as given. */
  initializer(name: string, dtype: DType, values: TypedArray, dims: number[]): string {
    if (this.used.has(name) && !this.graph.initializers.has(name)) {
      throw new GraphError(`initializer '${name}' clashes with an existing value`, { field: name });
    }
    this.used.add(name);
    this.graph.initializers.set(name, tensorFromArray(name, dtype, values, dims));
    return name;
  }

  /** An anonymous constant stored as an initializer (`const_N`). */
  constant(dtype: DType, values: TypedArray, dims: number[], base = 'const'): string {
    const name = this.uniqueName(base);
    this.graph.initializers.set(name, tensorFromArray(name, dtype, values, dims));
    return name;
  }

  scalar(value: number, dtype: DType = 'float32'): string {
    if (dtype === 'int64') return this.constant('int64', BigInt64Array.of(BigInt(value)), []);
    if (dtype === 'float64') return this.constant('float64', Float64Array.of(value), []);
    return this.constant('float32', Float32Array.of(value), []);
  }

  /** A 1-D int64 constant (shapes, axes, starts/ends). */
  ints(values: readonly number[]): string {
    return this.constant('int64', BigInt64Array.from(values, (v) => BigInt(v)), [values.length]);
  }

  /** Appends a node and returns its output names. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrInput | undefined> = {}, opts: NodeOptions = {}): string[] {
    const prefix = this.scopes.length ? `/${modulePathToNodePrefix(this.modulePath)}/` : '';
    const name = this.uniqueName(`${prefix}${opts.name ?? opType}`);
    const outSpec = opts.outputs ?? 1;
    const outputs = typeof outSpec === 'number'
      ? Array.from({ length: outSpec }, (_, i) => this.uniqueName(`${name}_output_${i}`))
      : outSpec.map((o) => (o === '' ? '' : this.claim(o)));
    const a: Record<string, Attribute> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = toAttribute(k, v);
    const node: Node = { name, opType, domain: opts.domain ?? '', inputs: [...inputs], outputs, attrs: a };
    this.graph.nodes.push(node);
    return outputs;
  }

  /** A single-output node. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrInput | undefined> = {}, opts: NodeOptions = {}): string {
    return this.node(opType, inputs, attrs, opts)[0];
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new GraphError(`value name '${name}' is already used in graph '${this.graph.name}'`, { field: name });
    this.used.add(name);
    return name;
  }

  // ---- elementwise ----
  add(a: string, b: string): string { return this.op('Add', [a, b]); }
  sub(a: string, b: string): string { return this.op('Sub', [a, b]); }
  mul(a: string, b: string): string { return this.op('Mul', [a, b]); }
  div(a: string, b: string): string { return this.op('Div', [a, b]); }
  pow(a: string, b: string): string { return this.op('Pow', [a, b]); }
  neg(x: string): string { return this.op('Neg', [x]); }
  sqrt(x: string): string { return this.op('Sqrt', [x]); }
  exp(x: string): string { return this.op('Exp', [x]); }
  log(x: string): string { return this.op('Log', [x]); }
  abs(x: string): string { return this.op('Abs', [x]); }
  reciprocal(x: string): string { return this.op('Reciprocal', [x]); }
  tanh(x: string): string { return this.op('Tanh', [x]); }
  sigmoid(x: string): string { return this.op('Sigmoid', [x]); }
  relu(x: string): string { return this.op('Relu', [x]); }
  erf(x: string): string { return this.op('Erf', [x]); }
  identity(x: string): string { return this.op('Identity', [x]); }

  // ---- linear algebra ----
  matmul(a: string, b: string): string { return this.op('MatMul', [a, b]); }
  gemm(a: string, b: string, c?: string, attrs: { alpha?: number; beta?: number; transA?: number; transB?: number } = {}): string {
    return this.op('Gemm', c ? [a, b, c] : [a, b], attrs);
  }

  // ---- normalisation / activation ----
  softmax(x: string, axis = -1): string { return this.op('Softmax', [x], { axis }); }
  logSoftmax(x: string, axis = -1): string { return this.op('LogSoftmax', [x], { axis }); }
  layerNorm(x: string, scale: string, bias?: string, axis = -1, epsilon = 1e-5): string {
    return this.op('LayerNormalization', bias ? [x, scale, bias] : [x, scale], { axis, epsilon });
  }

  // ---- shape ----
  reshape(x: string, shape: readonly number[]): string { return this.op('Reshape', [x, this.ints(shape)]); }
  transpose(x: string, perm: readonly number[]): string { return this.op('Transpose', [x], { perm: [...perm] }); }
  unsqueeze(x: string, axes: readonly number[]): string { return this.op('Unsqueeze', [x, this.ints(axes)]); }
  squeeze(x: string, axes: readonly number[]): string { return this.op('Squeeze', [x, this.ints(axes)]); }
  concat(xs: readonly string[], axis: number): string { return this.op('Concat', xs, { axis }); }
  gather(data: string, indices: string, axis = 0): string { return this.op('Gather', [data, indices], { axis }); }
  cast(x: string, to: DType): string { return this.op('Cast', [x], { to: dtypeToOnnx(to) }); }

  // ---- reductions ----
  reduceSum(x: string, axes: readonly number[], keepdims = true): string {
    return this.op('ReduceSum', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceMean(x: string, axes: readonly number[], keepdims = true): string {
    return this.op('ReduceMean', [x], { axes: [...axes], keepdims: keepdims ? 1 : 0 });
  }
}

/**
 * `encoder.layer.3.attention.self.query` -> `encoder/layer.3/attention/self/query`: Optimum's node-name form,
 * where a numeric index stays attached to its container.
 */
export function modulePathToNodePrefix(path: string): string {
  const out: string[] = [];
  for (const part of path.split('.').filter((p) => p)) {
    if (/^\d+$/.test(part) && out.length) out[out.length - 1] += `.${part}`;
    else out.push(part);
  }
  return out.join('/');
}
