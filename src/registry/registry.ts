/**
 * The registry: tracked runs and versioned models over a MetadataStore and an ArtifactStore.
 *
 * Invariant: no metadata row ever points at an object that is not in the artifact store. Objects are copied to
 * temporary storage and hashed, reserved in the metadata (so gc keeps them), renamed into place, and only then
 * are the rows committed, in the same transaction that drops the reservation. gc quarantines candidates, re-reads
 * the references and restores anything that became referenced meanwhile.
 */
import { execFileSync } from 'node:child_process';
import { constants as fsc, existsSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, RegistryError } from '../errors.ts';
import { compareRuns as compareRunsImpl, type CompareOptions, type RunComparison } from './compare.ts';
import { openArtifactStore, openMetadataStore, resolveBackends, type BackendOptions } from './backends.ts';
import { checkAlias, checkModelName, formatModelRef, parseModelRef } from './refs.ts';
import type { ArtifactStore, MetadataStore, StagedObject, StagingArea } from './store.ts';
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
  PredictionRow,
  RunFilter,
  RunRecord,
  RunStatus,
  StoredObject,
} from './types.ts';
import { HOST, errCode, pidAlive, randomHex } from './util.ts';

/** Environment variable that overrides the default registry folder. */
export const TAILOR_HOME_ENV = 'TAILOR_HOME';

/** Options for opening a registry. */
export interface RegistryOptions extends BackendOptions {
  /**
   * Registry folder; default `$TAILOR_HOME`, else `./.tailor`. With network backends it still holds the local
   * staging folder (`tmp/`) and the artifact download cache (`cache/`).
   */
  home?: string;
  /**
   * Backend instances; default by URL (`registryUrl`/`$TAILOR_REGISTRY`, `artifactsUrl`/`$TAILOR_ARTIFACTS`),
   * else SQLite at `<home>/registry.db` and a local folder at `<home>`.
   */
  metadata?: MetadataStore;
  artifacts?: ArtifactStore;
  /** How messages name the registry; default the folder, or the (masked) database URL for a network store. */
  location?: string;
  /** A running run on another host is considered dead when its heartbeat is older than this (default 10 min). */
  staleAfterMs?: number;
  /** How often a live run refreshes its heartbeat (default 30 s). */
  heartbeatIntervalMs?: number;
}

/** The folder a registry opens: explicit option, then `$TAILOR_HOME`, then `./.tailor`. */
export function resolveHome(home?: string): string {
  const env = process.env[TAILOR_HOME_ENV];
  return resolve(home ?? (env !== undefined && env !== '' ? env : '.tailor'));
}

let cachedCodeVersion: CodeVersion | undefined;

/** Tailor's package version and git commit (when the package is a git checkout). Cached per process. */
export function codeVersion(): CodeVersion {
  if (cachedCodeVersion) return cachedCodeVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  let pkg = 'tailor@unknown';
  let root: string | undefined;
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const j = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        pkg = `${j.name ?? 'tailor'}@${j.version ?? 'unknown'}`;
        root = dir;
      } catch {
        // A malformed package.json only costs us the version string.
      }
      break;
    }
    dir = dirname(dir);
  }
  const cv: CodeVersion = { package: pkg };
  if (root !== undefined) {
    try {
      const opts = {
        cwd: root,
        stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
        timeout: 3000,
        encoding: 'utf8' as const,
      };
      cv.git = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
      cv.dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim() !== '';
    } catch {
      // Not a git checkout, or git is not installed: the package version is all we can record.
    }
  }
  cachedCodeVersion = cv;
  return cv;
}

/** Fails with a RegistryError naming the path unless the registry folder can be created and written. */
async function ensureWritableHome(home: string): Promise<void> {
  try {
    await fsp.mkdir(home, { recursive: true });
  } catch (e) {
    throw new RegistryError(
      `registry folder ${home} cannot be created (${errCode(e) ?? (e as Error).message}); choose another with --home DIR or ${TAILOR_HOME_ENV}`,
      {
        file: home,
      },
      { cause: e },
    );
  }
  for (const p of [home, join(home, 'objects'), join(home, 'tmp'), join(home, 'registry.db')]) {
    if (p !== home && !existsSync(p)) continue;
    try {
      await fsp.access(p, fsc.W_OK);
    } catch (e) {
      throw new RegistryError(
        `registry folder ${home} is not writable (${p}: ${errCode(e) ?? 'access denied'}); choose another with --home DIR or ${TAILOR_HOME_ENV}`,
        {
          file: p,
        },
        { cause: e },
      );
    }
  }
}

