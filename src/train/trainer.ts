/**
 * The Trainer: epochs over a dataset with seeded shuffling, an optimizer step per (accumulated) batch, validation
 * each epoch with a metric callback, early stopping and best-weight tracking, checkpoints every N steps and at the
 * end, and `resume` from the latest checkpoint that reaches the same final weights as an uninterrupted run.
 *
 * Reproducibility: epoch e's order is a permutation drawn from a generator seeded by (seed, e), so it does not depend
 * on anything that happened before; dropout noise comes from the run's generator whose state is checkpointed.
 */
import cliProgress from 'cli-progress';
import { ConfigError, TrainingError } from '../errors.ts';
import type { Graph } from '../onnx/ir.ts';
import { ort } from '../runtime/session.ts';
import { loadLatestCheckpoint, saveCheckpoint, type LoopState } from './checkpoint.ts';
import { TrainingEngine, type Batch, type EngineOptions, type StepResult } from './engine.ts';
import { TrainRng } from '../util/rng.ts';

/** Random-access training data: `batch` assembles the rows at `indices` into named tensors. */
export interface TrainData {
  readonly size: number;
  batch(indices: readonly number[]): Batch;
}

/** Per-step information given to callbacks and logs. */
export interface StepInfo extends StepResult {
  epoch: number;
  /** Samples per second over the last step. */
  throughput: number;
}

export interface EpochInfo {
  epoch: number;
  step: number;
  trainLoss: number;
  /** `val_loss` and the metric callback's values. */
  metrics: Record<string, number>;
  improved: boolean;
}

export interface ValidationConfig {
  data: TrainData;
  batchSize?: number;
  /** Computes metrics from the eval outputs of every validation batch (and the batches themselves). */
  metrics?: (outputs: Record<string, ort.Tensor>[], batches: Batch[]) => Record<string, number>;
}

export interface TrainerConfig extends Omit<EngineOptions, 'loss' | 'trainable'> {
  seed: number;
  epochs: number;
  batchSize: number;
  /** Drop the last incomplete batch of an epoch (default true: keeps one static shape). */
  dropLast?: boolean;
  validation?: ValidationConfig;
  /** Stop when `metric` (a key of the validation metrics, e.g. `accuracy` or `val_loss`) has not improved for `patience` epochs. */
  earlyStopping?: { metric: string; mode: 'min' | 'max'; patience: number };
  /** Metric that picks the best weights (default: the early-stopping metric, else `val_loss` when validating). */
  bestMetric?: { metric: string; mode: 'min' | 'max' };
  checkpointDir?: string;
  /** Optimizer steps between checkpoints (0 or undefined: only at epoch ends / the end). */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  /** Continue from the latest checkpoint in checkpointDir, if any. */
  resume?: boolean;
  /** 'auto' (bar on a TTY, JSON lines otherwise), 'bar', 'json', 'none'. */
  progress?: 'auto' | 'bar' | 'json' | 'none';
  /** Where JSON log lines go (default: process.stderr). */
  log?: (line: string) => void;
  onStep?: (info: StepInfo) => void | Promise<void>;
  onEpoch?: (info: EpochInfo) => void | Promise<void>;
}

export interface TrainResult {
  steps: number;
  epochs: number;
  history: Record<string, number>[];
  best?: { metric: number; step: number; epoch: number };
  stoppedEarly: boolean;
  /** Final parameter values. */
  finalWeights: Map<string, Float32Array>;
  /** Best parameter values by `bestMetric` (the final ones when there is no validation). */
  bestWeights: Map<string, Float32Array>;
  /** The model graph with the best weights as initializers. */
  graph: Graph;
}

