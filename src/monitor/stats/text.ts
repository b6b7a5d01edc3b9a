/**
 * Text features for drift: whitespace tokens (lower-cased, so "Refund" and "refund" are one word), a vocabulary,
 * and TF-IDF rows with scikit-learn's TfidfVectorizer defaults (smooth idf, l2-normalised rows) plus the
 * sublinear tf Evidently's text drift uses.
 */
import type { SparseRow } from './classifier.ts';

/** Lower-cased whitespace tokens. */
export function tokens(text: string): string[] {
  return text
    .toLowerCase()
    .split(/\s+/)
    .filter((t) => t.length > 0);
}

/** Share of a text's tokens that are not in `vocabulary` (0 for an empty text). */
export function oovRate(text: string, vocabulary: ReadonlySet<string>): number {
  const t = tokens(text);
  if (t.length === 0) return 0;
  let out = 0;
  for (const w of t) if (!vocabulary.has(w)) out++;
  return out / t.length;
}

/** The distinct tokens of `texts`. */
export function vocabularyOf(texts: Iterable<string>): Set<string> {
  const v = new Set<string>();
  for (const t of texts) for (const w of tokens(t)) v.add(w);
  return v;
}

export interface Tfidf {
  rows: SparseRow[];
  dim: number;
  terms: string[];
}

/** TF-IDF (sublinear tf, smooth idf, l2 rows) fitted on all of `texts`. */
export function tfidf(texts: string[]): Tfidf {
  const index = new Map<string, number>();
  const df: number[] = [];
  const docs = texts.map((t) => {
    const counts = new Map<number, number>();
    for (const w of tokens(t)) {
      let id = index.get(w);
      if (id === undefined) {
        id = index.size;
        index.set(w, id);
        df.push(0);
      }
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of counts.keys()) df[id]++;
    return counts;
  });
  const n = texts.length;
  const idf = df.map((d) => Math.log((1 + n) / (1 + d)) + 1);
  const rows = docs.map((counts) => {
    const ids = [...counts.keys()].sort((a, b) => a - b);
    const values = Float64Array.from(ids, (id) => (1 + Math.log(counts.get(id) ?? 1)) * idf[id]);
    const norm = Math.sqrt(values.reduce((s, x) => s + x * x, 0)) || 1;
    for (let k = 0; k < values.length; k++) values[k] /= norm;
    return { indices: Int32Array.from(ids), values };
  });
  return { rows, dim: index.size, terms: [...index.keys()] };
}
