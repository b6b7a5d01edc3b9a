/** Compression: INT8/INT4 quantization and knowledge distillation of classifiers, each with a measured report. */
export * as quantize from './quantize/index.ts';
export * as distill from './distill/index.ts';
export { quantizeClassifier, formatQuantizationReport, type QuantizationReport } from './quantize/index.ts';
export { distillTextClassifier, formatDistillationReport, type DistillationReport } from './distill/index.ts';
