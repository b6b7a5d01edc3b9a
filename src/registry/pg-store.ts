/**
 * MetadataStore on PostgreSQL (`pg`), for registries shared by several machines. Same tables and invariants as
 * the SQLite store: every multi-row write is one transaction; version numbers are allocated under the row lock
 * of the model's `models` row, so two writers registering the same name queue instead of colliding; alias moves
 * are one upsert. The schema is versioned in `schema_migrations`; migrations run once, inside a transaction,
 * under an advisory lock so that processes starting together do not race.
 *
 * Text keys use the "C" collation so that ORDER BY gives the same byte order as SQLite, whatever the database's
 * locale. Millisecond times are BIGINT, parsed back to numbers by this pool only (not pg's global parsers).
 */
import pg from 'pg';
import pRetry, { AbortError } from 'p-retry';
import { RegistryError } from '../errors.ts';
import type { MetadataStore } from './store.ts';
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
import { errCode, maskUrl, rollbackTarget } from './util.ts';

/** Schema migrations; index i upgrades version i to i+1. Append only, never edit a released one. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT,
    experiment TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'killed')),
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    error TEXT,
    base_model TEXT,
    dataset_fingerprint TEXT,
    code_version TEXT,
    pid INTEGER,
    host TEXT,
    heartbeat_at BIGINT
  );
  CREATE INDEX runs_status ON runs (status);
  CREATE INDEX runs_started ON runs (started_at);
  CREATE TABLE run_params (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
  );
  CREATE TABLE run_tags (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
  );
  CREATE TABLE metrics (
    seq BIGSERIAL PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    step INTEGER NOT NULL,
    epoch DOUBLE PRECISION,
    value DOUBLE PRECISION NOT NULL,
    ts BIGINT NOT NULL
  );
  CREATE INDEX metrics_run_key ON metrics (run_id, key, step);
  CREATE TABLE artifacts (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path TEXT COLLATE "C" NOT NULL,
    hash TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir')),
    size BIGINT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, path)
  );
  CREATE INDEX artifacts_hash ON artifacts (hash);
  CREATE TABLE predictions (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    eval_set TEXT COLLATE "C" NOT NULL,
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    prediction TEXT NOT NULL,
    PRIMARY KEY (run_id, eval_set, idx)
  );
  CREATE TABLE models (
    name TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE TABLE model_versions (
    name TEXT COLLATE "C" NOT NULL REFERENCES models (name),
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir')),
    size BIGINT NOT NULL,
    run_id TEXT COLLATE "C" REFERENCES runs (id) ON DELETE RESTRICT,
    created_at BIGINT NOT NULL,
    description TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (name, version)
  );
  CREATE INDEX model_versions_hash ON model_versions (hash);
  CREATE INDEX model_versions_run ON model_versions (run_id);
  CREATE TABLE model_lineage (
    name TEXT COLLATE "C" NOT NULL,
    version INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    relation TEXT NOT NULL,
    parent_name TEXT COLLATE "C",
    parent_version INTEGER,
    external TEXT,
    PRIMARY KEY (name, version, ord),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version),
    FOREIGN KEY (parent_name, parent_version) REFERENCES model_versions (name, version),
    CHECK ((parent_name IS NULL) <> (external IS NULL))
  );
  CREATE TABLE aliases (
    name TEXT COLLATE "C" NOT NULL,
    alias TEXT COLLATE "C" NOT NULL,
    version INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
  );
  CREATE TABLE reservations (
    token TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );
  `,
  // Alias history, so that `rollback` knows where an alias pointed before; seeded with the current targets.
  `
  CREATE TABLE alias_history (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    alias TEXT COLLATE "C" NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('set', 'rollback', 'delete')),
    version INTEGER,
    at BIGINT NOT NULL
  );
  CREATE INDEX alias_history_key ON alias_history (name, alias, id);
  INSERT INTO alias_history (name, alias, action, version, at)
    SELECT name, alias, 'set', version, updated_at FROM aliases ORDER BY updated_at;
  `,
];

/** Schema version this code writes. */
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/** Options for opening the PostgreSQL store. */
export interface PgStoreOptions {
  /** Pool size per process (default 4). */
  maxConnections?: number;
  /** How long opening a connection may take before it fails, in ms (default 5000). */
  connectTimeoutMs?: number;
  /** Retries of a statement or transaction that failed for a transient reason (default 5), with backoff. */
  retries?: number;
  /** First retry delay in ms (default 100); doubles up to 2 s. */
  retryMinDelayMs?: number;
}

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

