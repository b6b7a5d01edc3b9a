import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { softmaxCrossEntropy } from '../../src/autodiff/losses.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { checkGradients, floats, rng, uniform, type FloatDType } from './fd.ts';

const B = 2;
const S = 4;
const D = 8;
const H = 2;
const DH = D / H;
const F = 16;
const V = 10;
const CLASSES = 3;

/**
 * One BERT-style encoder layer as Optimum exports it (MatMul + Add projections, Reshape/Transpose heads, scaled
 * scores plus an additive padding mask, Softmax, LayerNorm, GELU FFN, residuals) under token + position embeddings
 * and a [CLS] classifier with cross-entropy.
 */
function encoderLayer(dtype: FloatDType, gelu: 'tanh' | 'msft'): { b: GraphBuilder; loss: string; params: string[] } {
  const b = new GraphBuilder('layer');
  const r = rng(42);
  const params: string[] = [];
  const P = (name: string, dims: number[], lo = -0.5, hi = 0.5): string => {
    const n = dims.reduce((a, c) => a * c, 1);
    params.push(b.initializer(name, dtype, floats(dtype, uniform(r, n, lo, hi)), dims));
    return name;
  };
  const C = (v: number): string => (dtype === 'float64' ? b.scalar(v, 'float64') : b.scalar(v));
  b.input('ids', 'int64', [B, S]);
  b.input('mask', 'int64', [B, S]);
  b.input('labels', 'int64', [B]);
  const x0 = b.add(b.gather(P('tok', [V, D]), 'ids'), P('pos', [S, D]));
  const lin = (x: string, w: string, bias: string): string => b.add(b.matmul(x, w), bias);
  const heads = (t: string): string => b.transpose(b.reshape(t, [B, S, H, DH]), [0, 2, 1, 3]);
  const q = heads(lin(x0, P('wq', [D, D]), P('bq', [D])));
  const k = b.transpose(b.reshape(lin(x0, P('wk', [D, D]), P('bk', [D])), [B, S, H, DH]), [0, 2, 3, 1]);
  const v = heads(lin(x0, P('wv', [D, D]), P('bv', [D])));
  const maskF = b.op('CastLike', [b.unsqueeze('mask', [1, 2]), x0]);
  const additive = b.mul(b.sub(C(1), maskF), C(-1e4));
  const scores = b.add(b.div(b.matmul(q, k), C(Math.sqrt(DH))), additive);
  const ctx = b.reshape(b.transpose(b.matmul(b.softmax(scores, -1), v), [0, 2, 1, 3]), [B, S, D]);
  const h = b.layerNorm(b.add(x0, lin(ctx, P('wo', [D, D]), P('bo', [D]))), P('ln1_g', [D], 0.5, 1.5), P('ln1_b', [D]));
  const f1 = lin(h, P('w1', [D, F]), P('b1', [F]));
  let act: string;
  if (gelu === 'msft') act = b.op('Gelu', [f1], {}, { domain: 'com.microsoft' });
  else {
    const inner = b.mul(b.add(f1, b.mul(b.pow(f1, C(3)), C(0.044715))), C(Math.sqrt(2 / Math.PI)));
    act = b.mul(b.mul(f1, b.add(b.tanh(inner), C(1))), C(0.5));
  }
  const out = b.layerNorm(
    b.add(h, lin(act, P('w2', [F, D]), P('b2', [D]))),
    P('ln2_g', [D], 0.5, 1.5),
    P('ln2_b', [D]),
  );
  const cls = b.gather(out, b.scalar(0, 'int64'), 1);
  const logits = b.gemm(cls, P('wc', [D, CLASSES]), P('bc', [CLASSES]));
  const loss = softmaxCrossEntropy(b, logits, 'labels', { labelSmoothing: 0.1 });
  return { b, loss, params };
}

const feeds = {
  ids: { dtype: 'int64' as const, dims: [B, S], data: BigInt64Array.of(1n, 4n, 4n, 9n, 2n, 7n, 0n, 0n) },
  // second sequence is padded: its last two positions must receive no attention
  mask: { dtype: 'int64' as const, dims: [B, S], data: BigInt64Array.of(1n, 1n, 1n, 1n, 1n, 1n, 0n, 0n) },
  labels: { dtype: 'int64' as const, dims: [B], data: BigInt64Array.of(2n, 0n) },
};

describe('end-to-end gradient check of a transformer encoder layer', () => {
  it('every parameter, float64, tanh-GELU decomposition, masked attention, embeddings', async () => {
    const { b, loss, params } = encoderLayer('float64', 'tanh');
    const rep = await checkGradients(b.graph, { dtype: 'float64', wrt: params, loss, feeds });
    assert.ok(rep.checked > 600, `checked ${rep.checked} elements`);
    // embedding rows of unused token ids get exactly zero gradient
    const tok = rep.grads.get('tok')!;
    for (const id of [3, 5, 6, 8]) for (let j = 0; j < D; j++) assert.equal(tok[id * D + j], 0);
  });
  it('com.microsoft Gelu variant in float32 (sampled elements; float32 tolerance)', async () => {
    const { b, loss, params } = encoderLayer('float32', 'msft');
    await checkGradients(b.graph, {
      dtype: 'float32',
      wrt: params,
      loss,
      feeds,
      maxElems: 12,
      h: 5e-3,
      atol: 5e-3,
      rtol: 2e-2,
    });
  });
});
