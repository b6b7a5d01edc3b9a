/**
 * Data preparation entry point: `prepareDataset` turns train (and optional validation/eval) files into
 * validated, cleaned, deduplicated, split, optionally augmented and fingerprinted splits with a report.
 */
import { ConfigError, DataError } from '../errors.ts';
import { augmentText, type TextAugmentOptions } from './augment.ts';
import type { DedupOptions } from './dedup.ts';
import { heldOutKeys } from './dedup.ts';
import { fingerprintSplits } from './fingerprint.ts';
import type { TableFormat } from './load.ts';
import { SplitLog, type ClassBalanceRow, type DataReport } from './report.ts';
import { stratifiedSplit } from './split.ts';
import { streamExamples } from './stream.ts';
import type { TextExample } from './types.ts';
import { rowError } from './validate.ts';

export interface PrepareOptions extends DedupOptions {
  /** Train file(s): CSV, TSV, JSONL or Parquet. Several files are concatenated in order. */
  train: string | string[];
  /** Validation file(s). Without them, validation is a stratified split of train. */
  validation?: string | string[];
  /** Held-out evaluation file(s). */
  eval?: string | string[];
  format?: TableFormat;
  /** Default "text". */
  textColumn?: string;
  /** Default "label". */
  labelColumn?: string;
  /** Optional sensitive-feature column carried to evaluation for fairness metrics. */
  groupColumn?: string;
  /** Share of each class split off for validation when no validation file is given. Default 0.1. */
  validationFraction?: number;
  /** Seed for the split and augmentation. Default 0. */
  seed?: number;
  /** Classes with fewer train examples (after dedup) than this are an error, or dropped with rareClasses:'drop'. Default 2. */
  minExamplesPerClass?: number;
  rareClasses?: 'error' | 'drop';
  /** Malformed/empty/non-text rows: 'error' (default) or 'drop' (counted). */
  invalidRows?: 'error' | 'drop';
  /** Labels in validation/eval that train never has: 'error' (default) or 'drop' (counted). */
  unseenLabels?: 'error' | 'drop';
  /**
   * The label of out-of-scope rows (inputs outside every class, like CLINC150's "oos"): validation/eval rows with it
   * are kept even when train never has it, so out-of-scope detection can be measured on them. It is a class (in
   * `labels`) only when train has it.
   */
  outOfScopeLabel?: string;
  /** Text augmentation of train rows, applied after the split. */
  augment?: TextAugmentOptions;
}

/** Prepared splits, the label list (index = class id), the data report and the dataset fingerprint. */
export interface PreparedDataset {
  train: TextExample[];
  validation: TextExample[];
  eval?: TextExample[];
  labels: string[];
  report: DataReport;
  fingerprint: string;
}

const list = (f: string | string[] | undefined): string[] => (f === undefined ? [] : Array.isArray(f) ? f : [f]);

