/**
 * Embedding drift by Evidently's "ratio" method: each component is tested with normed Wasserstein (drifted when
 * >= 0.1), and the embedding drifts when at least 20% of the components drifted.
 */
import { ConfigError } from '../../errors.ts';
import { normedWasserstein } from './distance.ts';

export interface RatioOptions {
  /** Per-component normed Wasserstein threshold. Default 0.1. */
  componentThreshold?: number;
  /** Share of drifted components that makes the embedding drift. Default 0.2. */
  threshold?: number;
}

export interface RatioResult {
  /** Share of drifted components. */
  ratio: number;
  drift: boolean;
  threshold: number;
  /** Normed Wasserstein per component. */
  components: number[];
}

/** Per-component normed-Wasserstein ratio between reference and current embedding rows. */
export function embeddingRatioDrift(
  reference: ArrayLike<ArrayLike<number>>,
  current: ArrayLike<ArrayLike<number>>,
  options: RatioOptions = {},
): RatioResult {
  if (reference.length === 0 || current.length === 0)
    throw new ConfigError('embedding drift needs rows on both sides', {
      field: reference.length === 0 ? 'reference' : 'current',
    });
  const dim = reference[0].length;
  const components: number[] = [];
  const col = (rows: ArrayLike<ArrayLike<number>>, k: number): Float64Array =>
    Float64Array.from({ length: rows.length }, (_, i) => rows[i][k]);
  for (let k = 0; k < dim; k++) components.push(normedWasserstein(col(reference, k), col(current, k)));
  const ct = options.componentThreshold ?? 0.1;
  const threshold = options.threshold ?? 0.2;
  const ratio = components.filter((w) => w >= ct).length / Math.max(1, dim);
  return { ratio, drift: ratio >= threshold, threshold, components };
}
