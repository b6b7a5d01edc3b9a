/**
 * Tailor's library API: the product. The CLI and the server only call it.
 *
 * The whole loop is one call, and a model is one line from answers:
 *
 * @example
 * import { tailorModel, loadClassifier } from 'tailor';
 * const r = await tailorModel({ train: 'tickets.csv', textColumn: 'message', labelColumn: 'topic', out: './tickets' });
 * const clf = await loadClassifier(r.model.ref);
 * console.log(await clf.predict(['my card was charged twice']));
 *
 * Each area is also a namespace (`tailor.audit`, `tailor.customize`, `tailor.compress`, ...), so that names stay
 * short inside an area without colliding across areas.
 */
export * from './errors.ts';
export { VERSION } from './version.ts';
export * as util from './util/index.ts';
export * as onnx from './onnx/index.ts';
export * as runtime from './runtime/index.ts';
export * as autodiff from './autodiff/index.ts';
export * as data from './data/index.ts';
export * as evaluation from './eval/index.ts';
export * as train from './train/index.ts';
export * as models from './models/index.ts';
export * as customize from './customize/index.ts';
export * as compress from './compress/index.ts';
export * as audit from './audit/index.ts';
export * as registry from './registry/index.ts';
export * as workflow from './workflow/index.ts';
export * as serve from './serve/index.ts';
export * as monitor from './monitor/index.ts';
export * as jobs from './jobs/index.ts';

// The entry points most programs need, at the top level.
export {
  tailorModel,
  quantizeModel,
  distillModel,
  evaluateModel,
  mitigateModel,
  loadClassifier,
  type TailorOptions,
  type TailorResult,
} from './workflow/index.ts';
export { audit as auditModel, type AuditOptions, type AuditResult } from './audit/index.ts';
export { customize as customizeModel, saveCustomizedModel, STRATEGIES, type Strategy } from './customize/index.ts';
export { Classifier, storeAbstainRule, type Prediction } from './models/classifier.ts';
export { OUT_OF_SCOPE } from './eval/abstain.ts';
export { openRegistry } from './registry/index.ts';
export { Trainer, tensorData } from './train/trainer.ts';
