/**
 * ModelProto <-> Tailor IR, in memory. File handling (external data, atomic writes) lives in `io.ts`.
 * The protobuf code is `onnx-proto` (protobufjs static code generated from onnx.proto).
 */
import onnxProto from 'onnx-proto';
import { ModelFileError, TailorError } from '../errors.ts';
import { bytesPerElement, dtypeFromOnnx, dtypeToOnnx, type DType } from './dtype.ts';
import type { Attribute, ExternalLocation, Graph, ModelProto, Node, Shape, Tensor, ValueInfo } from './ir.ts';
import { numel } from './tensor.ts';

const { onnx } = onnxProto;
type LongLike = number | { toNumber(): number };

function toNum(v: LongLike | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

const utf8 = new TextDecoder();
const utf8Enc = new TextEncoder();

export interface DecodeOptions {
  /** Named in every error message. */
  file?: string;
  /** Resolves a tensor stored as external data to its bytes. Without it, external tensors are an error. */
  loadExternal?: (tensorName: string, loc: ExternalLocation) => Uint8Array;
}

/** Parses `.onnx` bytes into a ModelProto. Errors name the file and the tensor/node at fault. */
export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): ModelProto {
  const file = opts.file ?? '<memory>';
  if (bytes.byteLength === 0)
    throw new ModelFileError(`${file} is not a valid ONNX model: the file is empty`, { file });
  let proto: onnxProto.onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelFileError(
      `${file} is not a valid ONNX model (truncated or not protobuf: ${(e as Error).message})`,
      { file },
      { cause: e },
    );
  }
  // protobufjs skips unknown fields, so text or image bytes can "decode" into an almost empty message: require
  // what every real model has (IR version 3+ always carries opset imports).
  const irVersion = toNum(proto.irVersion as LongLike);
  if (!proto.graph) throw new ModelFileError(`${file} is not a valid ONNX model: it has no graph`, { file });
  if (!proto.opsetImport || proto.opsetImport.length === 0) {
    throw new ModelFileError(
      `${file} is not a valid ONNX model: it has no opset imports (truncated or not an ONNX file)`,
      { file },
    );
  }
  if (!Number.isInteger(irVersion) || irVersion < 3 || irVersion > MAX_IR_VERSION) {
    throw new ModelFileError(
      `${file} is not a valid ONNX model: IR version ${irVersion} is outside 3..${MAX_IR_VERSION}`,
      { file, value: String(irVersion) },
    );
  }
  const opsetImports = proto.opsetImport.map((o) => ({
    domain: o.domain === 'ai.onnx' ? '' : (o.domain ?? ''),
    version: toNum(o.version as LongLike),
  }));
  for (const o of opsetImports) {
    if (!Number.isInteger(o.version) || o.version < 1 || o.version > 10_000) {
      throw new ModelFileError(
        `${file} is not a valid ONNX model: opset import '${o.domain || 'ai.onnx'}' has version ${o.version}`,
        { file, value: String(o.version) },
      );
    }
  }
  const metadata: Record<string, string> = {};
  for (const p of proto.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  let graph: Graph;
  try {
    graph = decodeGraph(proto.graph, file, opts);
  } catch (e) {
    if (e instanceof TailorError) throw e;
    throw new ModelFileError(`${file}: could not decode the graph: ${(e as Error).message}`, { file }, { cause: e });
  }
  return {
    graph,
    opsetImports,
    irVersion,
    producerName: proto.producerName ?? '',
    producerVersion: proto.producerVersion ?? '',
    metadata,
    ...(proto.docString ? { docString: proto.docString } : {}),
  };
}

/** Highest ONNX IR version accepted (ONNX 1.18 writes 11; leave room for newer files). */
const MAX_IR_VERSION = 32;

function decodeGraph(g: onnxProto.onnx.IGraphProto, file: string, opts: DecodeOptions): Graph {
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) {
    const tensor = decodeTensor(t, file, opts);
    initializers.set(tensor.name, tensor);
  }
  const valueInfo = new Map<string, ValueInfo>();
  for (const v of g.valueInfo ?? []) {
    const vi = decodeValueInfo(v, file);
    if (vi) valueInfo.set(vi.name, vi);
  }
  const inputs: ValueInfo[] = [];
  for (const v of g.input ?? []) {
    const vi = decodeValueInfo(v, file);
    // Old exporters list initializers as graph inputs too; those are not user inputs.
    if (vi && !initializers.has(vi.name)) inputs.push(vi);
  }
  const outputs: ValueInfo[] = [];
  for (const v of g.output ?? []) {
    const vi = decodeValueInfo(v, file);
    if (vi) outputs.push(vi);
    else outputs.push({ name: v.name ?? '', dtype: 'float32' });
  }
  const nodes: Node[] = (g.node ?? []).map((n, i) => ({
    name: n.name || `${n.opType ?? 'node'}_${i}`,
    opType: n.opType ?? '',
    domain: n.domain === 'ai.onnx' ? '' : (n.domain ?? ''),
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attrs: decodeAttrs(n.attribute ?? [], file, n.name ?? '', opts),
  }));
  return {
    name: g.name ?? 'graph',
    nodes,
    inputs,
    outputs,
    initializers,
    valueInfo,
    ...(g.docString ? { docString: g.docString } : {}),
  };
}

