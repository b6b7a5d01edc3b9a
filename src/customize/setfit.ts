/**
 * SetFit's contrastive body phase (Tunstall et al., 2022, "Efficient Few-Shot Learning Without Prompts"): the
 * sentence encoder is fine-tuned on pairs of training texts, the cosine of their embeddings pulled toward 1 for two
 * texts of the same label and toward 0 for different labels (sentence-transformers' CosineSimilarityLoss: the mean
 * squared difference). A few examples per class give many pairs (n examples give ~n² of them), which is why it
 * helps exactly where a head on frozen features has too little to go on. The classifier head is then fitted on
 * the tuned encoder's features (the `setfit` strategy hands that to customize's head phase).
 *
 * One training step runs the body once over 2B texts [a_1..a_B, b_1..b_B]; the loss graph reshapes the pooled
 * features to [2, B, D], slices u and v, and takes mean((cos(u, v) - target)²): standard ops, differentiated by
 * src/autodiff like any other loss, trained by src/train's Trainer.
 */
import { ConfigError, DataError } from '../errors.ts';
import { bodyGraph, featureWidth } from '../models/head.ts';
import { withParamValues, type Model } from '../models/model.ts';
import { textFeatures } from '../models/text.ts';
import type { GraphBuilder } from '../onnx/builder.ts';
import { ort } from '../runtime/session.ts';
import { Trainer, type TrainData } from '../train/trainer.ts';
import type { Batch } from '../train/engine.ts';
import { seedFor } from '../util/hash.ts';
import { createRng } from '../util/rng.ts';
import { isHead, setTrainable } from './trainable.ts';
import type { BodyPhaseReport } from './types.ts';

/** Training pairs as indices into the training rows, with their cosine targets (1: same label, 0: different). */
export interface PairSet {
  a: Int32Array;
  b: Int32Array;
  target: Float32Array;
  positives: number;
  negatives: number;
}

/**
 * Balanced, seeded pairs over examples labelled `labels` (any ids). Each of `rounds` rounds visits every example
 * in a fresh random order and gives it one negative pair (a random example of another label) and one positive
 * pair (a random *other* example of its label), as SetFit's `num_iterations` does; an example alone in its class
 * has no positive partner, so for each such example an extra positive pair is drawn for a random example that
 * has one. So positives = negatives = rounds × n exactly, and every example appears in both kinds of pair when
 * its class allows. Draws come from the one RNG (util/rng.ts) seeded by `seed`: the same arguments give the same
 * pairs. A DataError when fewer than two labels occur or no label has two examples.
 */
export function samplePairs(labels: ArrayLike<number | bigint>, rounds: number, seed: number): PairSet {
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new ConfigError(`setfit.pairsPerExample must be a positive integer, got ${rounds}`, {
      field: 'setfit.pairsPerExample',
      value: String(rounds),
    });
  const y = Array.from(labels, Number);
  const n = y.length;
  const members = new Map<number, number[]>();
  y.forEach((l, i) => {
    const m = members.get(l);
    if (m) m.push(i);
    else members.set(l, [i]);
  });
  if (members.size < 2)
    throw new DataError(
      `setfit needs at least two labels to form negative pairs; the training split has ${members.size}`,
      {
        field: 'label',
      },
    );
  const paired = y.map((_, i) => i).filter((i) => members.get(y[i])!.length >= 2);
  if (paired.length === 0)
    throw new DataError('setfit needs two examples of at least one label to form positive pairs; every label has one', {
      field: 'label',
    });
  // Position of each example within its label's member list, to draw "another member" without rejection.
  const slot = new Int32Array(n);
  for (const m of members.values()) m.forEach((i, k) => (slot[i] = k));
  const rng = createRng(seedFor(seed, 'setfit.pairs'));
  const total = 2 * rounds * n;
  const a = new Int32Array(total);
  const b = new Int32Array(total);
  const target = new Float32Array(total);
  let p = 0;
  const positive = (i: number): void => {
    const m = members.get(y[i])!;
    const r = rng.int(m.length - 1);
    a[p] = i;
    b[p] = m[r >= slot[i] ? r + 1 : r];
    target[p++] = 1;
  };
  for (let round = 0; round < rounds; round++) {
    const order = rng.shuffle(y.map((_, i) => i));
    for (const i of order) {
      if (members.get(y[i])!.length >= 2) positive(i);
      else positive(paired[rng.int(paired.length)]);
      // Rejection: at least two labels exist, and a label holding a fraction f of the rows takes 1/(1-f) draws on average.
      let k = rng.int(n);
      while (y[k] === y[i]) k = rng.int(n);
      a[p] = i;
      b[p] = k;
      target[p++] = 0;
    }
  }
  return { a, b, target, positives: rounds * n, negatives: rounds * n };
}