/** Options for starting a run. */
export interface StartRunOptions {
  name?: string;
  experiment?: string;
  params?: Record<string, Json>;
  tags?: Record<string, string>;
  baseModel?: string;
  datasetFingerprint?: string;
  /** Mark the run `killed` on SIGINT/SIGTERM, then exit (for CLI commands). Default false. */
  handleSignals?: boolean;
}

/** A run with its artifacts and the latest value of each metric, as `runs show` prints it. */
export interface RunDetails extends RunRecord {
  durationMs: number | null;
  /** Last logged value (highest step) per metric key. */
  latestMetrics: Record<string, number>;
  artifacts: ArtifactRef[];
  predictionSets: string[];
  /** Model versions registered from this run. */
  models: Array<{ name: string; version: number }>;
}

/** Where a model version's lineage leads, as a parent spec to `registerModel`. */
export interface ParentSpec {
  relation: string;
  /** A registered model reference (`name:3`, `name@production`). */
  model?: string;
  /** An external id (hub name, file path) when the parent is not registered. */
  external?: string;
}

/** Options for registering a model version. */
export interface RegisterModelOptions {
  name: string;
  /** A local folder or file to store, or an artifact already logged by a run. */
  source: string | { runId: string; artifactPath: string };
  runId?: string;
  parents?: ParentSpec[];
  aliases?: string[];
  description?: string;
  metadata?: Record<string, Json>;
}

/** What gc did (or would do, with dryRun). */
export interface GcReport {
  dryRun: boolean;
  removedObjects: StoredObject[];
  bytesFreed: number;
  removedTemp: string[];
  staleReservations: number;
  keptObjects: number;
}

/** Result of verify: every referenced object exists and re-hashes to its name. */
export interface VerifyReport {
  ok: boolean;
  checkedObjects: number;
  problems: Array<{ hash: string; problem: string; referencedBy: string[] }>;
  unreferencedObjects: number;
}

/** Options for gc. */
export interface GcOptions {
  dryRun?: boolean;
  /** Temp folders and reservations of other hosts older than this are stale (default 24 h). */
  maxTempAgeMs?: number;
}

/** Tracked runs and registered models. Open with `openRegistry()`. */
export class Registry {
  readonly home: string;
  /** How messages name this registry: its folder, or its database URL (password masked). */
  readonly location: string;
  readonly metadata: MetadataStore;
  readonly artifacts: ArtifactStore;
  readonly staleAfterMs: number;
  readonly heartbeatIntervalMs: number;
  private readonly openRuns = new Set<RunHandle>();

  constructor(home: string, metadata: MetadataStore, artifacts: ArtifactStore, options: RegistryOptions = {}) {
    this.home = home;
    this.location = options.location ?? home;
    this.metadata = metadata;
    this.artifacts = artifacts;
    this.staleAfterMs = options.staleAfterMs ?? 10 * 60_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 30_000;
  }

  /** Starts a run owned by this process; it records pid, host and a heartbeat for stale-run detection. */
  async startRun(options: StartRunOptions = {}): Promise<RunHandle> {
    const id = randomHex(8);
    await this.metadata.createRun({
      id,
      name: options.name ?? null,
      experiment: options.experiment ?? 'default',
      startedAt: Date.now(),
      baseModel: options.baseModel ?? null,
      datasetFingerprint: options.datasetFingerprint ?? null,
      codeVersion: codeVersion(),
      params: options.params ?? {},
      tags: options.tags ?? {},
      pid: process.pid,
      host: HOST,
    });
    const handle = new RunHandle(this, id, options.handleSignals === true);
    this.openRuns.add(handle);
    return handle;
  }

  /** @internal */
  forget(handle: RunHandle): void {
    this.openRuns.delete(handle);
  }

  /**
   * Marks `running` runs whose process is gone as failed: on this host by checking the pid, on other hosts by
   * the heartbeat age. Returns the ids it marked. `list`/`show` call it, so a killed training never shows as running.
   */
  async sweepStaleRuns(): Promise<string[]> {
    const now = Date.now();
    const marked: string[] = [];
    for (const run of await this.metadata.listRuns({ status: 'running' })) {
      let reason: string | undefined;
      if (run.host === HOST && run.pid !== null) {
        if (run.pid !== process.pid && !pidAlive(run.pid))
          reason = `process ${run.pid} on ${run.host} exited without ending the run`;
      } else {
        const last = run.heartbeatAt ?? run.startedAt;
        if (now - last > this.staleAfterMs)
          reason = `no heartbeat from ${run.host ?? 'unknown host'} since ${new Date(last).toISOString()}`;
      }
      if (reason !== undefined && (await this.metadata.endRun(run.id, 'failed', now, reason))) marked.push(run.id);
    }
    return marked;
  }

