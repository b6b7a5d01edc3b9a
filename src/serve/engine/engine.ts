/**
 * Many LoRA classifiers over one base, served from one ORT session: every request row carries its adapter's slot
 * index, so one run serves rows of different adapters (multi-lora.ts), fed by one dynamic batcher (batcher.ts) and
 * an LRU pool of adapter slots bounded by bytes (pool.ts). Each adapter is a `ServedModel`.
 *
 *   const engine = await MultiAdapterEngine.create(base, { maxRank: 8, maxLabels: 64, cacheBytes: 256 << 20 });
 *   const m = engine.model('tickets', 3, () => loadAdapter(dir), { labels });
 *   await m.predict(['my card was charged twice']);   // [{ label, scores }]
 */
import { quantizeDynamic } from '../../compress/quantize/dynamic.ts';
import { softmax } from '../../eval/metrics.ts';
import { ConfigError } from '../../errors.ts';
import { multiLoraModel, type MultiLoraModel } from '../../customize/multi-lora.ts';
import type { LoraAdapter } from '../../customize/peft.ts';
import type { TargetSpec } from '../../customize/sites.ts';
import { feedInputs, toOnnxModel, type Model } from '../../models/model.ts';
import { ort, Session, type SessionOptions } from '../../runtime/session.ts';
import { ModelUnavailableError, type Prediction, type ServedModel } from '../backend.ts';
import { DynamicBatcher, type BatcherObserver } from './batcher.ts';
import { abstainedLabel, type AbstainRule } from '../library.ts';
import { AdapterPool, type PoolObserver } from './pool.ts';
import { BASE_PRECISIONS, type BasePrecision } from './precision.ts';

export interface EngineObserver extends BatcherObserver, PoolObserver {}

export interface EngineOptions {
  /** Modules with a LoRA branch (default: every linear module of the base's body). */
  modules?: TargetSpec;
  /** Largest adapter rank served (default 8). */
  maxRank?: number;
  /** Most labels of an adapter's head (default 64). */
  maxLabels?: number;
  /** Bytes of adapter slots (default 256 MiB); the number of hot adapters is this over one slot's size. */
  cacheBytes?: number;
  /** Rows per ORT run (default 32). */
  maxBatchSize?: number;
  /** How long a row waits for others (default 2 ms). */
  maxQueueDelayMs?: number;
  /** Rows waiting at most (default 1024); past it predict throws ServerBusyError. */
  maxQueueRows?: number;
  /**
   * Sequence-length bucket bounds in tokens (default [8, 12, 16, 24, 32, 48, 64, 96]). Fine, because a CPU run's
   * cost grows with the padded token count while the per-run overhead is small (USE-lite: ~1.4 ms for one short
   * text, ~1-1.8 ms per row at 16 rows), so padding costs more than a smaller batch.
   */
  buckets?: readonly number[];
  /** Longest token sequence (default: the tokenizer's, at most 128); longer texts are truncated. */
  maxLength?: number;
  /** Seconds a refused caller is told to wait (default 1). */
  retryAfterSeconds?: number;
  /**
   * ORT runs in flight at once (default 1). On few cores, 2 runs of 1 thread each can beat 1 run of 2 threads for
   * small batches; slots a run reads are pinned, so concurrent batches never see an adapter rewritten under them.
   */
  concurrency?: number;
  /**
   * Precision of the shared base's weight matrices (default 'fp32'). 'int8' quantizes them dynamically
   * (compress/quantize/dynamic.ts: per-channel int8 weights, uint8 activations, the u8s8 product AVX-512 VNNI
   * multiplies natively); the adapters' LoRA branches and heads stay fp32, as QLoRA serves them. On the 2-core Xeon
   * with VNNI it ran USE-lite batches 3.2-3.8x faster (docs/serving-engine.md); answers are then close to, not equal
   * to, the library's fp32 `predict` (the engine test measures the agreement).
   */
  basePrecision?: BasePrecision;
  session?: SessionOptions;
  observer?: EngineObserver;
}

