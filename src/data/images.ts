/**
 * Image datasets from a folder-per-class layout: decode, exact-duplicate removal (identical pixels after
 * decoding and resizing), rare-class check, stratified split, optional augmentation, fingerprint, report.
 */
import { createHash } from 'node:crypto';
import { DataError } from '../errors.ts';
import { augmentImage, type ImageAugmentOptions } from './augment.ts';
import { Fingerprinter } from './fingerprint.ts';
import { loadImageFolder, type ImageFolderOptions, type ImageRow } from './load.ts';
import { SplitLog, type ClassBalanceRow, type DataReport } from './report.ts';
import { createRng } from '../util/rng.ts';
import { stratifiedSplit } from './split.ts';

export interface ImageDatasetOptions extends ImageFolderOptions {
  validationFraction?: number;
  seed?: number;
  minExamplesPerClass?: number;
  rareClasses?: 'error' | 'drop';
  /** Augmented copies per train image (flip/crop), generated after the split. */
  augment?: ImageAugmentOptions & { copies: number };
}

export interface PreparedImageDataset {
  train: Array<ImageRow & { augmented?: boolean }>;
  validation: ImageRow[];
  labels: string[];
  report: DataReport;
  fingerprint: string;
}

/** Loads and prepares an image-folder dataset (see loadImageFolder for the layout). */
export async function prepareImageDataset(
  root: string,
  options: ImageDatasetOptions = {},
): Promise<PreparedImageDataset> {
  const seed = options.seed ?? 0;
  const minPerClass = options.minExamplesPerClass ?? 2;
  const loaded = await loadImageFolder(root, options);
  const log = new SplitLog([root]);
  for (const u of loaded.unreadable) {
    log.read();
    log.removed('unreadable-image', { file: u.file, line: 0, field: 'image', message: u.message });
  }
  const seen = new Map<string, string>();
  let rows: ImageRow[] = [];
  for (const r of loaded.rows) {
    log.read();
    const key = createHash('sha1')
      .update(`${r.image.width}x${r.image.height}x${r.image.channels}:`)
      .update(r.image.data)
      .digest('hex');
    const first = seen.get(key);
    if (first !== undefined) {
      log.removed('exact-duplicate', { file: r.file, line: 0, field: 'image', message: `same pixels as ${first}` });
      continue;
    }
    seen.set(key, r.file);
    rows.push(r);
  }
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
  const rare = [...counts]
    .filter(([, n]) => n < minPerClass)
    .map(([l]) => l)
    .sort();
  if (rare.length > 0) {
    if (options.rareClasses !== 'drop') {
      throw new DataError(
        `${root}: class folder(s) with fewer than ${minPerClass} images: ${rare.map((l) => `"${l}" (${counts.get(l)})`).join(', ')}`,
        { file: root, field: 'label', value: rare[0], details: { rareClasses: rare } },
      );
    }
    rows = rows.filter((r) => {
      if (!rare.includes(r.label)) return true;
      log.removed('rare-class', {
        file: r.file,
        line: 0,
        field: 'label',
        value: r.label,
        message: `class "${r.label}" has fewer than ${minPerClass} images`,
      });
      return false;
    });
  }
  const { train, validation } = stratifiedSplit(rows, { fraction: options.validationFraction ?? 0.1, seed });
  const rng = createRng(seed).fork();
  const augmented: Array<ImageRow & { augmented: boolean }> = [];
  for (const r of train) {
    for (let c = 0; c < (options.augment?.copies ?? 0); c++) {
      augmented.push({ ...r, image: augmentImage(r.image, options.augment!, rng), augmented: true });
    }
  }
  const labels = [...new Set(train.map((r) => r.label))].sort();
  const fpOptions = {
    kind: 'image-folder',
    size: options.size,
    validationFraction: options.validationFraction ?? 0.1,
    seed,
    minExamplesPerClass: minPerClass,
    augment: options.augment,
  };
  const fp = new Fingerprinter(fpOptions);
  const trainAll = [...train, ...augmented];
  for (const [name, split] of [
    ['train', trainAll],
    ['validation', validation],
  ] as const) {
    fp.beginSplit(name);
    for (const r of split) fp.addBytes(r.label, r.image.data);
  }
  const fingerprint = fp.digest();
  const valLog = new SplitLog([root]);
  const tally = (l: SplitLog, split: ImageRow[]): void => {
    l.report.rowsKept = split.length;
    for (const r of split) l.report.classCounts[r.label] = (l.report.classCounts[r.label] ?? 0) + 1;
  };
  tally(log, train);
  tally(valLog, validation);
  log.report.rowsAugmented = augmented.length;
  const classBalance: ClassBalanceRow[] = labels.map((label) => ({
    label,
    train: log.report.classCounts[label] ?? 0,
    validation: valLog.report.classCounts[label] ?? 0,
    eval: 0,
    share: (log.report.classCounts[label] ?? 0) / Math.max(1, train.length),
  }));
  const tcounts = classBalance.map((c) => c.train);
  const report: DataReport = {
    splits: { train: log.report, validation: valLog.report },
    classBalance,
    imbalanceRatio: tcounts.length ? Math.max(...tcounts) / Math.min(...tcounts) : 1,
    totalRemoved: log.removedCount,
    fingerprint,
    options: fpOptions,
  };
  return { train: trainAll, validation, labels, report, fingerprint };
}
