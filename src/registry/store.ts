/**
 * Storage seams of the registry. `Registry` only talks to these two interfaces, so a PostgreSQL metadata store
 * or an S3-compatible artifact store can be added without touching callers. All methods are async (a network
 * backend needs that) and take and return plain data from ./types.ts; no backend type crosses the seam.
 */
import type {
  AliasMove,
  AliasRollback,
  ArtifactRef,
  Json,
  MetricPoint,
  ModelSummary,
  ModelVersion,
  NewModelVersion,
  NewRun,
  ObjectReservation,
  PredictionRow,
  RunFilter,
  RunRecord,
  RunStatus,
  StoredObject,
} from './types.ts';

/** Runs, metrics, artifact rows, model versions and aliases. Every multi-row write is one transaction. */
export interface MetadataStore {
  /** Human-readable location (file path, connection string without password). */
  readonly location: string;

  createRun(run: NewRun): Promise<RunRecord>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** Ids that start with `prefix` (at most `limit`), for short-id lookups. */
  findRunIds(prefix: string, limit: number): Promise<string[]>;
  listRuns(filter?: RunFilter): Promise<RunRecord[]>;
  /**
   * Ends a run, only if it is still `running` (so a late heartbeat or a stale-run sweep cannot overwrite a
   * final status). Returns whether the status changed.
   */
  endRun(id: string, status: Exclude<RunStatus, 'running'>, endedAt: number, error?: string | null): Promise<boolean>;
  heartbeat(id: string, at: number): Promise<void>;
  setParams(id: string, params: Record<string, Json>): Promise<void>;
  setTags(id: string, tags: Record<string, string>): Promise<void>;
  setRunInfo(id: string, info: { baseModel?: string | null; datasetFingerprint?: string | null }): Promise<void>;
  /** Deletes a run and its metrics, artifact rows and predictions (not the objects; gc does that). */
  deleteRun(id: string): Promise<void>;

  logMetrics(runId: string, points: MetricPoint[]): Promise<void>;
  getMetrics(runId: string, key?: string): Promise<MetricPoint[]>;

  /**
   * Records artifact rows and releases the matching object reservations in one transaction. A row with the
   * same run and path is replaced (re-logging a checkpoint under the same name).
   */
  addArtifacts(runId: string, refs: ArtifactRef[], releaseTokens?: string[]): Promise<void>;
  listArtifacts(runId: string): Promise<ArtifactRef[]>;

  /** Replaces the predictions of a run on one eval set. */
  setPredictions(runId: string, evalSet: string, rows: PredictionRow[]): Promise<void>;
  getPredictions(runId: string, evalSet: string): Promise<PredictionRow[]>;
  listPredictionSets(runId: string): Promise<string[]>;

  /**
   * Assigns the next version number for the name, stores lineage and aliases and releases the given object
   * reservations, all atomically.
   */
  createModelVersion(input: NewModelVersion, releaseTokens?: string[]): Promise<ModelVersion>;
  getModelVersion(name: string, version: number): Promise<ModelVersion | undefined>;
  listModelVersions(name: string): Promise<ModelVersion[]>;
  /** Versions registered from one run, by name then version. */
  listModelVersionsByRun(runId: string): Promise<ModelVersion[]>;
  listModels(): Promise<ModelSummary[]>;
  /** Points `alias` of `name` at `version`, replacing any previous target atomically. */
  setAlias(name: string, alias: string, version: number): Promise<void>;
  /** Returns whether the alias existed. */
  deleteAlias(name: string, alias: string): Promise<boolean>;
  resolveAlias(name: string, alias: string): Promise<number | undefined>;
  /** Every recorded move of the alias, oldest first (set, rollback, delete). */
  aliasHistory(name: string, alias: string): Promise<AliasMove[]>;
  /** Moves the alias back to the version it pointed at before its current one (see `aliasStack`); atomic. */
  rollbackAlias(name: string, alias: string): Promise<AliasRollback>;

  /** Marks an object as being written, so gc keeps it although no row references it yet. */
  reserveObject(reservation: ObjectReservation): Promise<void>;
  releaseObject(token: string): Promise<void>;
  listReservations(): Promise<ObjectReservation[]>;
  /** Every object hash referenced by an artifact row or a model version. */
  referencedObjects(): Promise<Set<string>>;
  /** Every (hash, type) referenced, for verify. */
  referencedObjectList(): Promise<Array<StoredObject & { referencedBy: string }>>;

  close(): Promise<void>;
}

/** An object copied into temporary storage and hashed, not yet visible under its hash. */
export interface StagedObject extends StoredObject {
  /** Makes the object visible under its hash (rename/upload). Idempotent if the object already exists. */
  commit(): Promise<void>;
  /** Removes the temporary copy. Safe to call after commit. */
  abort(): Promise<void>;
}

/** A temporary folder a caller writes into directly (e.g. a trainer exporting a model), then seals. */
export interface StagingArea {
  /** Local folder to write into. */
  readonly path: string;
  /** Hashes what was written; the result still has to be committed. */
  seal(): Promise<StagedObject>;
  abort(): Promise<void>;
}

/** Outcome of checking one object against its hash. */
export interface ObjectCheck {
  hash: string;
  ok: boolean;
  /** `missing`, `hash mismatch (found ...)`, `type mismatch`, ... */
  problem?: string;
}

/** Content-addressed blobs and folders, keyed by sha256. */
export interface ArtifactStore {
  readonly location: string;
  /** Copies a local file or folder into temporary storage while hashing it. */
  ingest(sourcePath: string): Promise<StagedObject>;
  ingestBytes(bytes: Uint8Array): Promise<StagedObject>;
  createStaging(): Promise<StagingArea>;
  has(hash: string): Promise<boolean>;
  stat(hash: string): Promise<StoredObject | undefined>;
  /** Reads a file object, or one file (`innerPath`) of a folder object. */
  readBytes(hash: string, innerPath?: string): Promise<Uint8Array>;
  /** Copies an object out to `destPath` (which must not exist), atomically. */
  exportTo(hash: string, destPath: string): Promise<void>;
  /** A local path where the object can be read in place, if the backend has one. */
  localPath(hash: string): string | undefined;
  /**
   * A local, read-only path holding the object: in place for a local store, a download cached by content hash
   * for a remote one (an object never changes under its hash, so the cache never goes stale).
   */
  materialize(hash: string): Promise<string>;
  list(): Promise<string[]>;
  /** Re-hashes an object and compares. */
  check(hash: string, type?: StoredObject['type']): Promise<ObjectCheck>;
  /**
   * First half of a safe delete: moves the object out of sight and returns a token. gc re-checks the
   * metadata afterwards and either `restore`s or `purge`s, which closes the race with a concurrent writer.
   */
  quarantine(hash: string): Promise<string | undefined>;
  restore(token: string): Promise<void>;
  purge(token: string): Promise<void>;
  /**
   * Removes temp folders left by dead processes or older than `maxAgeMs` (for a remote store also abandoned
   * uploads), and restores objects a dead gc left in quarantine. Returns what was removed.
   */
  cleanTemp(maxAgeMs: number): Promise<string[]>;
  /** Names of the local staging entries present now (in-flight writes, leftovers of dead writers). */
  listTemp(): Promise<string[]>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}
