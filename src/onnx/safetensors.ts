/**
 * Hugging Face's safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}` padded with spaces to a multiple
 * of 8, then the tensors' little-endian row-major bytes (offsets relative to the end of the header).
 * Tensors map to Tailor Tensors whose `data` views the file's bytes (no copy on read).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { ModelFileError } from '../errors.ts';
import { bytesPerElement, type DType } from './dtype.ts';
import type { Tensor } from './ir.ts';
import { numel } from './tensor.ts';
import { writeFileAtomic } from './io.ts';

/** safetensors dtype codes <-> Tailor dtypes. */
const FROM_ST: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U64: 'uint64',
  U32: 'uint32',
  U16: 'uint16',
  U8: 'uint8',
  BOOL: 'bool',
};
const TO_ST = new Map<DType, string>(Object.entries(FROM_ST).map(([k, v]) => [v, k]));

/** The reference implementation refuses headers above 100 MB; so do we (a garbage length must not allocate GBs). */
const MAX_HEADER = 100_000_000;

export interface SafetensorsFile {
  /** Tensors in file order (by data offset). */
  tensors: Map<string, Tensor>;
  /** The `__metadata__` string map ({} when absent). */
  metadata: Record<string, string>;
}

/** Parses safetensors bytes. Errors are ModelFileErrors naming `file` and the tensor at fault. */
export function parseSafetensors(bytes: Uint8Array, file = '<memory>'): SafetensorsFile {
  const fail = (msg: string, field?: string): ModelFileError =>
    new ModelFileError(`${file}: ${field !== undefined ? `tensor '${field}': ` : ''}${msg}`, {
      file,
      ...(field !== undefined ? { field } : {}),
    });
  if (bytes.byteLength < 8)
    throw fail(`not a safetensors file: ${bytes.byteLength} bytes is shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > bytes.byteLength) {
    throw fail(`not a safetensors file (or truncated): header length ${n} does not fit in ${bytes.byteLength} bytes`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw fail(`not a safetensors file: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw fail('header JSON is not an object');
  const data = bytes.subarray(8 + n);
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: DType; dims: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw fail(`__metadata__ entry '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null) throw fail('entry is not an object', name);
    const {
      dtype: st,
      shape,
      data_offsets: offs,
    } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof st === 'string' ? FROM_ST[st] : undefined;
    if (!dtype)
      throw fail(`unsupported dtype ${JSON.stringify(st)} (supported: ${Object.keys(FROM_ST).join(', ')})`, name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw fail(`invalid shape ${JSON.stringify(shape)}`, name);
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[0] > offs[1]
    ) {
      throw fail(`invalid data_offsets ${JSON.stringify(offs)}`, name);
    }
    const [begin, end] = offs as [number, number];
    if (end > data.byteLength)
      throw fail(
        `data_offsets [${begin}, ${end}] run past the end of the data (${data.byteLength} bytes; file truncated?)`,
        name,
      );
    const dims = shape as number[];
    const expected = numel(dims) * bytesPerElement(dtype);
    if (end - begin !== expected) {
      throw fail(
        `${st}[${dims.join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
        name,
      );
    }
    entries.push({ name, dtype, dims, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    const p = entries[i - 1],
      c = entries[i];
    // Zero-size tensors occupy no bytes and cannot overlap anything.
    if (c.begin < p.end && c.end > c.begin) {
      throw fail(`data_offsets [${c.begin}, ${c.end}] overlap tensor '${p.name}' [${p.begin}, ${p.end}]`, c.name);
    }
  }
  const tensors = new Map<string, Tensor>();
  for (const e of entries)
    tensors.set(e.name, { name: e.name, dtype: e.dtype, dims: e.dims, data: data.subarray(e.begin, e.end) });
  return { tensors, metadata };
}

/** Reads a `.safetensors` file. */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    throw new ModelFileError(`cannot read safetensors file ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseSafetensors(bytes, file);
}

/** Synchronous form of `readSafetensors`. */
export function readSafetensorsSync(file: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new ModelFileError(`cannot read safetensors file ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseSafetensors(bytes, file);
}

/**
 * Encodes tensors as safetensors bytes. Like the reference writer, tensors are laid out by decreasing element size
 * then name, so every tensor starts aligned for its type.
 */
export function encodeSafetensors(
  tensors: Iterable<Tensor> | Map<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const list = [...(tensors instanceof Map ? tensors.values() : tensors)];
  const names = new Set<string>();
  for (const t of list) {
    if (t.name === '__metadata__')
      throw new ModelFileError(`a tensor cannot be named '__metadata__' in safetensors`, { field: t.name });
    if (names.has(t.name)) throw new ModelFileError(`duplicate tensor name '${t.name}'`, { field: t.name });
    names.add(t.name);
    if (!TO_ST.has(t.dtype))
      throw new ModelFileError(`tensor '${t.name}': dtype ${t.dtype} has no safetensors form`, { field: t.name });
    const expected = numel(t.dims) * bytesPerElement(t.dtype);
    if (t.data.byteLength !== expected) {
      throw new ModelFileError(
        `tensor '${t.name}' (${t.dtype}[${t.dims.join(', ')}]) should hold ${expected} bytes but has ${t.data.byteLength}`,
        { field: t.name },
      );
    }
  }
  list.sort(
    (a, b) => bytesPerElement(b.dtype) - bytesPerElement(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of list) {
    header[t.name] = { dtype: TO_ST.get(t.dtype), shape: t.dims, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + padded);
  let pos = 8 + padded;
  for (const t of list) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Writes tensors to a `.safetensors` file atomically (temp file + rename). */
export async function writeSafetensors(
  file: string,
  tensors: Iterable<Tensor> | Map<string, Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = encodeSafetensors(tensors, metadata);
  } catch (e) {
    if (e instanceof ModelFileError)
      throw new ModelFileError(`${file}: ${e.message}`, { ...e.context, file }, { cause: e });
    throw e;
  }
  await writeFileAtomic(file, bytes);
}
