/** Helpers between Tailor tensors (raw little-endian bytes) and JavaScript typed arrays. */
import { bytesPerElement, typedArrayFor, type DType, type TypedArray } from './dtype.ts';
import type { Tensor } from './ir.ts';

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Wraps a typed array's bytes as a tensor without copying. */
export function tensorFromArray(name: string, dtype: DType, values: TypedArray, dims: number[]): Tensor {
  if (values.length !== numel(dims)) {
    throw new RangeError(`tensor '${name}': ${values.length} values do not fill shape [${dims.join(', ')}]`);
  }
  return { name, dtype, dims: [...dims], data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

export function float32Tensor(name: string, values: ArrayLike<number>, dims: number[]): Tensor {
  return tensorFromArray(name, 'float32', Float32Array.from(values), dims);
}

export function int64Tensor(name: string, values: ArrayLike<number | bigint>, dims: number[]): Tensor {
  const arr = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) arr[i] = BigInt(values[i]);
  return tensorFromArray(name, 'int64', arr, dims);
}

/**
 * A typed-array view of the tensor's bytes; copies only when the bytes are not aligned for the element type
 * (protobuf decoding hands out unaligned sub-arrays of the file buffer).
 */
export function tensorToArray(t: Tensor): TypedArray {
  const bpe = bytesPerElement(t.dtype);
  const n = numel(t.dims);
  if (t.data.byteLength !== n * bpe) {
    throw new RangeError(
      `tensor '${t.name}': ${t.data.byteLength} bytes, expected ${n * bpe} for ${t.dtype}[${t.dims.join(', ')}]`,
    );
  }
  if (t.data.byteOffset % (bpe || 1) === 0) return typedArrayFor(t.dtype, t.data.buffer, t.data.byteOffset, n);
  const copy = new Uint8Array(t.data.byteLength);
  copy.set(t.data);
  return typedArrayFor(t.dtype, copy.buffer, 0, n);
}

/** Numbers out of any numeric tensor (int64 converted with Number()). */
export function tensorToNumbers(t: Tensor): number[] {
  const a = tensorToArray(t);
  return Array.from(a as ArrayLike<number | bigint>, (v) => Number(v));
}

/** A transposed copy of a row-major [rows, cols] matrix ([cols, rows], same array type). */
export function transpose2d<T extends TypedArray>(src: T, rows: number, cols: number): T {
  const out = new (src.constructor as new (n: number) => T)(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}
