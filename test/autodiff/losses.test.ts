import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { binaryCrossEntropyWithLogits, klDivergence, mse, softmaxCrossEntropy } from '../../src/autodiff/losses.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph } from '../../src/onnx/ir.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { gradCheck } from './fd.ts';

const LOGITS = [
  [1.0, -0.5, 0.3, 2.0],
  [0.2, 0.1, -1.2, 0.0],
  [-0.7, 1.5, 0.4, -0.3],
];
const LABELS = [3, -100, 1];

function logSoftmax(row: number[]): number[] {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
  return row.map((v) => v - lse);
}

/** PyTorch's cross_entropy(label_smoothing=eps, ignore_index=-100, reduction='mean') in plain JS. */
function refCrossEntropy(logits: number[][], labels: number[], eps: number): number {
  let total = 0;
  let n = 0;
  logits.forEach((row, i) => {
    if (labels[i] === -100) return;
    const lp = logSoftmax(row);
    total += (1 - eps) * -lp[labels[i]] + (eps * -lp.reduce((s, v) => s + v, 0)) / row.length;
    n++;
  });
  return total / n;
}

async function evalScalar(
  b: GraphBuilder,
  out: string,
  feeds: Record<string, ort.Tensor>,
  dtype: 'float32' | 'float64' = 'float64',
): Promise<number> {
  b.output(out, dtype);
  const s = await Session.create(modelFromGraph(b.graph));
  const r = await s.run(feeds);
  await s.release();
  return Number(r[out].data[0]);
}

describe('loss builders: values against plain-JS references', () => {
  it('softmaxCrossEntropy with label smoothing and ignore_index matches PyTorch semantics', async () => {
    for (const eps of [0, 0.1]) {
      const b = new GraphBuilder('ce');
      b.input('logits', 'float32', [3, 4]);
      b.input('labels', 'int64', [3]);
      const loss = softmaxCrossEntropy(b, 'logits', 'labels', { labelSmoothing: eps, ignoreIndex: -100 });
      const v = await evalScalar(
        b,
        loss,
        {
          logits: new ort.Tensor('float32', Float32Array.from(LOGITS.flat()), [3, 4]),
          labels: new ort.Tensor('int64', BigInt64Array.from(LABELS.map(BigInt)), [3]),
        },
        'float32',
      );
      assert.ok(
        Math.abs(v - refCrossEntropy(LOGITS, LABELS, eps)) < 1e-5,
        `eps ${eps}: ${v} vs ${refCrossEntropy(LOGITS, LABELS, eps)}`,
      );
    }
  });
  it('binaryCrossEntropyWithLogits, mse and klDivergence', async () => {
    const x = [2.5, -1.0, 0.3, -30, 40, 0];
    const t = [1, 0, 0.25, 0, 1, 0.5];
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    const refBce =
      x.reduce((s, v, i) => s - (t[i] * Math.log(sig(v) || 1e-300) + (1 - t[i]) * Math.log(1 - sig(v) || 1e-300)), 0) /
      x.length;
    const mk = (): GraphBuilder => {
      const b = new GraphBuilder('l');
      b.input('x', 'float64', [2, 3]);
      b.input('t', 'float64', [2, 3]);
      return b;
    };
    const feeds = {
      x: new ort.Tensor('float64', Float64Array.from(x), [2, 3]),
      t: new ort.Tensor('float64', Float64Array.from(t), [2, 3]),
    };
    let b = mk();
    // -30 and 40 would overflow a naive log(sigmoid); the stable form must stay finite and exact
    assert.ok(Math.abs((await evalScalar(b, binaryCrossEntropyWithLogits(b, 'x', 't'), feeds)) - refBce) < 1e-9);
    b = mk();
    const refMse = x.reduce((s, v, i) => s + (v - t[i]) ** 2, 0) / x.length;
    assert.ok(Math.abs((await evalScalar(b, mse(b, 'x', 't'), feeds)) - refMse) < 1e-9);
    b = mk();
    const T = 2;
    const rows = [x.slice(0, 3), x.slice(3)];
    const trows = [t.slice(0, 3), t.slice(3)];
    let kl = 0;
    rows.forEach((r, i) => {
      const ls = logSoftmax(r.map((v) => v / T));
      const lt = logSoftmax(trows[i].map((v) => v / T));
      lt.forEach((l, k) => {
        kl += Math.exp(l) * (l - ls[k]);
      });
    });
    const refKl = (T * T * kl) / 2;
    assert.ok(Math.abs((await evalScalar(b, klDivergence(b, 'x', 't', { temperature: T }), feeds)) - refKl) < 1e-9);
  });
  it('softmaxCrossEntropy with sample weights: Σ wℓ / Σ w over the non-ignored positions', async () => {
    const weights = [2, 5, 0.5];
    for (const eps of [0, 0.1]) {
      for (const reduction of ['mean', 'sum'] as const) {
        const b = new GraphBuilder('wce');
        b.input('logits', 'float32', [3, 4]);
        b.input('labels', 'int64', [3]);
        b.input('w', 'float32', [3]);
        const loss = softmaxCrossEntropy(b, 'logits', 'labels', {
          labelSmoothing: eps,
          ignoreIndex: -100,
          reduction,
          sampleWeights: 'w',
        });
        const v = await evalScalar(
          b,
          loss,
          {
            logits: new ort.Tensor('float32', Float32Array.from(LOGITS.flat()), [3, 4]),
            labels: new ort.Tensor('int64', BigInt64Array.from(LABELS.map(BigInt)), [3]),
            w: new ort.Tensor('float32', Float32Array.from(weights), [3]),
          },
          'float32',
        );
        // Row 1 is ignored (label -100): its weight 5 counts nowhere.
        const l0 = refCrossEntropy([LOGITS[0]], [LABELS[0]], eps);
        const l2 = refCrossEntropy([LOGITS[2]], [LABELS[2]], eps);
        const sum = 2 * l0 + 0.5 * l2;
        const ref = reduction === 'sum' ? sum : sum / 2.5;
        assert.ok(Math.abs(v - ref) < 1e-5, `eps ${eps} ${reduction}: ${v} vs ${ref}`);
      }
    }
  });
  it('rejects a label smoothing outside [0, 1)', () => {
    const b = new GraphBuilder('x');
    assert.throws(
      () => softmaxCrossEntropy(b, 'a', 'b', { labelSmoothing: 1 }),
      /labelSmoothing must be in \[0, 1\), got 1/,
    );
  });
});

