/** The product's workflows: one call each from files and references to registered, measured models. */
export {
  tailorModel,
  recommendedSearch,
  DEFAULT_SEARCH_BUDGET_SECONDS,
  STRATEGY_CHOICES,
  type TailorOptions,
  type TailorResult,
  type WorkflowProgress,
} from './tailor.ts';
export type { StrategyChoice } from './strategies.ts';
export { quantizeModel, distillModel, type QuantizeModelOptions, type DistillModelOptions } from './compress.ts';
export { evaluateModel, type EvaluateModelOptions, type EvaluateModelResult } from './evaluate.ts';
export { mitigateModel, type MitigateModelOptions, type MitigateModelResult } from './mitigate.ts';
export { loadClassifier } from './classifier.ts';
export { outOfScopeReport, type TailorAbstainOptions } from './oos.ts';
export {
  resolveModelRef,
  openExistingRegistry,
  withRegistry,
  readTexts,
  readLabelled,
  registerDerived,
  type LoadedModelRef,
} from './sources.ts';
