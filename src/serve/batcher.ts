/**
 * Dynamic batching for one model: texts from concurrent requests wait in one bounded queue and run together, up to
 * `maxBatchSize` per execution, after at most `maxQueueDelayMs` (Triton's two knobs). One execution runs at a time
 * per model, so texts that arrive during a run form the next batch; a full queue refuses new work (back-pressure)
 * instead of growing without bound.
 */
import { QueueFullError } from './errors.ts';

/** Batching settings of one model. */
export interface BatchingOptions {
  /** Most texts per execution. Default 32. */
  maxBatchSize?: number;
  /** Longest a text waits for companions before its batch runs anyway. Default 2 ms. */
  maxQueueDelayMs?: number;
  /** Most texts waiting; more is refused with QueueFullError (503). Default 1024. */
  maxQueueSize?: number;
}

/** What one execution did, for metrics. */
export interface BatchInfo {
  size: number;
  /** Per text: seconds between submission and the start of its execution. */
  queueSeconds: number[];
  computeSeconds: number;
}

/** Callbacks for metrics (queue depth after every change, one call per execution). */
export interface BatchObserver {
  onExecute?(info: BatchInfo): void;
  onQueueDepth?(depth: number): void;
}

interface Item<I, O> {
  input: I;
  enqueued: number;
  signal: AbortSignal | undefined;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export const BATCHING_DEFAULTS: Required<BatchingOptions> = {
  maxBatchSize: 32,
  maxQueueDelayMs: 2,
  maxQueueSize: 1024,
};

/** A queue that runs `execute` over batches of inputs; `execute` returns one output per input, in order. */
export class Batcher<I, O> {
  private readonly queue: Array<Item<I, O>> = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  readonly options: Required<BatchingOptions>;

  constructor(
    private readonly name: string,
    private readonly execute: (inputs: I[]) => Promise<O[]>,
    options: BatchingOptions = {},
    private readonly observer: BatchObserver = {},
  ) {
    this.options = { ...BATCHING_DEFAULTS, ...options };
  }

  /** Texts waiting (not yet executing). */
  get depth(): number {
    return this.queue.length;
  }

  /** Queues `inputs` (all or none: a request that does not fit is refused whole) and resolves with their outputs. */
  submit(inputs: readonly I[], signal?: AbortSignal): Promise<O[]> {
    if (this.queue.length + inputs.length > this.options.maxQueueSize)
      return Promise.reject(new QueueFullError(this.name, this.options.maxQueueSize));
    const now = performance.now();
    const done = inputs.map(
      (input) =>
        new Promise<O>((resolve, reject) => this.queue.push({ input, enqueued: now, signal, resolve, reject })),
    );
    this.observer.onQueueDepth?.(this.queue.length);
    this.schedule();
    return Promise.all(done);
  }

  /** Resolves once nothing is queued or executing. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const wait = this.queue[0].enqueued + this.options.maxQueueDelayMs - performance.now();
    if (this.queue.length >= this.options.maxBatchSize || wait <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      void this.runOnce();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait);
    }
  }

  private async runOnce(): Promise<void> {
    this.running = true;
    const batch: Array<Item<I, O>> = [];
    while (batch.length < this.options.maxBatchSize && this.queue.length > 0) {
      const it = this.queue.shift()!;
      if (it.signal?.aborted) it.reject(it.signal.reason ?? new Error('aborted'));
      else batch.push(it);
    }
    this.observer.onQueueDepth?.(this.queue.length);
    if (batch.length > 0) {
      const start = performance.now();
      try {
        const out = await this.execute(batch.map((b) => b.input));
        const computeSeconds = (performance.now() - start) / 1000;
        batch.forEach((b, i) => b.resolve(out[i]));
        this.observer.onExecute?.({
          size: batch.length,
          queueSeconds: batch.map((b) => (start - b.enqueued) / 1000),
          computeSeconds,
        });
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.running = false;
    if (this.queue.length > 0) this.schedule();
    else {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }
}
