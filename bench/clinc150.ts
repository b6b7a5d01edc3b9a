/**
 * The full CLINC150 data set for the benchmarks (the tests use the committed slice, test/clinc150.ts): read from
 * $CLINC150_DIR, else `../shared/datasets/clinc150` beside the checkout; an Error names every place looked at.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readClincFile, type ClincRow } from '../test/clinc150.ts';

export { firstPerIntent, type ClincRow } from '../test/clinc150.ts';

let dir: string | undefined;

/** The full data set's folder. */
export function clincDir(): string {
  if (dir) return dir;
  const tried = [process.env.CLINC150_DIR, path.resolve(import.meta.dirname, '../../shared/datasets/clinc150')].filter(
    (d): d is string => !!d,
  );
  dir = tried.find((d) => fs.existsSync(path.join(d, 'train.csv')));
  if (!dir) throw new Error(`CLINC150 not found (no train.csv in ${tried.join(', ')}); set CLINC150_DIR to its folder`);
  return dir;
}

/** Every row of a split of the full data set. */
export function readClinc(split: string): ClincRow[] {
  return readClincFile(clincDir(), split);
}

/** The first `intents` intent names (sorted) of the full training split. */
export function clincIntents(intents: number): Set<string> {
  return new Set([...new Set(readClinc('train').map((r) => r.label))].sort().slice(0, intents));
}