/** Name of the cosine targets' input in the pair-loss graph. */
export const PAIR_TARGET = 'pair_target';

/**
 * The pair loss on a body graph whose output `feature` [2B, width] holds the embeddings of [a_1..a_B, b_1..b_B]:
 * mean over the B pairs of (cos(a_i, b_i) − target_i)². Norms get ε = 1e-12 under the square root, so an all-zero
 * embedding gives cos 0 rather than NaN.
 */
export function pairCosineLoss(feature: string, width: number): (b: GraphBuilder) => string {
  return (b) => {
    const target = b.input(PAIR_TARGET, 'float32', ['pairs']);
    const x = b.reshape(feature, [2, -1, width]);
    const u = b.slice(x, [0], [1], [0]);
    const v = b.slice(x, [1], [2], [0]);
    const dot = b.reduceSum(b.mul(u, v), [2], false);
    const uu = b.reduceSum(b.mul(u, u), [2], false);
    const vv = b.reduceSum(b.mul(v, v), [2], false);
    const cos = b.div(dot, b.sqrt(b.add(b.mul(uu, vv), b.scalar(1e-12))));
    const diff = b.sub(b.reshape(cos, [-1]), target);
    return b.reduceMean(b.mul(diff, diff), [0], false);
  };
}

/** Padded batches are cut to a multiple of this many tokens: few distinct shapes, so few compiled sessions. */
const LENGTH_STEP = 8;

/**
 * The pairs as training batches of `batchSize` pairs, one batch per row of the returned data (train it with batch
 * size 1: the Trainer then shuffles whole batches). Batch j holds the texts [a_1..a_B, b_1..b_B] of its pairs and
 * their targets. Pairs are grouped by length (the longer text of the pair, rounded up to LENGTH_STEP tokens; a
 * stable sort, so the sampler's random order stays within a length) and each batch is cut to its longest text: on
 * CLINC150 (median 9 tokens, longest 32) a batch of 32 random texts is padded to ~21 tokens, a grouped one to ~12,
 * and attention costs the square of that. The last incomplete batch is dropped.
 */
export function pairBatches(
  feeds: Record<string, ort.Tensor>,
  rows: number,
  pairs: PairSet,
  batchSize: number,
): TrainData {
  const names = Object.keys(feeds);
  if (names.length === 0) throw new ConfigError('pairBatches needs the encoded texts', { field: 'feeds' });
  const seq = feeds[names[0]].dims[1];
  const mask = feeds.attention_mask?.data;
  const length = new Int32Array(rows).fill(seq);
  if (mask)
    for (let i = 0; i < rows; i++) {
      let l = seq;
      while (l > 1 && !Number(mask[i * seq + l - 1])) l--;
      length[i] = l;
    }
  const bucket = (p: number): number =>
    Math.min(seq, Math.ceil(Math.max(length[pairs.a[p]], length[pairs.b[p]]) / LENGTH_STEP) * LENGTH_STEP);
  const order = Array.from(pairs.a, (_, p) => p).sort((p, q) => bucket(p) - bucket(q) || p - q);
  const B = Math.min(batchSize, order.length);
  const count = Math.floor(order.length / B);
  return {
    size: count,
    batch(indices: readonly number[]): Batch {
      const out: Batch = {};
      const ps = indices.flatMap((j) => order.slice(j * B, (j + 1) * B));
      const L = Math.max(...ps.map(bucket));
      const texts = [...ps.map((p) => pairs.a[p]), ...ps.map((p) => pairs.b[p])];
      for (const [name, t] of Object.entries(feeds)) {
        const src = t.data as BigInt64Array;
        const Ctor = src.constructor as new (n: number) => BigInt64Array;
        const dst = new Ctor(texts.length * L);
        texts.forEach((r, i) => dst.set(src.subarray(r * seq, r * seq + L), i * L));
        out[name] = new ort.Tensor(t.type, dst, [texts.length, L]);
      }
      out[PAIR_TARGET] = new ort.Tensor(
        'float32',
        Float32Array.from(ps, (p) => pairs.target[p]),
        [ps.length],
      );
      return out;
    },
  };
}

/** Mean cosine of the pairs' embeddings, over same-label pairs and over different-label pairs. */
export interface PairCosines {
  same: number;
  different: number;
}

