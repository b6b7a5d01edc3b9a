import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossProduct, SoftmaxProblem } from '../../src/runtime/dense.ts';

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float64Array {
  let s = seed;
  return Float64Array.from({ length: n }, () => {
    s = (s * 16807) % 2147483647;
    return (2 * s) / 2147483647 - 1;
  });
}

test('crossProduct: aᵀb equals the plain-JS sum over rows', async () => {
  const [n, p, q] = [7, 3, 4];
  const a = values(n * p, 3);
  const b = values(n * q, 5);
  const got = await crossProduct(a, b, n, p, q);
  assert.equal(got.length, p * q);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < q; j++) {
      let s = 0;
      for (let r = 0; r < n; r++) s += a[r * p + i] * b[r * q + j];
      assert.ok(Math.abs(got[i * q + j] - s) < 1e-12, `[${i}, ${j}]: ${got[i * q + j]} vs ${s}`);
    }
  }
  await assert.rejects(
    crossProduct(a, b, n, p + 1, q),
    /crossProduct: \[7, 4\] and \[7, 4\] need 28 and 28 values, got 21 and 28/,
  );
});

test('SoftmaxProblem: mean log-loss, correct count and gradient equal a plain-JS float64 softmax regression', async () => {
  const [n, d, k] = [9, 4, 3];
  const x = values(n * d, 7);
  const y = Array.from({ length: n }, (_, i) => (i * 2) % k);
  const w = values(d * k, 11);
  const b = values(k, 13);
  const p = await SoftmaxProblem.create(x, y, d, k);
  try {
    const got = await p.evaluate(w, b, true);
    let loss = 0;
    let correct = 0;
    const gw = new Float64Array(d * k);
    const gb = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const s = Array.from(
        { length: k },
        (_, c) => b[c] + Array.from({ length: d }, (_, j) => x[i * d + j] * w[j * k + c]).reduce((t, v) => t + v, 0),
      );
      const top = Math.max(...s);
      const z = s.reduce((t, v) => t + Math.exp(v - top), 0);
      loss += Math.log(z) + top - s[y[i]];
      if (s.indexOf(top) === y[i]) correct++;
      for (let c = 0; c < k; c++) {
        const g = (Math.exp(s[c] - top) / z - (c === y[i] ? 1 : 0)) / n;
        gb[c] += g;
        for (let j = 0; j < d; j++) gw[j * k + c] += x[i * d + j] * g;
      }
    }
    assert.ok(Math.abs(got.loss - loss / n) < 1e-12, `loss ${got.loss} vs ${loss / n}`);
    assert.equal(got.correct, correct);
    for (let i = 0; i < d * k; i++) assert.ok(Math.abs(got.gradWeight![i] - gw[i]) < 1e-12, `grad w[${i}]`);
    for (let c = 0; c < k; c++) assert.ok(Math.abs(got.gradBias![c] - gb[c]) < 1e-12, `grad b[${c}]`);
    const noGrad = await p.evaluate(w, b);
    assert.equal(noGrad.gradWeight, undefined);
    const scores = await p.scores(w, b);
    assert.equal(scores.length, n * k);
  } finally {
    await p.release();
  }
  await assert.rejects(
    SoftmaxProblem.create(x, [...y.slice(0, -1), 3], d, k),
    /SoftmaxProblem: label 3 of example 8 is outside \[0, 3\)/,
  );
});

test('SoftmaxProblem with weights: integer weights give the loss and gradient of the data with each row repeated that often', async () => {
  const [n, d, k] = [6, 3, 3];
  const x = values(n * d, 17);
  const y = [0, 1, 2, 1, 0, 2];
  const weights = [1, 2, 0, 3, 1, 1];
  const w = values(d * k, 19);
  const b = values(k, 23);
  // Row i repeated weights[i] times: the unweighted mean over the repeated rows is Σ wᵢℓᵢ / Σ wᵢ.
  const rx: number[] = [];
  const ry: number[] = [];
  weights.forEach((c, i) => {
    for (let r = 0; r < c; r++) {
      rx.push(...x.subarray(i * d, (i + 1) * d));
      ry.push(y[i]);
    }
  });
  const weighted = await SoftmaxProblem.create(x, y, d, k, { weights });
  const repeated = await SoftmaxProblem.create(Float64Array.from(rx), ry, d, k);
  try {
    const a = await weighted.evaluate(w, b, true);
    const r = await repeated.evaluate(w, b, true);
    assert.ok(Math.abs(a.loss - r.loss) < 1e-12, `loss ${a.loss} vs ${r.loss}`);
    for (let i = 0; i < d * k; i++) assert.ok(Math.abs(a.gradWeight![i] - r.gradWeight![i]) < 1e-12, `grad w[${i}]`);
    for (let c = 0; c < k; c++) assert.ok(Math.abs(a.gradBias![c] - r.gradBias![c]) < 1e-12, `grad b[${c}]`);
    // The correct count is over the 6 rows, unweighted.
    const plain = await SoftmaxProblem.create(x, y, d, k);
    try {
      assert.equal(a.correct, (await plain.evaluate(w, b)).correct);
    } finally {
      await plain.release();
    }
  } finally {
    await weighted.release();
    await repeated.release();
  }
  await assert.rejects(
    SoftmaxProblem.create(x, y, d, k, { weights: [1, 2] }),
    /SoftmaxProblem: 2 weights for 6 examples/,
  );
  await assert.rejects(
    SoftmaxProblem.create(x, y, d, k, { weights: [1, 1, -1, 1, 1, 1] }),
    /SoftmaxProblem: weight -1 of example 2 is not a finite number >= 0/,
  );
  await assert.rejects(SoftmaxProblem.create(x, y, d, k, { weights: new Array(6).fill(0) }), /the weights sum to 0/);
});
