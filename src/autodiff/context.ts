/**
 * What a gradient rule sees: the forward node, the static types of its inputs and outputs, the gradients of its
 * outputs, and helpers that emit standard ONNX ops through the GraphBuilder (constants in the right dtype,
 * broadcast undoing, shapes as constants when static).
 */
import { GraphError } from '../errors.ts';
import type { GraphBuilder, AttrInput, NodeOptions } from '../onnx/builder.ts';
import { dtypeToOnnx, isFloat, type DType } from '../onnx/dtype.ts';
import type { Attribute, Node, Shape, Tensor, ValueInfo } from '../onnx/ir.ts';
import { tensorFromArray, tensorToNumbers } from '../onnx/tensor.ts';

/** A rule returns one gradient per forward input; undefined where the input gets none. */
export type GradRule = (ctx: GradContext) => (string | undefined)[];

/** Lookups the walker provides to each context. */
export interface GraphView {
  typeOf(name: string): ValueInfo | undefined;
  /** Initializer or Constant-node tensor behind a value, if it is constant. */
  constantOf(name: string): Tensor | undefined;
}

export function isStaticShape(s: Shape | undefined): s is number[] {
  return s !== undefined && s.every((d) => typeof d === 'number' && d >= 0);
}

export class GradContext {
  constructor(
    readonly b: GraphBuilder,
    readonly node: Node,
    private readonly view: GraphView,
    /** Gradient of each output ('' / undefined: the output does not reach the loss). */
    readonly outGrads: (string | undefined)[],
    /** Whether each input needs a gradient. */
    private readonly needed: boolean[],
  ) {}

  get opType(): string {
    return this.node.opType;
  }
  x(i: number): string {
    return this.node.inputs[i] ?? '';
  }
  y(i: number): string {
    return this.node.outputs[i] ?? '';
  }
  hasInput(i: number): boolean {
    return (this.node.inputs[i] ?? '') !== '';
  }
  needs(i: number): boolean {
    return this.needed[i] === true;
  }
  dy(i = 0): string | undefined {
    return this.outGrads[i] || undefined;
  }

  /** dY of output i, or zeros of the output's shape when that output gets no gradient. */
  dyOrZeros(i: number): string {
    return this.dy(i) ?? this.zeros(this.y(i));
  }

  typeOf(name: string): ValueInfo {
    const t = this.view.typeOf(name);
    if (!t) throw this.error(`no type/shape known for value '${name}' (run shape inference first)`);
    return t;
  }
  shapeOf(name: string): Shape {
    const s = this.typeOf(name).shape;
    if (!s) throw this.error(`rank of '${name}' is unknown`);
    return s;
  }
  staticShape(name: string): number[] {
    const s = this.shapeOf(name);
    if (!isStaticShape(s))
      throw this.error(`'${name}' needs a static shape here, found [${s.join(', ')}]; specialise the graph first`);
    return s;
  }
  rankOf(name: string): number {
    return this.shapeOf(name).length;
  }
  /** The float dtype gradients of this node are computed in (its first output's, else its first input's). */
  get dtype(): DType {
    const out = this.view.typeOf(this.y(0))?.dtype;
    return out && isFloat(out) ? out : this.typeOf(this.x(0)).dtype;
  }

  // ---- attributes and constant inputs ----
  attr(name: string): Attribute | undefined {
    return this.node.attrs[name];
  }
  int(name: string, dflt: number): number {
    const a = this.node.attrs[name];
    return a && a.type === 'int' ? a.value : dflt;
  }
  float(name: string, dflt: number): number {
    const a = this.node.attrs[name];
    return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
  }
  intsAttr(name: string): number[] | undefined {
    const a = this.node.attrs[name];
    return a && a.type === 'ints' ? a.value : undefined;
  }
  str(name: string, dflt: string): string {
    const a = this.node.attrs[name];
    return a && a.type === 'string' ? a.value : dflt;
  }
  /** Numbers of a constant input (initializer or Constant node); undefined when the input is computed at run time. */
  constInput(i: number): number[] | undefined {
    const name = this.x(i);
    if (!name) return undefined;
    const t = this.view.constantOf(name);
    return t ? tensorToNumbers(t) : undefined;
  }
  constant(name: string): Tensor | undefined {
    return this.view.constantOf(name);
  }

  error(msg: string): GraphError {
    return new GraphError(`gradient of ${this.node.opType} node '${this.node.name}': ${msg}`, {
      node: this.node.name,
      op: this.node.opType,
    });
  }

  /** Gives an optional forward output a name (LayerNorm's Mean, MaxPool's Indices, Dropout's mask) and returns it. */
  ensureOutput(i: number, base: string): string {
    while (this.node.outputs.length <= i) this.node.outputs.push('');
    if (!this.node.outputs[i])
      this.node.outputs[i] = this.b.uniqueName(`${this.node.name || this.node.opType}_${base}`);
    return this.node.outputs[i];
  }

