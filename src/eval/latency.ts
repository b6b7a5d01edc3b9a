/**
 * Latency, throughput, model size and parameter counts. Latency is measured through a tiny callable so any
 * runtime (ONNX Runtime session, remote server, fake in tests) can be timed the same way.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ConfigError, ModelFileError } from '../errors.ts';
import { quantileSorted } from './stats.ts';

/** Runs the model once on a batch of `batchSize` examples and resolves when outputs are ready. */
export type BatchRunner = (batchSize: number) => Promise<void>;

export interface LatencyOptions {
  /** Untimed runs first (session warm-up, allocator growth, JIT). Default 5. */
  warmup?: number;
  /** Timed batch-1 runs. Default 100. */
  iterations?: number;
  /** Batch size for the throughput measurement. Default 32. */
  throughputBatchSize?: number;
  /** Timed runs at that batch size. Default 20. */
  throughputIterations?: number;
  /** Milliseconds clock; injectable so tests are deterministic. Default performance.now. */
  clock?: () => number;
}

export interface LatencyStats {
  batchSize: number;
  samples: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

export interface LatencyReport {
  batch1: LatencyStats;
  throughput: { batchSize: number; itemsPerSecond: number; meanBatchMs: number; samples: number };
}

/** Percentiles (numpy's linear interpolation) and mean of latency samples in ms. */
export function latencyStats(samplesMs: number[], batchSize = 1): LatencyStats {
  if (samplesMs.length === 0) throw new ConfigError('latencyStats needs at least one sample', { field: 'iterations' });
  const s = Float64Array.from(samplesMs).sort();
  return {
    batchSize,
    samples: s.length,
    p50Ms: quantileSorted(s, 0.5),
    p95Ms: quantileSorted(s, 0.95),
    p99Ms: quantileSorted(s, 0.99),
    meanMs: s.reduce((a, b) => a + b, 0) / s.length,
    minMs: s[0],
    maxMs: s[s.length - 1],
  };
}

/** Times `run` sequentially: p50/p95/p99 at batch 1, then items/s at the throughput batch size. */
export async function measureLatency(run: BatchRunner, options: LatencyOptions = {}): Promise<LatencyReport> {
  const clock = options.clock ?? (() => performance.now());
  const warmup = options.warmup ?? 5;
  const iterations = options.iterations ?? 100;
  const tb = options.throughputBatchSize ?? 32;
  const ti = options.throughputIterations ?? 20;
  for (const [k, v] of Object.entries({ iterations, throughputBatchSize: tb, throughputIterations: ti })) {
    if (!Number.isInteger(v) || v < 1)
      throw new ConfigError(`latency ${k} must be a positive integer, got ${v}`, { field: k });
  }
  for (let i = 0; i < warmup; i++) await run(1);
  const single: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = clock();
    await run(1);
    single.push(clock() - t0);
  }
  for (let i = 0; i < Math.min(warmup, 2); i++) await run(tb);
  const batched: number[] = [];
  for (let i = 0; i < ti; i++) {
    const t0 = clock();
    await run(tb);
    batched.push(clock() - t0);
  }
  const total = batched.reduce((a, b) => a + b, 0);
  return {
    batch1: latencyStats(single, 1),
    throughput: {
      batchSize: tb,
      itemsPerSecond: total > 0 ? (tb * ti * 1000) / total : Infinity,
      meanBatchMs: total / ti,
      samples: ti,
    },
  };
}

export interface ModelSize {
  totalBytes: number;
  /** Relative paths, largest first. */
  files: Array<{ path: string; bytes: number }>;
}

/** Bytes on disk of a model file or of every file in a model folder (recursively, e.g. external data). */
export async function modelSizeOnDisk(path: string): Promise<ModelSize> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new ModelFileError(
      `cannot stat model path ${path}: ${(err as Error).message}`,
      { file: path },
      { cause: err },
    );
  }
  if (st.isFile()) return { totalBytes: st.size, files: [{ path: path.split(/[\\/]/).pop()!, bytes: st.size }] };
  const files: Array<{ path: string; bytes: number }> = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push({ path: relative(path, p), bytes: (await stat(p)).size });
    }
  };
  await walk(path);
  files.sort((a, b) => b.bytes - a.bytes || a.path.localeCompare(b.path));
  return { totalBytes: files.reduce((s, f) => s + f.bytes, 0), files };
}

export interface ParameterInfo {
  name: string;
  shape: readonly number[];
  /** Default true. */
  trainable?: boolean;
}

export interface ParameterCount {
  total: number;
  trainable: number;
  frozen: number;
  tensors: number;
}

/** Counts scalar parameters; every dimension must be a known non-negative integer. */
export function countParameters(params: readonly ParameterInfo[]): ParameterCount {
  let total = 0;
  let trainable = 0;
  for (const p of params) {
    let n = 1;
    for (const d of p.shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new ConfigError(
          `parameter "${p.name}" has dimension ${d} in shape [${p.shape.join(', ')}]; counts need static shapes`,
          { field: p.name, value: String(d) },
        );
      }
      n *= d;
    }
    total += n;
    if (p.trainable !== false) trainable += n;
  }
  return { total, trainable, frozen: total - trainable, tensors: params.length };
}