  /** Resolves a full id or a unique prefix (at least 4 characters) to a run id. */
  async resolveRunId(idOrPrefix: string): Promise<string> {
    if (await this.metadata.getRun(idOrPrefix)) return idOrPrefix;
    if (idOrPrefix.length >= 4) {
      const ids = await this.metadata.findRunIds(idOrPrefix, 6);
      if (ids.length === 1) return ids[0];
      if (ids.length > 1) {
        throw new RegistryError(
          `run id prefix '${idOrPrefix}' is ambiguous: matches ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}`,
          {
            value: idOrPrefix,
          },
        );
      }
    }
    throw new RegistryError(`run '${idOrPrefix}' does not exist in registry ${this.location}`, { value: idOrPrefix });
  }

  /** A run record (after the stale-run sweep). Throws RegistryError for an unknown id. */
  async getRun(idOrPrefix: string): Promise<RunRecord> {
    await this.sweepStaleRuns();
    const id = await this.resolveRunId(idOrPrefix);
    return (await this.metadata.getRun(id))!;
  }

  /** A run with artifacts, latest metrics, prediction sets and the model versions it produced. */
  async showRun(idOrPrefix: string): Promise<RunDetails> {
    const run = await this.getRun(idOrPrefix);
    const latestMetrics: Record<string, number> = {};
    for (const p of await this.metadata.getMetrics(run.id)) latestMetrics[p.key] = p.value; // ordered by step
    const models = (await this.metadata.listModelVersionsByRun(run.id)).map((v) => ({
      name: v.name,
      version: v.version,
    }));
    return {
      ...run,
      durationMs: run.endedAt === null ? null : run.endedAt - run.startedAt,
      latestMetrics,
      artifacts: await this.metadata.listArtifacts(run.id),
      predictionSets: await this.metadata.listPredictionSets(run.id),
      models,
    };
  }

