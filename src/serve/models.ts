/**
 * The model manager: which model references the server serves, the version each one currently answers with, and
 * switching versions without dropping requests.
 *
 * A reference that follows the registry (`name`, `name@alias`) is re-resolved every `pollIntervalMs`; when the
 * alias has moved, the new version is loaded next to the old one and then swapped in with one assignment, so a
 * request sees either the old or the new version, never a half-loaded one. Requests hold a lease on the version they
 * started with; the old version is released once its last lease ends.
 */
import type { ServedModel } from './backend.ts';
import { HttpError } from './errors.ts';
import { formatModelRef, parseModelRef, type ModelRef, type ModelVersion, type Registry } from './library.ts';

/** Loads the folder of one registered model version as a ServedModel (the engine seam). */
export type ModelLoader = (version: ModelVersion, dir: string) => Promise<ServedModel>;

interface Loaded {
  model: ServedModel;
  inflight: number;
  retired: boolean;
}

/** The state of one served reference. */
export type EntryState = 'loading' | 'ready' | 'failed';

/** One served reference (`tickets@production`) and the version it answers with. */
export interface ModelEntry {
  /** Canonical reference: `name:3`, `name@alias` or `name@latest`. */
  readonly ref: string;
  readonly name: string;
  /** Whether the reference follows the registry (an alias or latest) rather than naming a fixed version. */
  readonly tracks: boolean;
  state: EntryState;
  /** Version being served (or that failed to load). */
  version: number | undefined;
  /** Why the last load failed. */
  error: string | undefined;
  /** @internal */
  current: Loaded | undefined;
}

/** A request's hold on one loaded version; call `release()` exactly once when the request is done. */
export interface Lease {
  readonly model: ServedModel;
  readonly entry: ModelEntry;
  release(): void;
}

/** Hooks for metrics and logs. */
export interface ManagerEvents {
  onLoaded?(entry: ModelEntry, model: ServedModel): void;
  onReleased?(model: ServedModel): void;
  onLoadFailed?(entry: ModelEntry, error: Error): void;
  onSwitched?(entry: ModelEntry, from: number, to: number): void;
  onPollError?(entry: ModelEntry, error: Error): void;
}

/** Options of the manager. */
export interface ManagerOptions {
  /** How often references that follow an alias (or latest) are re-resolved. Default 5000 ms; 0 turns polling off. */
  pollIntervalMs?: number;
  events?: ManagerEvents;
}

/** Canonical text of a reference (`tickets` -> `tickets@latest`). Throws ConfigError for a malformed one. */
export function canonicalRef(ref: string): string {
  return formatModelRef(parseModelRef(ref));
}

function tracks(r: ModelRef): boolean {
  return !('version' in r);
}

/** Loads, resolves, switches and unloads served models. */
export class ModelManager {
  private readonly entries = new Map<string, ModelEntry>();
  private readonly loading = new Map<string, Promise<ModelEntry>>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  readonly pollIntervalMs: number;

  constructor(
    readonly registry: Registry,
    private readonly loader: ModelLoader,
    private readonly options: ManagerOptions = {},
  ) {
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
  }

  /** Served references, in load order. */
  list(): ModelEntry[] {
    return [...this.entries.values()];
  }

  /** Texts for error messages: every served reference with the version it answers with. */
  describe(): string {
    const items = this.list().map((e) => (e.version !== undefined ? `${e.ref} (version ${e.version})` : e.ref));
    return items.length ? items.join(', ') : 'none';
  }

  /**
   * Starts serving `ref` (idempotent). A reference the registry cannot resolve throws RegistryError; a version that
   * resolves but fails to load leaves the entry `failed` (503 for that model only) and returns it.
   */
  async load(ref: string): Promise<ModelEntry> {
    const canonical = canonicalRef(ref);
    // Two concurrent loads of one reference share the first.
    const pending = this.loading.get(canonical);
    if (pending) return pending;
    const p = this.loadOnce(canonical).finally(() => this.loading.delete(canonical));
    this.loading.set(canonical, p);
    return p;
  }

  private async loadOnce(canonical: string): Promise<ModelEntry> {
    const parsed = parseModelRef(canonical);
    const existing = this.entries.get(canonical);
    if (existing && existing.state !== 'failed') return existing;
    const mv = await this.registry.getModel(canonical);
    const entry: ModelEntry = existing ?? {
      ref: canonical,
      name: parsed.name,
      tracks: tracks(parsed),
      state: 'loading',
      version: mv.version,
      error: undefined,
      current: undefined,
    };
    entry.state = 'loading';
    entry.version = mv.version;
    this.entries.set(canonical, entry);
    try {
      const model = await this.loadVersion(mv);
      entry.current = { model, inflight: 0, retired: false };
      entry.state = 'ready';
      entry.error = undefined;
      this.options.events?.onLoaded?.(entry, model);
    } catch (e) {
      entry.state = 'failed';
      entry.error = (e as Error).message;
      this.options.events?.onLoadFailed?.(entry, e as Error);
    }
    return entry;
  }

