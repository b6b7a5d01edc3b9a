/**
 * The quantization report: what a user needs to decide whether to ship the quantized file — size before/after,
 * latency at batch 1 and throughput at batch N (both models timed interleaved, so machine load hits both alike),
 * accuracy / macro-F1 on an eval set, and the per-layer output error that shows where accuracy was lost (exclude
 * the worst modules with `exclude` and quantize again). It says plainly when quantization does not pay.
 */
import { ConfigError } from '../../errors.ts';
import type { ModelProto } from '../../onnx/ir.ts';
import { encodeModel } from '../../onnx/serialize.ts';
import { Session, type Feeds, type ProviderSpec } from '../../runtime/session.ts';
import { argmax, classificationMetrics } from '../../eval/metrics.ts';
import { latencyStats, type LatencyStats } from '../../eval/latency.ts';
import type { QuantizeResult } from './dynamic.ts';

export interface EvalSet {
  /** Batches of feeds; their outputs are concatenated in order. */
  batches: readonly Feeds[];
  /** Gold class per example, in batch order. */
  labels: readonly number[];
  /** Output holding the logits [batch, classes]. Default: the model's first output. */
  output?: string;
  labelNames?: readonly string[];
}

export interface QuantReportOptions {
  /** Feeds for a batch of `batchSize` examples (for latency). Omit to skip timing. */
  feedsFor?: (batchSize: number) => Feeds;
  eval?: EvalSet;
  /** Batches used to measure per-layer error (default: the first two eval batches). */
  probe?: readonly Feeds[];
  /** Timed batch-1 runs per model (default 30) and batch-N runs (default 6). */
  iterations?: number;
  throughputIterations?: number;
  throughputBatchSize?: number;
  intraOpThreads?: number;
  /** Execution providers for the float and quantized sessions (default CPU). */
  providers?: ProviderSpec[];
}

export interface LayerError {
  module: string;
  output: string;
  /** Mean squared difference of the float and quantized values of this MatMul's output (errors accumulated from upstream layers included). */
  mse: number;
  /** mse / mean(float²): scale-free, comparable across layers. */
  relativeMse: number;
}

export interface ModelSideFigures {
  bytes: number;
  latencyBatch1?: LatencyStats;
  throughput?: { batchSize: number; itemsPerSecond: number; meanBatchMs: number };
  accuracy?: number;
  macroF1?: number;
}

export interface QuantizationReport {
  mode: QuantizeResult['mode'];
  quantizedNodes: string[];
  /** Embedding tables stored as int8. */
  quantizedEmbeddings: string[];
  skipped: QuantizeResult['skipped'];
  float: ModelSideFigures;
  quantized: ModelSideFigures;
  /** quantized / float bytes. */
  sizeRatio: number;
  /** float p50 / quantized p50 at batch 1 (>1 = quantized faster). */
  speedupBatch1?: number;
  /** quantized / float items per second at the throughput batch size. */
  speedupThroughput?: number;
  accuracyDelta?: number;
  macroF1Delta?: number;
  /** Worst first. */
  layerErrors: LayerError[];
  /** Whether the quantized model is faster at both batch sizes (undefined when not timed). */
  pays?: boolean;
  /** Plain-language findings (e.g. "INT8 is slower than FP32 at batch 1 on this CPU"). */
  notes: string[];
}

async function logitsOf(s: Session, set: EvalSet): Promise<number[]> {
  const name = set.output ?? s.outputNames[0];
  const preds: number[] = [];
  for (const feeds of set.batches) {
    const out = (await s.run(feeds, [name]))[name];
    const c = out.dims[out.dims.length - 1];
    const d = out.data as Float32Array;
    for (let i = 0; i < d.length / c; i++) preds.push(argmax(d.subarray(i * c, (i + 1) * c)));
  }
  return preds;
}

/** Times several sessions interleaved (one run of each per round): load on a shared machine hits all alike. */
export async function timeInterleaved(
  sessions: readonly Session[],
  feeds: Feeds,
  iterations: number,
  warmup = 2,
): Promise<LatencyStats[]> {
  const samples = sessions.map(() => [] as number[]);
  for (const s of sessions) for (let i = 0; i < warmup; i++) await s.run(feeds);
  for (let i = 0; i < iterations; i++) {
    for (let j = 0; j < sessions.length; j++) {
      const t0 = performance.now();
      await sessions[j].run(feeds);
      samples[j].push(performance.now() - t0);
    }
  }
  const bs = Number(Object.values(feeds)[0]?.dims[0] ?? 1);
  return samples.map((s) => latencyStats(s, bs));
}

