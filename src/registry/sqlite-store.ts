/**
 * MetadataStore on an embedded SQLite file (better-sqlite3). WAL mode lets readers run beside one writer, the
 * busy timeout makes concurrent processes queue instead of failing, and every multi-row write runs in a
 * `BEGIN IMMEDIATE` transaction so that a process killed mid-write leaves either all rows or none.
 * The schema is versioned with `PRAGMA user_version`; each migration runs once, inside a transaction.
 */
import Database from 'better-sqlite3';
import { RegistryError } from '../errors.ts';
import type { MetadataStore } from './store.ts';
import { rollbackTarget } from './util.ts';
import type {
  AliasMove,
  AliasRollback,
  ArtifactRef,
  CodeVersion,
  Json,
  LineageParent,
  MetricPoint,
  ModelSummary,
  ModelVersion,
  NewModelVersion,
  NewRun,
  ObjectReservation,
  ObjectType,
  PredictionRow,
  RunFilter,
  RunRecord,
  RunStatus,
  StoredObject,
} from './types.ts';

/** Schema migrations; index i upgrades user_version i to i+1. Append only, never edit a released one. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT,
    experiment TEXT NOT NULL DEFAULT 'default',
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'killed')),
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    error TEXT,
    base_model TEXT,
    dataset_fingerprint TEXT,
    code_version TEXT,
    pid INTEGER,
    host TEXT,
    heartbeat_at INTEGER
  );
  CREATE INDEX runs_status ON runs (status);
  CREATE INDEX runs_started ON runs (started_at);
  CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
  ) WITHOUT ROWID;
  CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
  ) WITHOUT ROWID;
  CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch REAL,
    value REAL NOT NULL,
    ts INTEGER NOT NULL
  );
  CREATE INDEX metrics_run_key ON metrics (run_id, key, step);
  CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir')),
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, path)
  );
  CREATE INDEX artifacts_hash ON artifacts (hash);
  CREATE TABLE predictions (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    eval_set TEXT NOT NULL,
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    prediction TEXT NOT NULL,
    PRIMARY KEY (run_id, eval_set, idx)
  ) WITHOUT ROWID;
  CREATE TABLE models (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE model_versions (
    name TEXT NOT NULL REFERENCES models (name),
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir')),
    size INTEGER NOT NULL,
    run_id TEXT REFERENCES runs (id) ON DELETE RESTRICT,
    created_at INTEGER NOT NULL,
    description TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (name, version)
  );
  CREATE INDEX model_versions_hash ON model_versions (hash);
  CREATE TABLE model_lineage (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    relation TEXT NOT NULL,
    parent_name TEXT,
    parent_version INTEGER,
    external TEXT,
    PRIMARY KEY (name, version, ord),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version),
    FOREIGN KEY (parent_name, parent_version) REFERENCES model_versions (name, version),
    CHECK ((parent_name IS NULL) <> (external IS NULL))
  );
  CREATE TABLE aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
  );
  CREATE TABLE reservations (
    token TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  `,
  // Alias history, so that `rollback` knows where an alias pointed before; seeded with the current targets.
  `
  CREATE TABLE alias_history (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('set', 'rollback', 'delete')),
    version INTEGER,
    at INTEGER NOT NULL
  );
  CREATE INDEX alias_history_key ON alias_history (name, alias, id);
  INSERT INTO alias_history (name, alias, action, version, at)
    SELECT name, alias, 'set', version, updated_at FROM aliases ORDER BY updated_at;
  `,
];

/** Schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

interface RunRow {
  id: string;
  name: string | null;
  experiment: string;
  status: RunStatus;
  started_at: number;
  ended_at: number | null;
  error: string | null;
  base_model: string | null;
  dataset_fingerprint: string | null;
  code_version: string | null;
  pid: number | null;
  host: string | null;
  heartbeat_at: number | null;
}

interface VersionRow {
  name: string;
  version: number;
  hash: string;
  type: ObjectType;
  size: number;
  run_id: string | null;
  created_at: number;
  description: string | null;
  metadata: string;
}

/** Options for opening the SQLite store. */
export interface SqliteStoreOptions {
  /** How long a writer waits for another process's lock before failing, in ms. */
  busyTimeoutMs?: number;
}