export interface AdapterModelOptions {
  /** The adapter's labels as registered: known before it loads; a loaded adapter with other labels is refused. */
  labels?: readonly string[];
  /** Softmax temperature (default 1): probabilities are softmax(logits / temperature). */
  temperature?: number;
  /** The abstain rule stored with the model (abstain.json): rows it rejects (on logits / temperature) are OUT_OF_SCOPE. */
  abstain?: AbstainRule;
}

interface Registered {
  key: string;
  name: string;
  version: number;
  load: () => Promise<LoraAdapter>;
  labels?: readonly string[];
  temperature: number;
  abstain?: AbstainRule;
  released: boolean;
  /** Predictions queued or running. */
  inflight: Set<Promise<unknown>>;
}

interface Row {
  reg: Registered;
  ids: number[];
  /** Set when the row is picked for a batch. */
  slot: number;
  labels: readonly string[];
}

/** The base's feeds, each a text input the engine fills; anything else is a ConfigError. */
function textInputs(base: Model): { name: string; kind: 'ids' | 'mask' | 'types' }[] {
  const kinds: Record<string, 'ids' | 'mask' | 'types'> = {
    input_ids: 'ids',
    attention_mask: 'mask',
    token_type_ids: 'types',
  };
  return feedInputs(base).map((v) => {
    const kind = kinds[v.name];
    if (!kind)
      throw new ConfigError(`base input '${v.name}' is not a text input (input_ids, attention_mask, token_type_ids)`, {
        field: v.name,
      });
    return { name: v.name, kind };
  });
}

/** Probabilities of the first `k` logits at `temperature` (the one softmax, eval/metrics.ts). */

/** One base, many adapters, mixed-adapter batches. */
export class MultiAdapterEngine {
  private readonly batcher: DynamicBatcher<Row, Prediction>;
  private readonly inputs: { name: string; kind: 'ids' | 'mask' | 'types' }[];
  private executions = 0;
  private inferences = 0;

  private constructor(
    readonly base: Model,
    readonly graph: MultiLoraModel,
    private readonly session: Session,
    readonly pool: AdapterPool,
    private readonly models: Map<string, Registered>,
    private readonly maxLength: number,
    opts: EngineOptions,
  ) {
    this.inputs = textInputs(base);
    this.batcher = new DynamicBatcher<Row, Prediction>({
      maxBatchSize: opts.maxBatchSize ?? 32,
      maxQueueDelayMs: opts.maxQueueDelayMs ?? 2,
      maxQueueRows: opts.maxQueueRows ?? 1024,
      buckets: opts.buckets ?? [8, 12, 16, 24, 32, 48, 64, 96],
      concurrency: opts.concurrency,
      retryAfterSeconds: opts.retryAfterSeconds,
      observer: opts.observer,
      execute: (rows) => this.execute(rows),
      select: (rows, max) => this.select(rows, max),
    });
    pool.onSettled = (key, error) => {
      if (error !== undefined) {
        const reg = this.models.get(key);
        this.batcher.rejectWhere(
          (r) => r.reg.key === key,
          new ModelUnavailableError(
            `adapter '${reg?.name ?? key}' version ${reg?.version ?? '?'} failed to load: ${(error as Error).message ?? String(error)}`,
            { value: key },
            { cause: error },
          ),
        );
      }
      this.batcher.wake();
    };
  }