/** Compares a float model with its quantized version (from any of the quantizers). */
export async function quantizationReport(
  floatModel: ModelProto,
  result: QuantizeResult,
  opts: QuantReportOptions = {},
): Promise<QuantizationReport> {
  // Spinning off: on a shared machine ORT's spinning workers stall each other and made ratios up to 4x wrong in bench/compress.ts.
  const threads = {
    allowSpinning: false,
    ...(opts.intraOpThreads !== undefined ? { intraOpThreads: opts.intraOpThreads } : {}),
    ...(opts.providers ? { providers: opts.providers } : {}),
  };
  const fs = await Session.create(floatModel, { label: 'float model', ...threads });
  const qs = await Session.create(result.model, { label: `${result.mode} model`, ...threads });
  const report: QuantizationReport = {
    mode: result.mode,
    quantizedNodes: result.quantized.map((q) => q.module),
    quantizedEmbeddings: result.embeddings.map((e) => e.module),
    skipped: result.skipped,
    float: { bytes: encodeModel(floatModel).byteLength },
    quantized: { bytes: encodeModel(result.model).byteLength },
    sizeRatio: 0,
    layerErrors: [],
    notes: [],
  };
  report.sizeRatio = report.quantized.bytes / report.float.bytes;
  try {
    if (opts.eval) {
      const set = opts.eval;
      const names = set.labelNames ? [...set.labelNames] : undefined;
      const fp = await logitsOf(fs, set);
      const qp = await logitsOf(qs, set);
      if (fp.length !== set.labels.length) {
        throw new ConfigError(`eval set has ${set.labels.length} labels but the batches hold ${fp.length} examples`, {
          field: 'labels',
        });
      }
      const classes = names ?? Array.from({ length: Math.max(...set.labels, ...fp, ...qp) + 1 }, (_, i) => String(i));
      const fm = classificationMetrics(set.labels, fp, classes);
      const qm = classificationMetrics(set.labels, qp, classes);
      report.float.accuracy = fm.accuracy;
      report.float.macroF1 = fm.macroF1;
      report.quantized.accuracy = qm.accuracy;
      report.quantized.macroF1 = qm.macroF1;
      report.accuracyDelta = qm.accuracy - fm.accuracy;
      report.macroF1Delta = qm.macroF1 - fm.macroF1;
    }
    const probe = opts.probe ?? opts.eval?.batches.slice(0, 2) ?? [];
    if (probe.length && result.quantized.length)
      report.layerErrors = await layerErrors(floatModel, result, probe, threads);
    if (opts.feedsFor) {
      const it = opts.iterations ?? 30;
      const tb = opts.throughputBatchSize ?? 32;
      const [f1, q1] = await timeInterleaved([fs, qs], opts.feedsFor(1), it);
      const [fb, qb] = await timeInterleaved([fs, qs], opts.feedsFor(tb), opts.throughputIterations ?? 6, 1);
      const thr = (s: LatencyStats) => ({
        batchSize: tb,
        itemsPerSecond: (tb * 1000) / s.meanMs,
        meanBatchMs: s.meanMs,
      });
      report.float.latencyBatch1 = f1;
      report.quantized.latencyBatch1 = q1;
      report.float.throughput = thr(fb);
      report.quantized.throughput = thr(qb);
      report.speedupBatch1 = f1.p50Ms / q1.p50Ms;
      report.speedupThroughput = report.quantized.throughput.itemsPerSecond / report.float.throughput.itemsPerSecond;
      report.pays = report.speedupBatch1 > 1 && report.speedupThroughput > 1;
      if (report.speedupBatch1 < 1)
        report.notes.push(
          `${result.mode} is slower than float at batch 1 on this CPU (${report.speedupBatch1.toFixed(2)}x): quantization does not pay for single requests`,
        );
      if (report.speedupThroughput < 1)
        report.notes.push(
          `${result.mode} is slower than float at batch ${tb} on this CPU (${report.speedupThroughput.toFixed(2)}x): quantization does not pay for batched throughput`,
        );
    }
  } finally {
    await fs.release();
    await qs.release();
  }
  if (report.sizeRatio > 0.5)
    report.notes.push(
      `the file shrank only to ${(report.sizeRatio * 100).toFixed(0)}%: unquantized tensors (embeddings, excluded layers) dominate its size`,
    );
  if (report.accuracyDelta !== undefined && report.accuracyDelta < -0.01) {
    const worst = report.layerErrors.slice(0, 3).map((l) => l.module);
    report.notes.push(
      `accuracy dropped ${(-report.accuracyDelta * 100).toFixed(1)} points; the layers with the largest error are ${worst.join(', ')} — try exclude: [${worst.map((w) => `'${w.replace(/\./g, '\\.')}'`).join(', ')}]`,
    );
  }
  return report;
}

