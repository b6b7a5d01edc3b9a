/**
 * A small builder for writing ONNX graphs in TypeScript: `const y = b.matmul(x, w)`.
 * Every helper appends standard ONNX nodes (default opset 17) and returns the output value's name.
 * GELU is not a standard op at opset 17: `gelu` emits the exact Erf form (or the tanh form) in standard ops,
 * which ORT fuses and Tailor's autodiff differentiates; `{ contrib: true }` emits com.microsoft Gelu/FastGelu.
 * Node names carry the current module scope (`/encoder/layer.0/attention/self/query/MatMul`), the same shape as
 * Optimum's exports, so that later transforms can find modules by node name.
 */
import { GraphError } from '../errors.ts';
import { dtypeToOnnx, type DType, type TypedArray } from './dtype.ts';
import { emptyGraph, type Attribute, type Graph, type Node, type Shape, type Tensor, type ValueInfo } from './ir.ts';
import { inferNode, seedEnv, tensorType, type TypeEnv } from './shapes/index.ts';
import { tensorFromArray } from './tensor.ts';

/** Attribute values as written in builder calls; numbers are ints unless the attribute is a float by spec. */
export type AttrInput = number | string | number[] | string[] | Tensor | Attribute;

/** Attribute names that ONNX defines as FLOAT(S), so a plain `1` is written as a float. */
const FLOAT_ATTRS = new Set([
  'alpha',
  'beta',
  'epsilon',
  'gamma',
  'momentum',
  'ratio',
  'lambd',
  'bias',
  'scale',
  'scales',
  'value_float',
  'value_floats',
  'spatial_scale',
]);

