/**
 * Warm-started classifier heads (LP-FT: linear probe, then fine-tune; Kumar et al., 2022). A fresh random head
 * sends random gradients into the body for the first steps and, on small data, fine-tuning can end below a
 * linear probe on frozen features. So the head is first fitted on the frozen body's features: the audit's ridge
 * solution (closed form) as the starting point, refined by full-batch gradient descent on the L2-regularised
 * multinomial log-loss. Softmax log-loss (not ridge scores) because fine-tuning continues from
 * this head with cross-entropy: the probabilities must already mean something, or the first epochs only rescale.
 * Everything is float64 and deterministic.
 */
import { ConfigError } from '../errors.ts';
import { fitLinearHead } from '../audit/linear.ts';

export interface WarmHeadOptions {
  /**
   * L2 strengths tried on the mean log-loss, relative to the mean per-feature variance of the training features
   * (as ridge's λ is). Default [1e-2, 3e-2, 1e-1]. On separable data a weak L2 gives a head with training loss ≈ 0,
   * and then little gradient reaches the body.
   */
  l2?: number[];
  /** Gradient steps per strength (default: 60, fewer for very large problems). */
  iterations?: number;
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
}

interface Problem { x: Float32Array; y: ArrayLike<number>; n: number }

/**
 * Mean log-loss, accuracy and (optionally) the gradient of the mean log-loss at (w, b). `w` is class-major
 * [classes, width] here (the transpose of the graph layout) so the inner loops are contiguous dot products.
 */
function lossAndGrad(p: Problem, d: number, k: number, w: Float64Array, b: Float64Array, grad?: { w: Float64Array; b: Float64Array }): { loss: number; accuracy: number } {
  const s = new Float64Array(k);
  let loss = 0;
  let ok = 0;
  if (grad) {
    grad.w.fill(0);
    grad.b.fill(0);
  }
  for (let i = 0; i < p.n; i++) {
    const row = i * d;
    for (let c = 0; c < k; c++) {
      let acc = b[c];
      const wr = c * d;
      for (let j = 0; j < d; j++) acc += p.x[row + j] * w[wr + j];
      s[c] = acc;
    }
    let mx = 0;
    for (let c = 1; c < k; c++) if (s[c] > s[mx]) mx = c;
    const y = p.y[i];
    if (mx === y) ok++;
    const top = s[mx];
    let z = 0;
    for (let c = 0; c < k; c++) z += Math.exp(s[c] - top);
    loss += Math.log(z) - (s[y] - top);
    if (grad) {
      for (let c = 0; c < k; c++) {
        const g = (Math.exp(s[c] - top) / z - (c === y ? 1 : 0)) / p.n;
        grad.b[c] += g;
        const wr = c * d;
        for (let j = 0; j < d; j++) grad.w[wr + j] += p.x[row + j] * g;
      }
    }
  }
  return { loss: p.n ? loss / p.n : 0, accuracy: p.n ? ok / p.n : 0 };
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

const sq = (a: Float64Array): number => a.reduce((t, v) => t + v * v, 0);

/** Mean log-loss and correct count of the scores α·s (n rows of k). */
function scaledLoss(s: Float64Array, y: ArrayLike<number>, k: number, alpha: number): { loss: number; correct: number } {
  const n = y.length;
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let mx = 0;
    for (let c = 1; c < k; c++) if (s[i * k + c] > s[i * k + mx]) mx = c;
    if (mx === y[i]) correct++;
    let z = 0;
    for (let c = 0; c < k; c++) z += Math.exp(alpha * (s[i * k + c] - s[i * k + mx]));
    loss += Math.log(z) - alpha * (s[i * k + y[i]] - s[i * k + mx]);
  }
  return { loss: n ? loss / n : 0, correct };
}

function scores(p: Problem, d: number, k: number, w: Float64Array, b: Float64Array): Float64Array {
  const s = new Float64Array(p.n * k);
  for (let i = 0; i < p.n; i++) {
    for (let c = 0; c < k; c++) {
      let acc = b[c];
      for (let j = 0; j < d; j++) acc += p.x[i * d + j] * w[c * d + j];
      s[i * k + c] = acc;
    }
  }
  return s;
}

