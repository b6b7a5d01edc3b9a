/** Builder helpers run in ONNX Runtime and match results computed by hand in plain JS. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphError } from '../../src/errors.ts';
import { GraphBuilder, modulePathToNodePrefix } from '../../src/onnx/builder.ts';
import { ort } from '../../src/runtime/session.ts';
import { assertClose, erf, runBuilt } from './builder-helpers.ts';

const f32 = (data: number[], dims: number[]): ort.Tensor => new ort.Tensor('float32', Float32Array.from(data), dims);
const X = [-3, -1.5, -0.2, 0, 0.3, 1, 2.5, 4];

test('gelu: exact Erf form, tanh form and the com.microsoft kernels match the formulas', async () => {
  const b = new GraphBuilder('gelu');
  const x = b.input('x', 'float32', [8]);
  b.output(b.gelu(x), 'float32');
  b.output(b.gelu(x, 'tanh'));
  b.output(b.gelu(x, 'none', { contrib: true }));
  b.output(b.gelu(x, 'tanh', { contrib: true }));
  assert.ok(b.graph.nodes.every((n) => n.domain === '' || n.opType === 'Gelu' || n.opType === 'FastGelu'));
  const res = await runBuilt(b, { x: f32(X, [8]) });
  const exact = X.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
  const approx = X.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
  const [o1, o2, o3, o4] = b.graph.outputs.map((o) => res[o.name].data);
  assertClose(o1, exact, 1e-6, 'gelu erf');
  assertClose(o2, approx, 1e-6, 'gelu tanh');
  assertClose(o3, exact, 1e-5, 'com.microsoft.Gelu');
  assertClose(o4, approx, 1e-4, 'com.microsoft.FastGelu');
  // the two forms really differ, so the comparison above can tell them apart
  assert.ok(Math.abs(exact[1] - approx[1]) > 1e-4);
});

test('slice, split, clip, where, expand, concat', async () => {
  const b = new GraphBuilder('shape-ops');
  const x = b.input('x', 'float32', [3, 4]);
  const sl = b.slice(x, [1, -1], [3, -5], [0, 1], [1, -2]); // rows 1..2, columns 3,1
  const [p0, p1] = b.split(x, [1, 3], 1);
  const cl = b.clip(x, -1, 2);
  const clMin = b.clip(x, 0);
  const wh = b.where(b.greater(x, b.scalar(0)), x, b.scalar(-9));
  const ex = b.expand(b.reduceSum(x, [1]), [3, 2]);
  const cc = b.concat([p1, p0], 1);
  for (const o of [sl, p0, p1, cl, clMin, wh, ex, cc]) b.output(o);
  const xs = Array.from({ length: 12 }, (_, i) => i - 4);
  const at = (r: number, c: number): number => xs[r * 4 + c];
  const res = await runBuilt(b, { x: f32(xs, [3, 4]) });
  assert.deepEqual(res[sl].dims, [2, 2]);
  assert.deepEqual(res[sl].data, [at(1, 3), at(1, 1), at(2, 3), at(2, 1)]);
  assert.deepEqual(res[p0].data, [at(0, 0), at(1, 0), at(2, 0)]);
  assert.deepEqual(res[p1].dims, [3, 3]);
  assert.deepEqual(
    res[cl].data,
    xs.map((v) => Math.min(2, Math.max(-1, v))),
  );
  assert.deepEqual(
    res[clMin].data,
    xs.map((v) => Math.max(0, v)),
  );
  assert.deepEqual(
    res[wh].data,
    xs.map((v) => (v > 0 ? v : -9)),
  );
  const rowSums = [0, 1, 2].map((r) => at(r, 0) + at(r, 1) + at(r, 2) + at(r, 3));
  assert.deepEqual(
    res[ex].data,
    rowSums.flatMap((s) => [s, s]),
  );
  assert.deepEqual(
    res[cc].data,
    [0, 1, 2].flatMap((r) => [at(r, 1), at(r, 2), at(r, 3), at(r, 0)]),
  );
});

test('dropout: inference mode is the identity; training mode zeroes by the mask and rescales', async () => {
  const b = new GraphBuilder('dropout');
  const x = b.input('x', 'float32', [1000]);
  const [yEval, mEval] = b.dropout(x, 0.25);
  const [yTrain, mTrain] = b.dropout(x, 0.25, true, 7);
  for (const o of [yEval, mEval, yTrain, mTrain]) b.output(o);
  const xs = Array.from({ length: 1000 }, (_, i) => 1 + (i % 7));
  const res = await runBuilt(b, { x: f32(xs, [1000]) });
  assert.deepEqual(res[yEval].data, xs);
  assert.ok(res[mEval].data.every((m) => m === 1));
  const kept = res[mTrain].data.filter((m) => m === 1).length;
  assert.ok(kept > 650 && kept < 850, `kept ${kept} of 1000 at ratio 0.25`);
  res[yTrain].data.forEach((y, i) => assert.ok(Math.abs(y - (res[mTrain].data[i] ? xs[i] / 0.75 : 0)) < 1e-5));
});

test('linear, fusedMatMul, einsum and gemm agree with a JS matmul', async () => {
  const b = new GraphBuilder('linalg');
  const x = b.input('x', 'float32', [2, 3]);
  const w = b.initializer('w', 'float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [3, 2]);
  const bias = b.initializer('bias', 'float32', Float32Array.from([10, 20]), [2]);
  const wt = b.initializer('wt', 'float32', Float32Array.from([1, 3, 5, 2, 4, 6]), [2, 3]);
  const lin = b.linear(x, w, bias);
  const fm = b.fusedMatMul(x, wt, { transB: true, alpha: 2 });
  const es = b.einsum('ij,kj->ik', x, wt);
  const gm = b.gemm(x, wt, bias, { transB: 1 });
  for (const o of [lin, fm, es, gm]) b.output(o);
  const xs = [1, -1, 2, 0.5, 3, -2];
  const res = await runBuilt(b, { x: f32(xs, [2, 3]) });
  const mm = [0, 1].flatMap((i) =>
    [0, 1].map((j) => [0, 1, 2].reduce((s, k) => s + xs[i * 3 + k] * [1, 2, 3, 4, 5, 6][k * 2 + j], 0)),
  );
  assertClose(
    res[lin].data,
    mm.map((v, i) => v + [10, 20][i % 2]),
    1e-6,
    'linear',
  );
  assertClose(
    res[fm].data,
    mm.map((v) => 2 * v),
    1e-6,
    'fusedMatMul',
  );
  assertClose(res[es].data, mm, 1e-6, 'einsum');
  assertClose(res[gm].data, res[lin].data, 1e-6, 'gemm');
  assert.equal(b.graph.nodes.find((n) => n.opType === 'FusedMatMul')?.domain, 'com.microsoft');
});

test('conv with padding and stride, maxPool with indices, layerNorm statistics', async () => {
  const b = new GraphBuilder('conv');
  const x = b.input('x', 'float32', [1, 1, 4, 4]);
  const w = b.initializer('w', 'float32', Float32Array.from([1, 0, 0, -1]), [1, 1, 2, 2]);
  const c = b.conv(x, w, undefined, { pads: [1, 1, 0, 0], strides: [2, 2] });
  const [mp, idx] = b.maxPoolWithIndices(x, [2, 2], { strides: [2, 2] });
  const h = b.input('h', 'float32', [2, 3]);
  const [ln, mean, inv] = b.layerNormWithStats(h, b.initializer('g', 'float32', Float32Array.from([1, 1, 1]), [3]));
  for (const o of [c, mp, idx, ln, mean, inv]) b.output(o);
  const xs = Array.from({ length: 16 }, (_, i) => (i * 7) % 11);
  const hs = [1, 2, 6, -1, 0, 1];
  const res = await runBuilt(b, { x: f32(xs, [1, 1, 4, 4]), h: f32(hs, [2, 3]) });
  const px = (r: number, col: number): number => (r < 0 || col < 0 || r > 3 || col > 3 ? 0 : xs[r * 4 + col]);
  const convRef: number[] = [];
  for (let oy = 0; oy < 2; oy++)
    for (let ox = 0; ox < 2; ox++) convRef.push(px(oy * 2 - 1, ox * 2 - 1) - px(oy * 2, ox * 2));
  assert.deepEqual(res[c].dims, [1, 1, 2, 2]);
  assert.deepEqual(res[c].data, convRef);
  const poolRef: number[] = [];
  const idxRef: number[] = [];
  for (let oy = 0; oy < 2; oy++) {
    for (let ox = 0; ox < 2; ox++) {
      const cand = [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
      ].map(([dy, dx]) => (oy * 2 + dy) * 4 + ox * 2 + dx);
      const best = cand.reduce((a, k) => (xs[k] > xs[a] ? k : a), cand[0]);
      poolRef.push(xs[best]);
      idxRef.push(best);
    }
  }
  assert.deepEqual(res[mp].data, poolRef);
  assert.deepEqual(res[idx].data, idxRef);
  for (let r = 0; r < 2; r++) {
    const row = hs.slice(r * 3, r * 3 + 3);
    const m = row.reduce((a, v) => a + v, 0) / 3;
    const invStd = 1 / Math.sqrt(row.reduce((a, v) => a + (v - m) ** 2, 0) / 3 + 1e-5);
    assertClose([res[mean].data[r]], [m], 1e-6, 'mean');
    assertClose([res[inv].data[r]], [invStd], 1e-5, 'invStd');
    assertClose(
      res[ln].data.slice(r * 3, r * 3 + 3),
      row.map((v) => (v - m) * invStd),
      1e-5,
      'layerNorm',
    );
  }
  assert.deepEqual(res[mean].dims, [2, 1]);
});

test('softmaxCrossEntropy returns the mean loss and log-probabilities', async () => {
  const b = new GraphBuilder('loss');
  const s = b.input('s', 'float32', [2, 3]);
  const y = b.input('y', 'int64', [2]);
  const [loss, logp] = b.softmaxCrossEntropy(s, y);
  b.output(loss);
  b.output(logp);
  const scores = [1, 2, 3, 0, -1, 0.5];
  const labels = [2, 1];
  const res = await runBuilt(b, {
    s: f32(scores, [2, 3]),
    y: new ort.Tensor('int64', BigInt64Array.from([2n, 1n]), [2]),
  });
  const lp = [0, 1].flatMap((r) => {
    const row = scores.slice(r * 3, r * 3 + 3);
    const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
    return row.map((v) => v - lse);
  });
  assertClose(res[logp].data, lp, 1e-6, 'log_prob');
  assertClose(res[loss].data, [-(lp[labels[0]] + lp[3 + labels[1]]) / 2], 1e-6, 'loss');
  assert.deepEqual(res[loss].dims, []);
});

test('scopes give Optimum-style node names; clashing names are GraphErrors', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [1]);
  b.scope('encoder.layer.3.attention.self.query', () => b.relu(x));
  assert.equal(b.graph.nodes[0].name, '/encoder/layer.3/attention/self/query/Relu');
  assert.equal(modulePathToNodePrefix('bert.encoder.layer.10.output'), 'bert/encoder/layer.10/output');
  assert.throws(() => b.input('x', 'float32', [1]), GraphError);
});
