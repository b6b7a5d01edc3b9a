/**
 * Float64 dense kernels on ONNX Runtime for the closed-form and linear-probe fits (the audit's ridge head and the
 * warm-started head). Those fits are a few large products over every training example: on full CLINC150
 * (15,000 x 512 features, 150 classes) the JS loops took 22 s for the ridge Gram matrix and ~10 minutes for the
 * softmax-regression refinement, while ORT's double Gemm does each product in well under a second. Float64 keeps
 * the fits deterministic and their tests exact to ~1e-12.
 */
import { GraphBuilder } from '../onnx/builder.ts';
import { modelFromGraph } from '../onnx/ir.ts';
import { ConfigError } from '../errors.ts';
import { Session, ort } from './session.ts';

/** Session options for these small graphs: no spinning (they run between training phases on a shared machine). */
const SESSION = { allowSpinning: false, validate: false } as const;

/** `aᵀ · b` for row-major a [n, p] and b [n, q]: the [p, q] cross-product (Gram matrix when a = b). */
export async function crossProduct(
  a: Float64Array,
  b: Float64Array,
  n: number,
  p: number,
  q: number,
  opts: { threads?: number } = {},
): Promise<Float64Array> {
  if (a.length !== n * p || b.length !== n * q)
    throw new ConfigError(
      `crossProduct: [${n}, ${p}] and [${n}, ${q}] need ${n * p} and ${n * q} values, got ${a.length} and ${b.length}`,
      { field: 'values' },
    );
  const g = new GraphBuilder('cross_product');
  const x = g.input('a', 'float64', [n, p]);
  const y = g.input('b', 'float64', [n, q]);
  g.output(g.op('Gemm', [x, y], { transA: 1 }, { name: 'out' }), 'float64', [p, q]);
  const s = await Session.create(modelFromGraph(g.graph), {
    ...SESSION,
    ...(opts.threads ? { intraOpThreads: opts.threads } : {}),
  });
  try {
    const out = await s.run({ a: new ort.Tensor('float64', a, [n, p]), b: new ort.Tensor('float64', b, [n, q]) });
    return Float64Array.from(Object.values(out)[0].data as Float64Array);
  } finally {
    await s.release();
  }
}

/**
 * Per-example weights scaled to mean 1 (all ones without `weights`): a weighted fit then keeps the scale of an
 * unweighted one (its regularisation strengths mean the same). Each weight must be finite and >= 0, their sum > 0.
 */
export function normalizedWeights(weights: ArrayLike<number> | undefined, n: number, where: string): Float64Array {
  const out = new Float64Array(n).fill(1);
  if (!weights) return out;
  if (weights.length !== n)
    throw new ConfigError(`${where}: ${weights.length} weights for ${n} examples`, { field: 'weights' });
  let total = 0;
  for (let i = 0; i < n; i++) {
    const v = weights[i];
    if (!(v >= 0 && Number.isFinite(v)))
      throw new ConfigError(`${where}: weight ${v} of example ${i} is not a finite number >= 0`, {
        field: 'weights',
        value: String(v),
      });
    total += v;
  }
  if (!(total > 0)) throw new ConfigError(`${where}: the weights sum to 0`, { field: 'weights' });
  for (let i = 0; i < n; i++) out[i] = (weights[i] * n) / total;
  return out;
}

/** Mean log-loss, correct count and (when asked) the gradient of the mean log-loss of a linear softmax classifier. */
export interface SoftmaxEval {
  loss: number;
  correct: number;
  /** d(mean loss)/dW, [width, classes] row-major. */
  gradWeight?: Float64Array;
  gradBias?: Float64Array;
}

/**
 * A softmax-regression problem (features X [n, width], labels in [0, classes)) held in ORT tensors, evaluated at
 * any (W [width, classes], b [classes]). One session per problem; X and the one-hot labels are fed by reference.
 * With `weights` (one per example, e.g. reweighing's), the loss and its gradient are the weighted mean
 * Σ wᵢℓᵢ / Σ wᵢ; the correct count stays unweighted.
 */
export class SoftmaxProblem {
  private constructor(
    private readonly session: Session,
    private readonly feeds: Record<string, ort.Tensor>,
    readonly n: number,
    readonly width: number,
    readonly classes: number,
  ) {}

