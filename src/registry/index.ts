/** Public API of the registry: tracked runs, versioned models, storage seams and formatting helpers. */
export * from './types.ts';
export type { ArtifactStore, MetadataStore, ObjectCheck, StagedObject, StagingArea } from './store.ts';
export { LocalArtifactStore, treeHash } from './local-artifacts.ts';
export { SqliteMetadataStore, SCHEMA_VERSION, type SqliteStoreOptions } from './sqlite-store.ts';
// Types only: the network backends load `pg` and the AWS SDK, which a local registry should not pay for. The
// classes are reached through openRegistry / openMetadataStore / openArtifactStore (lazy imports).
export type { PgMetadataStore, PgStoreOptions } from './pg-store.ts';
export type { S3ArtifactStore, S3StoreOptions } from './s3-artifacts.ts';
export {
  openArtifactStore,
  openMetadataStore,
  resolveBackends,
  TAILOR_REGISTRY_ENV,
  TAILOR_ARTIFACTS_ENV,
  TAILOR_S3_ENDPOINT_ENV,
  type BackendOptions,
  type ResolvedBackends,
} from './backends.ts';
export { maskUrl } from './util.ts';
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
  type RunSource,
  type PairedSignificance,
  type CompareOptions,
} from './compare.ts';
export { parseModelRef, formatModelRef, checkModelName, checkAlias, type ModelRef } from './refs.ts';
export * from './format.ts';
export { migrateRegistry, type MigrateReport, type MigrateOptions } from './migrate.ts';
