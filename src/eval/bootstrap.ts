/**
 * Seeded non-parametric bootstrap with percentile intervals: resample examples with replacement, recompute the
 * statistics, take the (1−c)/2 and (1+c)/2 quantiles. Every statistic is computed on the same resamples so the
 * intervals are mutually consistent.
 */
import { ConfigError } from '../errors.ts';
import { createRng } from '../util/rng.ts';
import { quantileSorted } from './stats.ts';

export interface BootstrapOptions {
  /** Number of resamples. Default 1000. */
  iterations?: number;
  /** Coverage of the interval. Default 0.95. */
  confidence?: number;
  /** Default 0. The same seed gives the same intervals. */
  seed?: number | string;
}

export interface Interval {
  /** The statistic on the full data. */
  estimate: number;
  lower: number;
  upper: number;
}

/**
 * Bootstrap intervals for named statistics of `n` examples. `statistics` receives the example indices of one
 * resample (the identity for the point estimate) and returns a value per name.
 */
export function bootstrapIntervals(
  n: number,
  statistics: (indices: Int32Array) => Record<string, number>,
  options: BootstrapOptions = {},
): Record<string, Interval> {
  const iterations = options.iterations ?? 1000;
  const confidence = options.confidence ?? 0.95;
  if (!Number.isInteger(iterations) || iterations < 1)
    throw new ConfigError(`bootstrap iterations must be a positive integer, got ${iterations}`, {
      field: 'bootstrap.iterations',
    });
  if (!(confidence > 0 && confidence < 1))
    throw new ConfigError(`bootstrap confidence must be in (0, 1), got ${confidence}`, {
      field: 'bootstrap.confidence',
    });
  const identity = new Int32Array(n);
  for (let i = 0; i < n; i++) identity[i] = i;
  const estimate = statistics(identity);
  const names = Object.keys(estimate);
  const samples = new Map(names.map((k) => [k, new Float64Array(iterations)]));
  const rng = createRng(options.seed ?? 0);
  const idx = new Int32Array(n);
  for (let it = 0; it < iterations; it++) {
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    const s = statistics(idx);
    for (const k of names) samples.get(k)![it] = s[k];
  }
  const alpha = (1 - confidence) / 2;
  const out: Record<string, Interval> = {};
  for (const k of names) {
    // A statistic can be undefined on some resamples (a ratio whose denominator vanished, a group absent from the
    // resample); those resamples are left out of that statistic's interval rather than sorted in as NaN.
    const sorted = samples
      .get(k)!
      .filter((v) => !Number.isNaN(v))
      .sort();
    out[k] = { estimate: estimate[k], lower: quantileSorted(sorted, alpha), upper: quantileSorted(sorted, 1 - alpha) };
  }
  return out;
}
