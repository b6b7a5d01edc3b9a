/** Quantization: pure Model -> Model transforms (dynamic INT8, static INT8 QDQ, weight-only INT4) and their report. */
export { quantizeDynamic, type DynamicFormat, type DynamicQuantizeOptions, type QuantizeResult } from './dynamic.ts';
export { quantizeStatic, uint8Params, type StaticQuantizeOptions, type StaticQuantizeResult } from './static.ts';
export { quantizeInt4, packInt4, unpackInt4, type Int4Options, type PackedInt4 } from './int4.ts';
export {
  calibrate,
  entropyThreshold,
  percentileThreshold,
  RangeObserver,
  type CalibrationMethod,
  type CalibrationOptions,
  type TensorRange,
} from './calibrate.ts';
export {
  quantizeEmbeddingTables,
  quantizePerChannelInt8,
  roundHalfEven,
  selectMatMuls,
  moduleOf,
  type MatMulSite,
  type ModulePattern,
  type QuantizedEmbedding,
  type QuantizedNode,
  type SelectOptions,
  type SkippedNode,
} from './common.ts';
export {
  formatQuantizationReport,
  layerErrors,
  quantizationReport,
  timeInterleaved,
  type EvalSet,
  type LayerError,
  type ModelSideFigures,
  type QuantizationReport,
  type QuantReportOptions,
} from './report.ts';
export {
  quantizeClassifier,
  quantizedTailorModel,
  QUANTIZE_MODES,
  type ClassifierQuantizeOptions,
  type ClassifierQuantizeResult,
  type QuantizeMode,
} from './classifier.ts';