/** Output MSE of float vs quantized at each quantized MatMul's output, worst (by relative MSE) first. */
export async function layerErrors(
  floatModel: ModelProto,
  result: QuantizeResult,
  probe: readonly Feeds[],
  session: { intraOpThreads?: number; providers?: ProviderSpec[] } = {},
): Promise<LayerError[]> {
  const names = result.quantized.map((q) => q.output);
  const withOutputs = (m: ModelProto): ModelProto => {
    const have = new Set(m.graph.outputs.map((o) => o.name));
    return {
      ...m,
      graph: {
        ...m.graph,
        outputs: [
          ...m.graph.outputs,
          ...names.filter((n) => !have.has(n)).map((name) => ({ name, dtype: 'float32' as const })),
        ],
      },
    };
  };
  const fs = await Session.create(withOutputs(floatModel), { label: 'float probe', ...session });
  const qs = await Session.create(withOutputs(result.model), { label: 'quantized probe', ...session });
  const sq = new Float64Array(names.length),
    ref = new Float64Array(names.length),
    count = new Float64Array(names.length);
  try {
    for (const feeds of probe) {
      const fo = await fs.run(feeds, names);
      const qo = await qs.run(feeds, names);
      names.forEach((n, i) => {
        const a = fo[n].data as Float32Array,
          b = qo[n].data as Float32Array;
        for (let j = 0; j < a.length; j++) {
          const d = a[j] - b[j];
          sq[i] += d * d;
          ref[i] += a[j] * a[j];
        }
        count[i] += a.length;
      });
    }
  } finally {
    await fs.release();
    await qs.release();
  }
  return result.quantized
    .map((q, i) => ({
      module: q.module,
      output: q.output,
      mse: sq[i] / count[i],
      relativeMse: ref[i] > 0 ? sq[i] / ref[i] : 0,
    }))
    .sort((a, b) => b.relativeMse - a.relativeMse);
}

/** A short text table of a report (the CLI prints this; `--json` prints the object). */
export function formatQuantizationReport(r: QuantizationReport): string {
  const mb = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
  const pct = (v?: number): string => (v === undefined ? '-' : `${(v * 100).toFixed(2)}%`);
  const ms = (s?: LatencyStats): string => (s ? `${s.p50Ms.toFixed(2)} / ${s.p95Ms.toFixed(2)} ms` : '-');
  const lines = [
    `quantization: ${r.mode}, ${r.quantizedNodes.length} MatMuls and ${r.quantizedEmbeddings.length} embedding lookups quantized, ${r.skipped.length} MatMuls left float`,
    `                 float            quantized`,
    `size           ${mb(r.float.bytes).padEnd(16)} ${mb(r.quantized.bytes)}  (${(r.sizeRatio * 100).toFixed(1)}%, ${(1 / r.sizeRatio).toFixed(2)}x smaller)`,
    `p50/p95 b=1    ${ms(r.float.latencyBatch1).padEnd(16)} ${ms(r.quantized.latencyBatch1)}${r.speedupBatch1 ? `  (${r.speedupBatch1.toFixed(2)}x)` : ''}`,
    `items/s        ${(r.float.throughput?.itemsPerSecond.toFixed(1) ?? '-').padEnd(16)} ${r.quantized.throughput?.itemsPerSecond.toFixed(1) ?? '-'}${r.speedupThroughput ? `  (${r.speedupThroughput.toFixed(2)}x at batch ${r.float.throughput?.batchSize})` : ''}`,
    `accuracy       ${pct(r.float.accuracy).padEnd(16)} ${pct(r.quantized.accuracy)}`,
    `macro-F1       ${pct(r.float.macroF1).padEnd(16)} ${pct(r.quantized.macroF1)}`,
  ];
  if (r.layerErrors.length) {
    lines.push('per-layer relative MSE (worst first):');
    for (const l of r.layerErrors.slice(0, 8)) lines.push(`  ${l.relativeMse.toExponential(2)}  ${l.module}`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
