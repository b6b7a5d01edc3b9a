/**
 * Issue 2's "done when": a small MLP and a one-layer transformer block, written with the builder on symbolic
 * shapes, run in ONNX Runtime and match references computed here with plain float64 loops.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { inferShapes, specialize } from '../../src/onnx/shapes/index.ts';
import { ort } from '../../src/runtime/session.ts';
import { assertClose, erf, randArray, runBuilt, seeded } from './builder-helpers.ts';

type Mat = number[][];

function matmul(a: Mat, w: Float32Array, inDim: number, outDim: number, bias?: Float32Array): Mat {
  return a.map((row) => {
    const out = new Array<number>(outDim).fill(0);
    for (let j = 0; j < outDim; j++) {
      let s = bias ? bias[j] : 0;
      for (let k = 0; k < inDim; k++) s += row[k] * w[k * outDim + j];
      out[j] = s;
    }
    return out;
  });
}

function toRows(data: ArrayLike<number>, rows: number, cols: number): Mat {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => data[r * cols + c]));
}

test('MLP 6-16-8-3 with ReLU, tanh and softmax matches a float64 reference', async () => {
  const rnd = seeded(1);
  const b = new GraphBuilder('mlp');
  const x = b.input('x', 'float32', ['batch', 6]);
  const dims = [6, 16, 8, 3];
  const ws: Float32Array[] = [];
  const bs: Float32Array[] = [];
  let h = x;
  for (let l = 0; l < 3; l++) {
    ws.push(randArray(dims[l] * dims[l + 1], rnd, 0.6));
    bs.push(randArray(dims[l + 1], rnd, 0.1));
    h = b.scope(`layers.${l}`, () => {
      const w = b.initializer(`layers.${l}.weight`, 'float32', ws[l], [dims[l], dims[l + 1]]);
      const bias = b.initializer(`layers.${l}.bias`, 'float32', bs[l], [dims[l + 1]]);
      const y = b.linear(h, w, bias);
      return l === 0 ? b.relu(y) : l === 1 ? b.tanh(y) : b.softmax(y, -1);
    });
  }
  b.output(h);
  assert.deepEqual(b.shapeOf(h), ['batch', 3]);
  assert.deepEqual(specialize(b.graph, { batch: 4 }).outputs[0].shape, [4, 3]);

  const xs = randArray(4 * 6, rnd, 2);
  const res = await runBuilt(b, { x: new ort.Tensor('float32', xs, [4, 6]) });
  let ref = toRows(xs, 4, 6);
  ref = matmul(ref, ws[0], 6, 16, bs[0]).map((r) => r.map((v) => Math.max(0, v)));
  ref = matmul(ref, ws[1], 16, 8, bs[1]).map((r) => r.map(Math.tanh));
  ref = matmul(ref, ws[2], 8, 3, bs[2]).map((r) => {
    const m = Math.max(...r);
    const e = r.map((v) => Math.exp(v - m));
    const s = e.reduce((a, v) => a + v, 0);
    return e.map((v) => v / s);
  });
  assert.deepEqual(res[h].dims, [4, 3]);
  assertClose(res[h].data, ref.flat(), 1e-5, 'mlp');
});

interface BlockParams {
  [name: string]: { data: Float32Array; dims: number[] };
}

/** Post-LN BERT layer: self-attention with an additive padding mask, residual + LayerNorm, GELU FFN, residual + LayerNorm. */
function buildBlock(
  b: GraphBuilder,
  p: BlockParams,
  d: number,
  heads: number,
): { x: string; mask: string; out: string } {
  const dh = d / heads;
  const param = (n: string): string => b.initializer(n, 'float32', p[n].data, p[n].dims);
  const x = b.input('hidden', 'float32', ['batch', 'seq', d]);
  const mask = b.input('attention_mask', 'float32', ['batch', 'seq']);
  const out = b.scope('encoder.layer.0', () => {
    const attnOut = b.scope('attention', () => {
      const ctx = b.scope('self', () => {
        const proj = (name: string, perm: number[]): string =>
          b.scope(name, () =>
            b.transpose(
              b.reshape(b.linear(x, param(`${name}.weight`), param(`${name}.bias`)), [0, 0, heads, dh]),
              perm,
            ),
          );
        const q = proj('query', [0, 2, 1, 3]);
        const kT = proj('key', [0, 2, 3, 1]);
        const v = proj('value', [0, 2, 1, 3]);
        const scores = b.div(b.matmul(q, kT), b.scalar(Math.sqrt(dh)));
        // (1 - mask) * -1e4, broadcast over heads and query positions
        const additive = b.unsqueeze(b.mul(b.sub(b.scalar(1), mask), b.scalar(-10000)), [1, 2]);
        const probs = b.softmax(b.add(scores, additive), -1);
        return b.reshape(b.transpose(b.matmul(probs, v), [0, 2, 1, 3]), [0, 0, d]);
      });
      return b.scope('output', () => {
        const o = b.scope('dense', () => b.linear(ctx, param('attn_out.weight'), param('attn_out.bias')));
        return b.scope('LayerNorm', () => b.layerNorm(b.add(o, x), param('ln1.weight'), param('ln1.bias'), -1, 1e-12));
      });
    });
    const inter = b.scope('intermediate', () =>
      b.gelu(b.linear(attnOut, param('ffn_in.weight'), param('ffn_in.bias'))),
    );
    return b.scope('output', () => {
      const o = b.scope('dense', () => b.linear(inter, param('ffn_out.weight'), param('ffn_out.bias')));
      return b.scope('LayerNorm', () =>
        b.layerNorm(b.add(o, attnOut), param('ln2.weight'), param('ln2.bias'), -1, 1e-12),
      );
    });
  });
  b.output(out);
  return { x, mask, out };
}