function decodeAttrs(
  attrs: onnxProto.onnx.IAttributeProto[],
  file: string,
  node: string,
  opts: DecodeOptions,
): Record<string, Attribute> {
  const out: Record<string, Attribute> = {};
  const T = onnx.AttributeProto.AttributeType;
  for (const a of attrs) {
    const name = a.name ?? '';
    switch (a.type) {
      case T.INT:
        out[name] = { type: 'int', value: toNum(a.i as LongLike) };
        break;
      case T.FLOAT:
        out[name] = { type: 'float', value: a.f ?? 0 };
        break;
      case T.STRING:
        out[name] = { type: 'string', value: utf8.decode(a.s ?? new Uint8Array()) };
        break;
      case T.INTS:
        out[name] = { type: 'ints', value: (a.ints ?? []).map((v) => toNum(v as LongLike)) };
        break;
      case T.FLOATS:
        out[name] = { type: 'floats', value: [...(a.floats ?? [])] };
        break;
      case T.STRINGS:
        out[name] = { type: 'strings', value: (a.strings ?? []).map((s) => utf8.decode(s)) };
        break;
      case T.TENSOR:
        out[name] = { type: 'tensor', value: decodeTensor(a.t ?? {}, file, opts) };
        break;
      case T.GRAPH:
        out[name] = { type: 'graph', value: decodeGraph(a.g ?? {}, file, opts) };
        break;
      default:
        throw new ModelFileError(
          `${file}: node '${node}' has attribute '${name}' of unsupported type ${String(a.type)}`,
          { file, node, field: name },
        );
    }
  }
  return out;
}

function decodeValueInfo(v: onnxProto.onnx.IValueInfoProto, file: string): ValueInfo | undefined {
  const tt = v.type?.tensorType;
  if (!tt) return undefined;
  const dtype = dtypeFromOnnx(tt.elemType ?? 0);
  if (!dtype)
    throw new ModelFileError(`${file}: value '${v.name}' has unsupported element type ${tt.elemType}`, {
      file,
      field: v.name ?? '',
    });
  const vi: ValueInfo = { name: v.name ?? '', dtype };
  if (tt.shape) {
    vi.shape = (tt.shape.dim ?? []).map((d, i): Shape[number] =>
      // protobufjs sets only fields present on the wire as own properties; a dim with neither is unknown.
      d.dimParam
        ? d.dimParam
        : Object.prototype.hasOwnProperty.call(d, 'dimValue')
          ? toNum(d.dimValue as LongLike)
          : `${v.name}_d${i}`,
    );
  }
  return vi;
}

/** Decodes a TensorProto into raw little-endian bytes whatever field the writer used. */
export function decodeTensor(t: onnxProto.onnx.ITensorProto, file: string, opts: DecodeOptions = {}): Tensor {
  const name = t.name ?? '';
  const dtype = dtypeFromOnnx(t.dataType ?? 0);
  if (!dtype) {
    throw new ModelFileError(`${file}: tensor '${name}' has unsupported data type ${t.dataType}`, {
      file,
      field: name,
      value: String(t.dataType),
    });
  }
  const dims = (t.dims ?? []).map((d) => toNum(d as LongLike));
  if (dims.some((d) => d < 0 || !Number.isFinite(d))) {
    throw new ModelFileError(`${file}: tensor '${name}' has invalid dims [${dims.join(', ')}]`, { file, field: name });
  }
  const n = numel(dims);
  const bpe = bytesPerElement(dtype);
  if (dtype === 'string') {
    return { name, dtype, dims, data: new Uint8Array(), strings: (t.stringData ?? []).map((s) => utf8.decode(s)) };
  }
  let data: Uint8Array;
  let external: ExternalLocation | undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    if (!location)
      throw new ModelFileError(`${file}: external tensor '${name}' has no 'location' entry`, { file, field: name });
    external = { location, offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length') ?? n * bpe) };
    for (const key of ['offset', 'length'] as const) {
      const v = external[key];
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new ModelFileError(`${file}: external tensor '${name}' has invalid ${key} '${kv.get(key)}'`, {
          file,
          field: name,
          value: kv.get(key),
        });
      }
    }
    if (!opts.loadExternal) {
      throw new ModelFileError(
        `${file}: tensor '${name}' is stored in external file '${location}'; load the model from a file path so the data can be found`,
        { file, field: name },
      );
    }
    data = opts.loadExternal(name, external);
  } else if (t.rawData && t.rawData.length > 0) {
    data = t.rawData;
  } else {
    data = fieldDataToBytes(t, dtype, n);
  }
  if (data.byteLength !== n * bpe) {
    throw new ModelFileError(
      `${file}: tensor '${name}' (${dtype}[${dims.join(', ')}]) should hold ${n * bpe} bytes but has ${data.byteLength}`,
      { file, field: name, details: { expected: n * bpe, found: data.byteLength } },
    );
  }
  return { name, dtype, dims, data, ...(external ? { external } : {}) };
}

