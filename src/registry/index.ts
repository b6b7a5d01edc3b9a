/** Public API of the registry: tracked runs, versioned models, storage seams and formatting helpers. */
export * from './types.ts';
export type { ArtifactStore, MetadataStore, ObjectCheck, StagedObject, StagingArea } from './store.ts';
export { LocalArtifactStore, treeHash } from './local-artifacts.ts';
export { SqliteMetadataStore, SCHEMA_VERSION, type SqliteStoreOptions } from './sqlite-store.ts';
export {
  Registry,
  RunHandle,
  openRegistry,
  resolveHome,
  codeVersion,
  TAILOR_HOME_ENV,
  type RegistryOptions,
  type StartRunOptions,
  type RunDetails,
  type ParentSpec,
  type RegisterModelOptions,
  type GcReport,
  type GcOptions,
  type VerifyReport,
  type LogArtifactOptions,
} from './registry.ts';
export {
  compareRuns,
  pairedSignificance,
  type RunComparison,
  type RunBrief,
  type PairedSignificance,
  type CompareOptions,
} from './compare.ts';
export { parseModelRef, formatModelRef, checkModelName, checkAlias, type ModelRef } from './refs.ts';
export * from './format.ts';
