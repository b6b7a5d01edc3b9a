/**
 * Evidently-style data drift: one test per column chosen from the column's type and the reference size, with
 * Evidently's defaults (reference of at most 1,000 rows: K-S for numeric columns with more than 5 distinct values,
 * chi-squared for categorical, Z-test for binary, drift when p < 0.05; larger references: normed Wasserstein for
 * numeric, Jensen–Shannon for the others, drift when >= 0.1), any of them selectable per type or per column;
 * the data set drifts when at least `driftShare` (0.5) of the columns drift. Text and embeddings are tested as
 * whole rows (domain classifier, MMD, component ratio).
 */
import { ConfigError } from '../errors.ts';
import {
  binnedShares,
  chiSquareTest,
  domainClassifierDrift,
  denseToSparse,
  embeddingRatioDrift,
  hellinger,
  jensenShannon,
  klDivergence,
  ksTest,
  mmdTest,
  normedWasserstein,
  psi,
  tfidf,
  zTest,
  type Binned,
  type DomainClassifierOptions,
  type Value,
} from './stats/index.ts';

export const TEST_NAMES = ['ks', 'wasserstein', 'chisquare', 'z', 'jensenshannon', 'psi', 'kl', 'hellinger'] as const;
export type TestName = (typeof TEST_NAMES)[number];
export type ColumnType = 'numeric' | 'categorical' | 'binary';

/** Whether a test's score is a p-value (drift below the threshold) or a distance (drift at or above it). */
export const TEST_KIND: Record<TestName, 'p_value' | 'distance'> = {
  ks: 'p_value',
  chisquare: 'p_value',
  z: 'p_value',
  wasserstein: 'distance',
  jensenshannon: 'distance',
  psi: 'distance',
  kl: 'distance',
  hellinger: 'distance',
};

export interface ColumnTestConfig {
  test?: TestName;
  threshold?: number;
}

export interface DriftOptions {
  /** Per-type overrides of the default test/threshold. */
  numeric?: ColumnTestConfig;
  categorical?: ColumnTestConfig;
  binary?: ColumnTestConfig;
  /** Per-column overrides (take precedence over per-type ones). */
  columns?: Record<string, ColumnTestConfig>;
  /** Share of drifted columns for data-set drift. Default 0.5. */
  driftShare?: number;
  /** Reference size above which the large-sample defaults apply. Default 1000. */
  largeReference?: number;
}

export interface ColumnDrift {
  column: string;
  type: ColumnType;
  test: TestName;
  kind: 'p_value' | 'distance';
  /** The p-value or the distance. */
  score: number;
  threshold: number;
  drift: boolean;
  referenceCount: number;
  currentCount: number;
  /** Shares per bin of both samples, for plots. */
  distribution: Binned;
}

export interface DatasetDrift {
  columns: ColumnDrift[];
  driftedColumns: number;
  share: number;
  driftShare: number;
  drift: boolean;
}

/** Evidently's column type: binary (≤ 2 distinct values), categorical (strings, or ≤ 5 distinct numbers), numeric. */
export function columnType(reference: ArrayLike<Value>, current: ArrayLike<Value>): ColumnType {
  const all = [...Array.from(reference), ...Array.from(current)];
  const distinct = new Set(all).size;
  if (distinct <= 2) return 'binary';
  if (all.some((v) => typeof v !== 'number') || distinct <= 5) return 'categorical';
  return 'numeric';
}

/** Evidently's default test for a column type and reference size. */
export function defaultTest(type: ColumnType, referenceSize: number, largeReference = 1000): TestName {
  if (referenceSize <= largeReference) return type === 'numeric' ? 'ks' : type === 'categorical' ? 'chisquare' : 'z';
  return type === 'numeric' ? 'wasserstein' : 'jensenshannon';
}

/** Evidently's default threshold for a test. */
export function defaultThreshold(test: TestName): number {
  return TEST_KIND[test] === 'p_value' ? 0.05 : 0.1;
}

function runTest(test: TestName, reference: ArrayLike<Value>, current: ArrayLike<Value>, type: ColumnType): number {
  const kind = type === 'numeric' ? 'numeric' : 'categorical';
  const nums = (name: string, v: ArrayLike<Value>): number[] =>
    Array.from(v, (x) => {
      if (typeof x !== 'number')
        throw new ConfigError(`test "${test}" needs numbers, column has "${x}"`, { field: name, value: String(x) });
      return x;
    });
  switch (test) {
    case 'ks':
      return ksTest(nums('reference', reference), nums('current', current)).pValue;
    case 'wasserstein':
      return normedWasserstein(nums('reference', reference), nums('current', current));
    case 'chisquare':
      return chiSquareTest(reference, current).pValue;
    case 'z':
      return zTest(reference, current).pValue;
    case 'jensenshannon':
      return jensenShannon(reference, current, kind);
    case 'psi':
      return psi(reference, current, kind);
    case 'kl':
      return klDivergence(reference, current, kind);
    case 'hellinger':
      return hellinger(reference, current, kind);
  }
}

