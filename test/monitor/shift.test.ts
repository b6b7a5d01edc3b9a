/**
 * Synthetic shifts (seeded) get the verdict Evidently's definitions give: mean shift, variance change, new
 * category, label-prior shift and vocabulary shift are flagged; a split of one distribution is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { columnDrift, datasetDrift, embeddingDrift, textDrift } from '../../src/monitor/drift.ts';
import { readClinc } from '../clinc150.ts';
import { categorical, normals } from './data.ts';

test('mean shift: K-S on a small reference, normed Wasserstein on a large one; same distribution: no drift', () => {
  const ref = normals(1, 500);
  let d = columnDrift('x', ref, normals(2, 400, 0.4));
  assert.equal(d.test, 'ks');
  assert.equal(d.threshold, 0.05);
  assert.equal(d.drift, true, `p = ${d.score}`);
  d = columnDrift('x', ref, normals(3, 400));
  assert.equal(d.drift, false, `same distribution p = ${d.score}`);
  const big = normals(4, 2000);
  d = columnDrift('x', big, normals(5, 800, 0.4));
  assert.equal(d.test, 'wasserstein');
  assert.equal(d.threshold, 0.1);
  assert.ok(d.drift && d.score > 0.3, `normed W = ${d.score}`);
  d = columnDrift('x', big, normals(6, 800));
  assert.ok(!d.drift && d.score < 0.1, `same distribution normed W = ${d.score}`);
});

test('variance change: same mean, doubled standard deviation is flagged by K-S', () => {
  const d = columnDrift('x', normals(7, 600), normals(8, 600, 0, 2));
  assert.equal(d.drift, true, `p = ${d.score}`);
});

test('new category: chi-squared p = 0 (small reference), Jensen–Shannon >= 0.1 (large)', () => {
  const cats = ['billing', 'refund', 'login'];
  const ref = categorical(9, 600, cats, [0.5, 0.3, 0.2]);
  const cur = categorical(10, 300, [...cats, 'crypto'], [0.35, 0.2, 0.15, 0.3]);
  let d = columnDrift('label', ref, cur);
  assert.equal(d.type, 'categorical');
  assert.equal(d.test, 'chisquare');
  assert.equal(d.score, 0);
  assert.equal(d.drift, true);
  d = columnDrift('label', categorical(11, 3000, cats, [0.5, 0.3, 0.2]), cur);
  assert.equal(d.test, 'jensenshannon');
  assert.ok(d.drift, `JS = ${d.score}`);
});

test('label-prior shift: detected on categorical and binary columns; same priors are not', () => {
  const cats = ['a', 'b', 'c', 'd'];
  const ref = categorical(12, 800, cats, [0.25, 0.25, 0.25, 0.25]);
  assert.equal(columnDrift('label', ref, categorical(13, 400, cats, [0.4, 0.3, 0.2, 0.1])).drift, true);
  assert.equal(columnDrift('label', ref, categorical(14, 400, cats, [0.25, 0.25, 0.25, 0.25])).drift, false);
  const bin = categorical(15, 800, ['no', 'yes'], [0.7, 0.3]);
  const z = columnDrift('flag', bin, categorical(16, 400, ['no', 'yes'], [0.55, 0.45]));
  assert.equal(z.type, 'binary');
  assert.equal(z.test, 'z');
  assert.equal(z.drift, true);
  assert.equal(columnDrift('flag', bin, categorical(17, 400, ['no', 'yes'], [0.7, 0.3])).drift, false);
});

test('per-type and per-column test selection, and the data-set share', () => {
  const ref = { x: normals(18, 300), y: normals(19, 300), z: normals(20, 300) };
  const cur = { x: normals(21, 300, 1), y: normals(22, 300), z: normals(23, 300) };
  let ds = datasetDrift(ref, cur);
  assert.deepEqual(
    ds.columns.map((c) => c.drift),
    [true, false, false],
  );
  assert.equal(ds.drift, false); // 1/3 < 0.5
  ds = datasetDrift(ref, cur, { driftShare: 0.3 });
  assert.equal(ds.drift, true);
  ds = datasetDrift(ref, cur, { numeric: { test: 'psi', threshold: 0.2 }, columns: { y: { test: 'wasserstein' } } });
  assert.deepEqual(
    ds.columns.map((c) => c.test),
    ['psi', 'wasserstein', 'psi'],
  );
  assert.equal(ds.columns[0].threshold, 0.2);
  assert.throws(
    () => columnDrift('x', ['a', 'b', 'c'], ['a', 'b', 'c'], { columns: { x: { test: 'ks' } } }),
    /test "ks" needs numbers, column has "a"/,
  );
});

test('vocabulary shift in text: the domain classifier flags unseen intents; a same-distribution split is not flagged', () => {
  const train = readClinc('train');
  const intents = [...new Set(train.map((r) => r.label))];
  const known = new Set(intents.slice(0, 20));
  const inDomain = train.filter((r) => known.has(r.label)).map((r) => r.text);
  const shifted = train.filter((r) => !known.has(r.label)).map((r) => r.text);
  // Interleaved halves of one pool: same distribution.
  const ref = inDomain.filter((_, i) => i % 2 === 0).slice(0, 300);
  const same = inDomain.filter((_, i) => i % 2 === 1).slice(0, 200);
  const t0 = textDrift(ref, same, { seed: 1 });
  assert.equal(t0.method, 'random-classifier-p95');
  assert.equal(t0.drift, false, `AUC ${t0.auc} vs ${t0.threshold}`);
  const t1 = textDrift(ref, shifted.slice(0, 200), { seed: 1 });
  assert.equal(t1.drift, true, `AUC ${t1.auc} vs ${t1.threshold}`);
  assert.ok(t1.auc > 0.8, `AUC ${t1.auc}`);
  assert.ok(t1.examples.every((e) => shifted.includes(e)));
});

test('embedding drift: classifier, MMD and ratio flag a shift in a few components; not a same-distribution split', () => {
  const dim = 8;
  const rows = (seed: number, n: number, shift: number): number[][] => {
    const cols = Array.from({ length: dim }, (_, k) => normals(seed * 100 + k, n, k < 3 ? shift : 0));
    return Array.from({ length: n }, (_, i) => cols.map((c) => c[i]));
  };
  // Normed Wasserstein's 0.1 is a large-sample threshold (Evidently uses it above 1,000 rows): sampling noise
  // alone reaches it at a hundred rows, so the ratio method gets large samples.
  const sizes = { model: [150, 100], mmd: [150, 100], ratio: [2000, 1000] };
  for (const method of ['model', 'mmd', 'ratio'] as const) {
    const [n, m] = sizes[method];
    const ref = rows(1, n, 0);
    const a = embeddingDrift(ref, rows(2, m, 0), { method, seed: 1 });
    const b = embeddingDrift(ref, rows(3, m, 0.8), { method, seed: 1 });
    assert.equal(a.drift, false, `${method} same: ${a.score} vs ${a.threshold}`);
    assert.equal(b.drift, true, `${method} moved: ${b.score} vs ${b.threshold}`);
  }
});