/** Mean cosines of `pairs` from row-major embeddings [n, width]. */
export function pairCosines(features: Float32Array, width: number, pairs: PairSet): PairCosines {
  const norm = (i: number): number => {
    let s = 0;
    for (let k = 0; k < width; k++) s += features[i * width + k] ** 2;
    return Math.sqrt(s);
  };
  const sum = [0, 0];
  const count = [0, 0];
  for (let p = 0; p < pairs.a.length; p++) {
    const i = pairs.a[p];
    const j = pairs.b[p];
    let dot = 0;
    for (let k = 0; k < width; k++) dot += features[i * width + k] * features[j * width + k];
    const t = pairs.target[p] > 0.5 ? 0 : 1;
    sum[t] += dot / Math.max(1e-12, norm(i) * norm(j));
    count[t]++;
  }
  return { same: sum[0] / Math.max(1, count[0]), different: sum[1] / Math.max(1, count[1]) };
}

export interface ContrastiveOptions {
  /** Sampling rounds: pairs per example of each kind (positives = negatives = rounds × n). */
  pairsPerExample: number;
  epochs: number;
  lr: number;
  /** Pairs per optimizer step (the body runs over twice as many texts). */
  batchSize: number;
  seed: number;
  weightDecay?: number;
  /** Fraction of the steps in linear warmup (default 0.1, sentence-transformers' fit). */
  warmup?: number;
  threads?: number;
  /** Texts of the training rows (for the before/after cosines in the report; skipped when absent). */
  texts?: readonly string[];
  maxLength?: number;
}

/**
 * Tunes the body of `model` (its trainable non-head parameters: LoRA adapters or every body weight) with the pair
 * loss on pairs of its training rows (`feeds`: encoded texts, `labels`: their label ids). Returns the model with
 * the tuned values and only the head trainable (what follows trains the head on the tuned features), and a report:
 * seconds, steps, training loss per epoch, pair counts and, with `texts`, the mean cosines of the training pairs
 * before and after.
 */
export async function contrastiveTune(
  model: Model,
  train: { feeds: Record<string, ort.Tensor>; labels: ArrayLike<number | bigint> },
  opts: ContrastiveOptions,
): Promise<{ model: Model; report: BodyPhaseReport }> {
  const t0 = performance.now();
  const rows = train.labels.length;
  const pairs = samplePairs(train.labels, opts.pairsPerExample, opts.seed);
  const body = bodyGraph(model);
  const width = featureWidth(model, body.feature);
  const params = [...model.params.values()].filter((p) => p.trainable && !isHead(p));
  if (params.length === 0)
    throw new ConfigError('setfit: the body has no trainable parameters to tune', { field: 'setfit.body' });
  const cosines = async (m: Model): Promise<PairCosines | undefined> => {
    if (!opts.texts) return undefined;
    const f = await textFeatures(m, opts.texts, {
      maxLength: opts.maxLength,
      batchSize: 256,
      ...(opts.threads ? { intraOpThreads: opts.threads } : {}),
    });
    return pairCosines(f.features, f.width, pairs);
  };
  const before = await cosines(model);
  const data = pairBatches(train.feeds, rows, pairs, opts.batchSize);
  const steps = data.size * opts.epochs;
  const trainLoss: number[] = [];
  const noDecay = new Set(params.filter((p) => p.role === 'bias' || p.role === 'norm').map((p) => p.initializer));
  const trainer = new Trainer(
    body.graph,
    pairCosineLoss(body.feature, width),
    params.map((p) => p.initializer),
    data,
    {
      seed: seedFor(opts.seed, 'setfit.body'),
      epochs: opts.epochs,
      batchSize: 1,
      dropLast: true,
      progress: 'none',
      optimizer: { type: 'adamw', lr: opts.lr, weightDecay: opts.weightDecay ?? 0.01 },
      schedule: {
        type: 'linear',
        warmupSteps: Math.min(Math.round((opts.warmup ?? 0.1) * steps), steps - 1),
        totalSteps: steps,
      },
      noDecay: (name) => noDecay.has(name),
      session: opts.threads ? { intraOpThreads: opts.threads } : {},
      onEpoch: (e) => void trainLoss.push(e.trainLoss),
    },
  );
  let weights: Map<string, Float32Array>;
  try {
    weights = (await trainer.fit()).finalWeights;
  } finally {
    await trainer.release();
  }
  let tuned = model;
  for (const p of params) tuned = withParamValues(tuned, p.path, weights.get(p.initializer)!);
  tuned = setTrainable(tuned, isHead);
  const after = await cosines(tuned);
  return {
    model: tuned,
    report: {
      seconds: (performance.now() - t0) / 1000,
      steps,
      trainLoss,
      metrics: {
        pairs: pairs.a.length,
        positives: pairs.positives,
        negatives: pairs.negatives,
        ...(before && after
          ? {
              sameCosineBefore: before.same,
              differentCosineBefore: before.different,
              sameCosineAfter: after.same,
              differentCosineAfter: after.different,
            }
          : {}),
      },
    },
  };
}
