/**
 * The reference a model version carries for monitoring, written into its folder at registration through
 * `tailorModel`'s `beforeRegister` hook (monitor/ sits above workflow/, so it hooks in rather than being called):
 * the reference profile (profile.ts) and the labelled reference rows (training, validation and eval) that a
 * policy-triggered retraining starts from and whose held-out part the promotion gate scores on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../errors.ts';
import { tailorModel, type RegistrationContext, type TailorOptions, type TailorResult } from '../workflow/tailor.ts';
import { textFeatures } from '../models/text.ts';
import { buildProfile, PROFILE_FILE, withEmbeddings } from './profile.ts';

export const REFERENCE_DATA_FILE = 'reference-data.jsonl';

/** A labelled reference row and the split it came from. */
export interface ReferenceRow {
  split: 'train' | 'validation' | 'eval';
  text: string;
  label: string;
}

/**
 * The files `tailorWithReference` adds to the model folder: reference-profile.json (with the base model's embeddings
 * of the reference texts, for embedding drift) and reference-data.jsonl.
 */
export async function referenceFiles(
  ctx: RegistrationContext,
  options: { sampleSize?: number } = {},
): Promise<Record<string, string>> {
  const built = buildProfile({
    model: { name: ctx.name, version: ctx.version, labels: ctx.labels },
    trainTexts: ctx.train.map((r) => r.text),
    trainLabels: ctx.train.map((r) => r.label),
    validation: { labels: ctx.validation.labels, probabilities: ctx.validation.probabilities },
    ...(options.sampleSize !== undefined ? { sampleSize: options.sampleSize } : {}),
  });
  const { features, width } = await textFeatures(ctx.base, built.texts, { maxLength: ctx.maxLength });
  const profile = withEmbeddings(
    built,
    built.texts.map((_, i) => features.subarray(i * width, (i + 1) * width)),
  );
  const rows: ReferenceRow[] = [
    ...ctx.train.map((r) => ({ split: 'train' as const, text: r.text, label: r.label })),
    ...ctx.validation.texts.map((text, i) => ({ split: 'validation' as const, text, label: ctx.validation.labels[i] })),
    ...ctx.eval.map((r) => ({ split: 'eval' as const, text: r.text, label: r.label })),
  ];
  return {
    [PROFILE_FILE]: JSON.stringify(profile),
    [REFERENCE_DATA_FILE]: rows.map((r) => JSON.stringify(r)).join('\n') + '\n',
  };
}

/**
 * `tailorModel` that also stores the monitoring reference in the registered version's folder (what
 * `tailor customize` runs). A caller's own `beforeRegister` still runs; its files win on a name clash.
 */
export async function tailorWithReference(o: TailorOptions): Promise<TailorResult> {
  const own = o.beforeRegister;
  return tailorModel({
    ...o,
    beforeRegister: async (ctx) => ({ ...(await referenceFiles(ctx)), ...(own ? await own(ctx) : {}) }),
  });
}

/** Reads `<dir>/reference-data.jsonl`; every line must be a row with split, text and label. */
export async function loadReferenceData(dir: string): Promise<ReferenceRow[]> {
  const file = path.join(dir, REFERENCE_DATA_FILE);
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DataError(
        `no reference data at ${file}: the version was registered without it (register through tailor customize / tailorWithReference)`,
        { file },
        { cause: e },
      );
    throw e;
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line, i) => {
      let r: Partial<ReferenceRow>;
      try {
        r = JSON.parse(line) as Partial<ReferenceRow>;
      } catch (e) {
        throw new DataError(`${file} line ${i + 1} is not JSON`, { file, line: i + 1 }, { cause: e });
      }
      if (
        (r.split !== 'train' && r.split !== 'validation' && r.split !== 'eval') ||
        typeof r.text !== 'string' ||
        typeof r.label !== 'string'
      )
        throw new DataError(`${file} line ${i + 1}: expected {split, text, label}`, { file, line: i + 1 });
      return { split: r.split, text: r.text, label: r.label };
    });
}
