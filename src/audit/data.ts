/** Loading the domain data for the audit and the CLI, and seeded stratified subsampling. */
import { access, constants } from 'node:fs/promises';
import { DataError } from '../errors.ts';
import { createRng, prepareDataset, type PreparedDataset, type PrepareOptions } from '../data/index.ts';
import type { TextExample } from '../data/types.ts';

export interface DomainDataOptions {
  train: string | string[];
  eval?: string | string[];
  validation?: string | string[];
  textColumn?: string;
  labelColumn?: string;
  seed?: number;
  /** Passed through to prepareDataset (policies for bad rows, rare classes, dedup). */
  prepare?: Omit<PrepareOptions, 'train' | 'eval' | 'validation' | 'textColumn' | 'labelColumn' | 'seed'>;
}

const list = (f: string | string[] | undefined): string[] => (f === undefined ? [] : Array.isArray(f) ? f : [f]);

/** Checks every input file exists and is readable before anything else happens, so the error names the file and its role (a folder is refused by src/data's reader). */
export async function assertReadable(files: readonly string[], what: string): Promise<void> {
  for (const f of files) {
    try {
      await access(f, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
      throw new DataError(`cannot read ${what} file ${f}: ${why}`, { file: f, field: what }, { cause: e });
    }
  }
}

/** prepareDataset over the user's files (train, optional validation/eval) after checking they are readable. */
export async function loadDomainData(opts: DomainDataOptions): Promise<PreparedDataset> {
  await assertReadable(list(opts.train), 'train');
  await assertReadable(list(opts.validation), 'validation');
  await assertReadable(list(opts.eval), 'eval');
  return prepareDataset({
    ...opts.prepare,
    train: opts.train,
    ...(opts.eval !== undefined ? { eval: opts.eval } : {}),
    ...(opts.validation !== undefined ? { validation: opts.validation } : {}),
    textColumn: opts.textColumn ?? 'text',
    labelColumn: opts.labelColumn ?? 'label',
    seed: opts.seed ?? 0,
  });
}

/**
 * At most `max` examples, stratified: each class keeps its share (at least one example), chosen by a seeded
 * shuffle, returned in the original order. Returns the input itself when it is small enough.
 */
export function subsample<T extends Pick<TextExample, 'label'>>(
  examples: readonly T[],
  max: number | undefined,
  seed = 0,
): T[] {
  if (max === undefined || examples.length <= max) return [...examples];
  const byClass = new Map<string, number[]>();
  examples.forEach((e, i) => {
    const l = byClass.get(e.label);
    if (l) l.push(i);
    else byClass.set(e.label, [i]);
  });
  const rng = createRng(seed);
  const keep: number[] = [];
  for (const [, idx] of [...byClass].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    rng.shuffle(idx);
    keep.push(...idx.slice(0, Math.max(1, Math.round((idx.length * max) / examples.length))));
  }
  return keep.sort((a, b) => a - b).map((i) => examples[i]);
}

/** Train examples per class, in label order. */
export function perClassCounts(examples: readonly Pick<TextExample, 'label'>[], labels: readonly string[]): number[] {
  const m = new Map<string, number>();
  for (const e of examples) m.set(e.label, (m.get(e.label) ?? 0) + 1);
  return labels.map((l) => m.get(l) ?? 0);
}
