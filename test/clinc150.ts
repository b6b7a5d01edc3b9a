/**
 * CLINC150 (CC BY 3.0) for the tests and benchmarks, read where the environment keeps it and never copied into the
 * repository: $CLINC150_DIR, else `../shared/datasets/clinc150` beside the checkout, else the dev machine's
 * `/work/shared/datasets/clinc150` (so a clone in a temporary folder finds it without a hand-made link).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';

export interface ClincRow {
  text: string;
  label: string;
}

let dir: string | undefined;

/** The dataset folder; an Error naming every place looked at when it is in none of them. */
export function clincDir(): string {
  if (dir) return dir;
  const tried = [
    process.env.CLINC150_DIR,
    path.resolve(import.meta.dirname, '../../shared/datasets/clinc150'),
    '/work/shared/datasets/clinc150',
  ].filter((d): d is string => !!d);
  dir = tried.find((d) => fs.existsSync(path.join(d, 'train.csv')));
  if (!dir) throw new Error(`CLINC150 not found (no train.csv in ${tried.join(', ')}); set CLINC150_DIR to its folder`);
  return dir;
}

/** Path of one of the dataset's files (`train.csv`, `oos_test.csv`, ...). */
export function clincPath(file: string): string {
  return path.join(clincDir(), file);
}

const cache = new Map<string, ClincRow[]>();

/** Every row of a split (`train`, `validation`, `test`, `oos_train`, ...), file order, intent as `label`. */
export function readClinc(split: string): ClincRow[] {
  let rows = cache.get(split);
  if (!rows) {
    const raw = parse(fs.readFileSync(clincPath(`${split}.csv`)), { columns: true, skip_empty_lines: true }) as {
      text: string;
      intent: string;
    }[];
    rows = raw.map((r) => ({ text: r.text, label: r.intent }));
    cache.set(split, rows);
  }
  return rows;
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
export function clincIntents(intents: number): Set<string> {
  return new Set([...new Set(readClinc('train').map((r) => r.label))].sort().slice(0, intents));
}