/** SQLSTATEs after which the server has rolled the transaction back and a rerun is safe. */
const RETRY_SQLSTATES = new Set(['40001', '40P01', '57P01', '57P02', '57P03', '53300']);
const RETRY_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH']);

/** Whether an error from pg is worth a retry (connection lost or refused, serialization failure, deadlock). */
export function isTransientPgError(e: unknown): boolean {
  const code = errCode(e);
  if (code !== undefined && (RETRY_SQLSTATES.has(code) || RETRY_NODE_CODES.has(code) || code.startsWith('08')))
    return true;
  const msg = e instanceof Error ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(msg);
}

const SCHEMA_RE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Splits the non-standard `schema` query parameter off a connection URL. */
export function parsePgUrl(url: string): { connectionString: string; schema: string | undefined } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new RegistryError(`invalid PostgreSQL URL '${maskUrl(url)}'`, { value: maskUrl(url) }, { cause: e });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new RegistryError(`not a PostgreSQL URL: '${maskUrl(url)}' (expected postgres://...)`, {
      value: maskUrl(url),
    });
  }
  const schema = u.searchParams.get('schema') ?? undefined;
  if (schema !== undefined && !SCHEMA_RE.test(schema)) {
    throw new RegistryError(`invalid schema name '${schema}' in ${maskUrl(url)}: use letters, digits and '_'`, {
      field: 'schema',
      value: schema,
    });
  }
  u.searchParams.delete('schema');
  return { connectionString: u.toString(), schema };
}

const int8 = (v: string): number => Number(v);

/** PostgreSQL implementation of MetadataStore. Open with `PgMetadataStore.open(url)`. */
export class PgMetadataStore implements MetadataStore {
  readonly location: string;
  /** Schema the tables live in. */
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly retries: number;
  private readonly retryMinDelayMs: number;
  private closed = false;

  private constructor(location: string, schema: string, pool: pg.Pool, options: PgStoreOptions) {
    this.location = location;
    this.schema = schema;
    this.pool = pool;
    this.retries = options.retries ?? 5;
    this.retryMinDelayMs = options.retryMinDelayMs ?? 100;
  }

