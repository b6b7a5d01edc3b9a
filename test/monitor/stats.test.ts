/**
 * Drift statistics against independent values: scipy 1.17.1 / numpy 2.4.6 on the same seeded samples
 * (test/monitor/scipy_reference.py regenerates the samples and prints every figure pasted here), with Evidently's
 * binning (get_binned_data) and Alibi Detect's MMD definitions re-expressed in numpy in that script.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  binnedShares,
  chiSquareTest,
  domainClassifierDrift,
  hellinger,
  jensenShannon,
  klDivergence,
  kolmogorovSf,
  ksTest,
  medianHeuristicSigma,
  mmdTest,
  normedWasserstein,
  psi,
  randomClassifierAucP95,
  rocAuc,
  sturgesEdges,
  wasserstein,
  zTest,
  type SparseRow,
} from '../../src/monitor/stats/index.ts';
import { categorical, normals } from './data.ts';

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected} (tol ${tol})`);
}

const a = normals(1, 200);
const b = normals(2, 150, 0.3, 1.0);

test('ks: exact two-sided p-values match scipy.stats.ks_2samp', () => {
  let r = ksTest(a, b);
  assert.equal(r.method, 'exact');
  close(r.statistic, 0.13, 1e-12, 'D');
  close(r.pValue, 0.10223791010642781, 1e-9, 'p');
  r = ksTest(a, a.slice(0, 77));
  close(r.statistic, 0.09012987012987013, 1e-12, 'D subset');
  close(r.pValue, 0.7159806472784068, 1e-9, 'p subset');
  r = ksTest(normals(3, 400), normals(4, 400, 0.05));
  close(r.statistic, 0.06, 1e-12, 'D n1 = n2');
  close(r.pValue, 0.4680435421303692, 1e-9, 'p n1 = n2');
  r = ksTest(a, normals(2, 150, 1.0));
  close(r.statistic, 0.39166666666666666, 1e-12, 'D strong shift');
  close(r.pValue, 3.154806314868256e-12, 1e-14, 'p strong shift');
  // Ties: D is taken after all tied values are consumed.
  r = ksTest([1, 2, 2, 3, 3, 3, 4], [2, 3, 4, 4, 5, 5]);
  close(r.statistic, 0.5238095238095238, 1e-12, 'D ties');
  close(r.pValue, 0.2773892773892773, 1e-9, 'p ties');
  assert.deepEqual(ksTest([1, 2, 3], [1, 2, 3]), { statistic: 0, pValue: 1, method: 'exact' });
  // Sizes a live window reaches: still exact (scipy's 'auto' is exact up to 10,000 rows per sample).
  r = ksTest(normals(1, 1000), normals(2, 5000, 0.05));
  close(r.statistic, 0.0252, 1e-12, 'D 1000/5000');
  close(r.pValue, 0.6588320499535053, 1e-9, 'p 1000/5000');
  r = ksTest(normals(1, 10000), normals(2, 10000, 0.02));
  assert.equal(r.method, 'exact');
  close(r.pValue, 0.060578846945709426, 1e-9, 'p 10000/10000');
});

test('ks: large samples use the Kolmogorov limit (scipy: kstwobign.sf, and ks_2samp asymptotic)', () => {
  close(kolmogorovSf(1.0), 0.26999967167735456, 1e-12, 'Q(1)');
  close(kolmogorovSf(0.5), 0.9639452436648751, 1e-12, 'Q(0.5)');
  close(kolmogorovSf(2.0), 0.0006709252557796953, 1e-14, 'Q(2)');
  const r = ksTest(normals(21, 12000), normals(22, 11000, 0.03));
  assert.equal(r.method, 'asymptotic');
  close(r.statistic, 0.024037878787878775, 1e-12, 'D');
  // scipy uses the exact one-sample distribution at n = round(n1·n2/(n1+n2)); Stephens' corrected limit is
  // within a few percent of it at this size.
  close(r.pValue, 0.002591057357346272, 0.0001, 'p');
});

test('ks: bad input names the field', () => {
  assert.throws(() => ksTest([], [1]), /reference is empty/);
  assert.throws(() => ksTest([1, NaN], [1]), /reference\[1\] = NaN is not a finite number/);
});

test('wasserstein and normed wasserstein match scipy.stats.wasserstein_distance (/ np.std of the reference)', () => {
  close(wasserstein(a, b), 0.2673292315981256, 1e-12, 'W1');
  close(normedWasserstein(a, b), 0.27861424899737736, 1e-12, 'normed');
  // Hand check: W1 between {0} and {1} is 1; between {0, 1} and {0, 1} is 0.
  assert.equal(wasserstein([0], [1]), 1);
  assert.equal(wasserstein([0, 1], [1, 0]), 0);
});

test('binned distances match Evidently get_binned_data + numpy/scipy (numeric, Sturges bins)', () => {
  const edges = sturgesEdges([...a, ...b]);
  const expected = [
    -2.4729699816074553, -1.9368260737363, -1.4006821658651445, -0.8645382579939891, -0.3283943501228337,
    0.2077495577483215, 0.7438934656194771, 1.2800373734906327, 1.816181281361788, 2.352325189232943,
    2.8884690971040987,
  ];
  assert.equal(edges.length, expected.length);
  edges.forEach((e, k) => close(e, expected[k], 1e-12, `edge ${k}`));
  close(psi(a, b, 'numeric'), 0.19045383334156726, 1e-10, 'PSI');
  close(klDivergence(a, b, 'numeric'), 0.11258754732289769, 1e-10, 'KL');
  close(jensenShannon(a, b, 'numeric'), 0.1378651525709362, 1e-10, 'JS');
  close(hellinger(a, b, 'numeric'), 0.1470642267422412, 1e-10, 'Hellinger');
});

const cats = ['a', 'b', 'c', 'd'];
const r = categorical(5, 300, cats, [0.4, 0.3, 0.2, 0.1]);
const s = categorical(6, 200, cats, [0.3, 0.3, 0.25, 0.15]);

test('chi-squared (Evidently: expected = reference counts scaled) matches scipy.stats.chisquare', () => {
  const t = chiSquareTest(r, s);
  close(t.statistic, 31.36517723437671, 1e-9, 'chi2');
  close(t.pValue, 7.120984237055346e-7, 1e-12, 'p');
  assert.equal(t.df, 3);
  // A category the reference never had: infinite statistic, p = 0.
  assert.equal(chiSquareTest(['a', 'b'], ['a', 'z']).pValue, 0);
});

test('categorical JS distance and PSI match Evidently get_binned_data + scipy', () => {
  close(jensenShannon(r, s, 'categorical'), 0.11947949937074125, 1e-10, 'JS');
  close(psi(r, s, 'categorical'), 0.1164405477374486, 1e-10, 'PSI');
  // Evidently fills empty bins: here "z" is absent from the reference, filled with 0.0001.
  const bins = binnedShares(['a', 'a', 'b', 'b'], ['a', 'z'], 'categorical', true);
  assert.deepEqual(bins.bins, ['a', 'b', 'z']);
  assert.deepEqual(bins.reference, [0.5, 0.5, 0.0001]);
  assert.deepEqual(bins.current, [0.5, 0.0001, 0.5]);
});

test('proportion z-test matches Evidently proportions_diff_z_test (numpy/scipy.stats.norm)', () => {
  const x = categorical(7, 250, ['no', 'yes'], [0.6, 0.4]);
  const y = categorical(8, 180, ['no', 'yes'], [0.5, 0.5]);
  const t = zTest(x, y);
  close(t.statistic, 0.6935223878474307, 1e-12, 'z');
  close(t.pValue, 0.48798178108907186, 1e-12, 'p');
  assert.deepEqual(zTest(['x', 'x'], ['x']), { statistic: 0, pValue: 1 });
});

test('MMD: median-heuristic sigma and unbiased MMD² match Alibi Detect definitions in numpy', () => {
  const n1 = normals(11, 40);
  const n2 = normals(12, 40);
  const c1 = normals(13, 30, 0.5);
  const c2 = normals(14, 30);
  const ref = n1.map((v, i) => [v, n2[i]]);
  const cur = c1.map((v, i) => [v, c2[i]]);
  close(medianHeuristicSigma(ref), 1.0876728759089012, 1e-12, 'sigma');
  const res = mmdTest(ref, cur, { seed: 1 });
  close(res.mmd2, 0.08253981792592846, 1e-12, 'MMD²');
  assert.equal(res.permutations, 100);
  // Same distribution: a large p-value; a clear shift: p below 0.05.
  const same = mmdTest(
    ref,
    ref.slice(0, 30).map((p) => [p[0] + 1e-9, p[1]]),
    { seed: 1 },
  );
  assert.ok(same.pValue > 0.5, `same p = ${same.pValue}`);
  const far = mmdTest(
    ref,
    cur.map((p) => [p[0] + 1, p[1]]),
    { seed: 1 },
  );
  assert.ok(far.pValue < 0.05, `shifted p = ${far.pValue}`);
});

test('ROC AUC with ties matches Mann–Whitney U / (n1·n0) (scipy.stats.mannwhitneyu)', () => {
  const lab = [0, 0, 1, 1, 0, 1, 1, 0, 1, 0];
  const sc = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.4, 0.2, 0.7, 0.65];
  close(rocAuc(lab, sc), 0.8, 1e-12, 'AUC');
  assert.throws(() => rocAuc([1, 1], [0.1, 0.2]), /both classes/);
});

test('random-classifier AUC threshold: the 95th percentile matches the Mann–Whitney null (normal approximation)', () => {
  // Under H0 the AUC has mean 1/2 and variance (n1 + n0 + 1) / (12 n1 n0); for 100/100 the 95th percentile is
  // 0.5 + 1.6449 · sqrt(201 / 120000) = 0.56732. 1,000 draws: the empirical quantile is within ~0.005.
  const labels = Array.from({ length: 200 }, (_, i) => (i < 100 ? 1 : 0));
  close(randomClassifierAucP95(labels, 1000, 3), 0.5 + 1.6448536269514722 * Math.sqrt(201 / 120000), 0.006, 'p95');
});

test('domain classifier: fixed 0.55 threshold above 1,000 reference rows; separable features give AUC 1', () => {
  const row = (v: number): SparseRow => ({ indices: Int32Array.from([0]), values: Float64Array.from([v]) });
  const ref = normals(31, 1200).map(row);
  const far = normals(32, 300, 3).map(row);
  const r = domainClassifierDrift(ref, far, 1, { seed: 1 });
  assert.equal(r.method, 'fixed');
  assert.equal(r.threshold, 0.55);
  assert.ok(r.auc > 0.95 && r.drift, `AUC ${r.auc}`);
  const same = domainClassifierDrift(ref, normals(33, 300).map(row), 1, { seed: 1 });
  assert.ok(same.auc < 0.55 && !same.drift, `AUC ${same.auc}`);
  assert.throws(() => domainClassifierDrift(ref, [row(1)], 1), /at least 2 rows on each side, got 1200 and 1/);
});