function toAttribute(name: string, v: AttrInput): Attribute {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && 'type' in v && 'value' in v) return v as Attribute;
  if (typeof v === 'number')
    return FLOAT_ATTRS.has(name) || !Number.isInteger(v) ? { type: 'float', value: v } : { type: 'int', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { type: 'strings', value: v as string[] };
    const nums = v as number[];
    return FLOAT_ATTRS.has(name) || nums.some((x) => !Number.isInteger(x))
      ? { type: 'floats', value: nums }
      : { type: 'ints', value: nums };
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
  private typeEnv: TypeEnv | undefined;
  private typedUpTo = 0;
  private readonly freshDims = { n: 0 };

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
    if (this.used.has(name))
      throw new GraphError(`graph input '${name}' clashes with an existing value`, { field: name });
    this.used.add(name);
    this.graph.inputs.push({ name, dtype, shape: [...shape] });
    this.typeEnv?.set(name, { name, dtype, shape: [...shape] });
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
    const t = tensorFromArray(name, dtype, values, dims);
    this.graph.initializers.set(name, t);
    this.typeEnv?.set(name, tensorType(t));
    return name;
  }

  /** An anonymous constant stored as an initializer (`const_N`). */
  constant(dtype: DType, values: TypedArray, dims: number[], base = 'const'): string {
    const name = this.uniqueName(base);
    const t = tensorFromArray(name, dtype, values, dims);
    this.graph.initializers.set(name, t);
    this.typeEnv?.set(name, tensorType(t));
    return name;
  }

  scalar(value: number, dtype: DType = 'float32'): string {
    if (dtype === 'int64') return this.constant('int64', BigInt64Array.of(BigInt(value)), []);
    if (dtype === 'float64') return this.constant('float64', Float64Array.of(value), []);
    return this.constant('float32', Float32Array.of(value), []);
  }

  /** A 1-D int64 constant (shapes, axes, starts/ends). */
  ints(values: readonly number[]): string {
    return this.constant(
      'int64',
      BigInt64Array.from(values, (v) => BigInt(v)),
      [values.length],
    );
  }

  /** Appends a node and returns its output names. */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: NodeOptions = {},
  ): string[] {
    const prefix = this.scopes.length ? `/${modulePathToNodePrefix(this.modulePath)}/` : '';
    const name = this.uniqueName(`${prefix}${opts.name ?? opType}`);
    const outSpec = opts.outputs ?? 1;
    const outputs =
      typeof outSpec === 'number'
        ? Array.from({ length: outSpec }, (_, i) => this.uniqueName(`${name}_output_${i}`))
        : outSpec.map((o) => (o === '' ? '' : this.claim(o)));
    const a: Record<string, Attribute> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = toAttribute(k, v);
    const node: Node = { name, opType, domain: opts.domain ?? '', inputs: [...inputs], outputs, attrs: a };
    this.graph.nodes.push(node);
    return outputs;
  }

  /** A single-output node. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: NodeOptions = {},
  ): string {
    return this.node(opType, inputs, attrs, opts)[0];
  }

  private claim(name: string): string {
    if (this.used.has(name))
      throw new GraphError(`value name '${name}' is already used in graph '${this.graph.name}'`, { field: name });
    this.used.add(name);
    return name;
  }

  // ---- types while building ----

  /**
   * The inferred type of a value built so far (symbolic dims kept). Inference runs incrementally over the nodes
   * added since the last call, so calling this while building is cheap. Undefined for values downstream of an op
   * without an inference rule.
   */
  typeOf(value: string): ValueInfo | undefined {
    if (!this.typeEnv) {
      this.typeEnv = seedEnv(this.graph);
      this.typedUpTo = 0;
    }
    const nodes = this.graph.nodes;
    while (this.typedUpTo < nodes.length) inferNode(nodes[this.typedUpTo++], this.typeEnv, this.freshDims, true);
    const t = this.typeEnv.get(value);
    return t ? { name: t.name, dtype: t.dtype, ...(t.shape ? { shape: [...t.shape] } : {}) } : undefined;
  }

  /** The inferred shape of a value built so far; throws GraphError when it is not known. */
  shapeOf(value: string): Shape {
    const s = this.typeOf(value)?.shape;
    if (!s) throw new GraphError(`shape of '${value}' is not known in graph '${this.graph.name}'`, { value });
    return s;
  }

  /** A scalar constant of the same dtype as `like` (float32 when unknown). */
  scalarLike(value: number, like: string): string {
    const dt = this.typeOf(like)?.dtype ?? 'float32';
    switch (dt) {
      case 'float64':
        return this.constant('float64', Float64Array.of(value), []);
      case 'int64':
        return this.constant('int64', BigInt64Array.of(BigInt(value)), []);
      case 'int32':
        return this.constant('int32', Int32Array.of(value), []);
      default:
        return this.constant('float32', Float32Array.of(value), []);
    }
  }

  private intsOrValue(v: readonly number[] | string): string {
    return typeof v === 'string' ? v : this.ints(v);
  }

  // ---- elementwise ----
  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  pow(a: string, b: string): string {
    return this.op('Pow', [a, b]);
  }
  neg(x: string): string {
    return this.op('Neg', [x]);
  }
  sqrt(x: string): string {
    return this.op('Sqrt', [x]);
  }
  exp(x: string): string {
    return this.op('Exp', [x]);
  }
  log(x: string): string {
    return this.op('Log', [x]);
  }
  abs(x: string): string {
    return this.op('Abs', [x]);
  }
  reciprocal(x: string): string {
    return this.op('Reciprocal', [x]);
  }
  tanh(x: string): string {
    return this.op('Tanh', [x]);
  }
  sigmoid(x: string): string {
    return this.op('Sigmoid', [x]);
  }
  relu(x: string): string {
    return this.op('Relu', [x]);
  }
  leakyRelu(x: string, alpha = 0.01): string {
    return this.op('LeakyRelu', [x], { alpha });
  }
  elu(x: string, alpha = 1): string {
    return this.op('Elu', [x], { alpha });
  }
  erf(x: string): string {
    return this.op('Erf', [x]);
  }
  sign(x: string): string {
    return this.op('Sign', [x]);
  }
  floor(x: string): string {
    return this.op('Floor', [x]);
  }
  ceil(x: string): string {
    return this.op('Ceil', [x]);
  }
  identity(x: string): string {
    return this.op('Identity', [x]);
  }
  max(...xs: string[]): string {
    return this.op('Max', xs);
  }
  min(...xs: string[]): string {
    return this.op('Min', xs);
  }
  sum(...xs: string[]): string {
    return this.op('Sum', xs);
  }
  mean(...xs: string[]): string {
    return this.op('Mean', xs);
  }
  equal(a: string, b: string): string {
    return this.op('Equal', [a, b]);
  }
  less(a: string, b: string): string {
    return this.op('Less', [a, b]);
  }
  greater(a: string, b: string): string {
    return this.op('Greater', [a, b]);
  }
  not(x: string): string {
    return this.op('Not', [x]);
  }
  and(a: string, b: string): string {
    return this.op('And', [a, b]);
  }
  or(a: string, b: string): string {
    return this.op('Or', [a, b]);
  }
  where(cond: string, x: string, y: string): string {
    return this.op('Where', [cond, x, y]);
  }

  /** Clip with optional numeric bounds (constants of x's dtype) or bound values. */
  clip(x: string, min?: number | string, max?: number | string): string {
    const bound = (v: number | string | undefined): string =>
      v === undefined ? '' : typeof v === 'string' ? v : this.scalarLike(v, x);
    const ins = [x, bound(min), bound(max)];
    while (ins.length > 1 && ins[ins.length - 1] === '') ins.pop();
    return this.op('Clip', ins);
  }

  /**
   * GELU. Default: the exact form 0.5·x·(1 + erf(x/√2)) in standard ops (what Optimum exports below opset 20);
   * `approximate: 'tanh'`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). `contrib: true` emits com.microsoft Gelu
   * (exact) or FastGelu (tanh), single fused kernels that ORT's inference build runs.
   */
  gelu(x: string, approximate: 'none' | 'tanh' = 'none', opts: { contrib?: boolean } = {}): string {
    if (opts.contrib)
      return this.op(approximate === 'tanh' ? 'FastGelu' : 'Gelu', [x], {}, { domain: 'com.microsoft' });
    let inner: string;
    if (approximate === 'tanh') {
      const cube = this.mul(this.mul(x, x), x);
      const poly = this.add(x, this.mul(cube, this.scalarLike(0.044715, x)));
      inner = this.tanh(this.mul(poly, this.scalarLike(Math.sqrt(2 / Math.PI), x)));
    } else {
      inner = this.erf(this.div(x, this.scalarLike(Math.SQRT2, x)));
    }
    return this.mul(this.mul(x, this.add(inner, this.scalarLike(1, x))), this.scalarLike(0.5, x));
  }

  /** Dropout-12+: returns [output, mask]. `training` false (the default) makes it an identity in ORT. */
  dropout(x: string, ratio = 0.5, training = false, seed?: number): [string, string] {
    const r = this.scalarLike(ratio, x);
    const t = this.constant('bool', Uint8Array.of(training ? 1 : 0), [], 'training_mode');
    const [y, mask] = this.node('Dropout', [x, r, t], { seed }, { outputs: 2 });
    return [y, mask];
  }

  // ---- linear algebra ----
  matmul(a: string, b: string): string {
    return this.op('MatMul', [a, b]);
  }
  gemm(
    a: string,
    b: string,
    c?: string,
    attrs: { alpha?: number; beta?: number; transA?: number; transB?: number } = {},
  ): string {
    return this.op('Gemm', c ? [a, b, c] : [a, b], attrs);
  }
  /** com.microsoft FusedMatMul: alpha·op(A)·op(B), batched, where op transposes the last two axes. */
  fusedMatMul(a: string, b: string, opts: { transA?: boolean; transB?: boolean; alpha?: number } = {}): string {
    return this.op(
      'FusedMatMul',
      [a, b],
      { transA: opts.transA ? 1 : 0, transB: opts.transB ? 1 : 0, alpha: opts.alpha ?? 1 },
      { domain: 'com.microsoft' },
    );
  }
  /** A Hugging Face Linear in ONNX layout: x·W (+ bias), W stored [in, out]. Node names 'MatMul'/'Add' in scope. */
  linear(x: string, w: string, bias?: string): string {
    const y = this.matmul(x, w);
    return bias ? this.add(y, bias) : y;
  }
  einsum(equation: string, ...xs: string[]): string {
    return this.op('Einsum', xs, { equation });
  }
  matmulInteger(a: string, b: string, aZeroPoint?: string, bZeroPoint?: string): string {
    return this.op(
      'MatMulInteger',
      [a, b, aZeroPoint ?? '', bZeroPoint ?? ''].filter((v, i) => i < 2 || v !== ''),
    );
  }

  // ---- normalisation / activation ----
  softmax(x: string, axis = -1): string {
    return this.op('Softmax', [x], { axis });
  }
  logSoftmax(x: string, axis = -1): string {
    return this.op('LogSoftmax', [x], { axis });
  }
  layerNorm(x: string, scale: string, bias?: string, axis = -1, epsilon = 1e-5): string {
    return this.op('LayerNormalization', bias ? [x, scale, bias] : [x, scale], { axis, epsilon });
  }
  /** LayerNormalization with its Mean and InvStdDev outputs: [y, mean, invStdDev]. */
  layerNormWithStats(x: string, scale: string, bias?: string, axis = -1, epsilon = 1e-5): [string, string, string] {
    const [y, m, s] = this.node(
      'LayerNormalization',
      bias ? [x, scale, bias] : [x, scale],
      { axis, epsilon },
      { outputs: 3 },
    );
    return [y, m, s];
  }
  /** BatchNormalization; with `training` returns [y, runningMean, runningVar], else [y]. */
  batchNorm(
    x: string,
    scale: string,
    bias: string,
    mean: string,
    variance: string,
    opts: { epsilon?: number; momentum?: number; training?: boolean } = {},
  ): string[] {
    return this.node(
      'BatchNormalization',
      [x, scale, bias, mean, variance],
      {
        epsilon: opts.epsilon ?? 1e-5,
        momentum: opts.momentum ?? 0.9,
        training_mode: opts.training ? 1 : 0,
      },
      { outputs: opts.training ? 3 : 1 },
    );
  }

  // ---- convolution / pooling ----
  conv(x: string, w: string, bias?: string, opts: ConvOptions = {}): string {
    return this.op('Conv', bias ? [x, w, bias] : [x, w], convAttrs(opts));
  }
  convTranspose(
    x: string,
    w: string,
    bias?: string,
    opts: ConvOptions & { outputPadding?: number[]; outputShape?: number[] } = {},
  ): string {
    return this.op('ConvTranspose', bias ? [x, w, bias] : [x, w], {
      ...convAttrs(opts),
      output_padding: opts.outputPadding,
      output_shape: opts.outputShape,
    });
  }
  maxPool(x: string, kernel: number[], opts: PoolOptions = {}): string {
    return this.maxPoolWithIndices(x, kernel, opts)[0];
  }
  /** MaxPool with its Indices output (flat indices into the input): [y, indices]. */
  maxPoolWithIndices(x: string, kernel: number[], opts: PoolOptions = {}): [string, string] {
    const [y, i] = this.node(
      'MaxPool',
      [x],
      { ...convAttrs(opts), kernel_shape: kernel, ceil_mode: opts.ceilMode ? 1 : undefined },
      { outputs: 2 },
    );
    return [y, i];
  }
  averagePool(x: string, kernel: number[], opts: PoolOptions & { countIncludePad?: boolean } = {}): string {
    return this.op('AveragePool', [x], {
      ...convAttrs(opts),
      kernel_shape: kernel,
      ceil_mode: opts.ceilMode ? 1 : undefined,
      count_include_pad: opts.countIncludePad ? 1 : undefined,
    });
  }
  globalAveragePool(x: string): string {
    return this.op('GlobalAveragePool', [x]);
  }

  // ---- shape ----
  /** Reshape to constant dims (0 copies, -1 infers) or to a shape value. */
  reshape(x: string, shape: readonly number[] | string): string {
    return this.op('Reshape', [x, this.intsOrValue(shape)]);
  }
  flatten(x: string, axis = 1): string {
    return this.op('Flatten', [x], { axis });
  }
  transpose(x: string, perm: readonly number[]): string {
    return this.op('Transpose', [x], { perm: [...perm] });
  }
  unsqueeze(x: string, axes: readonly number[]): string {
    return this.op('Unsqueeze', [x, this.ints(axes)]);
  }
  squeeze(x: string, axes: readonly number[]): string {
    return this.op('Squeeze', [x, this.ints(axes)]);
  }
  concat(xs: readonly string[], axis: number): string {
    return this.op('Concat', xs, { axis });
  }
  /** Split into pieces of the given sizes along an axis (opset 13+ form: sizes as an input). */
  split(x: string, sizes: readonly number[], axis = 0): string[] {
    return this.node('Split', [x, this.ints(sizes)], { axis }, { outputs: sizes.length });
  }
  slice(
    x: string,
    starts: readonly number[] | string,
    ends: readonly number[] | string,
    axes?: readonly number[] | string,
    steps?: readonly number[] | string,
  ): string {
    const ins = [x, this.intsOrValue(starts), this.intsOrValue(ends)];
    if (axes !== undefined || steps !== undefined) ins.push(axes === undefined ? '' : this.intsOrValue(axes));
    if (steps !== undefined) ins.push(this.intsOrValue(steps));
    return this.op('Slice', ins);
  }
  gather(data: string, indices: string, axis = 0): string {
    return this.op('Gather', [data, indices], { axis });
  }
  gatherElements(data: string, indices: string, axis = 0): string {
    return this.op('GatherElements', [data, indices], { axis });
  }
  expand(x: string, shape: readonly number[] | string): string {
    return this.op('Expand', [x, this.intsOrValue(shape)]);
  }
  tile(x: string, repeats: readonly number[] | string): string {
    return this.op('Tile', [x, this.intsOrValue(repeats)]);
  }
  /** Pad with [begin..., end...] pads (ONNX order), mode 'constant' | 'reflect' | 'edge'. */
  pad(
    x: string,
    pads: readonly number[] | string,
    mode: 'constant' | 'reflect' | 'edge' = 'constant',
    value?: number,
  ): string {
    const ins = [x, this.intsOrValue(pads)];
    if (value !== undefined) ins.push(this.scalarLike(value, x));
    return this.op('Pad', ins, { mode });
  }
  shape(x: string, start?: number, end?: number): string {
    return this.op('Shape', [x], { start, end });
  }
  size(x: string): string {
    return this.op('Size', [x]);
  }
  /** A tensor of the given shape filled with `value` (float32 unless dtype is given). */
  constantOfShape(shape: readonly number[] | string, value = 0, dtype: DType = 'float32'): string {
    const t = tensorFromArray('value', dtype, fillArray(dtype, value), [1]);
    return this.op('ConstantOfShape', [this.intsOrValue(shape)], { value: t });
  }
  range(start: string, limit: string, delta: string): string {
    return this.op('Range', [start, limit, delta]);
  }
  oneHot(indices: string, depth: string, values: string, axis = -1): string {
    return this.op('OneHot', [indices, depth, values], { axis });
  }
  scatterND(data: string, indices: string, updates: string, reduction?: 'add' | 'mul'): string {
    return this.op('ScatterND', [data, indices, updates], { reduction });
  }
  scatterElements(data: string, indices: string, updates: string, axis = 0, reduction?: 'add' | 'mul'): string {
    return this.op('ScatterElements', [data, indices, updates], { axis, reduction });
  }
  /** TopK along an axis: [values, indices]. */
  topK(x: string, k: number, axis = -1, largest = true): [string, string] {
    const [v, i] = this.node('TopK', [x, this.ints([k])], { axis, largest: largest ? 1 : 0 }, { outputs: 2 });
    return [v, i];
  }
  cast(x: string, to: DType): string {
    return this.op('Cast', [x], { to: dtypeToOnnx(to) });
  }

  // ---- reductions ----
  reduceSum(x: string, axes: readonly number[], keepdims = true): string {
    return this.op('ReduceSum', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  /** ReduceMean/Max/Min take axes as an attribute up to opset 17. */
  reduceMean(x: string, axes: readonly number[], keepdims = true): string {
    return this.op('ReduceMean', [x], { axes: [...axes], keepdims: keepdims ? 1 : 0 });
  }
  reduceMax(x: string, axes: readonly number[], keepdims = true): string {
    return this.op('ReduceMax', [x], { axes: [...axes], keepdims: keepdims ? 1 : 0 });
  }
  reduceMin(x: string, axes: readonly number[], keepdims = true): string {
    return this.op('ReduceMin', [x], { axes: [...axes], keepdims: keepdims ? 1 : 0 });
  }
  argMax(x: string, axis = -1, keepdims = false): string {
    return this.op('ArgMax', [x], { axis, keepdims: keepdims ? 1 : 0 });
  }

  // ---- losses ----
  /** SoftmaxCrossEntropyLoss over scores [N, C, ...] and int64 labels: [loss, logProb]. */
  softmaxCrossEntropy(
    scores: string,
    labels: string,
    opts: { reduction?: 'mean' | 'sum' | 'none'; ignoreIndex?: number; weights?: string } = {},
  ): [string, string] {
    const [l, lp] = this.node(
      'SoftmaxCrossEntropyLoss',
      opts.weights ? [scores, labels, opts.weights] : [scores, labels],
      {
        reduction: opts.reduction ?? 'mean',
        ignore_index: opts.ignoreIndex,
      },
      { outputs: 2 },
    );
    return [l, lp];
  }
  nllLoss(
    logProb: string,
    labels: string,
    opts: { reduction?: 'mean' | 'sum' | 'none'; ignoreIndex?: number } = {},
  ): string {
    return this.op('NegativeLogLikelihoodLoss', [logProb, labels], {
      reduction: opts.reduction ?? 'mean',
      ignore_index: opts.ignoreIndex,
    });
  }

  // ---- quantisation ----
  quantizeLinear(x: string, scale: string, zeroPoint?: string): string {
    return this.op('QuantizeLinear', zeroPoint ? [x, scale, zeroPoint] : [x, scale]);
  }
  dequantizeLinear(x: string, scale: string, zeroPoint?: string): string {
    return this.op('DequantizeLinear', zeroPoint ? [x, scale, zeroPoint] : [x, scale]);
  }
  /** DynamicQuantizeLinear: [y (uint8), scale, zeroPoint]. */
  dynamicQuantizeLinear(x: string): [string, string, string] {
    const [y, s, z] = this.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 });
    return [y, s, z];
  }
}

export interface ConvOptions {
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  group?: number;
  autoPad?: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
  kernelShape?: number[];
}

export interface PoolOptions {
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  autoPad?: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
  ceilMode?: boolean;
}

function convAttrs(o: ConvOptions | PoolOptions): Record<string, AttrInput | undefined> {
  return {
    strides: o.strides,
    pads: o.pads,
    dilations: o.dilations,
    group: 'group' in o ? o.group : undefined,
    auto_pad: o.autoPad,
    kernel_shape: 'kernelShape' in o ? o.kernelShape : undefined,
  };
}

function fillArray(dtype: DType, value: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.of(value);
    case 'float64':
      return Float64Array.of(value);
    case 'int64':
      return BigInt64Array.of(BigInt(value));
    case 'int32':
      return Int32Array.of(value);
    case 'bool':
    case 'uint8':
      return Uint8Array.of(value);
    default:
      throw new GraphError(`constantOfShape: unsupported dtype ${dtype}`, { value: dtype });
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
