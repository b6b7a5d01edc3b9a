/**
 * Warm-started classifier heads (LP-FT: linear probe, then fine-tune; Kumar et al., 2022). A fresh random head
 * sends random gradients into the body for the first steps and, on small data, fine-tuning can end below a
 * linear probe on frozen features. So the head is first fitted on the frozen body's features: the audit's ridge
 * solution (closed form) as the starting point, refined by full-batch gradient descent on the L2-regularised
 * multinomial log-loss. Softmax log-loss (not ridge scores) because fine-tuning continues from
 * this head with cross-entropy: the probabilities must already mean something, or the first epochs only rescale.
 * Everything is float64 and deterministic; the products over the training set run as float64 Gemms on ORT
 * (src/runtime/dense.ts): in JS the refinement took ~10 minutes on full CLINC150 (15,000 x 512, 150 classes).
 */
import { ConfigError } from '../errors.ts';
import { fitTemperature } from '../eval/calibration.ts';
import { fitLinearHead } from './linear-probe.ts';
import { normalizedWeights, SoftmaxProblem } from '../runtime/dense.ts';

export interface WarmHeadOptions {
  /**
   * L2 strengths tried on the mean log-loss, relative to the mean per-feature variance of the training features
   * (as ridge's λ is). Default [1e-2, 3e-2, 1e-1]. On separable data a weak L2 gives a head with training loss ≈ 0,
   * and then little gradient reaches the body.
   */
  l2?: number[];
  /** Gradient steps per strength (default 60). */
  iterations?: number;
  /** ORT intra-op threads for the fit's products (default: ORT's choice). */
  threads?: number;
  /** Also consider the temperature-scaled ridge head itself (reported as `l2: 0`; default true). */
  scaledRidge?: boolean;
}

export interface WarmHead {
  /** Graph layout [width, classes], row-major. */
  weight: Float32Array;
  bias: Float32Array;
  /** Relative L2 strength of the chosen fit (0: the temperature-scaled ridge head). */
  l2: number;
  trainLoss: number;
  valLoss: number;
  valAccuracy: number;
  iterations: number;
  /** The temperature-scaled ridge head (the audit's baseline) on the selection split, whether or not it was chosen. */
  ridge: { valAccuracy: number; valLoss: number };
}

const sq = (a: Float64Array): number => a.reduce((t, v) => t + v * v, 0);

/** Validation ranking of candidate heads: more correct always wins, then the lower log-loss (as `selectionKey`). */
const rank = (correct: number, loss: number): number => correct + 1 / (1 + loss);

/**
 * Fits a softmax-regression head on frozen features (`train`/`validation`: [n, width] row-major, labels in
 * [0, classes)). Candidates, ranked on validation by accuracy and then log-loss (the best-epoch rule):
 *  - the audit's ridge head (λ picked on validation) with its scores multiplied by a temperature fitted on the
 *    validation log-loss (`l2: 0`): same decisions as ridge, probabilities that mean something;
 *  - from there, Nesterov gradient descent (step 1/L, L bounds the log-loss Hessian: mean(‖x‖² + 1)/2 + l2) on the
 *    log-loss + (l2·v/2)‖W‖² for each L2 strength, strongest first, each continuing where the previous ended.
 * v is the mean per-feature variance of the training features, so `l2` is relative to the features' scale as
 * ridge's λ is: an absolute L2 of 0.01 on unit-norm 512-d sentence embeddings (per-feature variance ~1/512)
 * shrank the head until it lost 6 points of accuracy against the ridge head it started from (USE-lite on
 * SpamAssassin: 97.3% → 91%), and fine-tuning then started below the frozen-feature baseline.
 */
