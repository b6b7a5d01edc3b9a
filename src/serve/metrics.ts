/**
 * Prometheus metrics of one server (its own prom-client registry, so several servers in one process do not share
 * series). Names are in base units (seconds) and counters end in `_total`. Labels only ever carry names of loaded
 * models and configured variants, never raw request input, so their number stays bounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchObserver } from './batcher.ts';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** Why a request was refused before a model answered (a bounded set). */
export type RejectReason =
  'unauthorized' | 'forbidden' | 'not_found' | 'too_large' | 'bad_request' | 'rate_limited' | 'unavailable';

/** Every series the server exports. */
export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'tailor_requests_total',
    help: 'Prediction requests answered, by model, variant and outcome (success or failure)',
    labelNames: ['model', 'variant', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'tailor_requests_rejected_total',
    help: 'Requests refused before reaching a model (auth, limits, unknown model, overload), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'tailor_request_duration_seconds',
    help: 'End-to-end duration of prediction requests (parse to reply), by model and variant',
    labelNames: ['model', 'variant'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly inferences = new Counter({
    name: 'tailor_inference_total',
    help: 'Texts inferred (inference count); compare with tailor_execution_total for the mean batch size',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
  });
  readonly executions = new Counter({
    name: 'tailor_execution_total',
    help: 'Model executions (ONNX Runtime runs), each over one batch of texts',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'tailor_batch_size',
    help: 'Texts per execution',
    labelNames: ['model', 'version'] as const,
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });
  readonly queueDuration = new Histogram({
    name: 'tailor_queue_duration_seconds',
    help: 'Time a text waited in the batch queue before its execution started',
    labelNames: ['model', 'version'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly computeDuration = new Histogram({
    name: 'tailor_compute_duration_seconds',
    help: 'Duration of one execution (tokenize, run, softmax) of a batch',
    labelNames: ['model', 'version'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'tailor_queue_depth',
    help: 'Texts waiting in the batch queue',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
  });
  readonly modelsLoaded = new Gauge({
    name: 'tailor_models_loaded',
    help: 'Model versions loaded and serving',
    registers: [this.registry],
  });
  readonly modelLoadFailures = new Counter({
    name: 'tailor_model_load_failures_total',
    help: 'Failed attempts to load a model version, by model',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly modelSwitches = new Counter({
    name: 'tailor_model_switches_total',
    help: 'Times a served reference switched to another version (an alias moved in the registry)',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly adaptersLoaded = new Gauge({
    name: 'tailor_adapters_loaded',
    help: 'LoRA adapters resident in the adapter cache (0 for engines without adapters)',
    registers: [this.registry],
  });
  readonly adapterCacheHits = new Counter({
    name: 'tailor_adapter_cache_hits_total',
    help: 'Adapter lookups served from the cache',
    registers: [this.registry],
  });
  readonly adapterCacheMisses = new Counter({
    name: 'tailor_adapter_cache_misses_total',
    help: 'Adapter lookups that loaded the adapter from the registry',
    registers: [this.registry],
  });
  readonly adapterCacheEvictions = new Counter({
    name: 'tailor_adapter_cache_evictions_total',
    help: 'Adapters evicted from the cache (least recently used first)',
    registers: [this.registry],
  });
  readonly shadowRequests = new Counter({
    name: 'tailor_shadow_requests_total',
    help: 'Copies of traffic sent to shadow variants (answers logged, never returned), by outcome',
    labelNames: ['model', 'variant', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly logRows = new Counter({
    name: 'tailor_log_rows_total',
    help: 'Rows written to the prediction and feedback logs',
    labelNames: ['log'] as const,
    registers: [this.registry],
  });
  readonly logDropped = new Counter({
    name: 'tailor_log_dropped_rows_total',
    help: 'Rows dropped because the log writer fell behind or failed (full disk); requests never wait for the log',
    labelNames: ['log'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Series at zero from the start, so dashboards and alerts see them before the first event.
    for (const c of [this.adapterCacheHits, this.adapterCacheMisses, this.adapterCacheEvictions]) c.inc(0);
    this.adaptersLoaded.set(0);
    for (const log of ['predictions', 'feedback']) {
      this.logRows.inc({ log }, 0);
      this.logDropped.inc({ log }, 0);
    }
  }

  /** Callbacks for a model version's batcher. */
  batchObserver(model: string, version: number): BatchObserver {
    const labels = { model, version: String(version) };
    this.queueDepth.set(labels, 0);
    return {
      onExecute: (b) => {
        this.executions.inc(labels);
        this.inferences.inc(labels, b.size);
        this.batchSize.observe(labels, b.size);
        this.computeDuration.observe(labels, b.computeSeconds);
        for (const q of b.queueSeconds) this.queueDuration.observe(labels, q);
      },
      onQueueDepth: (d) => this.queueDepth.set(labels, d),
    };
  }

  /** Drops the gauges of a version that is no longer loaded (counters keep their totals). */
  forgetVersion(model: string, version: number): void {
    this.queueDepth.remove({ model, version: String(version) });
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
