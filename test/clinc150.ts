/**
 * CLINC150 (CC BY 3.0) for the tests: the slice committed in test/fixtures/clinc150 (see its README), so that
 * `npm test` needs nothing outside the repository. The benchmarks read the full data set (bench/clinc150.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';

export interface ClincRow {
  text: string;
  label: string;
}

/** The committed slice's folder. */
export const CLINC_SLICE_DIR = path.resolve(import.meta.dirname, 'fixtures/clinc150');

/** Path of one of the slice's files (`train.csv`, `oos_test.csv`, ...). */
export function clincPath(file: string): string {
  return path.join(CLINC_SLICE_DIR, file);
}

const cache = new Map<string, ClincRow[]>();

/** Every row of `split` (`train`, `validation`, `test`, `oos_train`, ...) in `dir`, file order, intent as `label`. */
export function readClincFile(dir: string, split: string): ClincRow[] {
  const file = path.join(dir, `${split}.csv`);
  let rows = cache.get(file);
  if (!rows) {
    const raw = parse(fs.readFileSync(file), { columns: true, skip_empty_lines: true }) as {
      text: string;
      intent: string;
    }[];
    rows = raw.map((r) => ({ text: r.text, label: r.intent }));
    cache.set(file, rows);
  }
  return rows;
}

/** Every row of a split of the committed slice. */
export function readClinc(split: string): ClincRow[] {
  return readClincFile(CLINC_SLICE_DIR, split);
}

/** The first `per` rows (file order) of each kept intent; `intents` keeps the first n intent names (sorted), or the names given. */
export function firstPerIntent(
  rows: readonly ClincRow[],
  per: number,
  intents?: number | ReadonlySet<string>,
): ClincRow[] {
  const keep =
    typeof intents === 'number' ? new Set([...new Set(rows.map((r) => r.label))].sort().slice(0, intents)) : intents;
  const count = new Map<string, number>();
  return rows.filter((r) => {
    if (keep && !keep.has(r.label)) return false;
    const c = (count.get(r.label) ?? 0) + 1;
    count.set(r.label, c);
    return c <= per;
  });
}

/** The first `intents` intent names (sorted) of the training split. */
export function clincIntents(intents: number, rows: readonly ClincRow[] = readClinc('train')): Set<string> {
  return new Set([...new Set(rows.map((r) => r.label))].sort().slice(0, intents));
}