export async function fitWarmHead(
  /** `weights`: one per training example (e.g. reweighing's); the ridge start and the log-loss are weighted by them. */
  train: { features: Float32Array; labels: ArrayLike<number>; weights?: ArrayLike<number> },
  validation: { features: Float32Array; labels: ArrayLike<number> },
  width: number,
  classes: number,
  opts: WarmHeadOptions = {},
): Promise<WarmHead> {
  const d = width;
  const k = classes;
  const nTr = train.labels.length;
  const nVa = validation.labels.length;
  if (nTr === 0 || train.features.length !== nTr * d || validation.features.length !== nVa * d) {
    throw new ConfigError(
      `fitWarmHead: feature arrays do not hold [n, ${d}] rows for ${nTr} train / ${nVa} validation labels`,
      { field: 'features' },
    );
  }
  const ridge = await fitLinearHead(train.features, train.labels, d, k, {
    ...(nVa ? { validation: { features: validation.features, labels: validation.labels } } : {}),
    ...(train.weights ? { weights: train.weights } : {}),
  });
  const tr = await SoftmaxProblem.create(train.features, train.labels, d, k, {
    ...(opts.threads ? { threads: opts.threads } : {}),
    ...(train.weights ? { weights: train.weights } : {}),
  });
  const va = nVa
    ? await SoftmaxProblem.create(
        validation.features,
        validation.labels,
        d,
        k,
        opts.threads ? { threads: opts.threads } : {},
      )
    : tr;
  try {
    const sel = { problem: va, labels: nVa ? validation.labels : train.labels };
    // Graph layout [width, classes] throughout: the ridge head's layout and the Gemm's right-hand side.
    let w = Float64Array.from(ridge.weight);
    let b = Float64Array.from(ridge.bias);
    // Temperature scaling of the ridge scores (T ≪ 1 here: ridge scores lie near ±1 and must grow to mean probabilities).
    const alpha = 1 / fitTemperature(await sel.problem.scores(w, b), sel.labels, k);
    w = w.map((v) => v * alpha);
    b = b.map((v) => v * alpha);
    const r = await sel.problem.evaluate(w, b);
    const ridgeScore = { valAccuracy: r.correct / sel.problem.n, valLoss: r.loss };

    const x = train.features;
    // The Hessian bound of the (weighted) mean log-loss: the weighted mean of ‖x‖² + 1 (weights of mean 1).
    const sw = normalizedWeights(train.weights, nTr, 'fitWarmHead');
    let meanSq = 0;
    for (let i = 0; i < nTr; i++) for (let j = 0; j < d; j++) meanSq += sw[i] * x[i * d + j] * x[i * d + j];
    meanSq = meanSq / nTr + 1;
    let variance = 0;
    for (let j = 0; j < d; j++) {
      let m = 0;
      let m2 = 0;
      for (let i = 0; i < nTr; i++) {
        const v = x[i * d + j];
        m += v;
        m2 += v * v;
      }
      m /= nTr;
      variance += m2 / nTr - m * m;
    }
    const featureScale = variance / d || 1;
    const iterations = opts.iterations ?? 60;
    let best: (WarmHead & { key: number }) | undefined;
    const consider = async (l2: number, penalty: number): Promise<void> => {
      const t = await tr.evaluate(w, b);
      const v = nVa ? await va.evaluate(w, b) : t;
      const key = rank(v.correct, v.loss);
      if (!best || key > best.key) {
        best = {
          key,
          weight: Float32Array.from(w),
          bias: Float32Array.from(b),
          l2,
          trainLoss: t.loss + (penalty / 2) * sq(w),
          valLoss: v.loss,
          valAccuracy: v.correct / sel.problem.n,
          iterations,
          ridge: ridgeScore,
        };
      }
    };
    if (opts.scaledRidge ?? true) await consider(0, 0);
    // Strongest first, each continuing from the previous optimum (a regularisation path).
    for (const l2 of [...(opts.l2 ?? [1e-2, 3e-2, 1e-1])].sort((p, q) => q - p)) {
      const penalty = l2 * featureScale;
      const step = 1 / (meanSq / 2 + penalty);
      let yw = Float64Array.from(w);
      let yb = Float64Array.from(b);
      let pw = Float64Array.from(w);
      let pb = Float64Array.from(b);
      for (let it = 0; it < iterations; it++) {
        const g = await tr.evaluate(yw, yb, true);
        const gw = g.gradWeight!;
        const gb = g.gradBias!;
        const nw = yw.map((v, i) => v - step * (gw[i] + penalty * v));
        const nb = yb.map((v, i) => v - step * gb[i]);
        const mom = it / (it + 3);
        yw = nw.map((v, i) => v + mom * (v - pw[i]));
        yb = nb.map((v, i) => v + mom * (v - pb[i]));
        pw = nw;
        pb = nb;
      }
      w = pw;
      b = pb;
      await consider(l2, penalty);
    }
    const { key: _key, ...head } = best!;
    void _key;
    return head;
  } finally {
    await tr.release();
    if (va !== tr) await va.release();
  }
}