  /** Runs, newest first (after the stale-run sweep). */
  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    await this.sweepStaleRuns();
    return this.metadata.listRuns(filter);
  }

  /** Full metric series of a run, optionally one key. */
  async getMetrics(idOrPrefix: string, key?: string): Promise<MetricPoint[]> {
    return this.metadata.getMetrics(await this.resolveRunId(idOrPrefix), key);
  }

  /** Metric table side by side, params diff, and McNemar + bootstrap CIs when both logged predictions. */
  async compareRuns(a: string, b: string, options: CompareOptions = {}): Promise<RunComparison> {
    return compareRunsImpl(this, a, b, options);
  }

  /** Deletes a run's rows (not a run that produced a registered model). Objects go at the next gc. */
  async deleteRun(idOrPrefix: string): Promise<void> {
    const id = await this.resolveRunId(idOrPrefix);
    const run = await this.metadata.getRun(id);
    if (run?.status === 'running' && run.host === HOST && run.pid !== null && pidAlive(run.pid)) {
      throw new RegistryError(`run ${id} is still running (pid ${run.pid}); end it before deleting`, { value: id });
    }
    await this.metadata.deleteRun(id);
  }

  /**
   * Stores a staged object and commits the rows that reference it, in the order that keeps the invariant:
   * reserve -> rename into place -> commit rows (which releases the reservation).
   */
  async storeObject<T>(staged: StagedObject, commitRows: (releaseTokens: string[]) => Promise<T>): Promise<T> {
    const token = randomHex(12);
    try {
      await this.metadata.reserveObject({
        token,
        hash: staged.hash,
        pid: process.pid,
        host: HOST,
        createdAt: Date.now(),
      });
      await staged.commit();
      return await commitRows([token]);
    } catch (e) {
      await staged.abort().catch(() => undefined);
      await this.metadata.releaseObject(token).catch(() => undefined);
      throw e;
    }
  }

  /** Resolves a model reference (`name`, `name:3`, `name@alias`) to its version record. */
  async getModel(ref: string): Promise<ModelVersion> {
    const r = parseModelRef(ref);
    let version: number | undefined;
    if ('version' in r) version = r.version;
    else if ('alias' in r) {
      version = await this.metadata.resolveAlias(r.name, r.alias);
      if (version === undefined) {
        const known = (await this.metadata.listModels()).find((m) => m.name === r.name);
        if (!known) throw new RegistryError(`model '${r.name}' is not registered in ${this.location}`, { value: ref });
        const aliases = Object.keys(known.aliases);
        throw new RegistryError(
          `alias '${r.alias}' of model '${r.name}' points nowhere (known aliases: ${aliases.length ? aliases.join(', ') : 'none'})`,
          { value: ref },
        );
      }
    } else {
      const versions = await this.metadata.listModelVersions(r.name);
      if (versions.length === 0)
        throw new RegistryError(`model '${r.name}' is not registered in ${this.location}`, { value: ref });
      return versions[versions.length - 1];
    }
    const mv = await this.metadata.getModelVersion(r.name, version);
    if (!mv) {
      const versions = await this.metadata.listModelVersions(r.name);
      if (versions.length === 0)
        throw new RegistryError(`model '${r.name}' is not registered in ${this.location}`, { value: ref });
      throw new RegistryError(
        `model version ${formatModelRef(r)} does not exist (latest is ${versions[versions.length - 1].version})`,
        { value: ref },
      );
    }
    return mv;
  }

  /** Registers a new version of a model from a folder/file or from a run's artifact. */
  async registerModel(options: RegisterModelOptions): Promise<ModelVersion> {
    checkModelName(options.name);
    for (const a of options.aliases ?? []) checkAlias(a);
    const parents: LineageParent[] = [];
    for (const p of options.parents ?? []) {
      if ((p.model === undefined) === (p.external === undefined)) {
        throw new ConfigError(
          `lineage parent '${p.relation}' must name exactly one of a registered model or an external id`,
        );
      }
      if (p.model !== undefined) {
        const mv = await this.getModel(p.model);
        parents.push({ relation: p.relation, model: { name: mv.name, version: mv.version } });
      } else parents.push({ relation: p.relation, external: p.external });
    }
    let runId: string | null = null;
    if (options.runId !== undefined) runId = await this.resolveRunId(options.runId);
    const base = {
      name: options.name,
      runId,
      createdAt: Date.now(),
      description: options.description ?? null,
      metadata: options.metadata ?? {},
      parents,
      aliases: options.aliases ?? [],
    };
    if (typeof options.source === 'string') {
      const staged = await this.artifacts.ingest(options.source);
      const object: StoredObject = { hash: staged.hash, type: staged.type, size: staged.size };
      return this.storeObject(staged, (tokens) =>
        this.metadata.createModelVersion({ ...base, artifact: object }, tokens),
      );
    }
    const srcRun = await this.resolveRunId(options.source.runId);
    const art = (await this.metadata.listArtifacts(srcRun)).find(
      (a) => a.path === (options.source as { artifactPath: string }).artifactPath,
    );
    if (!art) {
      throw new RegistryError(`run ${srcRun} has no artifact '${options.source.artifactPath}'`, {
        value: options.source.artifactPath,
      });
    }
    return this.metadata.createModelVersion({
      ...base,
      runId: base.runId ?? srcRun,
      artifact: { hash: art.hash, type: art.type, size: art.size },
    });
  }

  /** All registered models with their latest version and aliases. */
  async listModels(): Promise<ModelSummary[]> {
    return this.metadata.listModels();
  }

  /** All versions of one model, oldest first. */
  async listModelVersions(name: string): Promise<ModelVersion[]> {
    checkModelName(name);
    const v = await this.metadata.listModelVersions(name);
    if (v.length === 0)
      throw new RegistryError(`model '${name}' is not registered in ${this.location}`, { value: name });
    return v;
  }

  /** Points an alias at a version (`target` is a version number or any model reference); atomic. */
  async setAlias(name: string, alias: string, target: number | string): Promise<ModelVersion> {
    checkModelName(name);
    checkAlias(alias);
    const mv = await this.getModel(
      typeof target === 'number'
        ? `${name}:${target}`
        : target.includes(':') || target.includes('@')
          ? target
          : `${name}:${target}`,
    );
    if (mv.name !== name)
      throw new ConfigError(`alias target ${mv.name}:${mv.version} belongs to another model than '${name}'`);
    await this.metadata.setAlias(name, alias, mv.version);
    return (await this.metadata.getModelVersion(name, mv.version))!;
  }

  /** Removes an alias; throws if it pointed nowhere. */
  async deleteAlias(name: string, alias: string): Promise<void> {
    checkModelName(name);
    if (!(await this.metadata.deleteAlias(name, alias))) {
      throw new RegistryError(`alias '${alias}' of model '${name}' points nowhere`, { value: `${name}@${alias}` });
    }
  }

  /**
   * Moves an alias back to the version it pointed at before its current one, in one transaction. Repeated
   * rollbacks walk further back through the alias's history; a deletion starts the history afresh.
   */
  async rollbackAlias(name: string, alias = 'production'): Promise<AliasRollback> {
    checkModelName(name);
    checkAlias(alias);
    await this.listModelVersions(name); // a clear error for an unknown model
    return this.metadata.rollbackAlias(name, alias);
  }

  /** Every recorded move of an alias, oldest first. */
  async aliasHistory(name: string, alias: string): Promise<AliasMove[]> {
    checkModelName(name);
    checkAlias(alias);
    return this.metadata.aliasHistory(name, alias);
  }

  /** Copies a model version's folder to `dest` (which must not exist). Returns the version exported. */
  async exportModel(ref: string, dest: string): Promise<ModelVersion> {
    const mv = await this.getModel(ref);
    await this.artifacts.exportTo(mv.artifact.hash, resolve(dest));
    return mv;
  }

  /**
   * A local, read-only folder holding a model version: in place for the local store, a download cached by
   * content hash for a remote one. Callers never need to know which.
   */
  async modelPath(ref: string): Promise<string> {
    const mv = await this.getModel(ref);
    return this.artifacts.materialize(mv.artifact.hash);
  }

  /** Removes unreferenced objects, stale temp folders and stale reservations. */
  async gc(options: GcOptions = {}): Promise<GcReport> {
    const dryRun = options.dryRun === true;
    const maxAge = options.maxTempAgeMs ?? 24 * 3600_000;
    const removedTemp = dryRun ? [] : await this.artifacts.cleanTemp(maxAge);
    const now = Date.now();
    let staleReservations = 0;
    const live = new Set<string>();
    for (const r of await this.metadata.listReservations()) {
      const stale = r.host === HOST ? r.pid !== process.pid && !pidAlive(r.pid) : now - r.createdAt > maxAge;
      if (!stale) live.add(r.hash);
      else {
        staleReservations++;
        if (!dryRun) await this.metadata.releaseObject(r.token);
      }
    }
    const keep = await this.metadata.referencedObjects();
    const candidates = (await this.artifacts.list()).filter((h) => !keep.has(h) && !live.has(h));
    const removed: StoredObject[] = [];
    if (dryRun) {
      for (const h of candidates) {
        const st = await this.artifacts.stat(h);
        if (st) removed.push(st);
      }
    } else {
      const quarantined: Array<{ token: string; obj: StoredObject }> = [];
      for (const h of candidates) {
        const st = await this.artifacts.stat(h);
        const token = await this.artifacts.quarantine(h);
        if (st && token !== undefined) quarantined.push({ token, obj: st });
      }
      // Re-read after quarantining: a writer that reserved or referenced one of these meanwhile wins.
      const keepNow = await this.metadata.referencedObjects();
      for (const r of await this.metadata.listReservations()) keepNow.add(r.hash);
      for (const q of quarantined) {
        if (keepNow.has(q.obj.hash)) await this.artifacts.restore(q.token);
        else {
          await this.artifacts.purge(q.token);
          removed.push(q.obj);
        }
      }
    }
    return {
      dryRun,
      removedObjects: removed,
      bytesFreed: removed.reduce((s, o) => s + o.size, 0),
      removedTemp,
      staleReservations,
      keptObjects: keep.size,
    };
  }

  /** Checks that every referenced object exists and re-hashes to its name. */
  async verify(): Promise<VerifyReport> {
    const refs = await this.metadata.referencedObjectList();
    const byHash = new Map<string, { type: StoredObject['type']; by: string[] }>();
    for (const r of refs) {
      const e = byHash.get(r.hash);
      if (e) e.by.push(r.referencedBy);
      else byHash.set(r.hash, { type: r.type, by: [r.referencedBy] });
    }
    const problems: VerifyReport['problems'] = [];
    for (const [hash, e] of byHash) {
      const c = await this.artifacts.check(hash, e.type);
      if (!c.ok) problems.push({ hash, problem: c.problem ?? 'unknown', referencedBy: e.by });
    }
    const unreferenced = (await this.artifacts.list()).filter((h) => !byHash.has(h)).length;
    return { ok: problems.length === 0, checkedObjects: byHash.size, problems, unreferencedObjects: unreferenced };
  }

  /** Closes the stores; open runs are left as they are (their process may still end them). */
  async close(): Promise<void> {
    for (const h of this.openRuns) h.stopHeartbeat();
    await this.metadata.close();
    await this.artifacts.close();
  }
}

