/**
 * Hypothesis tests for categorical and binary columns, as Evidently runs them: the chi-squared goodness-of-fit
 * of the current counts against the reference shares scaled to the current size (scipy.stats.chisquare), and
 * the two-proportion Z-test on the share of one category. Distribution functions come from @stdlib.
 */
import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import { ConfigError } from '../../errors.ts';
import { compareValues, countBy, type Value } from './distance.ts';

export interface TestResult {
  statistic: number;
  pValue: number;
}

/** Chi-squared goodness of fit of observed counts to expected counts (same total), df = categories − 1. */
export function chiSquareGof(observed: number[], expected: number[]): TestResult & { df: number } {
  if (observed.length !== expected.length)
    throw new ConfigError(
      `chi-squared needs as many expected counts (${expected.length}) as observed (${observed.length})`,
      {
        field: 'expected',
      },
    );
  let stat = 0;
  for (let k = 0; k < observed.length; k++) {
    const d = observed[k] - expected[k];
    // A category the reference never had (expected 0) makes the statistic infinite: certain drift.
    stat += expected[k] === 0 ? (d === 0 ? 0 : Infinity) : (d * d) / expected[k];
  }
  const df = observed.length - 1;
  if (df < 1) return { statistic: stat, pValue: 1, df };
  const pValue = stat === Infinity ? 0 : Math.max(0, 1 - chisquareCdf(stat, df));
  return { statistic: stat, pValue, df };
}

/** Evidently's chi-squared column test: expected = reference counts × (n_current / n_reference). */
export function chiSquareTest(reference: ArrayLike<Value>, current: ArrayLike<Value>): TestResult & { df: number } {
  if (reference.length === 0) throw new ConfigError('reference is empty', { field: 'reference' });
  if (current.length === 0) throw new ConfigError('current is empty', { field: 'current' });
  const keys = [...new Set([...Array.from(reference), ...Array.from(current)])];
  const rc = countBy(reference);
  const cc = countBy(current);
  const k = current.length / reference.length;
  return chiSquareGof(
    keys.map((key) => cc.get(key) ?? 0),
    keys.map((key) => (rc.get(key) ?? 0) * k),
  );
}

/** Two-sided p-value of a standard normal statistic, 2·(1 − Φ(|z|)). */
export function normalTwoSided(z: number): number {
  return 2 * (1 - normalCdf(Math.abs(z), 0, 1));
}

/**
 * Evidently's proportion-difference Z-test on a binary column: the share of the first category (sorted order) in
 * each sample, pooled-variance z, two-sided p-value. Both samples one identical value: p = 1.
 */
export function zTest(reference: ArrayLike<Value>, current: ArrayLike<Value>): TestResult {
  if (reference.length === 0) throw new ConfigError('reference is empty', { field: 'reference' });
  if (current.length === 0) throw new ConfigError('current is empty', { field: 'current' });
  const keys = [...new Set([...Array.from(reference), ...Array.from(current)])].sort(compareValues);
  if (keys.length === 1) return { statistic: 0, pValue: 1 };
  const target = keys[0];
  const n1 = reference.length;
  const n2 = current.length;
  let x1 = 0;
  let x2 = 0;
  for (let i = 0; i < n1; i++) if (reference[i] === target) x1++;
  for (let i = 0; i < n2; i++) if (current[i] === target) x2++;
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const p = (x1 + x2) / (n1 + n2);
  const z = (p1 - p2) / Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
  return { statistic: z, pValue: normalTwoSided(z) };
}
