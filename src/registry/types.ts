/**
 * Plain-data records of the registry. Everything here is JSON-serialisable so that the CLI can print it with
 * `--json` and so that another backend (PostgreSQL, S3) returns exactly the same shapes.
 */

/** A JSON value, as stored for params, tags and metadata. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Lifecycle of a run. `failed` also covers runs whose process disappeared without finishing. */
export type RunStatus = 'running' | 'finished' | 'failed' | 'killed';

export const RUN_STATUSES: readonly RunStatus[] = ['running', 'finished', 'failed', 'killed'];

/** Which code produced a run: the package version and, when available, the git commit. */
export interface CodeVersion {
  package: string;
  git?: string;
  dirty?: boolean;
}

/** One tracked training/evaluation run. Times are milliseconds since the epoch. */
export interface RunRecord {
  id: string;
  name: string | null;
  experiment: string;
  status: RunStatus;
  startedAt: number;
  endedAt: number | null;
  /** Why a run failed or was killed (error message, "process 123 on host x is gone", ...). */
  error: string | null;
  baseModel: string | null;
  datasetFingerprint: string | null;
  codeVersion: CodeVersion | null;
  params: Record<string, Json>;
  tags: Record<string, string>;
  /** Process that owns the run while it is running, for stale-run detection. */
  pid: number | null;
  host: string | null;
  heartbeatAt: number | null;
}

/** Fields a caller provides when starting a run. */
export interface NewRun {
  id: string;
  name?: string | null;
  experiment?: string;
  startedAt: number;
  baseModel?: string | null;
  datasetFingerprint?: string | null;
  codeVersion?: CodeVersion | null;
  params?: Record<string, Json>;
  tags?: Record<string, string>;
  pid?: number | null;
  host?: string | null;
}

/** One point of a metric time series. `step` orders points; `epoch` is optional extra context. */
export interface MetricPoint {
  key: string;
  value: number;
  step: number;
  epoch?: number | null;
  timestamp: number;
}

/** `file` objects are single blobs; `dir` objects are folders (a model version, a checkpoint). */
export type ObjectType = 'file' | 'dir';

/** A content-addressed object in the artifact store. */
export interface StoredObject {
  /** Hex sha256 of the bytes (file) or of the canonical folder manifest (dir). */
  hash: string;
  type: ObjectType;
  /** Total bytes (sum over files for a folder). */
  size: number;
}

/** What a run's artifact row records: the object plus the run-relative name and a semantic kind. */
export interface ArtifactRef extends StoredObject {
  /** Run-relative name, e.g. `model`, `checkpoints/epoch-3`, `eval/report.json`. Unique within a run. */
  path: string;
  /** Semantic kind: `model`, `adapter`, `checkpoint`, `predictions`, `report`, ... (free text). */
  kind: string;
  createdAt: number;
}

/** One example's gold label and a run's prediction on a named eval set. */
export interface PredictionRow {
  index: number;
  label: string;
  prediction: string;
}

/** How a model version derives from something else, as in MLflow's lineage. */
export type LineageRelation =
  'base' | 'teacher' | 'quantized_from' | 'distilled_from' | 'merged_from' | 'fine_tuned_from' | string;

/** A parent of a model version: another registered version, or an external model id (hub name, path). */
export interface LineageParent {
  relation: LineageRelation;
  /** Registered parent, if any. */
  model?: { name: string; version: number };
  /** External id when the parent is not in this registry (e.g. `use-lite`, `bert-base-uncased`). */
  external?: string;
}

/** A registered model version: an immutable artifact folder plus lineage, aliases and metadata. */
export interface ModelVersion {
  name: string;
  version: number;
  artifact: StoredObject;
  runId: string | null;
  createdAt: number;
  description: string | null;
  metadata: Record<string, Json>;
  parents: LineageParent[];
  aliases: string[];
}

/** Input for creating a model version; the store assigns the version number. */
export interface NewModelVersion {
  name: string;
  artifact: StoredObject;
  runId?: string | null;
  createdAt: number;
  description?: string | null;
  metadata?: Record<string, Json>;
  parents?: LineageParent[];
  aliases?: string[];
}

/** Summary row for `models list`. */
export interface ModelSummary {
  name: string;
  latestVersion: number;
  versions: number;
  aliases: Record<string, number>;
  updatedAt: number;
}

/** One recorded move of an alias, oldest first in a history. `version` is null for a deletion. */
export interface AliasMove {
  action: 'set' | 'rollback' | 'delete';
  version: number | null;
  at: number;
}

/** Result of rolling an alias back: where it pointed and where it points now. */
export interface AliasRollback {
  name: string;
  alias: string;
  from: number;
  to: number;
}

/** Filters for listing runs. */
export interface RunFilter {
  status?: RunStatus;
  experiment?: string;
  tag?: Record<string, string>;
  limit?: number;
}

/** A reservation for an object being written, so that gc never deletes it before its row is committed. */
export interface ObjectReservation {
  /** Unique per reservation, so two writers of the same content in one process don't release each other's. */
  token: string;
  hash: string;
  pid: number;
  host: string;
  createdAt: number;
}