/** The temperature α (golden-section search on log α in [e^-4, e^8]) that minimises the mean log-loss of α·s. */
function fitTemperature(s: Float64Array, y: ArrayLike<number>, k: number): number {
  let lo = -4;
  let hi = 8;
  const g = (Math.sqrt(5) - 1) / 2;
  const f = (t: number): number => scaledLoss(s, y, k, Math.exp(t)).loss;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = f(a);
  let fb = f(b);
  for (let it = 0; it < 60; it++) {
    if (fa < fb) {
      hi = b; b = a; fb = fa; a = hi - g * (hi - lo); fa = f(a);
    } else {
      lo = a; a = b; fa = fb; b = lo + g * (hi - lo); fb = f(b);
    }
  }
  return Math.exp((lo + hi) / 2);
}

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
export function fitWarmHead(
  train: { features: Float32Array; labels: ArrayLike<number> },
  validation: { features: Float32Array; labels: ArrayLike<number> },
  width: number,
  classes: number,
  opts: WarmHeadOptions = {},
): WarmHead {
  const d = width;
  const k = classes;
  const tr: Problem = { x: train.features, y: train.labels, n: train.labels.length };
  const va: Problem = { x: validation.features, y: validation.labels, n: validation.labels.length };
  if (tr.n === 0 || tr.x.length !== tr.n * d || va.x.length !== va.n * d) {
    throw new ConfigError(`fitWarmHead: feature arrays do not hold [n, ${d}] rows for ${tr.n} train / ${va.n} validation labels`, { field: 'features' });
  }
  const sel = va.n ? va : tr;
  const ridge = fitLinearHead(tr.x, tr.y, d, k, va.n ? { validation: { features: va.x, labels: va.y } } : {});
  let w = transpose(ridge.weight, d, k);
  let b = Float64Array.from(ridge.bias);
  const alpha = fitTemperature(scores(sel, d, k, w, b), sel.y, k);
  w = w.map((v) => v * alpha);
  b = b.map((v) => v * alpha);

  let meanSq = 0;
  for (let i = 0; i < tr.x.length; i++) meanSq += tr.x[i] * tr.x[i];
  meanSq = meanSq / tr.n + 1;
  let variance = 0;
  for (let j = 0; j < d; j++) {
    let m = 0;
    let m2 = 0;
    for (let i = 0; i < tr.n; i++) {
      const v = tr.x[i * d + j];
      m += v;
      m2 += v * v;
    }
    m /= tr.n;
    variance += m2 / tr.n - m * m;
  }
  const featureScale = variance / d || 1;
  // Keep the fit to a few seconds of JS on large problems (each step is ~4·n·d·k flops).
  const iterations = opts.iterations ?? Math.max(20, Math.min(60, Math.floor(5e8 / (4 * tr.n * d * k))));
  const grad = { w: new Float64Array(d * k), b: new Float64Array(k) };
  let best: (WarmHead & { key: number }) | undefined;
  const consider = (l2: number, penalty: number): void => {
    const t = lossAndGrad(tr, d, k, w, b);
    const v = va.n ? lossAndGrad(va, d, k, w, b) : t;
    const key = rank(Math.round(v.accuracy * sel.n), v.loss);
    if (!best || key > best.key) {
      best = { key, weight: Float32Array.from(transpose(w, k, d)), bias: Float32Array.from(b), l2, trainLoss: t.loss + (penalty / 2) * sq(w), valLoss: v.loss, valAccuracy: v.accuracy, iterations };
    }
  };
  if (opts.scaledRidge ?? true) consider(0, 0);
  // Strongest first, each continuing from the previous optimum (a regularisation path).
  for (const l2 of [...(opts.l2 ?? [1e-2, 3e-2, 1e-1])].sort((x, y) => y - x)) {
    const penalty = l2 * featureScale;
    const step = 1 / (meanSq / 2 + penalty);
    let yw = Float64Array.from(w);
    let yb = Float64Array.from(b);
    let pw = Float64Array.from(w);
    let pb = Float64Array.from(b);
    for (let it = 0; it < iterations; it++) {
      lossAndGrad(tr, d, k, yw, yb, grad);
      const nw = yw.map((v, i) => v - step * (grad.w[i] + penalty * v));
      const nb = yb.map((v, i) => v - step * grad.b[i]);
      const mom = it / (it + 3);
      yw = nw.map((v, i) => v + mom * (v - pw[i]));
      yb = nb.map((v, i) => v + mom * (v - pb[i]));
      pw = nw;
      pb = nb;
    }
    w = pw;
    b = pb;
    consider(l2, penalty);
  }
  const { key: _key, ...head } = best!;
  void _key;
  return head;
}