  /** Builds the mixed-adapter graph of `base` and loads it into one session. */
  static async create(base: Model, opts: EngineOptions = {}): Promise<MultiAdapterEngine> {
    if (!base.tokenizer)
      throw new ConfigError(`base '${base.architecture}' has no tokenizer, so it cannot serve text`, {
        field: 'tokenizer',
      });
    textInputs(base);
    const graph = multiLoraModel(base, {
      modules: opts.modules,
      maxRank: opts.maxRank ?? 8,
      maxLabels: opts.maxLabels ?? 64,
    });
    const models = new Map<string, Registered>();
    const pool = new AdapterPool(graph, {
      cacheBytes: opts.cacheBytes ?? 256 * 2 ** 20,
      observer: opts.observer,
      validate: (key, adapter) => {
        const want = models.get(key)?.labels;
        const got = adapter.head!.labels;
        if (want && (want.length !== got.length || want.some((l, i) => l !== got[i])))
          throw new ConfigError(
            `adapter '${key}' has labels [${got.join(', ')}] but was registered with [${want.join(', ')}]`,
            { field: 'labels', value: key },
          );
      },
    });
    const precision = opts.basePrecision ?? 'fp32';
    if (!BASE_PRECISIONS.includes(precision))
      throw new ConfigError(`base precision must be one of ${BASE_PRECISIONS.join(', ')}, got '${String(precision)}'`, {
        field: 'basePrecision',
        value: String(precision),
      });
    const onnx = toOnnxModel(graph.model);
    // Only MatMuls whose weight is an initializer are quantized: the base's. The LoRA and head MatMuls read the
    // adapter stacks (graph inputs), so they stay fp32. Embedding tables stay fp32 too: a Gather gains nothing.
    const runnable = precision === 'int8' ? quantizeDynamic(onnx, { embeddings: false }).model : onnx;
    const session = await Session.create(runnable, {
      label: `mixed-adapter base (${precision})`,
      ...opts.session,
    });
    const maxLength = opts.maxLength ?? Math.min(128, base.tokenizer.modelMaxLength);
    return new MultiAdapterEngine(base, graph, session, pool, models, maxLength, opts);
  }

  /** Rows waiting in the batcher. */
  get queueDepth(): number {
    return this.batcher.depth;
  }

  /** Rows run (inference count) and ORT runs (execution count) so far. */
  get counts(): { inferences: number; executions: number } {
    return { inferences: this.inferences, executions: this.executions };
  }

  /**
   * The adapter `name` version `version` as a ServedModel; `load` is called on first use (and again after an
   * eviction). Registering the same name and version again (until it is released) returns a handle on the same
   * registration: the first loader, labels and temperature are kept.
   */
  model(name: string, version: number, load: () => Promise<LoraAdapter>, opts: AdapterModelOptions = {}): AdapterModel {
    const key = `${name}:${version}`;
    const t = opts.temperature ?? 1;
    if (!(t > 0) || !Number.isFinite(t))
      throw new ConfigError(`temperature must be a positive number, got ${t}`, {
        field: 'temperature',
        value: String(t),
      });
    if (opts.labels && opts.labels.length > this.graph.maxLabels)
      throw new ConfigError(
        `model '${name}' has ${opts.labels.length} labels, above the engine's maxLabels ${this.graph.maxLabels}`,
        { field: 'labels', value: name },
      );
    let reg = this.models.get(key);
    if (!reg || reg.released) {
      reg = {
        key,
        name,
        version,
        load,
        labels: opts.labels,
        temperature: t,
        ...(opts.abstain ? { abstain: opts.abstain } : {}),
        released: false,
        inflight: new Set(),
      };
      this.models.set(key, reg);
    }
    return new AdapterModel(this, reg);
  }

  /** @internal */
  labelsOf(reg: Registered): readonly string[] {
    return reg.labels ?? this.pool.adapter(reg.key)?.head?.labels ?? [];
  }

  /** @internal Loads the adapter (into the pool) without predicting. */
  async warm(reg: Registered): Promise<void> {
    this.pool.request(reg.key, reg.load);
    await this.pool.loaded(reg.key);
  }

