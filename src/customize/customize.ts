/**
 * `customize(base, data, { strategy })`: the same base model customized by one strategy from the strategy table
 * (customize/strategies/), trained with src/train's Trainer, measured (trainable/total parameters, peak RSS, time
 * per epoch, validation curve) and returned with its lineage and the strategy's adapter. The strategy decides the
 * graph and which initializers train; everything else is here, once: the head, the text feeds, the optional warm
 * head (LP-FT), the trainer, the choice of the best epoch (for `head`: or of the warm head), temperature scaling
 * folded into the head, the lineage.
 */
import { softmaxCrossEntropy } from '../autodiff/losses.ts';
import { ConfigError, DataError } from '../errors.ts';
import { fitTemperature, logitCalibration } from '../eval/calibration.ts';
import { classificationMetrics, scoreLogits } from '../eval/metrics.ts';
import {
  attachHead,
  bodyGraph,
  headGraph,
  headKindOf,
  headLayout,
  LOGITS,
  scaleHead,
  warmHeadValues,
  withHeadValues,
} from '../models/head.ts';
import { countParams, withParamValues, type Model } from '../models/model.ts';
import { DEFAULT_MAX_LENGTH, encodeTextBatch } from '../models/text.ts';
import type { GraphBuilder } from '../onnx/builder.ts';
import { modelFromGraph, type Graph } from '../onnx/ir.ts';
import { normalizedWeights } from '../runtime/dense.ts';
import { RssSampler } from '../runtime/memory.ts';
import { ort, Session } from '../runtime/session.ts';
import { foldLrScale, lrScaledName, lrScaleReparam } from '../train/layer-decay.ts';
import { tensorData, Trainer, type TrainData, type TrainResult } from '../train/trainer.ts';
import { fitWarmHead } from '../train/warm-head.ts';
import { dataFingerprint, makeLineage, type Lineage } from './lineage.ts';
import { defaultLrOf, strategyDef, type Strategy } from './strategies/index.ts';
import type {
  BodyPhaseReport,
  CustomizeData,
  CustomizeOptions,
  EpochReport,
  LabeledText,
  StrategyArtifacts,
} from './types.ts';

/** Accuracy and mean log-loss on the validation split. */
export interface ValidationScore {
  accuracy: number;
  logLoss: number;
}

/**
 * Temperature scaling (Guo et al., 2017) fitted on the validation split after training: the one scalar T that
 * minimises the validation log-loss of logits / T. It is folded into the head (weight and bias divided by T), so
 * the returned model, its ONNX export, the adapter files and anything serving them give calibrated probabilities;
 * no prediction changes. ECE: 15 equal-width confidence bins (eval/calibration.ts).
 */
export interface CalibrationReport {
  method: 'temperature';
  temperature: number;
  /** Validation ECE of the unscaled and of the scaled logits. */
  eceBefore: number;
  eceAfter: number;
  /** Validation mean log-loss of the unscaled and of the scaled logits. */
  logLossBefore: number;
  logLossAfter: number;
}

export interface CustomizeReport {
  strategy: string;
  trainableParams: number;
  totalParams: number;
  /** Peak resident set size of the process during the run, bytes (sampled every 25 ms). */
  peakRssBytes: number;
  /** Wall-clock seconds of each epoch (training + validation). */
  epochSeconds: number[];
  /** Strategies with a body phase (setfit): what it did, before the head and the training loop. */
  bodyPhase?: BodyPhaseReport;
  /** head (and warm starts): seconds spent computing the frozen encoder's features once. */
  featureSeconds?: number;
  /**
   * How the head started: random, given (`head` option) or fitted on frozen features (with that fit's figures and
   * the temperature-scaled ridge head's, the audit's baseline, on validation).
   */
  headInit:
    | { kind: 'random' | 'given' }
    | {
        kind: 'warm';
        l2: number;
        trainLoss: number;
        valLoss: number;
        valAccuracy: number;
        seconds: number;
        ridge: ValidationScore;
      };
  /**
   * head strategy from a warm head: the trained head's best epoch against the warm head it started from, on
   * validation (accuracy, then log-loss: `selectionKey`). Training has to beat the start, or the start is kept:
   * `ridge` (the temperature-scaled ridge head) or `refined` (the ridge head refined by L2 softmax regression).
   */
  headChoice?: { kept: 'trained' | 'ridge' | 'refined'; trained: ValidationScore; start: ValidationScore };
  /** Temperature scaling fitted on validation and folded into the head (every strategy). */
  calibration: CalibrationReport;
  totalSeconds: number;
  curve: EpochReport[];
  /** Validation metrics of the returned (best) weights. */
  accuracy: number;
  macroF1: number;
  /** The epoch whose weights are returned; -1 when the head strategy kept its warm head (`headChoice`). */
  bestEpoch: number;
}