/** Options for logging an artifact. */
export interface LogArtifactOptions {
  /** Run-relative name; default the source's base name. */
  path?: string;
  /** Semantic kind (`model`, `checkpoint`, `predictions`, `report`, ...); default `other`. */
  kind?: string;
}

/** A run being written by this process. */
export class RunHandle {
  readonly id: string;
  private readonly registry: Registry;
  private readonly nextStep = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private readonly signalHandler: ((sig: NodeJS.Signals) => void) | undefined;

  constructor(registry: Registry, id: string, handleSignals: boolean) {
    this.registry = registry;
    this.id = id;
    this.timer = setInterval(() => {
      registry.metadata.heartbeat(id, Date.now()).catch(() => undefined);
    }, registry.heartbeatIntervalMs);
    this.timer.unref();
    if (handleSignals) {
      this.signalHandler = (sig: NodeJS.Signals) => {
        void this.end('killed', `received ${sig}`).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
      };
      process.once('SIGINT', this.signalHandler);
      process.once('SIGTERM', this.signalHandler);
    }
  }

  private get meta(): MetadataStore {
    return this.registry.metadata;
  }

  private checkOpen(): void {
    if (this.ended) throw new RegistryError(`run ${this.id} has already ended`, { value: this.id });
  }

  /** Adds or overwrites params. */
  async logParams(params: Record<string, Json>): Promise<void> {
    this.checkOpen();
    await this.meta.setParams(this.id, params);
  }