  static async create(
    features: ArrayLike<number>,
    labels: ArrayLike<number>,
    width: number,
    classes: number,
    opts: { threads?: number; weights?: ArrayLike<number> } = {},
  ): Promise<SoftmaxProblem> {
    const n = labels.length;
    if (features.length !== n * width)
      throw new ConfigError(`SoftmaxProblem: ${features.length} feature values for ${n} examples of width ${width}`, {
        field: 'features',
      });
    // Weights scaled to mean 1, so the weighted mean is Σ wᵢℓᵢ / n and an unweighted problem is all ones.
    const sw = normalizedWeights(opts.weights, n, 'SoftmaxProblem');
    const oneHot = new Float64Array(n * classes);
    const ids = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      const y = labels[i];
      if (!Number.isInteger(y) || y < 0 || y >= classes)
        throw new ConfigError(`SoftmaxProblem: label ${y} of example ${i} is outside [0, ${classes})`, {
          field: 'labels',
        });
      oneHot[i * classes + y] = 1;
      ids[i] = BigInt(y);
    }
    const g = new GraphBuilder('softmax_regression');
    const x = g.input('x', 'float64', [n, width]);
    const yh = g.input('y', 'float64', [n, classes]);
    const yi = g.input('labels', 'int64', [n]);
    const sv = g.input('sw', 'float64', [n, 1]);
    const w = g.input('w', 'float64', [width, classes]);
    const b = g.input('b', 'float64', [classes]);
    const scores = g.op('Gemm', [x, w, b]);
    const logp = g.op('LogSoftmax', [scores], { axis: 1 });
    const inv = g.constant('float64', Float64Array.of(n ? 1 / n : 0), []);
    const loss = g.mul(g.neg(g.op('ReduceSum', [g.mul(g.mul(yh, logp), sv)], { keepdims: 0 })), inv);
    const hits = g.op('ReduceSum', [g.cast(g.op('Equal', [g.argMax(scores, 1), yi]), 'float64')], { keepdims: 0 });
    const resid = g.mul(g.mul(g.sub(g.exp(logp), yh), sv), inv);
    const gw = g.op('Gemm', [x, resid], { transA: 1 });
    const gb = g.reduceSum(resid, [0], false);
    for (const [v, name, shape] of [
      [loss, 'loss', []],
      [hits, 'correct', []],
      [gw, 'grad_w', [width, classes]],
      [gb, 'grad_b', [classes]],
      [scores, 'scores', [n, classes]],
    ] as const) {
      g.graph.nodes.push({
        name: `${name}_out`,
        opType: 'Identity',
        domain: '',
        inputs: [v],
        outputs: [name],
        attrs: {},
      });
      g.output(name, 'float64', [...shape]);
    }
    const session = await Session.create(modelFromGraph(g.graph), {
      ...SESSION,
      ...(opts.threads ? { intraOpThreads: opts.threads } : {}),
    });
    const feeds = {
      x: new ort.Tensor('float64', features instanceof Float64Array ? features : Float64Array.from(features), [
        n,
        width,
      ]),
      y: new ort.Tensor('float64', oneHot, [n, classes]),
      labels: new ort.Tensor('int64', ids, [n]),
      sw: new ort.Tensor('float64', sw, [n, 1]),
    };
    return new SoftmaxProblem(session, feeds, n, width, classes);
  }

  private async run(w: Float64Array, b: Float64Array, fetches: string[]): Promise<Record<string, ort.Tensor>> {
    return this.session.run(
      {
        ...this.feeds,
        w: new ort.Tensor('float64', w, [this.width, this.classes]),
        b: new ort.Tensor('float64', b, [this.classes]),
      },
      fetches,
    );
  }

  /** Loss and correct count at (w, b); with `gradient`, also the gradient of the mean loss. */
  async evaluate(w: Float64Array, b: Float64Array, gradient = false): Promise<SoftmaxEval> {
    const out = await this.run(w, b, gradient ? ['loss', 'correct', 'grad_w', 'grad_b'] : ['loss', 'correct']);
    const r: SoftmaxEval = { loss: Number(out.loss.data[0]), correct: Math.round(Number(out.correct.data[0])) };
    if (gradient) {
      r.gradWeight = out.grad_w.data as Float64Array;
      r.gradBias = out.grad_b.data as Float64Array;
    }
    return r;
  }

  /** Scores X·W + b, [n, classes] row-major. */
  async scores(w: Float64Array, b: Float64Array): Promise<Float64Array> {
    return (await this.run(w, b, ['scores'])).scores.data as Float64Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