/** Drift of one column with the configured (or default) test. */
export function columnDrift(
  column: string,
  reference: ArrayLike<Value>,
  current: ArrayLike<Value>,
  options: DriftOptions = {},
): ColumnDrift {
  if (reference.length === 0 || current.length === 0)
    throw new ConfigError(`column "${column}" has no ${reference.length === 0 ? 'reference' : 'current'} values`, {
      field: column,
    });
  const type = columnType(reference, current);
  const cfg = { ...options[type], ...options.columns?.[column] };
  const test = cfg.test ?? defaultTest(type, reference.length, options.largeReference);
  if (!TEST_NAMES.includes(test))
    throw new ConfigError(`unknown drift test "${test}" for column "${column}"; one of ${TEST_NAMES.join(', ')}`, {
      field: column,
      value: test,
    });
  const threshold = cfg.threshold ?? defaultThreshold(test);
  const score = runTest(test, reference, current, type);
  const kind = TEST_KIND[test];
  return {
    column,
    type,
    test,
    kind,
    score,
    threshold,
    drift: kind === 'p_value' ? score < threshold : score >= threshold,
    referenceCount: reference.length,
    currentCount: current.length,
    distribution: binnedShares(reference, current, type === 'numeric' ? 'numeric' : 'categorical', false),
  };
}

/** Column-by-column drift and the data-set verdict over the columns both sides have. */
export function datasetDrift(
  reference: Record<string, ArrayLike<Value>>,
  current: Record<string, ArrayLike<Value>>,
  options: DriftOptions = {},
): DatasetDrift {
  const names = Object.keys(reference).filter((c) => c in current && reference[c].length && current[c].length);
  const columns = names.map((c) => columnDrift(c, reference[c], current[c], options));
  const driftedColumns = columns.filter((c) => c.drift).length;
  const driftShare = options.driftShare ?? 0.5;
  const share = columns.length ? driftedColumns / columns.length : 0;
  return { columns, driftedColumns, share, driftShare, drift: columns.length > 0 && share >= driftShare };
}

export interface TextDrift {
  auc: number;
  threshold: number;
  method: 'fixed' | 'random-classifier-p95';
  drift: boolean;
  /** Current texts the classifier found most unlike the reference. */
  examples: string[];
}

/** Text drift: a domain classifier on TF-IDF bag-of-words telling reference texts from current ones. */
export function textDrift(
  reference: string[],
  current: string[],
  options: DomainClassifierOptions & { examples?: number } = {},
): TextDrift {
  const features = tfidf([...reference, ...current]);
  const r = domainClassifierDrift(
    features.rows.slice(0, reference.length),
    features.rows.slice(reference.length),
    features.dim,
    options,
  );
  return {
    auc: r.auc,
    threshold: r.threshold,
    method: r.method,
    drift: r.drift,
    examples: r.mostCurrentLike.slice(0, options.examples ?? 10).map((i) => current[i - reference.length]),
  };
}

export type EmbeddingMethod = 'model' | 'mmd' | 'ratio';

export interface EmbeddingDriftOptions extends DomainClassifierOptions {
  method?: EmbeddingMethod;
  /** MMD: p-value threshold (0.05) and permutations (100). */
  pValue?: number;
  permutations?: number;
  /** Ratio: component threshold (0.1) and share (0.2). */
  componentThreshold?: number;
  ratioThreshold?: number;
}

export interface EmbeddingDrift {
  method: EmbeddingMethod;
  /** AUC (model), p-value (mmd) or share of drifted components (ratio). */
  score: number;
  threshold: number;
  drift: boolean;
}

/** Embedding drift by Evidently's domain classifier (default), Alibi's MMD, or Evidently's component ratio. */
export function embeddingDrift(
  reference: ArrayLike<ArrayLike<number>>,
  current: ArrayLike<ArrayLike<number>>,
  options: EmbeddingDriftOptions = {},
): EmbeddingDrift {
  const method = options.method ?? 'model';
  if (method === 'mmd') {
    const r = mmdTest(reference, current, { permutations: options.permutations, seed: options.seed });
    const threshold = options.pValue ?? 0.05;
    return { method, score: r.pValue, threshold, drift: r.pValue < threshold };
  }
  if (method === 'ratio') {
    const r = embeddingRatioDrift(reference, current, {
      componentThreshold: options.componentThreshold,
      threshold: options.ratioThreshold,
    });
    return { method, score: r.ratio, threshold: r.threshold, drift: r.drift };
  }
  const dim = reference.length ? reference[0].length : 0;
  const r = domainClassifierDrift(denseToSparse(reference), denseToSparse(current), dim, options);
  return { method, score: r.auc, threshold: r.threshold, drift: r.drift };
}
