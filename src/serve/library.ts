/**
 * Every import of Tailor's library internals that the server uses, in one place, so that when files move in the
 * library the server is repointed by editing this file only.
 */
export { VERSION } from '../version.ts';
export { ConfigError, ModelFileError, RegistryError, RuntimeError, TailorError, type ErrorContext } from '../errors.ts';
export { loadArtifact, type ArtifactInfo } from '../models/artifact.ts';
export { readAbstainRule } from '../models/abstain.ts';
export { abstainedLabel, OUT_OF_SCOPE, type AbstainRule } from '../eval/abstain.ts';
export { runTexts, DEFAULT_MAX_LENGTH } from '../models/text.ts';
export { Session, type ProviderSpec } from '../runtime/session.ts';
export type { Model } from '../models/model.ts';
export {
  openRegistry,
  resolveHome,
  parseModelRef,
  formatModelRef,
  type Registry,
  type ModelRef,
  type ModelVersion,
} from '../registry/index.ts';
export { loadAdapter, adapterScaling, readJson, savedHeadKind, type LoraAdapter } from '../customize/peft.ts';
export { mergeLora, type LoraWeights } from '../customize/lora.ts';
export type { TargetSpec } from '../customize/sites.ts';
