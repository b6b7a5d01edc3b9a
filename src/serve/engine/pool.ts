/**
 * The adapter pool of a mixed-adapter session: hot adapters live in the slots of the stacked input tensors
 * (`multiLoraModel`), which are allocated once; admitting an adapter writes its slot in place, so a batch never
 * copies adapters. The slots are an LRU cache bounded by bytes: `floor(cacheBytes / slotBytes)` slots, each as big as
 * the largest adapter the graph accepts (padded). A cold adapter is loaded in the background on first use; rows of
 * other adapters keep running meanwhile. Slots used by a batch in flight are pinned and never rewritten under it.
 */
import { ConfigError } from '../../errors.ts';
import {
  allocStacks,
  checkAdapterFits,
  slotBytes,
  stackArray,
  stackShapes,
  writeSlot,
  type AdapterStacks,
  type MultiLoraModel,
} from '../../customize/multi-lora.ts';
import type { LoraAdapter } from '../../customize/peft.ts';
import { ort } from '../../runtime/session.ts';

export type CacheEvent = 'hit' | 'miss' | 'evict';

export interface PoolObserver {
  /** hit: the adapter was hot (or loaded and waiting for a slot) when asked for; miss: it had to be loaded. */
  onCache?(event: CacheEvent, key: string): void;
  /** An adapter finished loading (ms), or failed to. */
  onLoad?(key: string, ms: number, error?: unknown): void;
}

export interface PoolOptions {
  /** Bytes the slots may take in all. */
  cacheBytes: number;
  observer?: PoolObserver;
  /** Checks a freshly loaded adapter beyond fitting the graph (labels as registered, ...); throws to refuse it. */
  validate?(key: string, adapter: LoraAdapter): void;
}

type Entry =
  | { state: 'loading' }
  | { state: 'ready'; adapter: LoraAdapter }
  | { state: 'resident'; slot: number; adapter: LoraAdapter };

/** Slots of adapters over one mixed-adapter graph, with LRU eviction and background loading. */
export class AdapterPool {
  readonly stacks: AdapterStacks;
  /** ORT tensors over the stacks' arrays (created once; slot writes show through without copying). */
  readonly feeds: Record<string, ort.Tensor>;
  readonly slotBytes: number;
  private readonly entries = new Map<string, Entry>();
  private readonly slotKey: (string | undefined)[];
  /** Keys by recency of use (Map order: least recent first). */
  private readonly lru = new Map<string, true>();
  private readonly pins: number[];
  private evictions = 0;
  /** Loads in flight: settle when the adapter is loaded (or failed to). */
  private readonly loads = new Map<string, Promise<void>>();
  /** Called when a load finishes (either way), so waiting rows are looked at again. */
  onSettled: (key: string, error?: unknown) => void = () => undefined;

  constructor(
    readonly graph: MultiLoraModel,
    private readonly opts: PoolOptions,
  ) {
    this.slotBytes = slotBytes(graph);
    const slots = Math.floor(opts.cacheBytes / this.slotBytes);
    if (!(slots >= 1))
      throw new ConfigError(
        `cacheBytes ${opts.cacheBytes} holds no adapter: one slot takes ${this.slotBytes} bytes with this graph's modules, maxRank ${graph.maxRank} and maxLabels ${graph.maxLabels}`,
        { field: 'cacheBytes', value: String(opts.cacheBytes) },
      );
    this.stacks = allocStacks(graph, slots);
    this.slotKey = new Array<string | undefined>(slots).fill(undefined);
    this.pins = new Array<number>(slots).fill(0);
    this.feeds = {};
    for (const { name, dims } of stackShapes(graph, slots))
      this.feeds[name] = new ort.Tensor('float32', stackArray(this.stacks, name), dims);
  }

  get slots(): number {
    return this.stacks.slots;
  }

  /** Adapters now in slots. */
  get resident(): number {
    return this.slotKey.filter((k) => k !== undefined).length;
  }

  get evicted(): number {
    return this.evictions;
  }

  /** Bytes of the slots now holding an adapter. */
  get residentBytes(): number {
    return this.resident * this.slotBytes;
  }