  async setTags(tags: Record<string, string>): Promise<void> {
    await this.meta.setTags(this.id, tags);
  }

  async setDatasetFingerprint(fingerprint: string): Promise<void> {
    await this.meta.setRunInfo(this.id, { datasetFingerprint: fingerprint });
  }

  async setBaseModel(baseModel: string): Promise<void> {
    await this.meta.setRunInfo(this.id, { baseModel });
  }

  /** Logs one metric value; `step` defaults to one past this key's last step. */
  async logMetric(key: string, value: number, opts: { step?: number; epoch?: number } = {}): Promise<void> {
    await this.logMetrics({ [key]: value }, opts);
  }

  /** Logs several metrics at the same step in one transaction. Non-finite values are rejected. */
  async logMetrics(values: Record<string, number>, opts: { step?: number; epoch?: number } = {}): Promise<void> {
    this.checkOpen();
    const now = Date.now();
    const points: MetricPoint[] = [];
    for (const [key, value] of Object.entries(values)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new ConfigError(`metric '${key}' of run ${this.id} must be a finite number, got ${String(value)}`, {
          field: key,
          value: String(value),
        });
      }
      const step = opts.step ?? this.nextStep.get(key) ?? 0;
      if (!Number.isInteger(step) || step < 0)
        throw new ConfigError(`metric step must be a non-negative integer, got ${step}`, { field: key });
      this.nextStep.set(key, step + 1);
      points.push({ key, value, step, epoch: opts.epoch ?? null, timestamp: now });
    }
    await this.meta.logMetrics(this.id, points);
  }

  /** Copies a file or folder into the artifact store and records it for this run. */
  async logArtifact(sourcePath: string, opts: LogArtifactOptions = {}): Promise<ArtifactRef> {
    this.checkOpen();
    const staged = await this.registry.artifacts.ingest(sourcePath);
    const name = opts.path ?? (resolve(sourcePath).split(/[\\/]/).pop() || 'artifact');
    return this.commitArtifact(staged, name, opts.kind ?? 'other');
  }

  /** Stores bytes (a JSON report, predictions) as an artifact of this run. */
  async logArtifactBytes(bytes: Uint8Array | string, path: string, kind = 'other'): Promise<ArtifactRef> {
    this.checkOpen();
    const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
    return this.commitArtifact(await this.registry.artifacts.ingestBytes(data), path, kind);
  }

  /**
   * A temporary folder to write an artifact folder into directly (saves a copy for big models); call
   * `commit(path, kind)` on the result when done, or `abort()`.
   */
  async stageArtifact(): Promise<{
    path: string;
    commit: (path: string, kind?: string) => Promise<ArtifactRef>;
    abort: () => Promise<void>;
  }> {
    this.checkOpen();
    const area: StagingArea = await this.registry.artifacts.createStaging();
    return {
      path: area.path,
      commit: async (path: string, kind = 'other') => {
        try {
          return await this.commitArtifact(await area.seal(), path, kind);
        } catch (e) {
          await area.abort().catch(() => undefined);
          throw e;
        }
      },
      abort: () => area.abort(),
    };
  }

  private async commitArtifact(staged: StagedObject, path: string, kind: string): Promise<ArtifactRef> {
    if (path === '' || path.includes('\0')) throw new ConfigError(`invalid artifact name '${path}'`, { value: path });
    const ref: ArtifactRef = {
      path,
      kind,
      hash: staged.hash,
      type: staged.type,
      size: staged.size,
      createdAt: Date.now(),
    };
    await this.registry.storeObject(staged, (tokens) => this.meta.addArtifacts(this.id, [ref], tokens));
    return ref;
  }

  /** Records per-example gold labels and predictions on an eval set, for McNemar's test in compareRuns. */
  async logPredictions(
    evalSet: string,
    labels: ArrayLike<string | number>,
    predictions: ArrayLike<string | number>,
  ): Promise<void> {
    this.checkOpen();
    if (labels.length !== predictions.length) {
      throw new ConfigError(
        `predictions on '${evalSet}': ${labels.length} labels but ${predictions.length} predictions`,
        { field: evalSet },
      );
    }
    const rows: PredictionRow[] = [];
    for (let i = 0; i < labels.length; i++)
      rows.push({ index: i, label: String(labels[i]), prediction: String(predictions[i]) });
    await this.meta.setPredictions(this.id, evalSet, rows);
  }

  /** Registers a model version produced by this run. */
  async registerModel(options: Omit<RegisterModelOptions, 'runId'>): Promise<ModelVersion> {
    return this.registry.registerModel({ ...options, runId: this.id });
  }

  /** Ends the run as finished. Returns false if it had already been ended (e.g. marked failed by a sweep). */
  async finish(): Promise<boolean> {
    return this.end('finished', null);
  }

  /** Ends the run as failed with the error's message. */
  async fail(error: unknown): Promise<boolean> {
    return this.end('failed', error instanceof Error ? error.message : String(error));
  }

  /** Ends the run as killed (user interrupt). */
  async kill(reason = 'killed'): Promise<boolean> {
    return this.end('killed', reason);
  }

  /** @internal */
  stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.signalHandler) {
      process.off('SIGINT', this.signalHandler);
      process.off('SIGTERM', this.signalHandler);
    }
  }

  private async end(status: Exclude<RunStatus, 'running'>, error: string | null): Promise<boolean> {
    this.stopHeartbeat();
    this.ended = true;
    this.registry.forget(this);
    return this.meta.endRun(this.id, status, Date.now(), error);
  }
}

/**
 * Opens (creating if needed) the registry: the metadata and artifact stores chosen by `registryUrl` /
 * `$TAILOR_REGISTRY` and `artifactsUrl` / `$TAILOR_ARTIFACTS` (see ./backends.ts), by default SQLite and a folder
 * at `options.home` / `$TAILOR_HOME` / `./.tailor`. An unreachable store is a RegistryError naming its URL.
 */
export async function openRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const home = resolveHome(options.home);
  const picked = resolveBackends(options);
  // The folder is needed even with network stores: staging and the download cache live there.
  await ensureWritableHome(home);
  const metadata = options.metadata ?? (await openMetadataStore(picked.registryUrl, home, options));
  let artifacts = options.artifacts;
  if (artifacts === undefined) {
    try {
      artifacts = await openArtifactStore(picked.artifactsUrl, home, options);
    } catch (e) {
      if (options.metadata === undefined) await metadata.close().catch(() => undefined);
      throw e;
    }
  }
  const location =
    options.location ?? (picked.remoteMetadata && options.metadata === undefined ? metadata.location : home);
  const reg = new Registry(home, metadata, artifacts, { ...options, location });
  await reg.sweepStaleRuns();
  return reg;
}
