/**
 * `customize(base, data, { strategy })`: the same base model customized by one of several strategies, trained with
 * src/train's Trainer, measured (trainable/total parameters, peak RSS, time per epoch, validation curve) and
 * returned with its lineage. Strategies only decide the graph and which initializers train:
 *
 *   head     frozen encoder run once over the data in ORT; a head-only graph trains on the cached features
 *   lora     LoRA adapters on the chosen linear modules + the head; base weights stay frozen initializers
 *   partial  the top N encoder blocks (or a name pattern) + the head
 *   full     every weight, optionally with layer-wise learning-rate decay
 *   scratch  the same architecture re-initialised, every weight trained
 *   bitfit   bias terms only (+ the head)
 *   ia3      IA3 scaling vectors (ones at first) on key/value outputs and the FFN intermediate activations + the head
 */
import { ConfigError, DataError } from '../errors.ts';
import { classificationMetrics } from '../eval/metrics.ts';
import {
  countParams,
  matchParams,
  paramValues,
  withParamValues,
  type Model,
  type NamePattern,
  type Parameter,
} from '../models/model.ts';
import { initValues } from '../models/zoo/params.ts';
import type { GraphBuilder } from '../onnx/builder.ts';
import { cloneGraph, modelFromGraph, type Graph } from '../onnx/ir.ts';
import { numel, tensorFromArray, tensorToArray } from '../onnx/tensor.ts';
import { ort, Session } from '../runtime/session.ts';
import { tensorData, Trainer, type TrainData, type TrainResult } from '../train/trainer.ts';
import { attachHead, bodyGraph, HEAD_BIAS, HEAD_WEIGHT, headGraph, LOGITS } from './head.ts';
import { dataFingerprint, makeLineage, type Lineage } from './lineage.ts';
import { injectLora, loraWeightsOf, type LoraOptions } from './lora.ts';
import { peftConfig, type LoraAdapter } from './peft.ts';
import { describeSpec, peftTargetModules, type TargetSpec } from './sites.ts';
import { fitWarmHead, type WarmHeadOptions } from './warmstart.ts';
import { ia3Adapter, ia3Name, ia3VectorsOf, injectIa3, type Ia3Adapter, type Ia3Options, type Ia3Spec } from './ia3.ts';

export type Strategy = 'head' | 'lora' | 'partial' | 'full' | 'scratch' | 'bitfit' | 'ia3';
/** The strategies the CLI offers (test/cli/help.test.ts checks that src/cli lists exactly these). */
export const STRATEGIES: readonly Strategy[] = ['head', 'lora', 'partial', 'full', 'scratch', 'bitfit', 'ia3'];
/** Every strategy `customize` accepts (kept for callers of the earlier name). */
export const ALL_STRATEGIES: readonly Strategy[] = STRATEGIES;

export interface LabeledText {
  text: string;
  label: string;
}

export interface CustomizeData {
  train: readonly LabeledText[];
  validation: readonly LabeledText[];
}

export interface CustomizeOptions {
  strategy: Strategy;
  /** Label order of the head (default: sorted distinct training labels). */
  labels?: readonly string[];
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate (defaults per strategy, see DEFAULT_LR). */
  lr?: number;
  weightDecay?: number;
  /** Linear warmup then linear decay to 0 over the run (fraction of steps in warmup; default 0.06). */
  warmup?: number;
  maxGradNorm?: number;
  seed?: number;
  /** Longest token sequence (default 64); batches are padded to the longest training text up to this. */
  maxLength?: number;
  /** Stop after this many epochs without a better validation accuracy (default: never). */
  patience?: number;
  lora?: Omit<LoraOptions, 'targets' | 'seed'> & { targets?: TargetSpec };
  /** ia3: which modules get vectors and which of them are scaled on their input (defaults: PEFT's for BERT). */
  ia3?: Ia3Options;
  /** partial: train the top `layers` encoder blocks (default 1) or the parameters matching `patterns`; the head always trains. */
  partial?: { layers?: number; patterns?: NamePattern[] };
  /** full: per-layer learning-rate multiplier decay^(depth from the top) (default 1: none). */
  layerDecay?: number;
  /** Initial head values in graph layout (weight [features, labels] row-major, bias [labels]); overrides `warmStartHead`. */
  head?: { weight: Float32Array; bias: Float32Array };
  /**
   * Fit the head on the frozen body's features before training (LP-FT): ridge init, then L2 softmax regression
   * (src/customize/warmstart.ts). Default on for lora, partial, full and bitfit; off for head and scratch.
   */
  warmStartHead?: boolean | WarmHeadOptions;
  /** ORT intra-op threads for training sessions. */
  threads?: number;
  /**
   * Checkpoint the training loop into `dir` every `every` optimizer steps (and at the end), and resume from the
   * latest checkpoint there, if any: a job restarted after its process was killed continues where it stopped.
   */
  checkpoint?: { dir: string; every?: number };
  onEpoch?: (e: EpochReport) => void;
}

