/** Customization: the strategy table, `customize`, LoRA/IA3 transforms, PEFT-format adapters, saving a result. */
export {
  customize,
  selectionKey,
  labelIds,
  type CalibrationReport,
  type CustomizeReport,
  type CustomizeResult,
  type ValidationScore,
} from './customize.ts';
export type {
  BodyPhaseData,
  BodyPhaseReport,
  CustomizeData,
  CustomizeOptions,
  EpochReport,
  LabeledText,
  PreparedModel,
  SetFitOptions,
  StrategyArtifacts,
  StrategyDef,
} from './types.ts';
export {
  STRATEGIES,
  STRATEGY_TABLE,
  strategyDef,
  layerDecayScales,
  reinitialize,
  topLayersTrainable,
  type Strategy,
} from './strategies/index.ts';
export {
  contrastiveTune,
  pairBatches,
  pairCosineLoss,
  pairCosines,
  samplePairs,
  type ContrastiveOptions,
  type PairCosines,
  type PairSet,
} from './setfit.ts';
export { SETFIT_DEFAULTS, setfitOptions } from './strategies/setfit.ts';
export { compareStrategies, formatComparison, type ComparisonRow } from './compare.ts';
export {
  initLoraA,
  injectLora,
  loraAName,
  loraBName,
  loraScaling,
  loraWeightsOf,
  mergeLora,
  unmergeLora,
} from './lora.ts';
export type { LoraBinding, LoraOptions, LoraSpec, LoraWeights, MergedModel } from './lora.ts';
export { AdapterHost, applyAdapter, mergeAdapter } from './adapters.ts';
export {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  adapterHeadSpec,
  adapterScaling,
  adapterTensors,
  checkAdapterBase,
  loadAdapter,
  peftConfig,
  saveAdapter,
  savedHeadKind,
  TAILOR_JSON,
} from './peft.ts';
export type { AdapterHead, LoraAdapter, PeftLoraConfig } from './peft.ts';
export { baseHash, baseId, dataFingerprint, isBaseParam, makeLineage, type Lineage } from './lineage.ts';
export {
  describeSpec,
  linearSites,
  peftModuleNames,
  peftTargetModules,
  selectSites,
  targetMatches,
  weightModules,
  type LinearSite,
  type PeftModuleNames,
  type TargetKind,
  type TargetSpec,
} from './sites.ts';
export {
  applyIa3Adapter,
  IA3_DEFAULT_FEEDFORWARD,
  IA3_DEFAULT_TARGETS,
  ia3Adapter,
  ia3AdapterTensors,
  ia3Name,
  ia3VectorsOf,
  injectIa3,
  loadIa3Adapter,
  mergeIa3,
  saveIa3Adapter,
} from './ia3.ts';
export type { Ia3Adapter, Ia3Options, Ia3Site, Ia3Spec, PeftIa3Config } from './ia3.ts';
export { mergedModel, saveCustomizedModel, type SavedModel, type SaveModelOptions } from './save.ts';
export {
  customizeTrials,
  defaultCandidates,
  describeConfig,
  fixCandidates,
  formatSearch,
  formatSearchTrials,
  halvingSchedule,
  orderCandidates,
  runSearch,
  searchCustomize,
  searchReport,
  stratifiedRows,
  type Rung,
  type ScheduleOptions,
  type SearchConfig,
  type SearchOptions,
  type SearchReport,
  type SearchResult,
  type SharedTrialOptions,
  type TrialOutcome,
  type TrialPlan,
  type TrialRecord,
  type TrialRunner,
} from './search.ts';
