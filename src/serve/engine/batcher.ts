/**
 * Dynamic batching (Triton's `max_batch_size` / `max_queue_delay_ms`): rows from concurrent requests wait in a
 * bounded queue and run together. A batch starts as soon as `maxBatchSize` rows are queued, or when the oldest
 * row has waited `maxQueueDelayMs`, or at once when the queue was empty and nothing runs. Rows are bucketed by
 * sequence length so a batch pads little. A full queue refuses the whole request (ServerBusyError) instead of
 * growing: memory stays bounded by `maxQueueRows`.
 *
 * `select` lets the owner refuse rows that cannot run yet (an adapter still loading, no free slot): they stay
 * queued, in order, and the owner calls `wake()` when they may be ready.
 */
import { ConfigError } from '../../errors.ts';
import { ServerBusyError } from '../backend.ts';

export interface ExecutionStats {
  /** Rows in the batch. */
  batchSize: number;
  /** Distinct requests with rows in the batch. */
  requests: number;
  /** For each of those requests: ms from its arrival to this execution's start. */
  queueMs: number[];
  /** ms the execution took. */
  computeMs: number;
}

export interface BatcherObserver {
  onExecution?(stats: ExecutionStats): void;
}

export interface BatcherOptions<T, R> {
  /** Most rows per execution. */
  maxBatchSize: number;
  /** Longest a row waits for others to fill its batch (ms). */
  maxQueueDelayMs: number;
  /** Most rows queued (not yet executing) at once; past it `submit` throws ServerBusyError. */
  maxQueueRows: number;
  /** Upper bounds of the sequence-length buckets, ascending; longer rows go to the last bucket. Default [16, 32, 64]. */
  buckets?: readonly number[];
  /** Executions in flight at once (default 1: one ORT run uses every core it is given). */
  concurrency?: number;
  /** Runs one batch; returns one result per row, in order. */
  execute(rows: T[]): Promise<R[]>;
  /**
   * Picks the rows to run from `candidates` (one length bucket, oldest first): the indices of at most `max` of them.
   * Default: the first `max`.
   */
  select?(candidates: readonly T[], max: number): number[];
  observer?: BatcherObserver;
  /** Seconds a refused caller should wait before retrying (default 1). */
  retryAfterSeconds?: number;
}

interface Request<R> {
  arrived: number;
  results: R[];
  remaining: number;
  done: boolean;
  resolve(r: R[]): void;
  reject(e: unknown): void;
  detach?: () => void;
}

interface Row<T, R> {
  item: T;
  req: Request<R>;
  index: number;
  arrived: number;
}

function checkPositive(v: number, field: string, allowZero = false): void {
  if (!Number.isFinite(v) || (allowZero ? v < 0 : v <= 0) || (field !== 'maxQueueDelayMs' && !Number.isInteger(v)))
    throw new ConfigError(`${field} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`, {
      field,
      value: String(v),
    });
}

/** A bounded queue that groups rows of concurrent requests into batched executions. */
export class DynamicBatcher<T, R> {
  private readonly queues: Row<T, R>[][];
  private readonly bounds: readonly number[];
  private queued = 0;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly idle = new Set<() => void>();

  constructor(private readonly opts: BatcherOptions<T, R>) {
    checkPositive(opts.maxBatchSize, 'maxBatchSize');
    checkPositive(opts.maxQueueDelayMs, 'maxQueueDelayMs', true);
    checkPositive(opts.maxQueueRows, 'maxQueueRows');
    checkPositive(opts.concurrency ?? 1, 'concurrency');
    this.bounds = opts.buckets ?? [16, 32, 64];
    this.queues = Array.from({ length: this.bounds.length + 1 }, () => []);
  }

  /** Rows waiting (not yet executing). */
  get depth(): number {
    return this.queued;
  }

  /** Executions in flight. */
  get inFlight(): number {
    return this.running;
  }