describe('loss gradients (finite differences)', () => {
  for (const reduction of ['mean', 'sum'] as const) {
    it(`softmaxCrossEntropy (${reduction}, smoothing 0.1, ignore_index, [B, S, C] logits)`, async () => {
      await gradCheck(
        'float64',
        (b) => {
          b.input('logits', 'float64', [2, 3, 4]);
          b.input('labels', 'int64', [2, 3]);
          const loss = softmaxCrossEntropy(b, 'logits', 'labels', {
            labelSmoothing: 0.1,
            ignoreIndex: -100,
            reduction,
          });
          return { outputs: [], wrt: ['logits'], loss };
        },
        {
          feeds: {
            logits: {
              dtype: 'float64',
              dims: [2, 3, 4],
              data: Float64Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.3) * 2),
            },
            labels: { dtype: 'int64', dims: [2, 3], data: BigInt64Array.of(0n, 3n, -100n, 2n, 1n, 1n) },
          },
        },
      );
    });
  }
  it('softmaxCrossEntropy with sample weights (mean, smoothing 0.1, ignore_index)', async () => {
    await gradCheck(
      'float64',
      (b) => {
        b.input('logits', 'float64', [2, 3, 4]);
        b.input('labels', 'int64', [2, 3]);
        const w = b.constant('float64', Float64Array.of(1, 0.25, 3, 2, 0.5, 1.5), [2, 3]);
        const loss = softmaxCrossEntropy(b, 'logits', 'labels', {
          labelSmoothing: 0.1,
          ignoreIndex: -100,
          sampleWeights: w,
        });
        return { outputs: [], wrt: ['logits'], loss };
      },
      {
        feeds: {
          logits: {
            dtype: 'float64',
            dims: [2, 3, 4],
            data: Float64Array.from({ length: 24 }, (_, i) => Math.cos(i * 0.7) * 2),
          },
          labels: { dtype: 'int64', dims: [2, 3], data: BigInt64Array.of(0n, 3n, -100n, 2n, 1n, 1n) },
        },
      },
    );
  });
  it('SoftmaxCrossEntropyLoss node with class weights, reduction none', async () => {
    await gradCheck(
      'float64',
      (b, feed) => {
        const x = feed('x', [3, 4], -2, 2);
        b.input('labels', 'int64', [3]);
        const w = b.constant('float64', Float64Array.of(0.5, 1, 2, 1.5), [4]);
        return { outputs: [b.op('SoftmaxCrossEntropyLoss', [x, 'labels', w], { reduction: 'none' })], wrt: ['x'] };
      },
      { feeds: { labels: { dtype: 'int64', dims: [3], data: BigInt64Array.of(2n, 0n, 3n) } } },
    );
  });
  it('binaryCrossEntropyWithLogits, mse, klDivergence (float64)', async () => {
    await gradCheck(
      'float64',
      (b, feed) => {
        const x = feed('x', [3, 4], -3, 3);
        const t = feed('t', [3, 4], 0, 1);
        const s = feed('s', [3, 4], -2, 2);
        const l1 = binaryCrossEntropyWithLogits(b, x, t);
        const l2 = mse(b, s, t);
        const l3 = klDivergence(b, s, x, { temperature: 2 });
        return { outputs: [], wrt: ['x', 's'], loss: b.op('Sum', [l1, l2, l3]) };
      },
      { kinkMargin: 0.05 },
    );
  });
});
