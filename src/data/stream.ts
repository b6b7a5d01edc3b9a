/**
 * The streaming stage: read → validate → clean → dedup/leakage → (fingerprint) one row at a time, so a file of
 * any size passes with memory bounded by the parser buffers and the dedup hash tables.
 */
import { Deduplicator, type DedupOptions, type HeldOutKeys } from './dedup.ts';
import type { Fingerprinter } from './fingerprint.ts';
import { readTableBatches, type TableFormat } from './load.ts';
import type { SplitLog } from './report.ts';
import type { ColumnSpec, TextExample } from './types.ts';
import { checkRow, rowError } from './validate.ts';

export interface StreamOptions extends ColumnSpec, DedupOptions {
  format?: TableFormat;
  /** 'error' (default): the first invalid row throws a DataError naming file, line and column. 'drop': count and skip. */
  invalidRows?: 'error' | 'drop';
  /** Normalised keys of held-out rows (see heldOutKeys); matching rows are leakage. */
  heldOut?: HeldOutKeys;
  /** Receives every kept row in order. */
  fingerprinter?: Fingerprinter;
  /** Share one deduplicator across several files of the same split. */
  deduplicator?: Deduplicator;
}

/** Streams cleaned, validated, deduplicated examples from `files`, counting every removal in `log`. */
export async function* streamExamples(
  files: string | string[],
  options: StreamOptions,
  log: SplitLog,
): AsyncGenerator<TextExample> {
  const dedup = options.deduplicator ?? new Deduplicator(options, options.heldOut);
  const required = [options.textColumn, options.labelColumn, ...(options.groupColumn ? [options.groupColumn] : [])];
  for (const file of Array.isArray(files) ? files : [files]) {
    for await (const batch of readTableBatches(file, { format: options.format, requiredColumns: required })) {
      for (const event of batch) {
        log.read();
        const checked = checkRow(event, options);
        if (!checked.ok) {
          if (options.invalidRows !== 'drop') throw rowError(checked.reason, checked.issue);
          log.removed(checked.reason, checked.issue);
          continue;
        }
        const ex = checked.example;
        const verdict = dedup.check(ex);
        if (verdict.action !== 'keep') {
          const issue = { file: ex.file, line: ex.line, field: options.textColumn, message: verdict.message };
          if (verdict.action === 'remove') {
            log.removed(verdict.reason, issue);
            continue;
          }
          log.flagged(verdict.reason, issue);
        }
        log.report.rowsKept++;
        log.report.classCounts[ex.label] = (log.report.classCounts[ex.label] ?? 0) + 1;
        options.fingerprinter?.add(ex);
        yield ex;
      }
    }
  }
}