/** Runs the whole preparation. Throws DataError on bad input under the default 'error' policies. */
export async function prepareDataset(options: PrepareOptions): Promise<PreparedDataset> {
  const textColumn = options.textColumn ?? 'text';
  const labelColumn = options.labelColumn ?? 'label';
  const seed = options.seed ?? 0;
  const minPerClass = options.minExamplesPerClass ?? 2;
  const validationFraction = options.validationFraction ?? 0.1;
  if (list(options.train).length === 0)
    throw new ConfigError('prepareDataset needs at least one train file', { field: 'train' });
  if (!Number.isInteger(minPerClass) || minPerClass < 1) {
    throw new ConfigError(`minExamplesPerClass must be a positive integer, got ${minPerClass}`, {
      field: 'minExamplesPerClass',
    });
  }
  const base = {
    format: options.format,
    textColumn,
    labelColumn,
    groupColumn: options.groupColumn,
    invalidRows: options.invalidRows,
    nearDuplicates: options.nearDuplicates,
    labelConflicts: options.labelConflicts,
    leakage: options.leakage,
  };

  // Held-out splits first: their texts are what train must not contain.
  const heldOut: Array<{ name: 'validation' | 'eval'; log: SplitLog; rows: TextExample[] }> = [];
  for (const name of ['validation', 'eval'] as const) {
    const files = list(options[name]);
    if (files.length === 0) continue;
    const log = new SplitLog(files);
    const rows: TextExample[] = [];
    for await (const ex of streamExamples(files, base, log)) rows.push(ex);
    heldOut.push({ name, log, rows });
  }
  const trainLog = new SplitLog(list(options.train));
  let train: TextExample[] = [];
  const keys = heldOut.length > 0 ? heldOutKeys(heldOut.flatMap((h) => h.rows)) : undefined;
  for await (const ex of streamExamples(options.train, { ...base, heldOut: keys }, trainLog)) train.push(ex);

  // Rare classes.
  const counts = new Map<string, number>();
  for (const e of train) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  const rare = [...counts]
    .filter(([, n]) => n < minPerClass)
    .map(([l]) => l)
    .sort();
  if (rare.length > 0) {
    if (options.rareClasses !== 'drop') {
      const first = train.find((e) => e.label === rare[0])!;
      throw new DataError(
        `${first.file}: ${rare.length} class(es) have fewer than ${minPerClass} train examples after deduplication: ` +
          rare
            .slice(0, 10)
            .map((l) => `"${l}" (${counts.get(l)})`)
            .join(', ') +
          `${rare.length > 10 ? ', ...' : ''}; first at line ${first.line}, column "${labelColumn}". ` +
          `Add examples, lower minExamplesPerClass, or set rareClasses: 'drop'`,
        {
          file: first.file,
          line: first.line,
          field: labelColumn,
          value: rare[0],
          details: { rareClasses: rare, minExamplesPerClass: minPerClass },
        },
      );
    }
    const rareSet = new Set(rare);
    const dropRare = (rows: TextExample[], log: SplitLog): TextExample[] =>
      rows.filter((e) => {
        if (!rareSet.has(e.label)) return true;
        log.removed('rare-class', {
          file: e.file,
          line: e.line,
          field: labelColumn,
          value: e.label,
          message: `class "${e.label}" has fewer than ${minPerClass} train examples`,
        });
        return false;
      });
    train = dropRare(train, trainLog);
    for (const h of heldOut) h.rows = dropRare(h.rows, h.log);
  }

  // Labels that validation/eval have but train doesn't: the model can never predict them.
  const trainLabels = new Set(train.map((e) => e.label));
  for (const h of heldOut) {
    h.rows = h.rows.filter((e) => {
      if (trainLabels.has(e.label) || e.label === options.outOfScopeLabel) return true;
      const issue = {
        file: e.file,
        line: e.line,
        field: labelColumn,
        value: e.label,
        message: `label "${e.label}" never appears in train`,
      };
      if (options.unseenLabels !== 'drop') throw rowError('unseen-label', issue);
      h.log.removed('unseen-label', issue);
      return false;
    });
  }

  let validation: TextExample[];
  let validationLog: SplitLog;
  const given = heldOut.find((h) => h.name === 'validation');
  if (given) {
    validation = given.rows;
    validationLog = given.log;
  } else {
    const parts = stratifiedSplit(train, { fraction: validationFraction, seed });
    train = parts.train;
    validation = parts.validation;
    validationLog = new SplitLog(list(options.train));
  }
  const evalSplit = heldOut.find((h) => h.name === 'eval');

  const augmented = options.augment ? augmentText(train, { seed, ...options.augment }) : [];
  const labels = [...new Set(train.map((e) => e.label))].sort();

  const finalize = (log: SplitLog, rows: TextExample[]): void => {
    log.report.rowsKept = rows.length;
    log.report.classCounts = {};
    for (const e of rows) log.report.classCounts[e.label] = (log.report.classCounts[e.label] ?? 0) + 1;
  };
  finalize(trainLog, train);
  finalize(validationLog, validation);
  if (evalSplit) finalize(evalSplit.log, evalSplit.rows);
  trainLog.report.rowsAugmented = augmented.length;
  const trainAll = augmented.length > 0 ? [...train, ...augmented] : train;

  const fingerprintOptions = {
    textColumn,
    labelColumn,
    groupColumn: options.groupColumn,
    validationFraction: given ? undefined : validationFraction,
    seed,
    minExamplesPerClass: minPerClass,
    rareClasses: options.rareClasses ?? 'error',
    invalidRows: options.invalidRows ?? 'error',
    unseenLabels: options.unseenLabels ?? 'error',
    ...(options.outOfScopeLabel !== undefined ? { outOfScopeLabel: options.outOfScopeLabel } : {}),
    nearDuplicates: options.nearDuplicates ?? 'remove',
    labelConflicts: options.labelConflicts ?? 'keep',
    leakage: options.leakage ?? 'remove',
    augment: options.augment,
  };
  const fingerprint = fingerprintSplits(
    [
      { name: 'train', examples: trainAll },
      { name: 'validation', examples: validation },
      ...(evalSplit ? [{ name: 'eval', examples: evalSplit.rows }] : []),
    ],
    fingerprintOptions,
  );

  const tc = trainLog.report.classCounts;
  const classBalance: ClassBalanceRow[] = labels.map((label) => ({
    label,
    train: tc[label] ?? 0,
    validation: validationLog.report.classCounts[label] ?? 0,
    eval: evalSplit?.log.report.classCounts[label] ?? 0,
    share: train.length > 0 ? (tc[label] ?? 0) / train.length : 0,
  }));
  const trainCounts = classBalance.map((c) => c.train);
  const report: DataReport = {
    splits: {
      train: trainLog.report,
      validation: validationLog.report,
      ...(evalSplit ? { eval: evalSplit.log.report } : {}),
    },
    classBalance,
    imbalanceRatio: trainCounts.length > 0 ? Math.max(...trainCounts) / Math.min(...trainCounts) : 1,
    totalRemoved: trainLog.removedCount + validationLog.removedCount + (evalSplit?.log.removedCount ?? 0),
    fingerprint,
    options: fingerprintOptions,
  };
  return { train: trainAll, validation, eval: evalSplit?.rows, labels, report, fingerprint };
}