  private async loadVersion(mv: ModelVersion): Promise<ServedModel> {
    // A local store reads in place; a remote one (S3) downloads once into the local cache, by content hash.
    const dir = await this.registry.artifacts.materialize(mv.artifact.hash);
    return this.loader(mv, dir);
  }

  /** Stops serving `ref`; its version is released once in-flight requests finish. Returns whether it was served. */
  async unload(ref: string): Promise<boolean> {
    const canonical = canonicalRef(ref);
    const entry = this.entries.get(canonical);
    if (!entry) return false;
    this.entries.delete(canonical);
    const cur = entry.current;
    entry.current = undefined;
    if (cur) await this.retire(cur);
    return true;
  }

  /**
   * The entry answering for `ref`: the exact reference, else for a bare name the `@production` entry (or the only
   * one) of that name, else for `name:3` an entry of that name currently serving version 3.
   */
  lookup(ref: string): ModelEntry | undefined {
    let parsed: ModelRef;
    try {
      parsed = parseModelRef(ref);
    } catch {
      return undefined;
    }
    const exact = this.entries.get(formatModelRef(parsed));
    if (exact) return exact;
    const same = this.list().filter((e) => e.name === parsed.name);
    if ('latest' in parsed) return same.find((e) => e.ref === `${parsed.name}@production`) ?? same[0];
    if ('version' in parsed) return same.find((e) => e.version === parsed.version && e.state === 'ready');
    return undefined;
  }

  /** Holds the entry's current version for one request. 503 while it is loading or if it failed to load. */
  acquire(entry: ModelEntry): Lease {
    const cur = entry.current;
    if (!cur) {
      const why =
        entry.state === 'failed'
          ? `failed to load version ${entry.version ?? '?'}: ${entry.error ?? 'unknown error'}`
          : entry.state === 'loading'
            ? 'is still loading'
            : 'is not loaded';
      throw new HttpError(503, `model '${entry.ref}' ${why}`, { value: entry.ref }, { 'retry-after': '5' });
    }
    cur.inflight++;
    let done = false;
    return {
      model: cur.model,
      entry,
      release: () => {
        if (done) return;
        done = true;
        cur.inflight--;
        if (cur.retired && cur.inflight === 0) void this.free(cur);
      },
    };
  }

  private async retire(l: Loaded): Promise<void> {
    l.retired = true;
    if (l.inflight === 0) await this.free(l);
  }

  private async free(l: Loaded): Promise<void> {
    try {
      await l.model.release();
    } finally {
      this.options.events?.onReleased?.(l.model);
    }
  }

  /** Re-resolves every reference that follows the registry and switches those whose alias moved. */
  async poll(): Promise<void> {
    for (const entry of this.list()) {
      if (this.closed) return;
      if (!entry.tracks && entry.state !== 'failed') continue;
      let mv: ModelVersion;
      try {
        mv = await this.registry.getModel(entry.ref);
      } catch (e) {
        this.options.events?.onPollError?.(entry, e as Error);
        continue;
      }
      // A failed version is retried only once the reference points somewhere else (a broken artifact stays broken).
      if (mv.version === entry.version) continue;
      let model: ServedModel;
      try {
        model = await this.loadVersion(mv);
      } catch (e) {
        if (entry.state === 'failed') entry.version = mv.version;
        if (entry.state === 'failed') entry.error = (e as Error).message;
        this.options.events?.onLoadFailed?.(entry, e as Error);
        continue;
      }
      if (this.entries.get(entry.ref) !== entry || this.closed) {
        await model.release(); // unloaded while we were loading
        continue;
      }
      const old = entry.current;
      const from = entry.version;
      // The switch: one synchronous step, so every request sees the old or the new version.
      entry.current = { model, inflight: 0, retired: false };
      entry.version = mv.version;
      entry.state = 'ready';
      entry.error = undefined;
      this.options.events?.onLoaded?.(entry, model);
      if (from !== undefined && old) this.options.events?.onSwitched?.(entry, from, mv.version);
      if (old) await this.retire(old);
    }
  }

  /** Starts polling every `pollIntervalMs` (no overlap between polls). */
  startPolling(): void {
    if (this.pollIntervalMs <= 0 || this.timer || this.closed) return;
    const tick = (): void => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        if (!this.closed) {
          this.timer = setTimeout(tick, this.pollIntervalMs);
          this.timer.unref();
        }
      });
    };
    this.timer = setTimeout(tick, this.pollIntervalMs);
    this.timer.unref();
  }

  /** Stops polling and releases every version (after its in-flight requests). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    for (const ref of [...this.entries.keys()]) await this.unload(ref);
  }
}