/** Strategies whose head is warm-started by default. */
export const WARM_START_DEFAULT: readonly Strategy[] = ['lora', 'partial', 'full', 'bitfit', 'ia3'];

export const DEFAULT_LR: Record<Strategy, number> = {
  head: 1e-2,
  lora: 2e-3,
  partial: 5e-4,
  full: 1e-4,
  scratch: 1e-3,
  bitfit: 5e-3,
  ia3: 5e-3,
};

export interface EpochReport {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  accuracy: number;
  macroF1: number;
  seconds: number;
}

export interface CustomizeReport {
  strategy: Strategy;
  trainableParams: number;
  totalParams: number;
  /** Peak resident set size of the process during the run, bytes (sampled every 25 ms). */
  peakRssBytes: number;
  /** Wall-clock seconds of each epoch (training + validation). */
  epochSeconds: number[];
  /** head (and warm starts): seconds spent computing the frozen encoder's features once. */
  featureSeconds?: number;
  /** How the head started: random, given (`head` option) or fitted on frozen features (with that fit's figures). */
  headInit:
    | { kind: 'random' | 'given' }
    | { kind: 'warm'; l2: number; trainLoss: number; valLoss: number; valAccuracy: number; seconds: number };
  totalSeconds: number;
  curve: EpochReport[];
  /** Validation metrics of the returned (best) weights. */
  accuracy: number;
  macroF1: number;
  bestEpoch: number;
}

export interface CustomizeResult {
  /** The customized model (LoRA: with adapter nodes; merge with `mergeAdapter` for a plain model). */
  model: Model;
  labels: string[];
  report: CustomizeReport;
  lineage: Lineage;
  /** lora: the adapter in PEFT's form. */
  adapter?: LoraAdapter;
  /** ia3: the sites, the trained vectors and the adapter in PEFT's form (`mergeIa3(model, ia3.spec)` folds them into the weights; `saveIa3Adapter` writes the adapter). */
  ia3?: { spec: Ia3Spec; vectors: Map<string, Float32Array>; adapter: Ia3Adapter };
}

/** Samples the process RSS until stopped; `peak` is the highest value seen. */
export class RssSampler {
  peak = process.memoryUsage.rss();
  private timer: NodeJS.Timeout | undefined;