/** Seeds a per-epoch shuffle independent of the rest of the run (so resume needs no shuffle state). */
export function epochPermutation(seed: number, epoch: number, n: number): number[] {
  return new TrainRng(((seed >>> 0) ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0).permutation(n);
}

/** Data from whole tensors whose first dim indexes samples. */
export function tensorData(columns: Record<string, ort.Tensor>): TrainData {
  const names = Object.keys(columns);
  if (names.length === 0) throw new ConfigError('tensorData needs at least one column', { field: 'columns' });
  const size = columns[names[0]].dims[0];
  for (const n of names) {
    if (columns[n].dims[0] !== size)
      throw new ConfigError(`column '${n}' has ${columns[n].dims[0]} rows, expected ${size}`, { field: n });
  }
  return {
    size,
    batch(indices: readonly number[]): Batch {
      const out: Batch = {};
      for (const n of names) {
        const t = columns[n];
        const row = t.size / size;
        const src = t.data as Float32Array;
        const Ctor = src.constructor as new (n: number) => Float32Array;
        const dst = new Ctor(indices.length * row);
        indices.forEach((r, i) => dst.set(src.subarray(r * row, (r + 1) * row), i * row));
        out[n] = new ort.Tensor(t.type, dst, [indices.length, ...t.dims.slice(1)]);
      }
      return out;
    },
  };
}

function copyWeights(w: Map<string, Float32Array>): Map<string, Float32Array> {
  return new Map([...w].map(([k, v]) => [k, Float32Array.from(v)]));
}

/** Trains `model`; see the module comment. */
export class Trainer {
  readonly engine: TrainingEngine;
  private readonly rng: TrainRng;

  constructor(
    readonly model: Graph,
    loss: EngineOptions['loss'],
    trainable: EngineOptions['trainable'],
    readonly data: TrainData,
    readonly config: TrainerConfig,
  ) {
    if (!(config.batchSize >= 1) || !Number.isInteger(config.batchSize))
      throw new ConfigError(`batchSize must be a positive integer, got ${config.batchSize}`, { field: 'batchSize' });
    if (!(config.epochs >= 1)) throw new ConfigError(`epochs must be >= 1, got ${config.epochs}`, { field: 'epochs' });
    if (config.resume && !config.checkpointDir)
      throw new ConfigError('resume needs checkpointDir', { field: 'resume' });
    this.rng = new TrainRng(config.seed);
    this.engine = new TrainingEngine(model, { ...config, loss, trainable }, this.rng);
  }

  private batchesPerEpoch(): number {
    const n = this.data.size / this.config.batchSize;
    return (this.config.dropLast ?? true) ? Math.floor(n) : Math.ceil(n);
  }

  /** Validation loss and metrics with the current weights. */
  async validate(): Promise<Record<string, number>> {
    const v = this.config.validation;
    if (!v) return {};
    const bs = v.batchSize ?? this.config.batchSize;
    const outputs: Record<string, ort.Tensor>[] = [];
    const batches: Batch[] = [];
    let lossSum = 0;
    let count = 0;
    for (let i = 0; i < v.data.size; i += bs) {
      const idx = Array.from({ length: Math.min(bs, v.data.size - i) }, (_, k) => i + k);
      const batch = v.data.batch(idx);
      const out = await this.engine.evaluate(batch);
      lossSum += Number(out.loss.data[0]) * idx.length;
      count += idx.length;
      outputs.push(out);
      batches.push(batch);
    }
    return { val_loss: lossSum / Math.max(1, count), ...(v.metrics ? v.metrics(outputs, batches) : {}) };
  }

  /** Runs training to the end (or early stop); resumes from the latest checkpoint when `config.resume`. */
  async fit(): Promise<TrainResult> {
    const cfg = this.config;
    const accum = cfg.gradAccumulation ?? 1;
    const nb = this.batchesPerEpoch();
    if (nb < accum)
      throw new ConfigError(`an epoch has ${nb} batches, fewer than gradAccumulation ${accum}`, {
        field: 'gradAccumulation',
      });
    const shapes = new Map([...this.engine.params, ...this.engine.buffers].map((p) => [p.name, p.shape]));
    const bestSpec =
      cfg.bestMetric ??
      cfg.earlyStopping ??
      (cfg.validation ? { metric: 'val_loss', mode: 'min' as const } : undefined);
    let loop: LoopState = { step: 0, epoch: 0, batchInEpoch: 0, rng: this.rng.getState(), badEpochs: 0, history: [] };
    let best: Map<string, Float32Array> | undefined;
    if (cfg.resume && cfg.checkpointDir) {
      const ck = await loadLatestCheckpoint(cfg.checkpointDir);
      if (ck) {
        this.engine.setState(ck.engine);
        loop = ck.loop;
        this.rng.setState(loop.rng);
        if (ck.best) best = new Map(Object.entries(ck.best));
        this.emit({ event: 'resume', file: ck.file, step: loop.step, epoch: loop.epoch });
      }
    }
    const save = async (): Promise<void> => {
      if (!cfg.checkpointDir) return;
      loop.rng = this.rng.getState();
      await saveCheckpoint(cfg.checkpointDir, loop, this.engine.getState(), shapes, best, cfg.keepCheckpoints ?? 2);
    };
    const totalSteps = Math.floor(nb / accum) * cfg.epochs;
    const bar = this.makeBar(totalSteps, loop.step);
    let stoppedEarly = false;
    try {
      for (; loop.epoch < cfg.epochs; loop.epoch++, loop.batchInEpoch = 0) {
        const perm = epochPermutation(cfg.seed, loop.epoch, this.data.size);
        let lossSum = 0;
        let lossN = 0;
        let t0 = performance.now();
        let samples = 0;
        // Never stop mid-accumulation: a checkpoint always sits on an optimizer-step boundary.
        const usable = nb - (nb % accum);
        for (; loop.batchInEpoch < usable;) {
          const idx = perm.slice(loop.batchInEpoch * cfg.batchSize, (loop.batchInEpoch + 1) * cfg.batchSize);
          const r = await this.engine.trainBatch(this.data.batch(idx));
          loop.batchInEpoch++;
          samples += idx.length;
          if (!r) continue;
          loop.step = r.step;
          lossSum += r.loss;
          lossN++;
          const now = performance.now();
          const info: StepInfo = { ...r, epoch: loop.epoch, throughput: (samples * 1000) / Math.max(1e-9, now - t0) };
          t0 = now;
          samples = 0;
          this.report(info, bar);
          await cfg.onStep?.(info);
          if (cfg.checkpointEvery && loop.step % cfg.checkpointEvery === 0) await save();
        }
        const metrics = await this.validate();
        let improved = false;
        if (bestSpec && metrics[bestSpec.metric] !== undefined) {
          const m = metrics[bestSpec.metric];
          improved = !loop.best || (bestSpec.mode === 'max' ? m > loop.best.metric : m < loop.best.metric);
          if (improved) {
            loop.best = { metric: m, step: loop.step, epoch: loop.epoch };
            best = copyWeights(this.engine.paramValues());
            loop.badEpochs = 0;
          } else loop.badEpochs++;
        } else if (bestSpec && cfg.validation) {
          throw new ConfigError(
            `metric '${bestSpec.metric}' is not among the validation metrics (${Object.keys(metrics).join(', ')})`,
            { field: 'earlyStopping.metric' },
          );
        }
        const epochInfo: EpochInfo = {
          epoch: loop.epoch,
          step: loop.step,
          trainLoss: lossSum / Math.max(1, lossN),
          metrics,
          improved,
        };
        loop.history.push({ epoch: loop.epoch, step: loop.step, train_loss: epochInfo.trainLoss, ...metrics });
        this.emit({ event: 'epoch', ...epochInfo });
        await cfg.onEpoch?.(epochInfo);
        if (cfg.earlyStopping && loop.badEpochs >= cfg.earlyStopping.patience) {
          stoppedEarly = true;
          loop.epoch++;
          loop.batchInEpoch = 0;
          break;
        }
      }
      if (!stoppedEarly) loop.batchInEpoch = 0;
      await save();
    } catch (e) {
      if (e instanceof TrainingError) this.emit({ event: 'error', message: e.message, step: loop.step + 1 });
      throw e;
    } finally {
      bar?.stop();
    }
    const finalWeights = copyWeights(this.engine.paramValues());
    const bestWeights = best ?? finalWeights;
    return {
      steps: loop.step,
      epochs: loop.epoch,
      history: loop.history,
      ...(loop.best ? { best: loop.best } : {}),
      stoppedEarly,
      finalWeights,
      bestWeights,
      graph: this.engine.exportGraph(bestWeights),
    };
  }

  private mode(): 'bar' | 'json' | 'none' {
    const p = this.config.progress ?? 'auto';
    if (p === 'auto') return process.stderr.isTTY && !this.config.log ? 'bar' : 'json';
    return p;
  }

  private makeBar(total: number, start: number): cliProgress.SingleBar | undefined {
    if (this.mode() !== 'bar') return undefined;
    const bar = new cliProgress.SingleBar(
      {
        format: 'train |{bar}| {value}/{total} steps | loss {loss} | {throughput} samples/s | ETA {eta_formatted}',
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, start, { loss: '-', throughput: '-' });
    return bar;
  }

  private report(info: StepInfo, bar: cliProgress.SingleBar | undefined): void {
    if (bar) bar.update(info.step, { loss: info.loss.toFixed(4), throughput: info.throughput.toFixed(1) });
    else this.emit({ event: 'step', ...info });
  }

  private emit(obj: Record<string, unknown>): void {
    if (this.mode() === 'none' || (this.mode() === 'bar' && obj.event === 'step')) return;
    const line = JSON.stringify(obj);
    if (this.config.log) this.config.log(line);
    else if (this.mode() === 'json') process.stderr.write(`${line}\n`);
  }

  async release(): Promise<void> {
    await this.engine.release();
  }
}
