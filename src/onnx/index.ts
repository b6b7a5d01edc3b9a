/** ONNX graphs: IR, builder, shape inference, serialization, files, safetensors. */
export * from './dtype.ts';
export * from './ir.ts';
export * from './tensor.ts';
export { GraphBuilder, modulePathToNodePrefix } from './builder.ts';
export type { AttrInput, NodeOptions } from './builder.ts';
export { decodeModel, encodeModel } from './serialize.ts';
export { readModel, readModelSync, writeModel, writeFileAtomic } from './io.ts';
export type { ReadModelOptions, WriteModelOptions, WriteModelResult, ExternalDataOptions } from './io.ts';
export {
  consumerMap,
  extractSubgraph,
  producerMap,
  pruneDead,
  renameValue,
  topoOrder,
  topoSort,
  typeOf,
  uniqueName,
  validateModel,
} from './graph.ts';
export {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  readSafetensorsSync,
  writeSafetensors,
} from './safetensors.ts';
export type { SafetensorsFile } from './safetensors.ts';
export { inferShapes, specialize, staticShape, valueType } from './shapes/index.ts';
