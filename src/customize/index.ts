/** Customization strategies, LoRA transforms and PEFT-format adapters. */
export {
  ALL_STRATEGIES,
  customize,
  DEFAULT_LR,
  selectionKey,
  WARM_START_DEFAULT,
  encodeTexts,
  labelIds,
  layerDecayScales,
  layerIndex,
  lrScaleReparam,
  reinitialize,
  RssSampler,
  STRATEGIES,
  topLayersTrainable,
} from './customize.ts';
export type {
  CustomizeData,
  CustomizeOptions,
  CustomizeReport,
  CustomizeResult,
  EpochReport,
  LabeledText,
  Strategy,
} from './customize.ts';
export { compareStrategies, formatComparison, type ComparisonRow } from './compare.ts';
export {
  attachHead,
  bodyGraph,
  featureValue,
  featureWidth,
  headGraph,
  HEAD_BIAS,
  HEAD_WEIGHT,
  LOGITS,
  type HeadSpec,
} from './head.ts';
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
  adapterScaling,
  adapterTensors,
  checkAdapterBase,
  loadAdapter,
  peftConfig,
  saveAdapter,
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
export { fitWarmHead, type WarmHead, type WarmHeadOptions } from './warmstart.ts';
export {
  assertFreshOut,
  loadArtifact,
  saveCustomizedModel,
  TAILOR_ARTIFACT,
  writeClassifier,
  writeFolderAtomic,
  type ArtifactInfo,
  type SaveModelOptions,
} from './artifact.ts';