/** SQLite implementation of MetadataStore. Open with `SqliteMetadataStore.open(path)`. */
export class SqliteMetadataStore implements MetadataStore {
  readonly location: string;
  private readonly db: Database.Database;

  private constructor(path: string, db: Database.Database) {
    this.location = path;
    this.db = db;
  }

  /** Opens (creating if needed) and migrates the database at `path`. */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteMetadataStore {
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: options.busyTimeoutMs ?? 15000 });
    } catch (e) {
      throw new RegistryError(
        `cannot open registry database ${path}: ${(e as Error).message}`,
        { file: path },
        { cause: e },
      );
    }
    try {
      db.pragma('journal_mode = WAL');
      // NORMAL is crash-safe in WAL mode (a power loss may drop the last commits, never corrupt the file).
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      const migrate = db.transaction(() => {
        const current = db.pragma('user_version', { simple: true }) as number;
        if (current > MIGRATIONS.length) {
          throw new RegistryError(
            `registry database ${path} has schema version ${current}, newer than this Tailor supports (${MIGRATIONS.length}); upgrade Tailor`,
            { file: path, value: String(current) },
          );
        }
        for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]);
        if (current !== MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
      });
      migrate.immediate();
    } catch (e) {
      db.close();
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(
        `cannot initialise registry database ${path}: ${(e as Error).message}`,
        { file: path },
        { cause: e },
      );
    }
    return new SqliteMetadataStore(path, db);
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction (the write lock is taken up front, so no upgrade deadlock). */
  private write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private runFromRow(r: RunRow): RunRecord {
    const params: Record<string, Json> = {};
    for (const p of this.db.prepare('SELECT key, value FROM run_params WHERE run_id = ?').all(r.id) as Array<{
      key: string;
      value: string;
    }>) {
      params[p.key] = JSON.parse(p.value) as Json;
    }
    const tags: Record<string, string> = {};
    for (const t of this.db.prepare('SELECT key, value FROM run_tags WHERE run_id = ?').all(r.id) as Array<{
      key: string;
      value: string;
    }>) {
      tags[t.key] = t.value;
    }
    return {
      id: r.id,
      name: r.name,
      experiment: r.experiment,
      status: r.status,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      error: r.error,
      baseModel: r.base_model,
      datasetFingerprint: r.dataset_fingerprint,
      codeVersion: r.code_version === null ? null : (JSON.parse(r.code_version) as CodeVersion),
      params,
      tags,
      pid: r.pid,
      host: r.host,
      heartbeatAt: r.heartbeat_at,
    };
  }

  async createRun(run: NewRun): Promise<RunRecord> {
    this.write(() => {
      this.db
        .prepare(
          `INSERT INTO runs (id, name, experiment, status, started_at, base_model, dataset_fingerprint, code_version, pid, host, heartbeat_at)
           VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          run.id,
          run.name ?? null,
          run.experiment ?? 'default',
          run.startedAt,
          run.baseModel ?? null,
          run.datasetFingerprint ?? null,
          run.codeVersion ? JSON.stringify(run.codeVersion) : null,
          run.pid ?? null,
          run.host ?? null,
          run.startedAt,
        );
      this.insertParams(run.id, run.params ?? {});
      this.insertTags(run.id, run.tags ?? {});
    });
    return (await this.getRun(run.id))!;
  }

  private insertParams(id: string, params: Record<string, Json>): void {
    const st = this.db.prepare('INSERT OR REPLACE INTO run_params (run_id, key, value) VALUES (?, ?, ?)');
    for (const [k, v] of Object.entries(params)) st.run(id, k, JSON.stringify(v ?? null));
  }

  private insertTags(id: string, tags: Record<string, string>): void {
    const st = this.db.prepare('INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES (?, ?, ?)');
    for (const [k, v] of Object.entries(tags)) st.run(id, k, String(v));
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
    return r ? this.runFromRow(r) : undefined;
  }

  async findRunIds(prefix: string, limit: number): Promise<string[]> {
    // Range scan instead of LIKE, so '%' and '_' in user input mean nothing special.
    const rows = this.db
      .prepare('SELECT id FROM runs WHERE id >= ? AND id < ? || char(1114111) ORDER BY id LIMIT ?')
      .all(prefix, prefix, limit) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    if (filter.experiment) {
      where.push('experiment = ?');
      args.push(filter.experiment);
    }
    for (const [k, v] of Object.entries(filter.tag ?? {})) {
      where.push('EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.key = ? AND t.value = ?)');
      args.push(k, v);
    }
    let sql = 'SELECT * FROM runs';
    if (where.length) sql += ` WHERE ${where.join(' AND ')}`;
    sql += ' ORDER BY started_at DESC, id';
    if (filter.limit !== undefined) {
      sql += ' LIMIT ?';
      args.push(filter.limit);
    }
    const rows = this.db.prepare(sql).all(...args) as RunRow[];
    return rows.map((r) => this.runFromRow(r));
  }

  async endRun(
    id: string,
    status: Exclude<RunStatus, 'running'>,
    endedAt: number,
    error: string | null = null,
  ): Promise<boolean> {
    return this.write(() => {
      const res = this.db
        .prepare("UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status = 'running'")
        .run(status, endedAt, error, id);
      return res.changes > 0;
    });
  }

  async heartbeat(id: string, at: number): Promise<void> {
    this.db.prepare("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'").run(at, id);
  }

  async setParams(id: string, params: Record<string, Json>): Promise<void> {
    this.write(() => this.insertParams(id, params));
  }

  async setTags(id: string, tags: Record<string, string>): Promise<void> {
    this.write(() => this.insertTags(id, tags));
  }

  async setRunInfo(id: string, info: { baseModel?: string | null; datasetFingerprint?: string | null }): Promise<void> {
    this.write(() => {
      if (info.baseModel !== undefined)
        this.db.prepare('UPDATE runs SET base_model = ? WHERE id = ?').run(info.baseModel, id);
      if (info.datasetFingerprint !== undefined) {
        this.db.prepare('UPDATE runs SET dataset_fingerprint = ? WHERE id = ?').run(info.datasetFingerprint, id);
      }
    });
  }

  async deleteRun(id: string): Promise<void> {
    const used = this.db.prepare('SELECT name, version FROM model_versions WHERE run_id = ? LIMIT 1').get(id) as
      { name: string; version: number } | undefined;
    if (used) {
      throw new RegistryError(
        `run ${id} cannot be deleted: model version ${used.name}:${used.version} was produced by it`,
        {
          value: id,
        },
      );
    }
    this.write(() => this.db.prepare('DELETE FROM runs WHERE id = ?').run(id));
  }

  async logMetrics(runId: string, points: MetricPoint[]): Promise<void> {
    const st = this.db.prepare('INSERT INTO metrics (run_id, key, step, epoch, value, ts) VALUES (?, ?, ?, ?, ?, ?)');
    this.write(() => {
      for (const p of points) st.run(runId, p.key, p.step, p.epoch ?? null, p.value, p.timestamp);
    });
  }

  async getMetrics(runId: string, key?: string): Promise<MetricPoint[]> {
    const rows = (
      key === undefined
        ? this.db
            .prepare('SELECT key, step, epoch, value, ts FROM metrics WHERE run_id = ? ORDER BY key, step, rowid')
            .all(runId)
        : this.db
            .prepare(
              'SELECT key, step, epoch, value, ts FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, rowid',
            )
            .all(runId, key)
    ) as Array<{ key: string; step: number; epoch: number | null; value: number; ts: number }>;
    return rows.map((r) => ({ key: r.key, step: r.step, epoch: r.epoch, value: r.value, timestamp: r.ts }));
  }

  async addArtifacts(runId: string, refs: ArtifactRef[], releaseTokens: string[] = []): Promise<void> {
    const ins = this.db.prepare(
      'INSERT OR REPLACE INTO artifacts (run_id, path, hash, type, size, kind, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const rel = this.db.prepare('DELETE FROM reservations WHERE token = ?');
    this.write(() => {
      for (const r of refs) ins.run(runId, r.path, r.hash, r.type, r.size, r.kind, r.createdAt);
      for (const t of releaseTokens) rel.run(t);
    });
  }

  async listArtifacts(runId: string): Promise<ArtifactRef[]> {
    const rows = this.db
      .prepare('SELECT path, hash, type, size, kind, created_at FROM artifacts WHERE run_id = ? ORDER BY path')
      .all(runId) as Array<{
      path: string;
      hash: string;
      type: ObjectType;
      size: number;
      kind: string;
      created_at: number;
    }>;
    return rows.map((r) => ({
      path: r.path,
      hash: r.hash,
      type: r.type,
      size: r.size,
      kind: r.kind,
      createdAt: r.created_at,
    }));
  }

  async setPredictions(runId: string, evalSet: string, rows: PredictionRow[]): Promise<void> {
    const ins = this.db.prepare(
      'INSERT INTO predictions (run_id, eval_set, idx, label, prediction) VALUES (?, ?, ?, ?, ?)',
    );
    this.write(() => {
      this.db.prepare('DELETE FROM predictions WHERE run_id = ? AND eval_set = ?').run(runId, evalSet);
      for (const r of rows) ins.run(runId, evalSet, r.index, r.label, r.prediction);
    });
  }

  async getPredictions(runId: string, evalSet: string): Promise<PredictionRow[]> {
    const rows = this.db
      .prepare('SELECT idx, label, prediction FROM predictions WHERE run_id = ? AND eval_set = ? ORDER BY idx')
      .all(runId, evalSet) as Array<{ idx: number; label: string; prediction: string }>;
    return rows.map((r) => ({ index: r.idx, label: r.label, prediction: r.prediction }));
  }

  async listPredictionSets(runId: string): Promise<string[]> {
    const rows = this.db
      .prepare('SELECT DISTINCT eval_set FROM predictions WHERE run_id = ? ORDER BY eval_set')
      .all(runId) as Array<{
      eval_set: string;
    }>;
    return rows.map((r) => r.eval_set);
  }

  private versionFromRow(r: VersionRow): ModelVersion {
    const parents = (
      this.db
        .prepare(
          'SELECT relation, parent_name, parent_version, external FROM model_lineage WHERE name = ? AND version = ? ORDER BY ord',
        )
        .all(r.name, r.version) as Array<{
        relation: string;
        parent_name: string | null;
        parent_version: number | null;
        external: string | null;
      }>
    ).map((p): LineageParent =>
      p.parent_name !== null
        ? { relation: p.relation, model: { name: p.parent_name, version: p.parent_version! } }
        : { relation: p.relation, external: p.external! },
    );
    const aliases = (
      this.db
        .prepare('SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias')
        .all(r.name, r.version) as Array<{ alias: string }>
    ).map((a) => a.alias);
    return {
      name: r.name,
      version: r.version,
      artifact: { hash: r.hash, type: r.type, size: r.size },
      runId: r.run_id,
      createdAt: r.created_at,
      description: r.description,
      metadata: JSON.parse(r.metadata) as Record<string, Json>,
      parents,
      aliases,
    };
  }

  async createModelVersion(input: NewModelVersion, releaseTokens: string[] = []): Promise<ModelVersion> {
    const version = this.write(() => {
      const db = this.db;
      db.prepare(
        'INSERT INTO models (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at',
      ).run(input.name, input.createdAt, input.createdAt);
      const { next } = db
        .prepare('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM model_versions WHERE name = ?')
        .get(input.name) as { next: number };
      if (input.runId != null && !db.prepare('SELECT 1 FROM runs WHERE id = ?').get(input.runId)) {
        throw new RegistryError(`run '${input.runId}' does not exist`, { value: input.runId });
      }
      db.prepare(
        'INSERT INTO model_versions (name, version, hash, type, size, run_id, created_at, description, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(
        input.name,
        next,
        input.artifact.hash,
        input.artifact.type,
        input.artifact.size,
        input.runId ?? null,
        input.createdAt,
        input.description ?? null,
        JSON.stringify(input.metadata ?? {}),
      );
      const lin = db.prepare(
        'INSERT INTO model_lineage (name, version, ord, relation, parent_name, parent_version, external) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      (input.parents ?? []).forEach((p, i) => {
        if (p.model) {
          if (
            !db
              .prepare('SELECT 1 FROM model_versions WHERE name = ? AND version = ?')
              .get(p.model.name, p.model.version)
          ) {
            throw new RegistryError(
              `lineage parent ${p.model.name}:${p.model.version} is not a registered model version`,
              {
                value: `${p.model.name}:${p.model.version}`,
              },
            );
          }
          lin.run(input.name, next, i, p.relation, p.model.name, p.model.version, null);
        } else if (p.external !== undefined) {
          lin.run(input.name, next, i, p.relation, null, null, p.external);
        } else {
          throw new RegistryError(
            `lineage parent #${i} (${p.relation}) names neither a model version nor an external id`,
          );
        }
      });
      for (const a of input.aliases ?? []) this.upsertAlias(input.name, a, next, input.createdAt, 'set');
      const rel = db.prepare('DELETE FROM reservations WHERE token = ?');
      for (const t of releaseTokens) rel.run(t);
      return next;
    });
    return (await this.getModelVersion(input.name, version))!;
  }

  async getModelVersion(name: string, version: number): Promise<ModelVersion | undefined> {
    const r = this.db.prepare('SELECT * FROM model_versions WHERE name = ? AND version = ?').get(name, version) as
      VersionRow | undefined;
    return r ? this.versionFromRow(r) : undefined;
  }

  async listModelVersions(name: string): Promise<ModelVersion[]> {
    const rows = this.db
      .prepare('SELECT * FROM model_versions WHERE name = ? ORDER BY version')
      .all(name) as VersionRow[];
    return rows.map((r) => this.versionFromRow(r));
  }

  async listModelVersionsByRun(runId: string): Promise<ModelVersion[]> {
    const rows = this.db
      .prepare('SELECT * FROM model_versions WHERE run_id = ? ORDER BY name, version')
      .all(runId) as VersionRow[];
    return rows.map((r) => this.versionFromRow(r));
  }

  async listModels(): Promise<ModelSummary[]> {
    const rows = this.db
      .prepare(
        `SELECT m.name, m.updated_at, MAX(v.version) AS latest, COUNT(v.version) AS n
         FROM models m JOIN model_versions v ON v.name = m.name GROUP BY m.name ORDER BY m.name`,
      )
      .all() as Array<{ name: string; updated_at: number; latest: number; n: number }>;
    return rows.map((r) => {
      const aliases: Record<string, number> = {};
      for (const a of this.db
        .prepare('SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias')
        .all(r.name) as Array<{ alias: string; version: number }>) {
        aliases[a.alias] = a.version;
      }
      return { name: r.name, latestVersion: r.latest, versions: r.n, aliases, updatedAt: r.updated_at };
    });
  }

  async setAlias(name: string, alias: string, version: number): Promise<void> {
    this.write(() => {
      if (!this.db.prepare('SELECT 1 FROM model_versions WHERE name = ? AND version = ?').get(name, version)) {
        throw new RegistryError(`model version ${name}:${version} does not exist`, { value: `${name}:${version}` });
      }
      const now = Date.now();
      this.upsertAlias(name, alias, version, now, 'set');
      this.db.prepare('UPDATE models SET updated_at = ? WHERE name = ?').run(now, name);
    });
  }

  /** Points the alias and appends the move to its history; call inside a write transaction. */
  private upsertAlias(name: string, alias: string, version: number, at: number, action: 'set' | 'rollback'): void {
    this.db
      .prepare('INSERT OR REPLACE INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)')
      .run(name, alias, version, at);
    this.db
      .prepare('INSERT INTO alias_history (name, alias, action, version, at) VALUES (?, ?, ?, ?, ?)')
      .run(name, alias, action, version, at);
  }

  async deleteAlias(name: string, alias: string): Promise<boolean> {
    return this.write(() => {
      const gone = this.db.prepare('DELETE FROM aliases WHERE name = ? AND alias = ?').run(name, alias).changes > 0;
      if (gone) {
        this.db
          .prepare("INSERT INTO alias_history (name, alias, action, version, at) VALUES (?, ?, 'delete', NULL, ?)")
          .run(name, alias, Date.now());
      }
      return gone;
    });
  }

  async aliasHistory(name: string, alias: string): Promise<AliasMove[]> {
    return this.readAliasHistory(name, alias);
  }

  private readAliasHistory(name: string, alias: string): AliasMove[] {
    return this.db
      .prepare('SELECT action, version, at FROM alias_history WHERE name = ? AND alias = ? ORDER BY id')
      .all(name, alias) as AliasMove[];
  }

  async rollbackAlias(name: string, alias: string): Promise<AliasRollback> {
    return this.write(() => {
      const cur = this.db.prepare('SELECT version FROM aliases WHERE name = ? AND alias = ?').get(name, alias) as
        { version: number } | undefined;
      const to = rollbackTarget(name, alias, cur?.version, this.readAliasHistory(name, alias));
      const now = Date.now();
      this.upsertAlias(name, alias, to, now, 'rollback');
      this.db.prepare('UPDATE models SET updated_at = ? WHERE name = ?').run(now, name);
      return { name, alias, from: cur!.version, to };
    });
  }

  async resolveAlias(name: string, alias: string): Promise<number | undefined> {
    const r = this.db.prepare('SELECT version FROM aliases WHERE name = ? AND alias = ?').get(name, alias) as
      { version: number } | undefined;
    return r?.version;
  }

  async reserveObject(r: ObjectReservation): Promise<void> {
    this.write(() =>
      this.db
        .prepare('INSERT INTO reservations (token, hash, pid, host, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(r.token, r.hash, r.pid, r.host, r.createdAt),
    );
  }

  async releaseObject(token: string): Promise<void> {
    this.write(() => this.db.prepare('DELETE FROM reservations WHERE token = ?').run(token));
  }

  async listReservations(): Promise<ObjectReservation[]> {
    const rows = this.db.prepare('SELECT token, hash, pid, host, created_at FROM reservations').all() as Array<{
      token: string;
      hash: string;
      pid: number;
      host: string;
      created_at: number;
    }>;
    return rows.map((r) => ({ token: r.token, hash: r.hash, pid: r.pid, host: r.host, createdAt: r.created_at }));
  }

  async referencedObjects(): Promise<Set<string>> {
    const rows = this.db.prepare('SELECT hash FROM artifacts UNION SELECT hash FROM model_versions').all() as Array<{
      hash: string;
    }>;
    return new Set(rows.map((r) => r.hash));
  }

  async referencedObjectList(): Promise<Array<StoredObject & { referencedBy: string }>> {
    const rows = this.db
      .prepare(
        `SELECT hash, type, size, 'run ' || run_id || ' artifact ' || path AS by FROM artifacts
         UNION ALL SELECT hash, type, size, 'model ' || name || ':' || version AS by FROM model_versions ORDER BY by`,
      )
      .all() as Array<{ hash: string; type: ObjectType; size: number; by: string }>;
    return rows.map((r) => ({ hash: r.hash, type: r.type, size: r.size, referencedBy: r.by }));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
