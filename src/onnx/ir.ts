/**
 * Tailor's in-memory ONNX graph. Plain data (no classes) so that graph transforms can be pure functions
 * `Graph -> Graph` that copy what they change and share the rest (tensor bytes are never copied by a transform).
 */
import type { DType } from './dtype.ts';

/** A dimension: a fixed size, or a symbolic name (`batch`, `seq`) bound when a graph is specialised. */
export type Dim = number | string;
export type Shape = Dim[];

export interface ValueInfo {
  name: string;
  dtype: DType;
  /** undefined: rank unknown. */
  shape?: Shape;
}

/** Where an initializer's bytes live on disk when it is stored as ONNX external data. */
export interface ExternalLocation {
  location: string;
  offset: number;
  length: number;
}

/**
 * A constant tensor. `data` holds little-endian raw bytes exactly as ONNX `raw_data` lays them out, so a read ->
 * write round trip is byte-identical; `strings` is used instead for string tensors.
 */
export interface Tensor {
  name: string;
  dtype: DType;
  dims: number[];
  data: Uint8Array;
  strings?: string[];
  /** Set when the tensor was read from external data; writers may keep the same layout. */
  external?: ExternalLocation;
}

export type Attribute =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: Graph };

export interface Node {
  name: string;
  opType: string;
  /** '' is the default ONNX domain; 'com.microsoft' for ORT contrib ops. */
  domain: string;
  /** '' marks an omitted optional input/output. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attribute>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Types/shapes of intermediate values (filled by shape inference or read from the file). */
  valueInfo: Map<string, ValueInfo>;
  docString?: string;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface ModelProto {
  graph: Graph;
  opsetImports: OpsetImport[];
  irVersion: number;
  producerName: string;
  producerVersion: string;
  /** ONNX metadata_props. */
  metadata: Record<string, string>;
  docString?: string;
}

/** The opset every graph Tailor builds targets (LayerNormalization-17, ReduceSum/Squeeze axes as inputs). */
export const DEFAULT_OPSET = 17;
/** IR version that matches opset 17 (ONNX 1.12). */
export const DEFAULT_IR_VERSION = 8;

export function emptyGraph(name = 'graph'): Graph {
  return { name, nodes: [], inputs: [], outputs: [], initializers: new Map(), valueInfo: new Map() };
}

export function modelFromGraph(graph: Graph, extraOpsets: OpsetImport[] = []): ModelProto {
  const opsets: OpsetImport[] = [{ domain: '', version: DEFAULT_OPSET }];
  for (const o of extraOpsets) if (!opsets.some((p) => p.domain === o.domain)) opsets.push(o);
  if (graph.nodes.some((n) => n.domain === 'com.microsoft') && !opsets.some((o) => o.domain === 'com.microsoft')) {
    opsets.push({ domain: 'com.microsoft', version: 1 });
  }
  return {
    graph,
    opsetImports: opsets,
    irVersion: DEFAULT_IR_VERSION,
    producerName: 'tailor',
    producerVersion: '0.1.0',
    metadata: {},
  };
}

/** Shallow copy of a graph whose arrays and maps can be changed without touching the original. */
export function cloneGraph(g: Graph): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
    inputs: g.inputs.map((v) => ({ ...v })),
    outputs: g.outputs.map((v) => ({ ...v })),
    initializers: new Map(g.initializers),
    valueInfo: new Map(g.valueInfo),
  };
}
