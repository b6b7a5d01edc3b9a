/**
 * McNemar's exact test for two classifiers scored on the same examples. Only discordant pairs matter:
 * b = A right and B wrong, c = A wrong and B right. Under H0 (equal error rates) b ~ Binomial(b + c, 1/2);
 * the two-sided p-value is min(1, 2·P(X ≤ min(b, c))), as in statsmodels' mcnemar(exact=True).
 */
import { ConfigError } from '../errors.ts';
import { logChoose } from './stats.ts';

export interface McNemarResult {
  /** A correct, B wrong. */
  b: number;
  /** A wrong, B correct. */
  c: number;
  pValue: number;
}

/** Exact two-sided McNemar p-value from the discordant counts. */
export function mcnemarExact(b: number, c: number): McNemarResult {
  if (!Number.isInteger(b) || !Number.isInteger(c) || b < 0 || c < 0)
    throw new ConfigError(`McNemar counts must be non-negative integers, got b=${b}, c=${c}`, { field: 'mcnemar' });
  const n = b + c;
  if (n === 0) return { b, c, pValue: 1 };
  const k = Math.min(b, c);
  // Sum in log space: 2^-n underflows for n > 1074.
  const ln2n = n * Math.LN2;
  let max = -Infinity;
  const terms: number[] = [];
  for (let i = 0; i <= k; i++) {
    const t = logChoose(n, i) - ln2n;
    terms.push(t);
    max = Math.max(max, t);
  }
  let sum = 0;
  for (const t of terms) sum += Math.exp(t - max);
  const tail = Math.exp(max + Math.log(sum));
  return { b, c, pValue: Math.min(1, 2 * tail) };
}

export interface ModelComparison extends McNemarResult {
  accuracyA: number;
  accuracyB: number;
  /** accuracyB − accuracyA. */
  difference: number;
  /** Both right / both wrong, completing the 2×2 table. */
  bothCorrect: number;
  bothWrong: number;
  count: number;
}

/** Compares predictions of model A (e.g. baseline) and model B (e.g. customized) on the same examples. */
export function compareModels(
  yTrue: ArrayLike<number>,
  predA: ArrayLike<number>,
  predB: ArrayLike<number>,
): ModelComparison {
  if (predA.length !== yTrue.length || predB.length !== yTrue.length) {
    throw new ConfigError(
      `compareModels needs predictions for the same ${yTrue.length} examples, got ${predA.length} and ${predB.length}`,
      { field: 'baseline' },
    );
  }
  let b = 0;
  let c = 0;
  let both = 0;
  let neither = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const a = predA[i] === yTrue[i];
    const bb = predB[i] === yTrue[i];
    if (a && bb) both++;
    else if (a) b++;
    else if (bb) c++;
    else neither++;
  }
  const n = yTrue.length;
  const accuracyA = n ? (both + b) / n : 0;
  const accuracyB = n ? (both + c) / n : 0;
  return {
    ...mcnemarExact(b, c),
    accuracyA,
    accuracyB,
    difference: accuracyB - accuracyA,
    bothCorrect: both,
    bothWrong: neither,
    count: n,
  };
}
