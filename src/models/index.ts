/** Public API of models/: the Model type, the zoo, swappable modules, Hugging Face import/export and `--base` resolution. */
export * from './model.ts';
export {
  buildBert,
  bertConfig,
  parseBertConfig,
  configLabels,
  taskFromArchitectures,
  type BertConfig,
  type BertTask,
  type BuildBertOptions,
  type HiddenAct,
} from './zoo/bert.ts';
export { buildMlp, mlpConfig, type MlpConfig, type BuildOptions } from './zoo/mlp.ts';
export { buildCnn, cnnConfig, type CnnConfig, type CnnStage } from './zoo/cnn.ts';
export { weightsFrom, type WeightSource } from './zoo/params.ts';
export { replaceHead, dropLayers, keepLayers, addLayers, type HeadOptions } from './modules.ts';
export { layerScopes, removeLayers, pruneFfn, type RemoveLayersOptions } from './layers.ts';
export {
  TextTokenizer,
  type BatchEncoding,
  type EncodeOptions,
  type Encoded,
  type TokenizerKind,
} from './hf/tokenizer.ts';
export { wordPieceTokenizerJson, wordPieceTokenizerConfig, bpeTokenizerJson } from './hf/tokenizer-json.ts';
export {
  loadHfModel,
  saveHfModel,
  readHfConfig,
  stateDict,
  hfConfigFor,
  appendMeanPooling,
  type LoadHfOptions,
  type SaveHfOptions,
} from './hf/load.ts';
export { recoverParams, nodeNameToModulePath, isStateDictName } from './hf/names.ts';
export { toOptimumOnnx } from './hf/export.ts';
export {
  loadBase,
  classifyBase,
  downloadHubModel,
  loadOnnxFile,
  hubCacheDir,
  DEFAULT_BASE,
  type ResolveOptions,
  type ResolvedBase,
  type BaseKind,
} from './resolve.ts';
export {
  attachHead,
  bodyGraph,
  featureValue,
  featureWidth,
  headGraph,
  headKind,
  headLayout,
  HEAD_BIAS,
  HEAD_KIND_NAMES,
  HEAD_KINDS,
  HEAD_WEIGHT,
  LOGITS,
  warmHeadValues,
  withHeadValues,
  type HeadKind,
  type HeadLayout,
  type HeadSpec,
} from './head.ts';
export {
  DEFAULT_MAX_LENGTH,
  encodeTextBatch,
  textFeeds,
  runTexts,
  featureSession,
  textFeatures,
  predictTexts,
  argmaxRows,
  type RunTextOptions,
  type TextBatch,
  type TextBatchOptions,
} from './text.ts';
export {
  assertFreshOut,
  loadArtifact,
  TAILOR_ARTIFACT,
  writeClassifier,
  writeFolderAtomic,
  type ArtifactInfo,
} from './artifact.ts';
export {
  Classifier,
  softmaxRows,
  storeAbstainRule,
  storeGroupThresholds,
  type ClassifierOptions,
  type Prediction,
  type StoreAbstainInput,
} from './classifier.ts';
export { ABSTAIN_FILE, readAbstainRule, writeAbstainRule } from './abstain.ts';