export interface CustomizeResult extends StrategyArtifacts {
  /** The customized model (LoRA: with adapter nodes; merge with `mergeAdapter` for a plain model). */
  model: Model;
  labels: string[];
  report: CustomizeReport;
  lineage: Lineage;
}

/** Label ids; labels the head does not know are a DataError listing them (nothing is trained or written). */
export function labelIds(rows: readonly LabeledText[], labels: readonly string[], split: string): BigInt64Array {
  const id = new Map(labels.map((l, i) => [l, i]));
  const unknown = [...new Set(rows.filter((r) => !id.has(r.label)).map((r) => r.label))];
  if (unknown.length) {
    throw new DataError(
      `${split} has labels that never appear in training: ${unknown
        .slice(0, 20)
        .map((l) => `'${l}'`)
        .join(', ')}${unknown.length > 20 ? ` (${unknown.length} in all)` : ''}`,
      { field: 'label', value: unknown[0], details: { unknown } },
    );
  }
  return BigInt64Array.from(rows, (r) => BigInt(id.get(r.label) as number));
}

const ceLoss = (b: GraphBuilder): string =>
  b.op('SoftmaxCrossEntropyLoss', [LOGITS, b.input('labels', 'int64', ['batch'])], { reduction: 'mean' });

/** The data column (and graph input) of `sampleWeights`. */
const SAMPLE_WEIGHT = 'sample_weight';

/** Cross-entropy weighted per row by the `sample_weight` column: Σ wᵢℓᵢ / Σ wᵢ over the batch. */
const weightedCeLoss = (b: GraphBuilder): string =>
  softmaxCrossEntropy(b, LOGITS, b.input('labels', 'int64', ['batch']), {
    sampleWeights: b.input(SAMPLE_WEIGHT, 'float32', ['batch']),
  });

/**
 * Key that picks the best epoch: validation accuracy, ties broken by the lower validation log-loss. Accuracy alone
 * saturates on small validation sets (every epoch at 100%), and the first of equal epochs then won: weights from
 * epoch 0, whose head had barely left its initialisation, with confidences near 1/classes (ECE ≈ 0.75 on a
 * 10-class slice although the final training loss was 0.4). Correct count + 1/(1 + loss) orders exactly that way.
 */
export function selectionKey(correct: number, logLoss: number): number {
  return correct + 1 / (1 + logLoss);
}

/** Validation logits [n, classes] row-major with their labels. */
interface ValidationLogits {
  logits: Float32Array;
  labels: number[];
}

function metricsFn(labels: readonly string[]) {
  return (outs: Record<string, ort.Tensor>[], batches: Record<string, ort.Tensor>[]): Record<string, number> => {
    const yTrue: number[] = [];
    const yPred: number[] = [];
    let nll = 0;
    outs.forEach((o, bi) => {
      const y = Array.from(batches[bi].labels.data as BigInt64Array, Number);
      const s = scoreLogits(o[LOGITS].data as Float32Array, o[LOGITS].dims[1], y);
      nll += s.nll;
      yTrue.push(...y);
      yPred.push(...s.predictions);
    });
    const m = classificationMetrics(yTrue, yPred, [...labels]);
    const correct = yTrue.reduce((t, v, i) => t + (v === yPred[i] ? 1 : 0), 0);
    return {
      accuracy: m.accuracy,
      macro_f1: m.macroF1,
      selection: selectionKey(correct, yTrue.length ? nll / yTrue.length : 0),
    };
  };
}

