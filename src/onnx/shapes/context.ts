/**
 * What one op's inference function sees: the node, the types of its inputs, any known values of small integer
 * inputs (shape-computation tensors, possibly with symbolic entries), and helpers to read attributes and fail
 * with a ShapeError that names the node, the op and the shapes at fault.
 */
import { ShapeError } from '../../errors.ts';
import type { DType } from '../dtype.ts';
import type { Attribute, Dim, Node, Shape, Tensor } from '../ir.ts';
import { canon, formatShape } from './dims.ts';

/** The inferred type of one output; `known` holds its elements when they could be computed (row-major). */
export interface OutType {
  dtype: DType;
  /** undefined: rank unknown. */
  shape?: Shape;
  known?: Dim[];
  /** A constant tensor whose value is fully known (Constant nodes), for ops that need non-integer values. */
  tensor?: Tensor;
}

/** The type of one input; undefined for an omitted optional input (''). */
export interface InType {
  name: string;
  dtype: DType;
  shape?: Shape;
  known?: Dim[];
  tensor?: Tensor;
}

/** One op's inference: returns one entry per node output (omitted outputs may get any entry). */
export type InferFn = (ctx: InferContext) => OutType[];

export class InferContext {
  private freshCount: { n: number };

  constructor(
    readonly node: Node,
    readonly inputs: (InType | undefined)[],
    fresh: { n: number },
  ) {
    this.freshCount = fresh;
  }

  get op(): string {
    return this.node.domain ? `${this.node.domain}.${this.node.opType}` : this.node.opType;
  }

  /** Throws a ShapeError: `<Op> node '<name>': <message>`. */
  fail(message: string, details?: Record<string, unknown>): never {
    throw new ShapeError(`${this.node.opType} node '${this.node.name}': ${message}`, {
      node: this.node.name,
      op: this.node.opType,
      ...(details ? { details } : {}),
    });
  }

  /** Input i, which must be present and have a known rank. */
  in(i: number): InType & { shape: Shape } {
    const v = this.inputs[i];
    if (!v) this.fail(`input ${i} is missing`);
    if (!v.shape) this.fail(`input ${i} ('${v.name}') has unknown rank`);
    return v as InType & { shape: Shape };
  }

  /** Input i if present (may have unknown rank). */
  opt(i: number): InType | undefined {
    return this.inputs[i];
  }

  has(i: number): boolean {
    return this.inputs[i] !== undefined;
  }

  attr(name: string): Attribute | undefined {
    return this.node.attrs[name];
  }

  int(name: string, def: number): number {
    const a = this.node.attrs[name];
    if (!a) return def;
    if (a.type !== 'int') this.fail(`attribute '${name}' must be an int, got ${a.type}`);
    return a.value;
  }

  float(name: string, def: number): number {
    const a = this.node.attrs[name];
    if (!a) return def;
    if (a.type !== 'float' && a.type !== 'int') this.fail(`attribute '${name}' must be a float, got ${a.type}`);
    return a.value;
  }

  ints(name: string): number[] | undefined {
    const a = this.node.attrs[name];
    if (!a) return undefined;
    if (a.type !== 'ints') this.fail(`attribute '${name}' must be ints, got ${a.type}`);
    return a.value;
  }

  str(name: string, def: string): string {
    const a = this.node.attrs[name];
    if (!a) return def;
    if (a.type !== 'string') this.fail(`attribute '${name}' must be a string, got ${a.type}`);
    return a.value;
  }

  /** Known values of an input, as numbers; undefined when not known or some entry is symbolic. */
  numbers(i: number): number[] | undefined {
    const k = this.inputs[i]?.known;
    if (!k || !k.every((d) => typeof d === 'number')) return undefined;
    return k as number[];
  }

  /** Known values of an input (entries may be symbolic); undefined when not known. */
  known(i: number): Dim[] | undefined {
    return this.inputs[i]?.known;
  }

  /** Axes from an input (opset 13+ form) or, failing that, from the attribute (older opsets). */
  axesFrom(inputIndex: number, attrName = 'axes'): number[] | undefined | 'unknown' {
    if (this.has(inputIndex)) {
      const v = this.numbers(inputIndex);
      return v ?? 'unknown';
    }
    return this.ints(attrName);
  }

  /** Normalises a possibly negative axis against a rank, failing with the node named when out of range. */
  axis(a: number, rank: number, what = 'axis'): number {
    if (a < -rank || a >= rank) this.fail(`${what} ${a} is out of range for rank ${rank}`);
    return a < 0 ? a + rank : a;
  }

  /** A new symbol for a dim that cannot be expressed from the inputs' symbols. */
  fresh(): string {
    this.freshCount.n += 1;
    return `${this.node.opType.toLowerCase()}_dim_${this.freshCount.n}`;
  }

  shapeStr(s: Shape | undefined): string {
    return formatShape(s?.map(canon));
  }
}