  /**
   * Connects, creates the schema if needed and applies pending migrations. An unreachable server or a refused
   * login is a RegistryError naming the URL (password masked); there is no fallback to a local store.
   */
  static async open(url: string, options: PgStoreOptions = {}): Promise<PgMetadataStore> {
    const masked = maskUrl(url);
    const { connectionString, schema } = parsePgUrl(url);
    const pool = new pg.Pool({
      connectionString,
      max: options.maxConnections ?? 4,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      ...(schema !== undefined ? { options: `-c search_path=${schema}` } : {}),
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === pg.types.builtins.INT8 ? int8 : pg.types.getTypeParser(oid, format ?? 'text')) as never,
      },
    });
    // An idle connection killed by the server emits 'error' on the pool; the next query simply gets a new one.
    pool.on('error', () => undefined);
    const store = new PgMetadataStore(masked, schema ?? 'public', pool, options);
    try {
      await store.migrate();
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof RegistryError) throw e;
      // A socket error reads best as its code (ECONNREFUSED); a server error as its message (database "x" does not exist).
      const code = errCode(e);
      const why = code !== undefined && /^E[A-Z]+$/.test(code) ? code : (e as Error).message;
      throw new RegistryError(`cannot open registry database ${masked}: ${why}`, { value: masked }, { cause: e });
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tailor-migrate:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS "${this.schema}".schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`,
      );
      const { rows } = await client.query<{ v: number }>(
        `SELECT COALESCE(MAX(version), 0)::int AS v FROM "${this.schema}".schema_migrations`,
      );
      const current = rows[0].v;
      if (current > MIGRATIONS.length) {
        throw new RegistryError(
          `registry database ${this.location} has schema version ${current}, newer than this Tailor supports (${MIGRATIONS.length}); upgrade Tailor`,
          { value: String(current) },
        );
      }
      await client.query(`SET LOCAL search_path TO "${this.schema}"`);
      for (let v = current; v < MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v]);
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [v + 1, Date.now()]);
      }
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  private retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new RegistryError(`registry database ${this.location} is closed`));
    return pRetry(
      async () => {
        try {
          return await fn();
        } catch (e) {
          if (e instanceof RegistryError || !isTransientPgError(e)) throw new AbortError(e as Error);
          throw e;
        }
      },
      {
        retries: this.retries,
        minTimeout: this.retryMinDelayMs,
        maxTimeout: 2000,
        factor: 2,
      },
    ).catch((e: unknown) => {
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(
        `registry database ${this.location}: ${what} failed: ${(e as Error).message}`,
        { value: this.location },
        { cause: e },
      );
    });
  }

  /** One statement, retried on transient errors (reads, and single-statement writes that are idempotent). */
  private async q<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R[]> {
    return this.retrying('query', async () => (await this.pool.query<R>(sql, args)).rows);
  }

  /**
   * Runs `fn` in a transaction, retried from the start on a transient error, but never once COMMIT has been
   * sent: a connection lost during COMMIT leaves the outcome unknown, and a rerun could register twice.
   */
  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.retrying('transaction', async () => {
      const client = await this.pool.connect();
      let commitSent = false;
      let broken = false;
      try {
        await client.query('BEGIN');
        const out = await fn(client);
        commitSent = true;
        await client.query('COMMIT');
        return out;
      } catch (e) {
        broken = isTransientPgError(e);
        if (!commitSent) await client.query('ROLLBACK').catch(() => undefined);
        if (commitSent && broken) {
          throw new AbortError(
            new RegistryError(
              `registry database ${this.location}: connection lost during COMMIT; the write may or may not have been applied`,
              { value: this.location },
              { cause: e },
            ),
          );
        }
        throw e;
      } finally {
        client.release(broken);
      }
    });
  }

  private async runsFromRows(rows: RunRow[], c?: pg.PoolClient): Promise<RunRecord[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const read = async <R extends pg.QueryResultRow>(sql: string): Promise<R[]> =>
      c ? (await c.query<R>(sql, [ids])).rows : this.q<R>(sql, [ids]);
    const params = await read<{ run_id: string; key: string; value: string }>(
      'SELECT run_id, key, value FROM run_params WHERE run_id = ANY($1) ORDER BY run_id, key',
    );
    const tags = await read<{ run_id: string; key: string; value: string }>(
      'SELECT run_id, key, value FROM run_tags WHERE run_id = ANY($1) ORDER BY run_id, key',
    );
    const p = new Map<string, Record<string, Json>>(ids.map((id) => [id, {}]));
    const t = new Map<string, Record<string, string>>(ids.map((id) => [id, {}]));
    for (const r of params) p.get(r.run_id)![r.key] = JSON.parse(r.value) as Json;
    for (const r of tags) t.get(r.run_id)![r.key] = r.value;
    return rows.map((r) => ({
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
      params: p.get(r.id)!,
      tags: t.get(r.id)!,
      pid: r.pid,
      host: r.host,
      heartbeatAt: r.heartbeat_at,
    }));
  }

  async createRun(run: NewRun): Promise<RunRecord> {
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO runs (id, name, experiment, status, started_at, base_model, dataset_fingerprint, code_version, pid, host, heartbeat_at)
         VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $4)`,
        [
          run.id,
          run.name ?? null,
          run.experiment ?? 'default',
          run.startedAt,
          run.baseModel ?? null,
          run.datasetFingerprint ?? null,
          run.codeVersion ? JSON.stringify(run.codeVersion) : null,
          run.pid ?? null,
          run.host ?? null,
        ],
      );
      await this.upsertKv(c, 'run_params', run.id, run.params ?? {}, (v) => JSON.stringify(v ?? null));
      await this.upsertKv(c, 'run_tags', run.id, run.tags ?? {}, (v) => String(v));
    });
    return (await this.getRun(run.id))!;
  }

  private async upsertKv<V>(
    c: pg.PoolClient,
    table: 'run_params' | 'run_tags',
    id: string,
    kv: Record<string, V>,
    enc: (v: V) => string,
  ): Promise<void> {
    const keys = Object.keys(kv);
    if (keys.length === 0) return;
    await c.query(
      `INSERT INTO ${table} (run_id, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)
       ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value`,
      [id, keys, keys.map((k) => enc(kv[k]))],
    );
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const rows = await this.q<RunRow>('SELECT * FROM runs WHERE id = $1', [id]);
    return (await this.runsFromRows(rows))[0];
  }

  async findRunIds(prefix: string, limit: number): Promise<string[]> {
    // starts_with instead of LIKE, so '%' and '_' in user input mean nothing special.
    const rows = await this.q<{ id: string }>('SELECT id FROM runs WHERE starts_with(id, $1) ORDER BY id LIMIT $2', [
      prefix,
      limit,
    ]);
    return rows.map((r) => r.id);
  }

  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    const arg = (v: string | number): string => {
      args.push(v);
      return `$${args.length}`;
    };
    if (filter.status) where.push(`status = ${arg(filter.status)}`);
    if (filter.experiment) where.push(`experiment = ${arg(filter.experiment)}`);
    for (const [k, v] of Object.entries(filter.tag ?? {})) {
      where.push(
        `EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.key = ${arg(k)} AND t.value = ${arg(v)})`,
      );
    }
    let sql = 'SELECT * FROM runs';
    if (where.length) sql += ` WHERE ${where.join(' AND ')}`;
    sql += ' ORDER BY started_at DESC, id';
    if (filter.limit !== undefined) sql += ` LIMIT ${arg(filter.limit)}`;
    return this.runsFromRows(await this.q<RunRow>(sql, args));
  }

  async endRun(
    id: string,
    status: Exclude<RunStatus, 'running'>,
    endedAt: number,
    error: string | null = null,
  ): Promise<boolean> {
    return this.tx(async (c) => {
      const res = await c.query(
        "UPDATE runs SET status = $1, ended_at = $2, error = $3 WHERE id = $4 AND status = 'running'",
        [status, endedAt, error, id],
      );
      return (res.rowCount ?? 0) > 0;
    });
  }

  async heartbeat(id: string, at: number): Promise<void> {
    await this.q("UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND status = 'running'", [at, id]);
  }

  async setParams(id: string, params: Record<string, Json>): Promise<void> {
    await this.tx((c) => this.upsertKv(c, 'run_params', id, params, (v) => JSON.stringify(v ?? null)));
  }

  async setTags(id: string, tags: Record<string, string>): Promise<void> {
    await this.tx((c) => this.upsertKv(c, 'run_tags', id, tags, (v) => String(v)));
  }

  async setRunInfo(id: string, info: { baseModel?: string | null; datasetFingerprint?: string | null }): Promise<void> {
    await this.tx(async (c) => {
      if (info.baseModel !== undefined)
        await c.query('UPDATE runs SET base_model = $1 WHERE id = $2', [info.baseModel, id]);
      if (info.datasetFingerprint !== undefined) {
        await c.query('UPDATE runs SET dataset_fingerprint = $1 WHERE id = $2', [info.datasetFingerprint, id]);
      }
    });
  }

  async deleteRun(id: string): Promise<void> {
    await this.tx(async (c) => {
      const used = (
        await c.query<{ name: string; version: number }>(
          'SELECT name, version FROM model_versions WHERE run_id = $1 ORDER BY name, version LIMIT 1',
          [id],
        )
      ).rows[0];
      if (used) {
        throw new RegistryError(
          `run ${id} cannot be deleted: model version ${used.name}:${used.version} was produced by it`,
          { value: id },
        );
      }
      await c.query('DELETE FROM runs WHERE id = $1', [id]);
    });
  }

  async logMetrics(runId: string, points: MetricPoint[]): Promise<void> {
    if (points.length === 0) return;
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO metrics (run_id, key, step, epoch, value, ts)
         SELECT $1, k, s, e, v, t FROM unnest($2::text[], $3::int[], $4::float8[], $5::float8[], $6::int8[]) WITH ORDINALITY AS x(k, s, e, v, t, o)
         ORDER BY o`,
        [
          runId,
          points.map((p) => p.key),
          points.map((p) => p.step),
          points.map((p) => p.epoch ?? null),
          points.map((p) => p.value),
          points.map((p) => p.timestamp),
        ],
      );
    });
  }

  async getMetrics(runId: string, key?: string): Promise<MetricPoint[]> {
    const rows = await (key === undefined
      ? this.q<{ key: string; step: number; epoch: number | null; value: number; ts: number }>(
          'SELECT key, step, epoch, value, ts FROM metrics WHERE run_id = $1 ORDER BY key, step, seq',
          [runId],
        )
      : this.q<{ key: string; step: number; epoch: number | null; value: number; ts: number }>(
          'SELECT key, step, epoch, value, ts FROM metrics WHERE run_id = $1 AND key = $2 ORDER BY step, seq',
          [runId, key],
        ));
    return rows.map((r) => ({ key: r.key, step: r.step, epoch: r.epoch, value: r.value, timestamp: r.ts }));
  }

  async addArtifacts(runId: string, refs: ArtifactRef[], releaseTokens: string[] = []): Promise<void> {
    await this.tx(async (c) => {
      for (const r of refs) {
        await c.query(
          `INSERT INTO artifacts (run_id, path, hash, type, size, kind, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (run_id, path) DO UPDATE SET hash = excluded.hash, type = excluded.type, size = excluded.size,
             kind = excluded.kind, created_at = excluded.created_at`,
          [runId, r.path, r.hash, r.type, r.size, r.kind, r.createdAt],
        );
      }
      if (releaseTokens.length) await c.query('DELETE FROM reservations WHERE token = ANY($1)', [releaseTokens]);
    });
  }

  async listArtifacts(runId: string): Promise<ArtifactRef[]> {
    const rows = await this.q<{
      path: string;
      hash: string;
      type: ObjectType;
      size: number;
      kind: string;
      created_at: number;
    }>('SELECT path, hash, type, size, kind, created_at FROM artifacts WHERE run_id = $1 ORDER BY path', [runId]);
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
    await this.tx(async (c) => {
      await c.query('DELETE FROM predictions WHERE run_id = $1 AND eval_set = $2', [runId, evalSet]);
      if (rows.length === 0) return;
      await c.query(
        `INSERT INTO predictions (run_id, eval_set, idx, label, prediction)
         SELECT $1, $2, i, l, p FROM unnest($3::int[], $4::text[], $5::text[]) AS t(i, l, p)`,
        [runId, evalSet, rows.map((r) => r.index), rows.map((r) => r.label), rows.map((r) => r.prediction)],
      );
    });
  }

  async getPredictions(runId: string, evalSet: string): Promise<PredictionRow[]> {
    const rows = await this.q<{ idx: number; label: string; prediction: string }>(
      'SELECT idx, label, prediction FROM predictions WHERE run_id = $1 AND eval_set = $2 ORDER BY idx',
      [runId, evalSet],
    );
    return rows.map((r) => ({ index: r.idx, label: r.label, prediction: r.prediction }));
  }

  async listPredictionSets(runId: string): Promise<string[]> {
    const rows = await this.q<{ eval_set: string }>(
      'SELECT DISTINCT eval_set FROM predictions WHERE run_id = $1 ORDER BY eval_set',
      [runId],
    );
    return rows.map((r) => r.eval_set);
  }

  private async versionsFromRows(rows: VersionRow[]): Promise<ModelVersion[]> {
    if (rows.length === 0) return [];
    const names = rows.map((r) => r.name);
    const versions = rows.map((r) => r.version);
    const lineage = await this.q<{
      name: string;
      version: number;
      relation: string;
      parent_name: string | null;
      parent_version: number | null;
      external: string | null;
    }>(
      `SELECT l.name, l.version, relation, parent_name, parent_version, external FROM model_lineage l
       JOIN unnest($1::text[], $2::int[]) AS k(n, v) ON l.name = k.n AND l.version = k.v ORDER BY l.name, l.version, ord`,
      [names, versions],
    );
    const aliases = await this.q<{ name: string; version: number; alias: string }>(
      `SELECT a.name, a.version, alias FROM aliases a
       JOIN unnest($1::text[], $2::int[]) AS k(n, v) ON a.name = k.n AND a.version = k.v ORDER BY alias`,
      [names, versions],
    );
    const key = (n: string, v: number): string => `${v} ${n}`;
    const parents = new Map<string, LineageParent[]>();
    for (const p of lineage) {
      const k = key(p.name, p.version);
      if (!parents.has(k)) parents.set(k, []);
      parents
        .get(k)!
        .push(
          p.parent_name !== null
            ? { relation: p.relation, model: { name: p.parent_name, version: p.parent_version! } }
            : { relation: p.relation, external: p.external! },
        );
    }
    const al = new Map<string, string[]>();
    for (const a of aliases) {
      const k = key(a.name, a.version);
      if (!al.has(k)) al.set(k, []);
      al.get(k)!.push(a.alias);
    }
    return rows.map((r) => ({
      name: r.name,
      version: r.version,
      artifact: { hash: r.hash, type: r.type, size: r.size },
      runId: r.run_id,
      createdAt: r.created_at,
      description: r.description,
      metadata: JSON.parse(r.metadata) as Record<string, Json>,
      parents: parents.get(key(r.name, r.version)) ?? [],
      aliases: al.get(key(r.name, r.version)) ?? [],
    }));
  }

  async createModelVersion(input: NewModelVersion, releaseTokens: string[] = []): Promise<ModelVersion> {
    const version = await this.tx(async (c) => {
      // The upsert takes the row lock of this model name until COMMIT: a second writer of the same name waits
      // here, and its MAX(version) below (a new snapshot per statement in READ COMMITTED) then sees our row.
      await c.query(
        `INSERT INTO models (name, created_at, updated_at) VALUES ($1, $2, $2)
         ON CONFLICT (name) DO UPDATE SET updated_at = GREATEST(models.updated_at, excluded.updated_at)`,
        [input.name, input.createdAt],
      );
      const next = (
        await c.query<{ next: number }>(
          'SELECT COALESCE(MAX(version), 0)::int + 1 AS next FROM model_versions WHERE name = $1',
          [input.name],
        )
      ).rows[0].next;
      if (input.runId != null && (await c.query('SELECT 1 FROM runs WHERE id = $1', [input.runId])).rowCount === 0) {
        throw new RegistryError(`run '${input.runId}' does not exist`, { value: input.runId });
      }
      await c.query(
        `INSERT INTO model_versions (name, version, hash, type, size, run_id, created_at, description, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          input.name,
          next,
          input.artifact.hash,
          input.artifact.type,
          input.artifact.size,
          input.runId ?? null,
          input.createdAt,
          input.description ?? null,
          JSON.stringify(input.metadata ?? {}),
        ],
      );
      const parents = input.parents ?? [];
      for (let i = 0; i < parents.length; i++) {
        const p = parents[i];
        if (p.model) {
          const found = await c.query('SELECT 1 FROM model_versions WHERE name = $1 AND version = $2', [
            p.model.name,
            p.model.version,
          ]);
          if (found.rowCount === 0) {
            throw new RegistryError(
              `lineage parent ${p.model.name}:${p.model.version} is not a registered model version`,
              { value: `${p.model.name}:${p.model.version}` },
            );
          }
          await c.query(
            'INSERT INTO model_lineage (name, version, ord, relation, parent_name, parent_version, external) VALUES ($1, $2, $3, $4, $5, $6, NULL)',
            [input.name, next, i, p.relation, p.model.name, p.model.version],
          );
        } else if (p.external !== undefined) {
          await c.query(
            'INSERT INTO model_lineage (name, version, ord, relation, parent_name, parent_version, external) VALUES ($1, $2, $3, $4, NULL, NULL, $5)',
            [input.name, next, i, p.relation, p.external],
          );
        } else {
          throw new RegistryError(
            `lineage parent #${i} (${p.relation}) names neither a model version nor an external id`,
          );
        }
      }
      for (const a of input.aliases ?? []) await this.upsertAlias(c, input.name, a, next, input.createdAt, 'set');
      if (releaseTokens.length) await c.query('DELETE FROM reservations WHERE token = ANY($1)', [releaseTokens]);
      return next;
    });
    return (await this.getModelVersion(input.name, version))!;
  }

  /** Points the alias and appends the move to its history, inside the caller's transaction. */
  private async upsertAlias(
    c: pg.PoolClient,
    name: string,
    alias: string,
    version: number,
    at: number,
    action: 'set' | 'rollback',
  ): Promise<void> {
    await c.query(
      `INSERT INTO aliases (name, alias, version, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
      [name, alias, version, at],
    );
    await c.query('INSERT INTO alias_history (name, alias, action, version, at) VALUES ($1, $2, $3, $4, $5)', [
      name,
      alias,
      action,
      version,
      at,
    ]);
  }

  async getModelVersion(name: string, version: number): Promise<ModelVersion | undefined> {
    const rows = await this.q<VersionRow>('SELECT * FROM model_versions WHERE name = $1 AND version = $2', [
      name,
      version,
    ]);
    return (await this.versionsFromRows(rows))[0];
  }

  async listModelVersions(name: string): Promise<ModelVersion[]> {
    return this.versionsFromRows(
      await this.q<VersionRow>('SELECT * FROM model_versions WHERE name = $1 ORDER BY version', [name]),
    );
  }

  async listModelVersionsByRun(runId: string): Promise<ModelVersion[]> {
    return this.versionsFromRows(
      await this.q<VersionRow>('SELECT * FROM model_versions WHERE run_id = $1 ORDER BY name, version', [runId]),
    );
  }

  async listModels(): Promise<ModelSummary[]> {
    const rows = await this.q<{ name: string; updated_at: number; latest: number; n: number }>(
      `SELECT m.name, m.updated_at, MAX(v.version) AS latest, COUNT(v.version) AS n
       FROM models m JOIN model_versions v ON v.name = m.name GROUP BY m.name, m.updated_at ORDER BY m.name`,
    );
    const aliases = await this.q<{ name: string; alias: string; version: number }>(
      'SELECT name, alias, version FROM aliases ORDER BY name, alias',
    );
    const byName = new Map<string, Record<string, number>>();
    for (const a of aliases) {
      if (!byName.has(a.name)) byName.set(a.name, {});
      byName.get(a.name)![a.alias] = a.version;
    }
    return rows.map((r) => ({
      name: r.name,
      latestVersion: r.latest,
      versions: r.n,
      aliases: byName.get(r.name) ?? {},
      updatedAt: r.updated_at,
    }));
  }

  async setAlias(name: string, alias: string, version: number): Promise<void> {
    await this.tx(async (c) => {
      const found = await c.query('SELECT 1 FROM model_versions WHERE name = $1 AND version = $2', [name, version]);
      if (found.rowCount === 0) {
        throw new RegistryError(`model version ${name}:${version} does not exist`, { value: `${name}:${version}` });
      }
      const now = Date.now();
      await this.upsertAlias(c, name, alias, version, now, 'set');
      await c.query('UPDATE models SET updated_at = $1 WHERE name = $2', [now, name]);
    });
  }

  async deleteAlias(name: string, alias: string): Promise<boolean> {
    return this.tx(async (c) => {
      const gone =
        ((await c.query('DELETE FROM aliases WHERE name = $1 AND alias = $2', [name, alias])).rowCount ?? 0) > 0;
      if (gone) {
        await c.query(
          "INSERT INTO alias_history (name, alias, action, version, at) VALUES ($1, $2, 'delete', NULL, $3)",
          [name, alias, Date.now()],
        );
      }
      return gone;
    });
  }

  async aliasHistory(name: string, alias: string): Promise<AliasMove[]> {
    return this.readAliasHistory((sql, params) => this.q(sql, params), name, alias);
  }

  private async readAliasHistory(
    query: (
      sql: string,
      params: unknown[],
    ) => Promise<Array<{ action: string; version: number | null; at: string | number }>>,
    name: string,
    alias: string,
  ): Promise<AliasMove[]> {
    const rows = await query(
      'SELECT action, version, at FROM alias_history WHERE name = $1 AND alias = $2 ORDER BY id',
      [name, alias],
    );
    return rows.map((r) => ({ action: r.action as AliasMove['action'], version: r.version, at: Number(r.at) }));
  }

  async rollbackAlias(name: string, alias: string): Promise<AliasRollback> {
    return this.tx(async (c) => {
      // Lock the alias row so that two rollbacks (or a rollback and a set) serialise on it.
      const cur = await c.query<{ version: number }>(
        'SELECT version FROM aliases WHERE name = $1 AND alias = $2 FOR UPDATE',
        [name, alias],
      );
      const current = cur.rows[0]?.version;
      const history = await this.readAliasHistory(
        async (sql, params) =>
          (await c.query<{ action: string; version: number | null; at: string }>(sql, params)).rows,
        name,
        alias,
      );
      const to = rollbackTarget(name, alias, current, history);
      const now = Date.now();
      await this.upsertAlias(c, name, alias, to, now, 'rollback');
      await c.query('UPDATE models SET updated_at = $1 WHERE name = $2', [now, name]);
      return { name, alias, from: current!, to };
    });
  }

  async resolveAlias(name: string, alias: string): Promise<number | undefined> {
    const rows = await this.q<{ version: number }>('SELECT version FROM aliases WHERE name = $1 AND alias = $2', [
      name,
      alias,
    ]);
    return rows[0]?.version;
  }

  async reserveObject(r: ObjectReservation): Promise<void> {
    // ON CONFLICT: a retry after a lost COMMIT acknowledgement must not fail on its own earlier insert.
    await this.q(
      'INSERT INTO reservations (token, hash, pid, host, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token) DO NOTHING',
      [r.token, r.hash, r.pid, r.host, r.createdAt],
    );
  }

  async releaseObject(token: string): Promise<void> {
    await this.q('DELETE FROM reservations WHERE token = $1', [token]);
  }

  async listReservations(): Promise<ObjectReservation[]> {
    const rows = await this.q<{ token: string; hash: string; pid: number; host: string; created_at: number }>(
      'SELECT token, hash, pid, host, created_at FROM reservations ORDER BY token',
    );
    return rows.map((r) => ({ token: r.token, hash: r.hash, pid: r.pid, host: r.host, createdAt: r.created_at }));
  }

  async referencedObjects(): Promise<Set<string>> {
    const rows = await this.q<{ hash: string }>('SELECT hash FROM artifacts UNION SELECT hash FROM model_versions');
    return new Set(rows.map((r) => r.hash));
  }

  async referencedObjectList(): Promise<Array<StoredObject & { referencedBy: string }>> {
    const rows = await this.q<{ hash: string; type: ObjectType; size: number; by: string }>(
      `SELECT * FROM (
         SELECT hash, type, size, 'run ' || run_id || ' artifact ' || path AS by FROM artifacts
         UNION ALL SELECT hash, type, size, 'model ' || name || ':' || version AS by FROM model_versions
       ) refs ORDER BY by COLLATE "C"`,
    );
    return rows.map((r) => ({ hash: r.hash, type: r.type, size: r.size, referencedBy: r.by }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