/**
 * Rows per forward-only run (feature cache, validation, calibration logits). ORT keeps a run's activations in its
 * arena for the session's life, so this sets the memory on top of training: on USE-lite at 44 tokens, batch 256
 * added ~290 MB to the feature session and ~345 MB to validation (held next to the training step's arena), batch
 * 64 ~70 MB and ~105 MB, at the same time per row (22.8 vs 23.0 ms for the features, under load).
 */
const EVAL_BATCH = 64;

/** Runs `graph` (inputs -> `feature`) over row-major feeds of `n` rows in batches: the frozen body's features [n, D]. */
async function runFeatures(
  graph: Graph,
  feature: string,
  feeds: Record<string, ort.Tensor>,
  n: number,
  batch: number,
  threads?: number,
): Promise<ort.Tensor> {
  const s = await Session.create(modelFromGraph(graph), {
    label: 'feature cache',
    ...(threads ? { intraOpThreads: threads } : {}),
  });
  try {
    let out: Float32Array | undefined;
    let D = 0;
    for (let i = 0; i < n; i += batch) {
      const m = Math.min(batch, n - i);
      const part: Record<string, ort.Tensor> = {};
      for (const [k, t] of Object.entries(feeds)) {
        const row = t.size / n;
        part[k] = new ort.Tensor(t.type, (t.data as BigInt64Array).subarray(i * row, (i + m) * row), [
          m,
          ...t.dims.slice(1),
        ]);
      }
      const y = (await s.run(part, [feature]))[feature];
      D = y.dims[y.dims.length - 1];
      out ??= new Float32Array(n * D);
      out.set(y.data as Float32Array, i * D);
    }
    return new ort.Tensor('float32', out ?? new Float32Array(0), [n, D]);
  } finally {
    await s.release();
  }
}

function withColumns(feeds: Record<string, ort.Tensor>, labels: BigInt64Array, weights?: Float32Array): TrainData {
  return tensorData({
    ...feeds,
    labels: new ort.Tensor('int64', labels, [labels.length]),
    ...(weights ? { [SAMPLE_WEIGHT]: new ort.Tensor('float32', weights, [weights.length]) } : {}),
  });
}

/** `precomputed` must hold one feature row per train and validation row, and a head of [width, classes]. */
function checkPrecomputed(
  pre: NonNullable<CustomizeOptions['precomputed']>,
  data: CustomizeData,
  classes: number,
): void {
  for (const [split, values, rows] of [
    ['train', pre.train, data.train.length],
    ['validation', pre.validation, data.validation.length],
  ] as const)
    if (values.length !== rows * pre.width)
      throw new ConfigError(
        `precomputed.${split} holds ${values.length} values, not ${rows} rows of width ${pre.width}`,
        { field: `precomputed.${split}`, value: String(values.length) },
      );
  if (pre.warmHead && pre.warmHead.weight.length !== pre.width * classes)
    throw new ConfigError(`precomputed.warmHead's weight is not [${pre.width}, ${classes}] (features, labels)`, {
      field: 'precomputed.warmHead',
      value: String(pre.warmHead.weight.length),
    });
}