  /** @internal */
  submit(reg: Registered, texts: readonly string[], signal?: AbortSignal): Promise<Prediction[]> {
    if (reg.released)
      return Promise.reject(
        new ModelUnavailableError(`model '${reg.name}' version ${reg.version} was released`, { value: reg.key }),
      );
    const tok = this.base.tokenizer!;
    const rows: Row[] = [];
    const lengths: number[] = [];
    for (const t of texts) {
      const ids = tok.encode(t, undefined, { maxLength: this.maxLength }).ids;
      rows.push({ reg, ids, slot: -1, labels: [] });
      lengths.push(ids.length);
    }
    // Queue first (a full queue refuses before any load starts), then make sure the adapter is on its way.
    const p = this.batcher.submit(rows, lengths, signal);
    if (texts.length > 0) this.pool.request(reg.key, reg.load);
    reg.inflight.add(p);
    const forget = (): void => void reg.inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** @internal Forgets an adapter once its queued rows have run. */
  async unload(reg: Registered): Promise<void> {
    reg.released = true;
    await Promise.allSettled([...reg.inflight]);
    if (this.models.get(reg.key) === reg) {
      this.models.delete(reg.key);
      this.pool.remove(reg.key);
    }
  }

  /** Waits for queued rows, then frees the session. */
  async close(): Promise<void> {
    await this.batcher.close();
    await this.session.release();
  }

  private select(rows: readonly Row[], max: number): number[] {
    const taken = new Set<number>();
    const out: number[] = [];
    for (let i = 0; i < rows.length && out.length < max; i++) {
      const { key, load } = rows[i].reg;
      const slot = this.pool.acquire(key, taken);
      if (slot === undefined) {
        // Evicted while its rows waited (a small cache under many adapters): load it again.
        if (this.pool.state(key) === 'cold') this.pool.request(key, load);
        continue;
      }
      rows[i].slot = slot;
      rows[i].labels = this.pool.adapter(rows[i].reg.key)!.head!.labels;
      taken.add(slot);
      out.push(i);
    }
    return out;
  }

  private async execute(rows: Row[]): Promise<Prediction[]> {
    const n = rows.length;
    const seq = Math.max(1, ...rows.map((r) => r.ids.length));
    const tok = this.base.tokenizer!;
    const ids = new BigInt64Array(n * seq).fill(BigInt(tok.padTokenId));
    const mask = new BigInt64Array(n * seq);
    rows.forEach((r, i) => {
      const off = i * seq + (tok.paddingSide === 'left' ? seq - r.ids.length : 0);
      for (let j = 0; j < r.ids.length; j++) {
        ids[off + j] = BigInt(r.ids[j]);
        mask[off + j] = 1n;
      }
    });
    const feeds: Record<string, ort.Tensor> = { ...this.pool.feeds };
    for (const inp of this.inputs)
      feeds[inp.name] = new ort.Tensor(
        'int64',
        inp.kind === 'ids' ? ids : inp.kind === 'mask' ? mask : new BigInt64Array(n * seq),
        [n, seq],
      );
    feeds.adapter_index = new ort.Tensor('int64', BigInt64Array.from(rows.map((r) => BigInt(r.slot))), [n]);
    const slots = new Set(rows.map((r) => r.slot));
    this.pool.pin(slots);
    let logits: Float32Array;
    try {
      logits = (await this.session.run(feeds, ['logits'])).logits.data as Float32Array;
    } finally {
      this.pool.unpin(slots);
    }
    this.executions++;
    this.inferences += n;
    const C = this.graph.maxLabels;
    return rows.map((r, i) => {
      const t = r.reg.temperature;
      const row = Array.from(logits.subarray(i * C, i * C + r.labels.length), (x) => x / t);
      const scores = softmax(row);
      let best = 0;
      for (let j = 1; j < scores.length; j++) if (scores[j] > scores[best]) best = j;
      return { label: abstainedLabel(r.labels[best], row, r.reg.abstain), scores };
    });
  }
}

/** One adapter of a MultiAdapterEngine, as the HTTP layer sees it. */
export class AdapterModel implements ServedModel {
  constructor(
    private readonly engine: MultiAdapterEngine,
    private readonly reg: Registered,
  ) {}

  get name(): string {
    return this.reg.name;
  }
  get version(): number {
    return this.reg.version;
  }
  /** The registered labels, else the loaded adapter's ([] before it first loads: call `ready()`). */
  get labels(): readonly string[] {
    return this.engine.labelsOf(this.reg);
  }

  /** Loads the adapter now (its labels are then known); rejects if it fails to load. */
  ready(): Promise<void> {
    return this.engine.warm(this.reg);
  }

  predict(texts: readonly string[], opts: { signal?: AbortSignal } = {}): Promise<Prediction[]> {
    return this.engine.submit(this.reg, texts, opts.signal);
  }

  /** Stops taking requests, lets queued ones finish, and frees the adapter's slot. */
  release(): Promise<void> {
    return this.engine.unload(this.reg);
  }
}
