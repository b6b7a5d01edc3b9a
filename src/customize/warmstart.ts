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
   * L2 strengths tried (on the mean log-loss); the lowest validation log-loss wins. Default [1e-2, 3e-2, 1e-1]:
   * strong on purpose. On separable data a weak L2 gives a head with training loss ≈ 0, and then no gradient
   * reaches the body and fine-tuning changes nothing.
   */
  l2?: number[];
  /** Gradient steps per strength (default: 60, fewer for very large problems). */
  iterations?: number;
}

export interface WarmHead {
  /** Graph layout [width, classes], row-major. */
  weight: Float32Array;
  bias: Float32Array;
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

/**
 * Fits a softmax-regression head on frozen features (`train`/`validation`: [n, width] row-major, labels in
 * [0, classes)). Ridge init (λ picked on validation, as the audit does), then Nesterov gradient descent with step 1/L (L bounds the log-loss Hessian: mean(‖x‖² + 1)/2 + l2) for each L2 strength, each
 * strength (strongest first) starting where the previous ended; the lowest validation log-loss wins (ties: the stronger).
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
  const ridge = fitLinearHead(tr.x, tr.y, d, k, va.n ? { validation: { features: va.x, labels: va.y } } : {});
  let w = transpose(ridge.weight, d, k);
  let b = Float64Array.from(ridge.bias);

  let meanSq = 0;
  for (let i = 0; i < tr.x.length; i++) meanSq += tr.x[i] * tr.x[i];
  meanSq = meanSq / tr.n + 1;
  // Keep the fit to a few seconds of JS on large problems (each step is ~4·n·d·k flops).
  const iterations = opts.iterations ?? Math.max(20, Math.min(60, Math.floor(5e8 / (4 * tr.n * d * k))));
  const grad = { w: new Float64Array(d * k), b: new Float64Array(k) };
  let best: WarmHead | undefined;
  // Strongest first, each continuing from the previous optimum (a regularisation path).
  for (const l2 of [...(opts.l2 ?? [1e-2, 3e-2, 1e-1])].sort((x, y) => y - x)) {
    const step = 1 / (meanSq / 2 + l2);
    let yw = Float64Array.from(w);
    let yb = Float64Array.from(b);
    let pw = Float64Array.from(w);
    let pb = Float64Array.from(b);
    for (let it = 0; it < iterations; it++) {
      lossAndGrad(tr, d, k, yw, yb, grad);
      const nw = yw.map((v, i) => v - step * (grad.w[i] + l2 * v));
      const nb = yb.map((v, i) => v - step * grad.b[i]);
      const mom = it / (it + 3);
      yw = nw.map((v, i) => v + mom * (v - pw[i]));
      yb = nb.map((v, i) => v + mom * (v - pb[i]));
      pw = nw;
      pb = nb;
    }
    w = pw;
    b = pb;
    const t = lossAndGrad(tr, d, k, w, b);
    const v = va.n ? lossAndGrad(va, d, k, w, b) : t;
    if (!best || v.loss < best.valLoss) {
      best = { weight: Float32Array.from(transpose(w, k, d)), bias: Float32Array.from(b), l2, trainLoss: t.loss + (l2 / 2) * sq(w), valLoss: v.loss, valAccuracy: v.accuracy, iterations };
    }
  }
  return best!;
}