/** Customizes `base` on `data` with one strategy; see the module comment. Nothing is written to disk. */
export async function customize(base: Model, data: CustomizeData, opts: CustomizeOptions): Promise<CustomizeResult> {
  const def = strategyDef(String(opts.strategy));
  if (data.train.length === 0) throw new DataError('the training split is empty', { field: 'train' });
  if (data.validation.length === 0) throw new DataError('the validation split is empty', { field: 'validation' });
  const labels = opts.labels ? [...opts.labels] : [...new Set(data.train.map((r) => r.label))].sort();
  const yTrain = labelIds(data.train, labels, 'the training split');
  const yVal = labelIds(data.validation, labels, 'the validation split');
  const seed = opts.seed ?? 0;
  const epochs = opts.epochs ?? def.defaultEpochs ?? 3;
  // A training split smaller than the batch is one batch (few-shot: 2 examples of 10 labels), not zero batches.
  const batchSize = Math.min(opts.batchSize ?? 32, data.train.length);
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  // Scaled to mean 1 (checked: one finite weight >= 0 per training row). Validation rows all weigh 1: its loss is
  // the plain mean, and the choices made on it stay unweighted.
  const sampleWeights = opts.sampleWeights
    ? Float32Array.from(normalizedWeights(opts.sampleWeights, data.train.length, 'sampleWeights'))
    : undefined;
  const valWeights = sampleWeights ? new Float32Array(data.validation.length).fill(1) : undefined;
  const t0 = performance.now();
  const rss = new RssSampler().start();
  try {
    const headKind = headKindOf(opts.headType ?? 'linear');
    const lr = opts.lr ?? defaultLrOf(def, headKind);
    const headed = attachHead(base, {
      labels,
      seed,
      kind: headKind,
      ...(opts.head
        ? { weight: opts.head.weight, bias: opts.head.bias, ...(opts.head.dense ? { dense: opts.head.dense } : {}) }
        : {}),
    });
    const prepared = def.prepare(headed, { seed, options: opts });
    let model = prepared.model;
    const counts = countParams(model);
    const train = encodeTextBatch(
      model,
      data.train.map((r) => r.text),
      { maxLength },
    );
    const val = encodeTextBatch(
      model,
      data.validation.map((r) => r.text),
      { maxLength, padTo: train.seq },
    );
    let bodyPhase: BodyPhaseReport | undefined;
    if (def.bodyPhase) {
      const bp = await def.bodyPhase(
        model,
        { rows: data.train, feeds: train.feeds, labels: yTrain, maxLength },
        { seed, options: opts },
      );
      model = bp.model;
      bodyPhase = bp.report;
      rss.sample();
    }
    const warm = opts.head ? false : (opts.warmStartHead ?? def.warmStartHead);
    let featureSeconds: number | undefined;
    let cached: { train: ort.Tensor; val: ort.Tensor } | undefined;
    // Precomputed features are the frozen base's; a body phase has just changed the body, so they no longer apply.
    const pre = def.bodyPhase ? undefined : opts.precomputed;
    if (pre) checkPrecomputed(pre, data, labels.length);
    if (pre && (def.headOnly || warm)) {
      cached = {
        train: new ort.Tensor('float32', pre.train, [data.train.length, pre.width]),
        val: new ort.Tensor('float32', pre.validation, [data.validation.length, pre.width]),
      };
    } else if (def.headOnly || warm) {
      // The body is the same before and after injection (LoRA and IA3 start equal to the base), so its features fit both.
      const tf = performance.now();
      const body = bodyGraph(model);
      cached = {
        train: await runFeatures(body.graph, body.feature, train.feeds, data.train.length, EVAL_BATCH, opts.threads),
        val: await runFeatures(body.graph, body.feature, val.feeds, data.validation.length, EVAL_BATCH, opts.threads),
      };
      featureSeconds = (performance.now() - tf) / 1000;
    }
    let headInit: CustomizeReport['headInit'] = { kind: opts.head ? 'given' : 'random' };
    // The model as the warm start left it: the head strategy's trained head must beat it, or it is kept.
    let warmStart: { model: Model; l2: number } | undefined;
    if (warm && cached) {
      const tw = performance.now();
      const D = cached.train.dims[1];
      // A shared warm head (a search's) was fitted without weights: with sample weights the head is fitted here.
      const h =
        (sampleWeights ? undefined : pre?.warmHead) ??
        (await fitWarmHead(
          {
            features: cached.train.data as Float32Array,
            labels: Array.from(yTrain, Number),
            ...(sampleWeights ? { weights: sampleWeights } : {}),
          },
          { features: cached.val.data as Float32Array, labels: Array.from(yVal, Number) },
          D,
          labels.length,
          typeof warm === 'object' ? warm : {},
        ));
      model = withHeadValues(model, warmHeadValues(headKind, h, D, cached.train.data as Float32Array));
      if (def.headOnly) warmStart = { model, l2: h.l2 };
      headInit = {
        kind: 'warm',
        l2: h.l2,
        trainLoss: h.trainLoss,
        valLoss: h.valLoss,
        valAccuracy: h.valAccuracy,
        seconds: (performance.now() - tw) / 1000,
        ridge: { accuracy: h.ridge.valAccuracy, logLoss: h.ridge.valLoss },
      };
    }
    // Only the head strategy trains on the cached features; any other would hold them through training for nothing
    // (15,000 x 512 floats, 31 MB, on full CLINC150).
    if (!def.headOnly) cached = undefined;
    const steps = Math.max(1, Math.floor(data.train.length / batchSize) * epochs);
    const warmupSteps = Math.round((opts.warmup ?? 0.06) * steps);
    const curve: EpochReport[] = [];
    const epochSeconds: number[] = [];
    const selection: number[] = [];
    let tEpoch = performance.now();
    let graph = model.graph;
    let trainData: TrainData;
    let valData: TrainData;
    if (def.headOnly && cached) {
      const hg = headGraph(model);
      graph = hg.graph;
      trainData = withColumns({ [hg.feature]: cached.train }, yTrain, sampleWeights);
      valData = withColumns({ [hg.feature]: cached.val }, yVal, valWeights);
    } else {
      trainData = withColumns(train.feeds, yTrain, sampleWeights);
      valData = withColumns(val.feeds, yVal, valWeights);
    }
    let trainable = [...model.params.values()].filter((p) => p.trainable).map((p) => p.initializer);
    const scales = prepared.lrScales;
    if (scales) {
      graph = lrScaleReparam(graph, scales);
      trainable = trainable.map((n) => ((scales.get(n) ?? 1) === 1 ? n : lrScaledName(n)));
    }
    const noDecay = new Set([
      ...[...model.params.values()].filter((p) => p.role === 'bias' || p.role === 'norm').map((p) => p.initializer),
      ...(prepared.noDecay ?? []),
    ]);
    const trainer = new Trainer(graph, sampleWeights ? weightedCeLoss : ceLoss, trainable, trainData, {
      seed,
      epochs,
      batchSize,
      dropLast: true,
      progress: 'none',
      optimizer: { type: 'adamw', lr, weightDecay: opts.weightDecay ?? 0.01 },
      schedule: { type: 'linear', warmupSteps: Math.min(warmupSteps, steps - 1), totalSteps: steps },
      ...(opts.maxGradNorm !== undefined ? { maxGradNorm: opts.maxGradNorm } : {}),
      noDecay: (n) => noDecay.has(n.replace(/::lr_scaled$/, '')),
      session: opts.threads ? { intraOpThreads: opts.threads } : {},
      ...(opts.checkpoint
        ? { checkpointDir: opts.checkpoint.dir, checkpointEvery: opts.checkpoint.every, resume: true }
        : {}),
      validation: { data: valData, batchSize: EVAL_BATCH, metrics: metricsFn(labels) },
      bestMetric: { metric: 'selection', mode: 'max' },
      ...(opts.patience
        ? { earlyStopping: { metric: 'selection', mode: 'max' as const, patience: opts.patience } }
        : {}),
      onEpoch: (e) => {
        const now = performance.now();
        const rep: EpochReport = {
          epoch: e.epoch,
          trainLoss: e.trainLoss,
          valLoss: e.metrics.val_loss,
          accuracy: e.metrics.accuracy,
          macroF1: e.metrics.macro_f1,
          seconds: (now - tEpoch) / 1000,
        };
        selection.push(e.metrics.selection);
        tEpoch = now;
        epochSeconds.push(rep.seconds);
        curve.push(rep);
        rss.sample();
        opts.onEpoch?.(rep);
      },
    });
    let result: TrainResult;
    try {
      result = await trainer.fit();
    } finally {
      await trainer.release();
    }
    if (def.headOnly) {
      for (const p of headLayout(model).params) model = withParamValues(model, p, result.bestWeights.get(p)!);
    } else if (scales) {
      model = { ...model, graph: foldLrScale(result.graph, model.graph, scales) };
    } else {
      model = { ...model, graph: result.graph };
    }
    let bestIdx = selection.reduce((bi, v, i) => (v > selection[bi] ? i : bi), 0);
    const C = labels.length;
    // The returned weights run once more over validation: calibration is fitted on exactly the model returned (a run
    // resumed from a checkpoint may return an epoch validated before the restart, whose logits this process never saw).
    const validationLogits = async (m: Model): Promise<ValidationLogits> => {
      const hg = def.headOnly && cached ? headGraph(m) : undefined;
      const out = await runFeatures(
        hg ? hg.graph : m.graph,
        LOGITS,
        hg && cached ? { [hg.feature]: cached.val } : val.feeds,
        data.validation.length,
        EVAL_BATCH,
        opts.threads,
      );
      return { logits: out.data as Float32Array, labels: Array.from(yVal, Number) };
    };
    const best = await validationLogits(model);
    let final = best;
    const judge = (v: ValidationLogits): { score: ValidationScore; key: number } => {
      const s = scoreLogits(v.logits, C, v.labels);
      const logLoss = s.nll / v.labels.length;
      return { score: { accuracy: s.correct / v.labels.length, logLoss }, key: selectionKey(s.correct, logLoss) };
    };
    let headChoice: CustomizeReport['headChoice'];
    if (def.headOnly && warmStart && cached) {
      // The head must end at or above the warm head it started from, and so above the ridge baseline (the warm
      // head is never ranked below the temperature-scaled ridge head): the same model class on the same features
      // (an MLP head starts as the warm linear head, within tanh's linear range).
      const start = await validationLogits(warmStart.model);
      const st = judge(start);
      const tr = judge(best);
      const trainedWins = tr.key > st.key;
      headChoice = {
        kept: trainedWins ? 'trained' : warmStart.l2 === 0 ? 'ridge' : 'refined',
        trained: tr.score,
        start: st.score,
      };
      if (!trainedWins) {
        model = warmStart.model;
        final = start;
        bestIdx = -1;
      }
    }
    const temperature = fitTemperature(final.logits, final.labels, C);
    const before = judge(final).score;
    const calibration: CalibrationReport = {
      method: 'temperature',
      temperature,
      eceBefore: logitCalibration(final.logits, C, final.labels).ece,
      eceAfter: logitCalibration(final.logits, C, final.labels, temperature).ece,
      logLossBefore: before.logLoss,
      logLossAfter: scoreLogits(final.logits, C, final.labels, temperature).nll / final.labels.length,
    };
    model = scaleHead(model, 1 / temperature);
    const finalMetrics = classificationMetrics(
      final.labels,
      scoreLogits(final.logits, C, final.labels).predictions,
      labels,
    );
    const hyper: Record<string, unknown> = {
      epochs,
      batchSize,
      lr,
      weightDecay: opts.weightDecay ?? 0.01,
      warmup: opts.warmup ?? 0.06,
      maxLength,
      seq: train.seq,
      headInit: headInit.kind,
      ...(headKind !== 'linear' ? { headType: headKind } : {}),
      ...(sampleWeights ? { sampleWeighted: true } : {}),
      ...prepared.hyperparameters,
    };
    const lineage: Lineage = {
      ...makeLineage(
        base,
        def.name,
        hyper,
        dataFingerprint({ train: data.train, validation: data.validation }),
        seed,
        labels,
      ),
      calibration: { method: 'temperature', temperature, fitted_on: 'validation' },
    };
    const report: CustomizeReport = {
      strategy: def.name,
      trainableParams: counts.trainable,
      totalParams: counts.total,
      peakRssBytes: rss.stop(),
      epochSeconds,
      ...(bodyPhase ? { bodyPhase } : {}),
      ...(featureSeconds !== undefined ? { featureSeconds } : {}),
      headInit,
      ...(headChoice ? { headChoice } : {}),
      calibration,
      totalSeconds: (performance.now() - t0) / 1000,
      curve,
      accuracy: finalMetrics.accuracy,
      macroF1: finalMetrics.macroF1,
      bestEpoch: bestIdx,
    };
    const artifacts = prepared.package?.(model, { base, labels, lineage }) ?? {};
    return { model, labels, report, lineage, ...artifacts };
  } finally {
    rss.stop();
  }
}

export type { Strategy };
