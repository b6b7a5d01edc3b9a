/** Knowledge distillation: the training loop (core.ts), text classifiers end to end (classifier.ts), reports. */
export * from './core.ts';
export { distillTextClassifier, type TextDistillOptions, type TextDistillResult } from './classifier.ts';
export { inheritTeacherWeights, teacherShape, type TeacherShape } from './inherit.ts';
export {
  distillationReport,
  formatDistillationReport,
  type DistillationReport,
  type DistillReportOptions,
  type DistillSide,
} from './report.ts';