  start(every = 25): this {
    this.timer = setInterval(() => this.sample(), every);
    this.timer.unref();
    return this;
  }

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

/** Token tensors for the model's graph inputs (int64 ids/mask/types), padded to `seq`. */
export function encodeTexts(
  model: Model,
  texts: readonly string[],
  maxLength: number,
  padTo?: number,
): { feeds: Record<string, ort.Tensor>; seq: number } {
  const tok = model.tokenizer;
  if (!tok)
    throw new ConfigError(`model '${model.architecture}' has no tokenizer; text data needs one`, {
      field: 'tokenizer',
    });
  const enc =
    padTo !== undefined
      ? tok.encodeBatch(texts, { padding: 'max_length', maxLength: padTo, truncation: true })
      : tok.encodeBatch(texts, { padding: 'longest', maxLength, truncation: true });
  const dims = [enc.batch, enc.seq];
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of model.graph.inputs) {
    if (model.graph.initializers.has(v.name)) continue;
    const src =
      v.name === 'input_ids'
        ? enc.inputIds
        : v.name === 'attention_mask'
          ? enc.attentionMask
          : v.name === 'token_type_ids'
            ? enc.tokenTypeIds
            : undefined;
    if (!src)
      throw new ConfigError(
        `model input '${v.name}' is not a tokenizer output (input_ids, attention_mask, token_type_ids)`,
        { field: v.name },
      );
    feeds[v.name] =
      v.dtype === 'float32'
        ? new ort.Tensor('float32', Float32Array.from(src, Number), dims)
        : v.dtype === 'int32'
          ? new ort.Tensor('int32', Int32Array.from(src, Number), dims)
          : new ort.Tensor('int64', src, dims);
  }
  return { feeds, seq: enc.seq };
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

/**
 * Key that picks the best epoch: validation accuracy, ties broken by the lower validation log-loss. Accuracy alone
 * saturates on small validation sets (every epoch at 100%), and the first of equal epochs then won: weights from
 * epoch 0, whose head had barely left its initialisation, with confidences near 1/classes (ECE ≈ 0.75 on a
 * 10-class slice although the final training loss was 0.4). Correct count + 1/(1 + loss) orders exactly that way.
 */
export function selectionKey(correct: number, logLoss: number): number {
  return correct + 1 / (1 + logLoss);
}

function metricsFn(labels: readonly string[]) {
  return (outs: Record<string, ort.Tensor>[], batches: Record<string, ort.Tensor>[]): Record<string, number> => {
    const yTrue: number[] = [];
    const yPred: number[] = [];
    let nll = 0;
    outs.forEach((o, bi) => {
      const l = o[LOGITS].data as Float32Array;
      const y = batches[bi].labels.data as BigInt64Array;
      const C = o[LOGITS].dims[1];
      for (let i = 0; i < y.length; i++) {
        let a = 0;
        for (let c = 1; c < C; c++) if (l[i * C + c] > l[i * C + a]) a = c;
        let z = 0;
        for (let c = 0; c < C; c++) z += Math.exp(l[i * C + c] - l[i * C + a]);
        nll += Math.log(z) - (l[i * C + Number(y[i])] - l[i * C + a]);
        yTrue.push(Number(y[i]));
        yPred.push(a);
      }
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

/** Encoder block index of a parameter path (`...layer.3...`), or undefined. */
export function layerIndex(path: string): number | undefined {
  const m = /(?:^|\.)layers?\.(\d+)\./.exec(path);
  return m ? Number(m[1]) : undefined;
}

function setTrainable(model: Model, pick: (p: Parameter) => boolean): Model {
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) params.set(k, { ...p, trainable: p.role !== 'buffer' && pick(p) });
  return { ...model, params };
}

const isHead = (p: Parameter): boolean => p.path === HEAD_WEIGHT || p.path === HEAD_BIAS;

/** partial: the top `n` blocks, everything above the encoder (pooler) and the head. */
export function topLayersTrainable(model: Model, n: number): Model {
  const idx = [...new Set([...model.params.keys()].map(layerIndex).filter((i): i is number => i !== undefined))].sort(
    (a, b) => a - b,
  );
  if (idx.length === 0)
    throw new ConfigError('the model has no numbered encoder blocks (`layer.N.`); use partial.patterns', {
      field: 'partial.layers',
    });
  if (!Number.isInteger(n) || n < 1 || n > idx.length)
    throw new ConfigError(`partial.layers must be an integer in [1, ${idx.length}], got ${n}`, {
      field: 'partial.layers',
      value: String(n),
    });
  const top = new Set(idx.slice(idx.length - n));
  return setTrainable(model, (p) => {
    const i = layerIndex(p.path);
    return isHead(p) || (i !== undefined && top.has(i)) || /(^|\.)pooler\./.test(p.path);
  });
}

/** scratch: every parameter re-initialised (weights/embeddings normal(0, 0.02), norm scales 1, biases 0), buffers kept. */
export function reinitialize(model: Model, seed: number): Model {
  const g = cloneGraph(model.graph);
  for (const p of model.params.values()) {
    if (p.role === 'buffer') continue;
    const n = numel(p.shape);
    const isScale = p.role === 'norm' && !p.path.endsWith('.bias');
    const v =
      p.role === 'bias' || (p.role === 'norm' && p.path.endsWith('.bias'))
        ? new Float32Array(n)
        : isScale
          ? new Float32Array(n).fill(1)
          : initValues({ kind: 'normal', std: 0.02 }, n, seed, p.path);
    g.initializers.set(p.initializer, tensorFromArray(p.initializer, 'float32', v, [...p.shape]));
  }
  return { ...model, graph: g };
}

/**
 * Layer-wise LR decay as a reparameterisation: W = c·θ with θ trained. Adam's step on θ is (almost) independent of
 * the gradient's scale, so W moves c times as far: an LR multiplier c per parameter. (Differences from a true
 * per-parameter LR: AdamW's decoupled decay is not scaled by c, and ε acts as ε/c.) Returns the graph with θ
 * initializers named `<init>::lr_scaled` and the scales used.
 */
export function lrScaleReparam(graph: Graph, scales: ReadonlyMap<string, number>): Graph {
  const g = cloneGraph(graph);
  const pre: Graph['nodes'] = [];
  for (const [name, c] of scales) {
    if (c === 1) continue;
    const t = g.initializers.get(name);
    if (!t) throw new ConfigError(`no initializer '${name}' to rescale`, { field: name });
    const v = tensorToArray(t) as Float32Array;
    const theta = `${name}::lr_scaled`;
    g.initializers.delete(name);
    g.initializers.set(
      theta,
      tensorFromArray(
        theta,
        'float32',
        Float32Array.from(v, (x) => x / c),
        [...t.dims],
      ),
    );
    g.initializers.set(`${name}::lr_scale`, tensorFromArray(`${name}::lr_scale`, 'float32', Float32Array.of(c), []));
    pre.push({
      name: `${name}/lr_scale`,
      opType: 'Mul',
      domain: '',
      inputs: [theta, `${name}::lr_scale`],
      outputs: [name],
      attrs: {},
    });
  }
  g.nodes = [...pre, ...g.nodes];
  return g;
}

/** Inverse of `lrScaleReparam` on trained values: W = c·θ. */
function foldLrScale(graph: Graph, original: Graph, scales: ReadonlyMap<string, number>): Graph {
  const g = cloneGraph(original);
  for (const [name, c] of scales) {
    if (c === 1) {
      g.initializers.set(name, graph.initializers.get(name)!);
      continue;
    }
    const theta = tensorToArray(graph.initializers.get(`${name}::lr_scaled`)!) as Float32Array;
    g.initializers.set(
      name,
      tensorFromArray(
        name,
        'float32',
        Float32Array.from(theta, (x) => x * c),
        [...original.initializers.get(name)!.dims],
      ),
    );
  }
  return g;
}

/** Multipliers decay^(depth): head/pooler 1, block i of L decay^(L-i), embeddings decay^(L+1). */
export function layerDecayScales(model: Model, decay: number): Map<string, number> {
  const idx = [...model.params.keys()].map(layerIndex).filter((i): i is number => i !== undefined);
  const L = idx.length ? Math.max(...idx) + 1 : 0;
  const out = new Map<string, number>();
  for (const p of model.params.values()) {
    if (!p.trainable) continue;
    const i = layerIndex(p.path);
    const depth = isHead(p) || /(^|\.)pooler\./.test(p.path) ? 0 : i !== undefined ? L - i : L + 1;
    out.set(p.initializer, decay ** depth);
  }
  return out;
}

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

function withColumns(feeds: Record<string, ort.Tensor>, labels: BigInt64Array): TrainData {
  return tensorData({ ...feeds, labels: new ort.Tensor('int64', labels, [labels.length]) });
}

/** Customizes `base` on `data` with one strategy; see the module comment. Nothing is written to disk. */
export async function customize(base: Model, data: CustomizeData, opts: CustomizeOptions): Promise<CustomizeResult> {
  const strategy = opts.strategy;
  if (!ALL_STRATEGIES.includes(strategy))
    throw new ConfigError(`unknown strategy '${String(strategy)}' (strategies: ${ALL_STRATEGIES.join(', ')})`, {
      field: 'strategy',
      value: String(strategy),
    });
  if (data.train.length === 0) throw new DataError('the training split is empty', { field: 'train' });
  if (data.validation.length === 0) throw new DataError('the validation split is empty', { field: 'validation' });
  const labels = opts.labels ? [...opts.labels] : [...new Set(data.train.map((r) => r.label))].sort();
  const yTrain = labelIds(data.train, labels, 'the training split');
  const yVal = labelIds(data.validation, labels, 'the validation split');
  const seed = opts.seed ?? 0;
  const epochs = opts.epochs ?? 3;
  const batchSize = opts.batchSize ?? 32;
  const lr = opts.lr ?? DEFAULT_LR[strategy];
  const maxLength = opts.maxLength ?? 64;
  const t0 = performance.now();
  const rss = new RssSampler().start();
  try {
    let model = attachHead(strategy === 'scratch' ? reinitialize(base, seed) : base, {
      labels,
      seed,
      ...(opts.head ? { weight: opts.head.weight, bias: opts.head.bias } : {}),
    });
    let spec: ReturnType<typeof injectLora>['spec'] | undefined;
    let ia3Spec: Ia3Spec | undefined;
    switch (strategy) {
      case 'head':
        model = setTrainable(model, isHead);
        break;
      case 'full':
      case 'scratch':
        model = setTrainable(model, () => true);
        break;
      case 'bitfit':
        model = setTrainable(
          model,
          (p) => isHead(p) || p.role === 'bias' || (p.role === 'norm' && p.path.endsWith('.bias')),
        );
        break;
      case 'partial': {
        const pp = opts.partial ?? {};
        if (pp.patterns?.length) {
          const hit = new Set(matchParams(model, pp.patterns));
          model = setTrainable(model, (p) => isHead(p) || hit.has(p.path));
        } else model = topLayersTrainable(model, pp.layers ?? 1);
        break;
      }
      case 'lora': {
        const lo = opts.lora ?? {};
        const r = injectLora(model, { ...lo, targets: lo.targets ?? { kind: 'attention' }, seed });
        model = r.model;
        spec = r.spec;
        break;
      }
      case 'ia3': {
        const r = injectIa3(model, opts.ia3 ?? {});
        model = r.model;
        ia3Spec = r.spec;
        break;
      }
    }
    const counts = countParams(model);
    const train = encodeTexts(
      model,
      data.train.map((r) => r.text),
      maxLength,
    );
    const val = encodeTexts(
      model,
      data.validation.map((r) => r.text),
      maxLength,
      train.seq,
    );
    const warm = opts.head ? false : (opts.warmStartHead ?? WARM_START_DEFAULT.includes(strategy));
    let featureSeconds: number | undefined;
    let cached: { train: ort.Tensor; val: ort.Tensor } | undefined;
    if (strategy === 'head' || warm) {
      // The body is the same before and after injection (LoRA and IA3 start equal to the base), so its features fit both.
      const tf = performance.now();
      const body = bodyGraph(model);
      cached = {
        train: await runFeatures(body.graph, body.feature, train.feeds, data.train.length, 256, opts.threads),
        val: await runFeatures(body.graph, body.feature, val.feeds, data.validation.length, 256, opts.threads),
      };
      featureSeconds = (performance.now() - tf) / 1000;
    }
    let headInit: CustomizeReport['headInit'] = { kind: opts.head ? 'given' : 'random' };
    if (warm && cached) {
      const tw = performance.now();
      const D = cached.train.dims[1];
      const h = await fitWarmHead(
        { features: cached.train.data as Float32Array, labels: Array.from(yTrain, Number) },
        { features: cached.val.data as Float32Array, labels: Array.from(yVal, Number) },
        D,
        labels.length,
        typeof warm === 'object' ? warm : {},
      );
      model = withParamValues(withParamValues(model, HEAD_WEIGHT, h.weight), HEAD_BIAS, h.bias);
      headInit = {
        kind: 'warm',
        l2: h.l2,
        trainLoss: h.trainLoss,
        valLoss: h.valLoss,
        valAccuracy: h.valAccuracy,
        seconds: (performance.now() - tw) / 1000,
      };
    }
    const steps = Math.max(1, Math.floor(data.train.length / batchSize) * epochs);
    const warmupSteps = Math.round((opts.warmup ?? 0.06) * steps);
    const curve: EpochReport[] = [];
    const epochSeconds: number[] = [];
    const selection: number[] = [];
    let tEpoch = performance.now();
    let graph = model.graph;
    let trainData: TrainData;
    let valData: TrainData;
    let scales: Map<string, number> | undefined;
    if (strategy === 'head' && cached) {
      const hg = headGraph(model);
      graph = hg.graph;
      trainData = withColumns({ [hg.feature]: cached.train }, yTrain);
      valData = withColumns({ [hg.feature]: cached.val }, yVal);
    } else {
      trainData = withColumns(train.feeds, yTrain);
      valData = withColumns(val.feeds, yVal);
    }
    let trainable = [...model.params.values()].filter((p) => p.trainable).map((p) => p.initializer);
    if (strategy === 'full' && opts.layerDecay !== undefined && opts.layerDecay !== 1) {
      if (!(opts.layerDecay > 0 && opts.layerDecay <= 1))
        throw new ConfigError(`layerDecay must lie in (0, 1], got ${opts.layerDecay}`, { field: 'layerDecay' });
      scales = layerDecayScales(model, opts.layerDecay);
      graph = lrScaleReparam(graph, scales);
      trainable = trainable.map((n) => ((scales!.get(n) ?? 1) === 1 ? n : `${n}::lr_scaled`));
    }
    // IA3 vectors scale activations around 1: decay toward 0 would shrink the base model's features.
    const noDecay = new Set(
      [...model.params.values()].filter((p) => p.role === 'bias' || p.role === 'norm').map((p) => p.initializer),
    );
    for (const s of ia3Spec?.sites ?? []) noDecay.add(ia3Name(s.module));
    const trainer = new Trainer(graph, ceLoss, trainable, trainData, {
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
      validation: { data: valData, batchSize: 256, metrics: metricsFn(labels) },
      bestMetric: { metric: 'selection', mode: 'max' },
      ...(opts.patience
        ? { earlyStopping: { metric: 'selection', mode: 'max' as const, patience: opts.patience } }
        : {}),
      ...(opts.checkpoint
        ? { checkpointDir: opts.checkpoint.dir, checkpointEvery: opts.checkpoint.every, resume: true }
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
    if (strategy === 'head') {
      model = withParamValues(model, HEAD_WEIGHT, result.bestWeights.get(HEAD_WEIGHT)!);
      model = withParamValues(model, HEAD_BIAS, result.bestWeights.get(HEAD_BIAS)!);
    } else if (scales) {
      model = { ...model, graph: foldLrScale(result.graph, model.graph, scales) };
    } else {
      model = { ...model, graph: result.graph };
    }
    const bestIdx = selection.reduce((bi, v, i) => (v > selection[bi] ? i : bi), 0);
    const hyper: Record<string, unknown> = {
      epochs,
      batchSize,
      lr,
      weightDecay: opts.weightDecay ?? 0.01,
      warmup: opts.warmup ?? 0.06,
      maxLength,
      seq: train.seq,
      headInit: headInit.kind,
    };
    if (spec)
      Object.assign(hyper, {
        r: spec.r,
        alpha: spec.alpha,
        dropout: spec.dropout,
        rslora: spec.rslora,
        targets: describeSpec(opts.lora?.targets ?? { kind: 'attention' }),
      });
    if (ia3Spec)
      hyper.ia3 = {
        modules: ia3Spec.sites.map((s) => s.module),
        feedforward: ia3Spec.sites.filter((s) => s.feedforward).map((s) => s.module),
      };
    if (strategy === 'partial')
      hyper.partial = opts.partial?.patterns?.length
        ? { patterns: opts.partial.patterns.map(String) }
        : { layers: opts.partial?.layers ?? 1 };
    if (opts.layerDecay !== undefined) hyper.layerDecay = opts.layerDecay;
    const lineage = makeLineage(
      base,
      strategy,
      hyper,
      dataFingerprint({ train: data.train, validation: data.validation }),
      seed,
      labels,
    );
    const report: CustomizeReport = {
      strategy,
      trainableParams: counts.trainable,
      totalParams: counts.total,
      peakRssBytes: rss.stop(),
      epochSeconds,
      ...(featureSeconds !== undefined ? { featureSeconds } : {}),
      headInit,
      totalSeconds: (performance.now() - t0) / 1000,
      curve,
      accuracy: curve[bestIdx]?.accuracy ?? NaN,
      macroF1: curve[bestIdx]?.macroF1 ?? NaN,
      bestEpoch: bestIdx,
    };
    let adapter: LoraAdapter | undefined;
    if (spec) {
      const D = model.params.get(HEAD_WEIGHT)!.shape[0];
      adapter = {
        config: peftConfig({
          r: spec.r,
          lora_alpha: spec.alpha,
          lora_dropout: spec.dropout,
          use_rslora: spec.rslora,
          target_modules: peftTargetModules(model, spec.modules),
          task_type: 'SEQ_CLS',
          modules_to_save: ['classifier'],
          base_model_name_or_path: base.source.hubId ?? base.source.path ?? null,
        }),
        weights: loraWeightsOf(model, spec),
        head: {
          weight: paramValues(model, HEAD_WEIGHT) as Float32Array,
          bias: paramValues(model, HEAD_BIAS) as Float32Array,
          features: D,
          labels,
        },
        lineage,
      };
    }
    let ia3: CustomizeResult['ia3'];
    if (ia3Spec) {
      const head = {
        weight: paramValues(model, HEAD_WEIGHT) as Float32Array,
        bias: paramValues(model, HEAD_BIAS) as Float32Array,
        features: model.params.get(HEAD_WEIGHT)!.shape[0],
        labels,
      };
      ia3 = {
        spec: ia3Spec,
        vectors: ia3VectorsOf(model, ia3Spec),
        adapter: ia3Adapter(model, ia3Spec, { head, lineage, base: base.source.hubId ?? base.source.path ?? null }),
      };
    }
    return { model, labels, report, lineage, ...(adapter ? { adapter } : {}), ...(ia3 ? { ia3 } : {}) };
  } finally {
    rss.stop();
  }
}