  /** Where `key` is: not loaded, loading, loaded and waiting for a slot, or in a slot. */
  state(key: string): 'cold' | 'loading' | 'ready' | 'resident' {
    return this.entries.get(key)?.state ?? 'cold';
  }

  /** The adapter behind `key` if it is loaded (resident or waiting for a slot). */
  adapter(key: string): LoraAdapter | undefined {
    const e = this.entries.get(key);
    return e && e.state !== 'loading' ? e.adapter : undefined;
  }

  /**
   * Notes a request for `key`: a hit if it is loaded, else a miss that starts `load` in the background (once per
   * key, however many requests ask meanwhile).
   */
  request(key: string, load: () => Promise<LoraAdapter>): void {
    const e = this.entries.get(key);
    if (e && e.state !== 'loading') {
      this.opts.observer?.onCache?.('hit', key);
      return;
    }
    this.opts.observer?.onCache?.('miss', key);
    if (e) return;
    this.entries.set(key, { state: 'loading' });
    const t0 = performance.now();
    const p = (async () => {
      let adapter: LoraAdapter;
      try {
        // Through a promise, so a loader that throws at once is handled like one that rejects.
        adapter = await Promise.resolve().then(load);
        checkAdapterFits(this.graph, adapter, key);
        this.opts.validate?.(key, adapter);
      } catch (err) {
        if (this.entries.get(key)?.state === 'loading') this.entries.delete(key);
        this.opts.observer?.onLoad?.(key, performance.now() - t0, err);
        this.onSettled(key, err);
        throw err;
      } finally {
        this.loads.delete(key);
      }
      // Released while loading: drop it.
      if (this.entries.get(key)?.state !== 'loading') return;
      this.entries.set(key, { state: 'ready', adapter });
      this.opts.observer?.onLoad?.(key, performance.now() - t0);
      this.onSettled(key);
    })();
    // Callers that do not wait on it must not see an unhandled rejection.
    p.catch(() => undefined);
    this.loads.set(key, p);
  }

  /** Resolves when `key`'s load in flight has landed (at once if none is); rejects with its error. */
  loaded(key: string): Promise<void> {
    return this.loads.get(key) ?? Promise.resolve();
  }

  /**
   * The slot of `key` for a batch being formed, admitting a loaded adapter into a free slot or the least recently
   * used one that is neither pinned nor in `taken` (slots this batch already uses). Undefined when the adapter is not
   * loaded yet or every slot is busy: the row waits.
   */
  acquire(key: string, taken: ReadonlySet<number>): number | undefined {
    const e = this.entries.get(key);
    if (!e || e.state === 'loading') return undefined;
    if (e.state === 'resident') {
      this.touch(key);
      return e.slot;
    }
    let slot = this.slotKey.findIndex((k, i) => k === undefined && this.pins[i] === 0 && !taken.has(i));
    if (slot < 0) {
      for (const k of this.lru.keys()) {
        const v = this.entries.get(k);
        if (v?.state === 'resident' && this.pins[v.slot] === 0 && !taken.has(v.slot)) {
          slot = v.slot;
          // Evicted adapters are dropped: a later request loads them again (a miss).
          this.entries.delete(k);
          this.lru.delete(k);
          this.slotKey[slot] = undefined;
          this.evictions++;
          this.opts.observer?.onCache?.('evict', k);
          break;
        }
      }
    }
    if (slot < 0) return undefined;
    writeSlot(this.graph, this.stacks, slot, e.adapter);
    this.slotKey[slot] = key;
    this.entries.set(key, { state: 'resident', slot, adapter: e.adapter });
    this.touch(key);
    return slot;
  }

  /** Slots a batch in flight reads: not rewritten until `unpin`. */
  pin(slots: Iterable<number>): void {
    for (const s of slots) this.pins[s]++;
  }
  unpin(slots: Iterable<number>): void {
    for (const s of slots) this.pins[s]--;
  }

  /** Forgets `key` (its slot becomes free; a load in flight is dropped when it lands). */
  remove(key: string): void {
    const e = this.entries.get(key);
    if (e?.state === 'resident') this.slotKey[e.slot] = undefined;
    this.entries.delete(key);
    this.lru.delete(key);
  }

  private touch(key: string): void {
    this.lru.delete(key);
    this.lru.set(key, true);
  }
}
