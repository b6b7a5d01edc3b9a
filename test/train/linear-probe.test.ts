import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitLinearHead, linearScores } from '../../src/train/linear-probe.ts';
import { subsample, perClassCounts } from '../../src/audit/data.ts';

/** Plain Gauss-Jordan solve of A X = B (float64), independent of the Cholesky path under test. */
function solve(a: number[][], b: number[][]): number[][] {
  const n = a.length;
  const m = a.map((row, i) => [...row, ...b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    [m[c], m[p]] = [m[p], m[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r][c] / m[c][c];
      for (let k = c; k < m[r].length; k++) m[r][k] -= f * m[c][k];
    }
  }
  return m.map((row, i) => row.slice(n).map((v) => v / m[i][i]));
}

test('ridge head equals the normal-equation solution on centred data (one-hot in {-1, 1})', async () => {
  const X = [
    [1, 2, 0.5],
    [0.3, -1, 2],
    [2, 0.1, -0.4],
    [-1, 1, 1],
    [0.5, 0.5, 0.5],
    [3, -2, 0],
  ];
  const y = [0, 1, 2, 1, 0, 2];
  const d = 3;
  const k = 3;
  const n = X.length;
  const mean = [0, 1, 2].map((j) => X.reduce((s, r) => s + r[j], 0) / n);
  const Y = y.map((c) => [0, 1, 2].map((j) => (j === c ? 1 : -1)));
  const ym = [0, 1, 2].map((j) => Y.reduce((s, r) => s + r[j], 0) / n);
  const Xc = X.map((r) => r.map((v, j) => v - mean[j]));
  const Yc = Y.map((r) => r.map((v, j) => v - ym[j]));
  const G = [0, 1, 2].map((a) => [0, 1, 2].map((b) => Xc.reduce((s, r) => s + r[a] * r[b], 0)));
  const trace = G[0][0] + G[1][1] + G[2][2];
  const lambda = 0.1;
  const A = G.map((row, i) => row.map((v, j) => v + (i === j ? (lambda * trace) / d : 0)));
  const B = [0, 1, 2].map((a) => [0, 1, 2].map((c) => Xc.reduce((s, r, i) => s + r[a] * Yc[i][c], 0)));
  const W = solve(A, B);
  const bias = [0, 1, 2].map((c) => ym[c] - mean.reduce((s, m, j) => s + m * W[j][c], 0));

  const head = await fitLinearHead(Float32Array.from(X.flat()), y, d, k, {
    lambdas: [lambda],
    validation: { features: Float32Array.from(X.flat()), labels: y },
  });
  assert.equal(head.lambda, lambda);
  for (let j = 0; j < d; j++)
    for (let c = 0; c < k; c++)
      assert.ok(
        Math.abs(head.weight[j * k + c] - W[j][c]) < 1e-5,
        `W[${j}][${c}] ${head.weight[j * k + c]} vs ${W[j][c]}`,
      );
  for (let c = 0; c < k; c++) assert.ok(Math.abs(head.bias[c] - bias[c]) < 1e-5);
  const s = linearScores(head, Float32Array.from([1, 1, 1]));
  for (let c = 0; c < k; c++) assert.ok(Math.abs(s[c] - (bias[c] + W[0][c] + W[1][c] + W[2][c])) < 1e-5);
});

test('ridge head separates separable classes and picks the strength on validation', async () => {
  // Two Gaussian-free clusters on a line: class = sign of x0.
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < 40; i++) {
    const c = i % 2;
    xs.push(c ? 1 + (i % 7) * 0.1 : -1 - (i % 5) * 0.1, (i % 3) - 1);
    ys.push(c);
  }
  const f = Float32Array.from(xs);
  const head = await fitLinearHead(f, ys, 2, 2, { validation: { features: f, labels: ys } });
  assert.equal(head.search.length, 5);
  assert.ok(head.search.every((s) => s.validationAccuracy === 1));
  // All tie: the strongest regulariser wins.
  assert.equal(head.lambda, 1);
  const sc = linearScores(head, f);
  for (let i = 0; i < ys.length; i++) assert.equal(sc[2 * i + 1] > sc[2 * i] ? 1 : 0, ys[i]);
});

test('fitLinearHead rejects labels out of range and mismatched sizes', async () => {
  await assert.rejects(fitLinearHead(new Float32Array(4), [0, 3], 2, 2), /label 3 of example 1 is outside \[0, 2\)/);
  await assert.rejects(fitLinearHead(new Float32Array(5), [0, 1], 2, 2), /5 feature values for 2 examples of width 2/);
});

test('subsample keeps class shares (at least one each), is seeded and keeps input order', () => {
  const rows = [
    ...Array.from({ length: 90 }, (_, i) => ({ label: 'a', i })),
    ...Array.from({ length: 9 }, (_, i) => ({ label: 'b', i: 90 + i })),
    { label: 'c', i: 99 },
  ];
  const s = subsample(rows, 20, 7);
  assert.deepEqual(perClassCounts(s, ['a', 'b', 'c']), [18, 2, 1]);
  assert.deepEqual(
    s.map((r) => r.i),
    [...s.map((r) => r.i)].sort((x, y) => x - y),
  );
  assert.deepEqual(subsample(rows, 20, 7), s);
  assert.notDeepEqual(
    subsample(rows, 20, 8).map((r) => r.i),
    s.map((r) => r.i),
  );
  assert.equal(subsample(rows, 1000, 0).length, 100);
});

test('weighted ridge head: integer weights give the head fitted on the rows repeated that often', async () => {
  const X = [
    [1, 2, 0.5],
    [0.3, -1, 2],
    [2, 0.1, -0.4],
    [-1, 1, 1],
    [0.5, 0.5, 0.5],
    [3, -2, 0],
    [0.2, 0.4, -1],
  ];
  const y = [0, 1, 2, 1, 0, 2, 1];
  const weights = [1, 3, 0, 2, 1, 1, 2];
  const rx: number[][] = [];
  const ry: number[] = [];
  weights.forEach((c, i) => {
    for (let r = 0; r < c; r++) {
      rx.push(X[i]);
      ry.push(y[i]);
    }
  });
  const weighted = await fitLinearHead(Float32Array.from(X.flat()), y, 3, 3, { lambdas: [0.1], weights });
  const repeated = await fitLinearHead(Float32Array.from(rx.flat()), ry, 3, 3, { lambdas: [0.1] });
  for (let i = 0; i < 9; i++)
    assert.ok(
      Math.abs(weighted.weight[i] - repeated.weight[i]) < 1e-5,
      `W[${i}] ${weighted.weight[i]} vs ${repeated.weight[i]}`,
    );
  for (let c = 0; c < 3; c++)
    assert.ok(
      Math.abs(weighted.bias[c] - repeated.bias[c]) < 1e-5,
      `b[${c}] ${weighted.bias[c]} vs ${repeated.bias[c]}`,
    );
  // And it differs from the unweighted fit (the weights matter).
  const plain = await fitLinearHead(Float32Array.from(X.flat()), y, 3, 3, { lambdas: [0.1] });
  assert.ok(plain.weight.some((v, i) => Math.abs(v - weighted.weight[i]) > 1e-3));
  await assert.rejects(
    fitLinearHead(Float32Array.from(X.flat()), y, 3, 3, { weights: [1, 2] }),
    /fitLinearHead: 2 weights for 7 examples/,
  );
});
