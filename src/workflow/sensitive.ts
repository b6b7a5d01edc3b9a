/**
 * Sensitive-column values of prepared rows, for disaggregated evaluation (`tailor evaluate`, `tailor customize`). A
 * second read of the data files: the prepared dataset keeps only text, label and one group column, and its rows
 * carry file and line.
 */
import { readTable } from '../data/load.ts';
import { DataError } from '../errors.ts';

/** The value of each sensitive column for every row of the files, keyed by file and line. */
export async function readSensitive(files: string[], columns: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const file of files) {
    for await (const ev of readTable(file, { requiredColumns: columns })) {
      if (ev.kind !== 'row') continue;
      out.set(
        `${ev.file}\u0000${ev.line}`,
        columns.map((c) => {
          const v = ev.values[c];
          return v === null || v === undefined ? '' : String(v).trim();
        }),
      );
    }
  }
  return out;
}

/** The sensitive values of `rows`, in their order; every row must have a non-empty value in every column. */
export function sensitiveFor(
  rows: ReadonlyArray<{ file: string; line: number }>,
  columns: string[],
  values: Map<string, string[]>,
): Record<string, string[]> {
  const out: Record<string, string[]> = Object.fromEntries(columns.map((c) => [c, [] as string[]]));
  for (const r of rows) {
    const v = values.get(`${r.file}\u0000${r.line}`);
    if (!v)
      throw new DataError(`${r.file}:${r.line}: row not found when reading the sensitive columns`, {
        file: r.file,
        line: r.line,
      });
    columns.forEach((c, j) => {
      if (v[j] === '')
        throw new DataError(`${r.file}:${r.line}: sensitive column "${c}" is empty`, {
          file: r.file,
          line: r.line,
          field: c,
        });
      out[c].push(v[j]);
    });
  }
  return out;
}