function layerNormRows(rows: Mat, g: Float32Array, beta: Float32Array, eps: number): Mat {
  return rows.map((r) => {
    const m = r.reduce((a, v) => a + v, 0) / r.length;
    const varc = r.reduce((a, v) => a + (v - m) ** 2, 0) / r.length;
    return r.map((v, i) => ((v - m) / Math.sqrt(varc + eps)) * g[i] + beta[i]);
  });
}

function referenceBlock(
  p: BlockParams,
  xs: Float32Array,
  maskv: number[],
  batch: number,
  seq: number,
  d: number,
  heads: number,
  ffn: number,
): number[] {
  const dh = d / heads;
  const out: number[] = [];
  for (let bi = 0; bi < batch; bi++) {
    const x = toRows(xs.subarray(bi * seq * d, (bi + 1) * seq * d), seq, d);
    const q = matmul(x, p['query.weight'].data, d, d, p['query.bias'].data);
    const k = matmul(x, p['key.weight'].data, d, d, p['key.bias'].data);
    const v = matmul(x, p['value.weight'].data, d, d, p['value.bias'].data);
    const ctx: Mat = Array.from({ length: seq }, () => new Array<number>(d).fill(0));
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < seq; i++) {
        const s: number[] = [];
        for (let j = 0; j < seq; j++) {
          let dot = 0;
          for (let c = 0; c < dh; c++) dot += q[i][h * dh + c] * k[j][h * dh + c];
          s.push(dot / Math.sqrt(dh) + (1 - maskv[bi * seq + j]) * -10000);
        }
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const tot = e.reduce((a, z) => a + z, 0);
        for (let j = 0; j < seq; j++)
          for (let c = 0; c < dh; c++) ctx[i][h * dh + c] += (e[j] / tot) * v[j][h * dh + c];
      }
    }
    const ao = matmul(ctx, p['attn_out.weight'].data, d, d, p['attn_out.bias'].data);
    const h1 = layerNormRows(
      ao.map((r, i) => r.map((z, c) => z + x[i][c])),
      p['ln1.weight'].data,
      p['ln1.bias'].data,
      1e-12,
    );
    const inter = matmul(h1, p['ffn_in.weight'].data, d, ffn, p['ffn_in.bias'].data).map((r) =>
      r.map((z) => 0.5 * z * (1 + erf(z / Math.SQRT2))),
    );
    const fo = matmul(inter, p['ffn_out.weight'].data, ffn, d, p['ffn_out.bias'].data);
    const h2 = layerNormRows(
      fo.map((r, i) => r.map((z, c) => z + h1[i][c])),
      p['ln2.weight'].data,
      p['ln2.bias'].data,
      1e-12,
    );
    out.push(...h2.flat());
  }
  return out;
}

test('one-layer transformer block (masked multi-head attention, residual + LayerNorm, GELU FFN) matches a float64 reference', async () => {
  const [batch, seq, d, heads, ffn] = [2, 5, 8, 2, 16];
  const rnd = seeded(42);
  const p: BlockParams = {};
  const mat = (name: string, i: number, o: number): void => {
    p[`${name}.weight`] = { data: randArray(i * o, rnd, 0.5), dims: [i, o] };
    p[`${name}.bias`] = { data: randArray(o, rnd, 0.1), dims: [o] };
  };
  mat('query', d, d);
  mat('key', d, d);
  mat('value', d, d);
  mat('attn_out', d, d);
  mat('ffn_in', d, ffn);
  mat('ffn_out', ffn, d);
  for (const ln of ['ln1', 'ln2']) {
    p[`${ln}.weight`] = { data: Float32Array.from({ length: d }, () => 1 + rnd(0.2)), dims: [d] };
    p[`${ln}.bias`] = { data: randArray(d, rnd, 0.1), dims: [d] };
  }
  const b = new GraphBuilder('block');
  const { x, mask, out } = buildBlock(b, p, d, heads);
  assert.deepEqual(b.shapeOf(out), ['batch', 'seq', d]);
  const g = inferShapes(b.graph);
  const scores = g.nodes.find((n) => n.name === '/encoder/layer.0/attention/self/Softmax');
  assert.ok(scores, 'scoped node names');
  assert.deepEqual(g.valueInfo.get(scores.outputs[0])?.shape, ['batch', heads, 'seq', 'seq']);

  const xs = randArray(batch * seq * d, rnd, 1.5);
  const maskv = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]; // second sequence has two padding positions
  const res = await runBuilt(b, {
    [x]: new ort.Tensor('float32', xs, [batch, seq, d]),
    [mask]: new ort.Tensor('float32', Float32Array.from(maskv), [batch, seq]),
  });
  assert.deepEqual(res[out].dims, [batch, seq, d]);
  const ref = referenceBlock(p, xs, maskv, batch, seq, d, heads, ffn);
  assertClose(res[out].data, ref, 2e-5, 'transformer block');
  // the mask matters: without it the padded sequence's outputs change
  const unmasked = referenceBlock(
    p,
    xs,
    maskv.map(() => 1),
    batch,
    seq,
    d,
    heads,
    ffn,
  );
  assert.ok(Math.abs(unmasked[seq * d] - ref[seq * d]) > 1e-3);
});
