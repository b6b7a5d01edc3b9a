/**
 * Conversions between Tailor Tensors (raw little-endian bytes) and ONNX Runtime tensors. Both directions share
 * memory when the bytes are aligned for the element type, so feeding weights or reading outputs copies nothing.
 */
import * as ort from 'onnxruntime-node';
import { RuntimeError } from '../errors.ts';
import type { DType, TypedArray } from '../onnx/dtype.ts';
import type { Tensor } from '../onnx/ir.ts';
import { tensorToArray } from '../onnx/tensor.ts';

/** The dtypes ONNX Runtime's JavaScript API can hold. */
type OrtDType = Exclude<DType, 'bfloat16'>;

function isOrtDType(d: DType): d is OrtDType {
  return d !== 'bfloat16';
}

/** A Tailor Tensor as an ORT tensor, viewing the same bytes when they are aligned (copying only otherwise). */
export function toOrt(t: Tensor): ort.Tensor {
  if (!isOrtDType(t.dtype)) {
    throw new RuntimeError(
      `tensor '${t.name}': ONNX Runtime's JavaScript API has no ${t.dtype} tensors; cast it to float32 first`,
      { field: t.name },
    );
  }
  if (t.dtype === 'string') return new ort.Tensor('string', t.strings ?? [], t.dims);
  let data: TypedArray;
  try {
    data = tensorToArray(t);
  } catch (e) {
    throw new RuntimeError(`tensor '${t.name}': ${(e as Error).message}`, { field: t.name }, { cause: e });
  }
  // ORT wants bool data as Uint8Array and float16 as Uint16Array bits, which is what tensorToArray gives.
  return new ort.Tensor(t.dtype, data as never, t.dims);
}

/** An ORT tensor as a Tailor Tensor named `name`; `data` views the ORT tensor's buffer (no copy). */
export function fromOrt(t: ort.Tensor, name: string): Tensor {
  const dtype = t.type as string;
  if (dtype === 'string')
    return { name, dtype: 'string', dims: [...t.dims], data: new Uint8Array(), strings: [...(t.data as string[])] };
  if (!KNOWN.has(dtype))
    throw new RuntimeError(`output '${name}' has ORT type ${dtype}, which Tailor does not handle`, { field: name });
  const d = t.data as TypedArray;
  return { name, dtype: dtype as DType, dims: [...t.dims], data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) };
}

const KNOWN = new Set<string>([
  'float32',
  'float16',
  'float64',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
]);

/** An ORT tensor from a typed array, with the dtype checked against the array type. */
export function ortTensor(dtype: OrtDType, data: TypedArray, dims: readonly number[]): ort.Tensor {
  return toOrt({
    name: 'tensor',
    dtype,
    dims: [...dims],
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}