  // ---- emitting ops ----
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: NodeOptions = {},
  ): string {
    return this.nodes(opType, inputs, attrs, opts)[0];
  }
  nodes(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: NodeOptions = {},
  ): string[] {
    return this.b.node(opType, inputs, attrs, {
      name: `${this.node.name || this.node.opType}_grad/${opType}`,
      ...opts,
    });
  }
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
  neg(a: string): string {
    return this.op('Neg', [a]);
  }

  /** A scalar constant in the node's float dtype (or the one given). */
  scalar(v: number, dtype: DType = this.dtype): string {
    if (dtype === 'float64') return this.b.constant('float64', Float64Array.of(v), [], 'grad_const');
    if (dtype === 'float32') return this.b.constant('float32', Float32Array.of(v), [], 'grad_const');
    return this.op('Cast', [this.b.constant('float32', Float32Array.of(v), [], 'grad_const')], {
      to: dtypeToOnnx(dtype),
    });
  }
  ints(values: readonly number[]): string {
    return this.b.ints(values);
  }

  /** The shape of a value as an int64 tensor: a constant when static, a Shape node otherwise. */
  shapeTensor(name: string): string {
    const s = this.view.typeOf(name)?.shape;
    if (isStaticShape(s)) return this.ints(s);
    return this.op('Shape', [name]);
  }

  /** Zeros with the shape and dtype of `like`. */
  zeros(like: string, dtype: DType = this.typeOf(like).dtype): string {
    return this.fill(this.shapeTensor(like), 0, dtype);
  }
  /** A tensor of the given shape (int64 tensor name) filled with v. */
  fill(shape: string, v: number, dtype: DType): string {
    const value =
      dtype === 'float64'
        ? tensorFromArray('value', 'float64', Float64Array.of(v), [1])
        : dtype === 'float32'
          ? tensorFromArray('value', 'float32', Float32Array.of(v), [1])
          : undefined;
    if (!value) throw this.error(`cannot make a ${dtype} fill constant`);
    return this.op('ConstantOfShape', [shape], { value });
  }

  reduceSum(x: string, axes: readonly number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    return this.op('ReduceSum', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reshape(x: string, shape: string): string {
    return this.op('Reshape', [x, shape]);
  }
  reshapeLike(x: string, like: string): string {
    const xs = this.view.typeOf(x)?.shape;
    const ls = this.view.typeOf(like)?.shape;
    if (xs && ls && xs.length === ls.length && xs.every((d, i) => d === ls[i])) return x;
    return this.reshape(x, this.shapeTensor(like));
  }

  /**
   * Sums `grad` (shaped like `outShape`, the broadcast result) down to the shape of `input`. Axes come from static
   * shapes (aligned from the right; an axis is reduced where the input lacks it or has 1 and the output does not).
   * Equal symbolic dims count as equal; where a dim cannot be decided statically, the axes are found at run time
   * from Shape(input) (every axis where the input has size 1), which is also correct.
   */
  unbroadcast(grad: string, input: string, outShape?: Shape): string {
    const inShape = this.view.typeOf(input)?.shape;
    const gShape = outShape ?? this.view.typeOf(grad)?.shape ?? this.view.typeOf(this.y(0))?.shape;
    if (!inShape || !gShape) throw this.error(`cannot undo broadcasting onto '${input}': unknown rank`);
    const lead = gShape.length - inShape.length;
    if (lead < 0) throw this.error(`gradient rank ${gShape.length} is below input '${input}' rank ${inShape.length}`);
    const axes: number[] = [];
    for (let i = 0; i < lead; i++) axes.push(i);
    let dynamic = false;
    for (let i = 0; i < inShape.length; i++) {
      const di = inShape[i];
      const dg = gShape[i + lead];
      if (di === dg) continue;
      if (di === 1) axes.push(i + lead);
      else dynamic = true;
    }
    if (!dynamic) {
      if (axes.length === 0) return grad;
      const summed = this.op('ReduceSum', [grad, this.ints(axes)], { keepdims: 1 });
      return lead === 0 ? summed : this.reshape(summed, this.shapeTensor(input));
    }
    let g = grad;
    if (lead > 0) g = this.op('ReduceSum', [g, this.ints(axes.filter((a) => a < lead))], { keepdims: 0 });
    const isOne = this.op('Equal', [this.op('Shape', [input]), this.ints([1])]);
    const dynAxes = this.reshape(this.op('NonZero', [isOne]), this.ints([-1]));
    g = this.op('ReduceSum', [g, dynAxes], { keepdims: 1, noop_with_empty_axes: 1 });
    return this.reshape(g, this.op('Shape', [input]));
  }

  /** Transpose of the last two axes. */
  transposeLast2(x: string, rank: number): string {
    const perm = Array.from({ length: rank }, (_, i) => i);
    perm[rank - 1] = rank - 2;
    perm[rank - 2] = rank - 1;
    return this.op('Transpose', [x], { perm });
  }
}

/** Normalises possibly negative axes against a rank. */
export function normAxes(axes: readonly number[], rank: number): number[] {
  return axes.map((a) => (a < 0 ? a + rank : a));
}