/** Typed fields (float_data, int64_data, ...) to raw bytes, following onnx.proto's packing rules. */
function fieldDataToBytes(t: onnxProto.onnx.ITensorProto, dtype: DType, n: number): Uint8Array {
  const out = new Uint8Array(n * bytesPerElement(dtype));
  const view = new DataView(out.buffer);
  const count = (len: number): number => Math.min(len, n);
  switch (dtype) {
    case 'float32': {
      const f = t.floatData ?? [];
      for (let i = 0; i < count(f.length); i++) view.setFloat32(i * 4, f[i], true);
      break;
    }
    case 'float64': {
      const f = t.doubleData ?? [];
      for (let i = 0; i < count(f.length); i++) view.setFloat64(i * 8, f[i], true);
      break;
    }
    case 'int64': {
      const f = t.int64Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setBigInt64(i * 8, BigInt(toNum(f[i] as LongLike)), true);
      break;
    }
    case 'uint64': {
      const f = t.uint64Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setBigUint64(i * 8, BigInt(toNum(f[i] as LongLike)), true);
      break;
    }
    case 'uint32': {
      const f = t.uint64Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setUint32(i * 4, toNum(f[i] as LongLike), true);
      break;
    }
    case 'int32': {
      const f = t.int32Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setInt32(i * 4, f[i], true);
      break;
    }
    // int32_data carries the small integer types and the 16-bit float bit patterns, one per entry.
    case 'int16': {
      const f = t.int32Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setInt16(i * 2, f[i], true);
      break;
    }
    case 'uint16':
    case 'float16':
    case 'bfloat16': {
      const f = t.int32Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setUint16(i * 2, f[i], true);
      break;
    }
    case 'int8': {
      const f = t.int32Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setInt8(i, f[i]);
      break;
    }
    case 'uint8':
    case 'bool': {
      const f = t.int32Data ?? [];
      for (let i = 0; i < count(f.length); i++) view.setUint8(i, f[i]);
      break;
    }
    case 'string':
      break;
  }
  return out;
}

export interface EncodeOptions {
  /**
   * Called for each initializer; returning a location stores the tensor as external data there instead of
   * inline (the writer in io.ts decides the file and offsets).
   */
  externalize?: (t: Tensor) => ExternalLocation | undefined;
}

/** Encodes a ModelProto to `.onnx` bytes. */
export function encodeModel(model: ModelProto, opts: EncodeOptions = {}): Uint8Array {
  const proto: onnxProto.onnx.IModelProto = {
    irVersion: model.irVersion,
    opsetImport: model.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    graph: encodeGraph(model.graph, opts),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    ...(model.docString ? { docString: model.docString } : {}),
  };
  return onnx.ModelProto.encode(proto).finish();
}

function encodeGraph(g: Graph, opts: EncodeOptions): onnxProto.onnx.IGraphProto {
  return {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.attrs).map(([name, a]) => encodeAttr(name, a, opts)),
    })),
    initializer: [...g.initializers.values()].map((t) => encodeTensor(t, opts.externalize?.(t))),
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    valueInfo: [...g.valueInfo.values()].map(encodeValueInfo),
    ...(g.docString ? { docString: g.docString } : {}),
  };
}

function encodeAttr(name: string, a: Attribute, opts: EncodeOptions): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'string':
      return { name, type: T.STRING, s: utf8Enc.encode(a.value) };
    case 'ints':
      return { name, type: T.INTS, ints: a.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.value };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => utf8Enc.encode(s)) };
    case 'tensor':
      return { name, type: T.TENSOR, t: encodeTensor(a.value) };
    case 'graph':
      return { name, type: T.GRAPH, g: encodeGraph(a.value, opts) };
  }
}

export function encodeTensor(t: Tensor, external?: ExternalLocation): onnxProto.onnx.ITensorProto {
  const base: onnxProto.onnx.ITensorProto = { name: t.name, dataType: dtypeToOnnx(t.dtype), dims: t.dims };
  if (t.dtype === 'string') return { ...base, stringData: (t.strings ?? []).map((s) => utf8Enc.encode(s)) };
  if (external) {
    return {
      ...base,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: external.location },
        { key: 'offset', value: String(external.offset) },
        { key: 'length', value: String(external.length) },
      ],
    };
  }
  return { ...base, rawData: t.data };
}

function encodeValueInfo(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: dtypeToOnnx(v.dtype),
        ...(v.shape
          ? { shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } }
          : {}),
      },
    },
  };
}