export { cleanText, normalizeForMatch } from './clean.ts';
export { Deduplicator, HeldOutKeys, heldOutKeys, type DedupOptions, type DedupVerdict } from './dedup.ts';
export { augmentText, augmentImage, flipHorizontal, crop, wordDropout, wordSwap } from './augment.ts';
export type { TextAugmentOptions, ImageAugmentOptions } from './augment.ts';
export { canonicalJson, Fingerprinter, fingerprintSplits } from './fingerprint.ts';
export { HashMap64, hash64 } from './hashset.ts';
export { detectFormat, loadImageFolder, readTable } from './load.ts';
export type {
  ImageFolderOptions,
  ImageFolderResult,
  ImageRow,
  RawImage,
  RawRow,
  TableEvent,
  TableFormat,
} from './load.ts';
export { formatDataReport, SplitLog } from './report.ts';
export type { ClassBalanceRow, DataReport, RemovalReason, RowIssue, SplitReport } from './report.ts';
export { createRng, seedFromString, type Rng } from '../util/rng.ts';
export { stratifiedSplit, type SplitOptions } from './split.ts';
export { streamExamples, type StreamOptions } from './stream.ts';
export type { ColumnSpec, TextExample } from './types.ts';
export { checkRow, rowError } from './validate.ts';
export { prepareImageDataset, type ImageDatasetOptions, type PreparedImageDataset } from './images.ts';