  /**
   * Queues `items` (one row each; `lengths[i]` picks its bucket) and resolves with their results in the same order.
   * Rejects with ServerBusyError, queueing nothing, when they do not fit in the queue. An aborted `signal` takes the
   * request's waiting rows out and rejects with the signal's reason.
   */
  submit(items: readonly T[], lengths: readonly number[], signal?: AbortSignal): Promise<R[]> {
    if (this.closed) return Promise.reject(new ConfigError('the batcher is closed', { field: 'batcher' }));
    if (items.length === 0) return Promise.resolve([]);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.queued + items.length > this.opts.maxQueueRows)
      return Promise.reject(
        new ServerBusyError(
          `the queue is full (${this.queued} of ${this.opts.maxQueueRows} rows waiting; this request has ${items.length}); retry later`,
          this.opts.retryAfterSeconds ?? 1,
          { field: 'maxQueueRows', value: String(this.opts.maxQueueRows) },
        ),
      );
    const now = performance.now();
    return new Promise<R[]>((resolve, reject) => {
      const req: Request<R> = {
        arrived: now,
        results: new Array<R>(items.length),
        remaining: items.length,
        done: false,
        resolve,
        reject,
      };
      items.forEach((item, index) => {
        this.queues[this.bucketOf(lengths[index])].push({ item, req, index, arrived: now });
      });
      this.queued += items.length;
      if (signal) {
        const onAbort = (): void => this.fail(req, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        req.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.schedule();
    });
  }

  /** Re-examines the queue (call when rows `select` refused may now run). */
  wake(): void {
    this.schedule();
  }

  /** Rejects every waiting row's request for which `pred(item)` holds (e.g. its adapter failed to load). */
  rejectWhere(pred: (item: T) => boolean, error: unknown): void {
    const reqs = new Set<Request<R>>();
    for (const q of this.queues) for (const r of q) if (pred(r.item)) reqs.add(r.req);
    for (const req of reqs) this.fail(req, error);
  }

  /** Resolves once nothing is queued or running (new rows may still arrive). */
  drained(): Promise<void> {
    if (this.queued === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  /** Refuses new rows; rows already queued still run. Resolves when they have. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drained();
    if (this.timer) clearTimeout(this.timer);
  }

  private bucketOf(length: number): number {
    const i = this.bounds.findIndex((b) => length <= b);
    return i < 0 ? this.bounds.length : i;
  }

  private fail(req: Request<R>, error: unknown): void {
    if (req.done) return;
    req.done = true;
    req.detach?.();
    for (let i = 0; i < this.queues.length; i++) {
      const before = this.queues[i].length;
      this.queues[i] = this.queues[i].filter((r) => r.req !== req);
      this.queued -= before - this.queues[i].length;
    }
    req.reject(error);
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.queued === 0 && this.running === 0) {
      for (const f of this.idle) f();
      this.idle.clear();
    }
  }

  private oldest(): number {
    let t = Infinity;
    for (const q of this.queues) if (q.length && q[0].arrived < t) t = q[0].arrived;
    return t;
  }

  private schedule(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queued > 0 && this.running < (this.opts.concurrency ?? 1)) {
      const wait = this.oldest() + this.opts.maxQueueDelayMs - performance.now();
      if (this.queued < this.opts.maxBatchSize && wait > 0) {
        this.timer = setTimeout(() => this.schedule(), Math.ceil(wait));
        return;
      }
      if (!this.launch()) return;
    }
  }

  /** Forms and starts one batch; false when no queued row may run now. */
  private launch(): boolean {
    const order = this.queues
      .map((q, i) => ({ i, t: q.length ? q[0].arrived : Infinity }))
      .filter((x) => x.t < Infinity)
      .sort((a, b) => a.t - b.t);
    for (const { i } of order) {
      const q = this.queues[i];
      const max = this.opts.maxBatchSize;
      const picked = this.opts.select
        ? new Set(
            this.opts
              .select(
                q.map((r) => r.item),
                max,
              )
              .slice(0, max),
          )
        : undefined;
      const rows = picked ? q.filter((_, j) => picked.has(j)) : q.slice(0, max);
      if (rows.length === 0) continue;
      this.queues[i] = picked ? q.filter((_, j) => !picked.has(j)) : q.slice(max);
      this.queued -= rows.length;
      void this.run(rows);
      return true;
    }
    return false;
  }

  private async run(rows: Row<T, R>[]): Promise<void> {
    this.running++;
    const start = performance.now();
    const reqs = [...new Set(rows.map((r) => r.req))];
    let results: R[] | undefined;
    let error: unknown;
    try {
      results = await this.opts.execute(rows.map((r) => r.item));
    } catch (e) {
      error = e;
    }
    const computeMs = performance.now() - start;
    this.running--;
    this.opts.observer?.onExecution?.({
      batchSize: rows.length,
      requests: reqs.length,
      queueMs: reqs.map((r) => start - r.arrived),
      computeMs,
    });
    if (results && results.length !== rows.length)
      error = new ConfigError(`execute returned ${results.length} results for ${rows.length} rows`, {
        field: 'execute',
      });
    for (const req of reqs) if (error !== undefined) this.fail(req, error);
    if (error === undefined)
      rows.forEach((r, j) => {
        const req = r.req;
        if (req.done) return;
        req.results[r.index] = results![j];
        if (--req.remaining === 0) {
          req.done = true;
          req.detach?.();
          req.resolve(req.results);
        }
      });
    this.checkIdle();
    this.schedule();
  }
}
