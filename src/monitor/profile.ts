/**
 * The reference profile of a model version (SageMaker Model Monitor's "baseline"): computed once at registration
 * from the training data, a sample of reference texts, their base-model embeddings and the validation set's
 * predicted probabilities; every later check compares live traffic against it. Serialised as one JSON file
 * (embeddings as base64 float32) written atomically into a folder the caller gives (the model version's folder).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, DataError } from '../errors.ts';
import { createRng } from '../util/rng.ts';
import { argmax } from '../eval/metrics.ts';
import { oovRate, tokens, vocabularyOf } from './stats/text.ts';

export const PROFILE_FILE = 'reference-profile.json';

/** Summary statistics of a numeric reference column (for reports and quick constraints). */
export interface NumericSummary {
  count: number;
  mean: number;
  std: number;
  min: number;
  p05: number;
  p50: number;
  p95: number;
  max: number;
}

export interface ReferenceProfile {
  v: 1;
  model: { name: string; version: number; labels: string[] };
  createdAt: string;
  /** Training vocabulary (lower-cased whitespace tokens), for the out-of-vocabulary rate. */
  vocabulary: string[];
  /** Training label counts. */
  trainLabelCounts: Record<string, number>;
  /** Reference texts (a sample), the rows whose columns the drift tests compare against. */
  texts: string[];
  /** Per-row reference values of each column: text columns over `texts`, prediction columns over validation. */
  columns: Record<string, Array<number | string>>;
  summaries: Record<string, NumericSummary>;
  /** Embeddings of `texts` (same order), if the caller gave them. */
  embeddings?: { dim: number; rows: number; base64: string };
  /** Validation set: true labels and predicted probabilities, for CBPE and the reference of prediction columns. */
  validation?: { labels: string[]; probabilities: number[][] };
}

export interface ProfileInput {
  model: { name: string; version: number; labels: string[] };
  trainTexts: string[];
  trainLabels: string[];
  /** Reference texts. Default: a seeded sample of the training texts held out of the vocabulary. */
  referenceTexts?: string[];
  /** One embedding row per reference text (after sampling: pass them for `referenceTexts`). */
  referenceEmbeddings?: ArrayLike<ArrayLike<number>>;
  validation?: { labels: string[]; probabilities: ArrayLike<ArrayLike<number>> };
  /** Extra per-row reference columns (numbers or categories). */
  extraColumns?: Record<string, Array<number | string>>;
  /** Largest number of reference texts kept. Default 1000. */
  sampleSize?: number;
  seed?: number | string;
  now?: Date;
}

/** Per-text column values: characters, whitespace tokens and out-of-vocabulary share. */
export function textColumns(
  texts: string[],
  vocabulary: ReadonlySet<string>,
): { text_length: number[]; token_count: number[]; oov_rate: number[] } {
  return {
    text_length: texts.map((t) => t.length),
    token_count: texts.map((t) => tokens(t).length),
    oov_rate: texts.map((t) => oovRate(t, vocabulary)),
  };
}

function summarise(values: number[]): NumericSummary {
  const s = Float64Array.from(values).sort();
  const n = s.length;
  const q = (p: number): number => {
    const h = (n - 1) * p;
    const lo = Math.floor(h);
    return s[lo] + (h - lo) * (s[Math.min(n - 1, lo + 1)] - s[lo]);
  };
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { count: n, mean, std, min: s[0], p05: q(0.05), p50: q(0.5), p95: q(0.95), max: s[n - 1] };
}

function encodeRows(rows: ArrayLike<ArrayLike<number>>): { dim: number; rows: number; base64: string } {
  const dim = rows.length ? rows[0].length : 0;
  const flat = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) {
    if (rows[i].length !== dim)
      throw new DataError(`referenceEmbeddings[${i}] has ${rows[i].length} components, expected ${dim}`, {
        field: 'referenceEmbeddings',
      });
    flat.set(Array.from(rows[i]), i * dim);
  }
  return { dim, rows: rows.length, base64: Buffer.from(flat.buffer).toString('base64') };
}

/** The profile with the embeddings of its reference `texts` (same order, one row each) stored in it. */
export function withEmbeddings(profile: ReferenceProfile, rows: ArrayLike<ArrayLike<number>>): ReferenceProfile {
  if (rows.length !== profile.texts.length)
    throw new DataError(`${rows.length} embedding rows for ${profile.texts.length} reference texts`, {
      field: 'referenceEmbeddings',
    });
  return { ...profile, embeddings: encodeRows(rows) };
}

/** The embedding rows stored in a profile (Float32Array per row), or undefined. */
export function profileEmbeddings(profile: ReferenceProfile): Float32Array[] | undefined {
  const e = profile.embeddings;
  if (!e) return undefined;
  const buf = Buffer.from(e.base64, 'base64');
  const flat = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return Array.from({ length: e.rows }, (_, i) => flat.slice(i * e.dim, (i + 1) * e.dim));
}

/** Builds the reference profile of a model version. */
export function buildProfile(input: ProfileInput): ReferenceProfile {
  const { model, trainTexts, trainLabels } = input;
  if (trainTexts.length === 0) throw new DataError('trainTexts is empty', { field: 'trainTexts' });
  if (trainTexts.length !== trainLabels.length)
    throw new DataError(`trainTexts has ${trainTexts.length} rows but trainLabels has ${trainLabels.length}`, {
      field: 'trainLabels',
    });
  const sampleSize = input.sampleSize ?? 1000;
  const rng = createRng(input.seed ?? 0);
  let texts: string[];
  let vocabTexts: string[];
  if (input.referenceTexts) {
    texts = input.referenceTexts.slice(0, sampleSize);
    vocabTexts = trainTexts;
  } else {
    // Texts inside the vocabulary's own corpus would have an OOV rate of exactly 0 and make every live window
    // look drifted; hold the reference sample out of the vocabulary instead.
    const order = rng.shuffle(trainTexts.map((_, i) => i));
    const k = Math.min(sampleSize, Math.floor(trainTexts.length / 2));
    const held = new Set(order.slice(0, k));
    texts = order.slice(0, k).map((i) => trainTexts[i]);
    vocabTexts = trainTexts.filter((_, i) => !held.has(i));
  }
  if (input.referenceEmbeddings && input.referenceEmbeddings.length !== texts.length)
    throw new DataError(
      `referenceEmbeddings has ${input.referenceEmbeddings.length} rows but there are ${texts.length} reference texts`,
      { field: 'referenceEmbeddings' },
    );
  const vocabulary = vocabularyOf(vocabTexts);
  const columns: Record<string, Array<number | string>> = { ...textColumns(texts, vocabulary) };
  let validation: ReferenceProfile['validation'];
  if (input.validation) {
    const { labels, probabilities } = input.validation;
    if (labels.length !== probabilities.length)
      throw new DataError(`validation has ${labels.length} labels but ${probabilities.length} probability rows`, {
        field: 'validation.probabilities',
      });
    const probs = Array.from(probabilities, (row, i) => {
      if (row.length !== model.labels.length)
        throw new DataError(
          `validation.probabilities[${i}] has ${row.length} entries, expected ${model.labels.length} (one per label)`,
          { field: 'validation.probabilities' },
        );
      return Array.from(row);
    });
    validation = { labels: [...labels], probabilities: probs };
    columns.predicted_label = probs.map((p) => model.labels[argmax(p)]);
    columns.confidence = probs.map((p) => Math.max(...p));
  }
  for (const [name, values] of Object.entries(input.extraColumns ?? {})) {
    if (name in columns)
      throw new ConfigError(`extra column "${name}" clashes with a built-in column`, { field: name });
    columns[name] = values;
  }
  const summaries: Record<string, NumericSummary> = {};
  for (const [name, values] of Object.entries(columns))
    if (values.length && values.every((v) => typeof v === 'number')) summaries[name] = summarise(values as number[]);
  const trainLabelCounts: Record<string, number> = {};
  for (const l of trainLabels) trainLabelCounts[l] = (trainLabelCounts[l] ?? 0) + 1;
  return {
    v: 1,
    model: { name: model.name, version: model.version, labels: [...model.labels] },
    createdAt: (input.now ?? new Date()).toISOString(),
    vocabulary: [...vocabulary].sort(),
    trainLabelCounts,
    texts,
    columns,
    summaries,
    ...(input.referenceEmbeddings ? { embeddings: encodeRows(input.referenceEmbeddings) } : {}),
    ...(validation ? { validation } : {}),
  };
}

/** Writes the profile as `<dir>/reference-profile.json` atomically (temp file, then rename). */
export async function saveProfile(dir: string, profile: ReferenceProfile): Promise<string> {
  await fs.promises.mkdir(dir, { recursive: true });
  const file = path.join(dir, PROFILE_FILE);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.promises.writeFile(tmp, JSON.stringify(profile));
  await fs.promises.rename(tmp, file);
  return file;
}

/** Reads and checks `<dir>/reference-profile.json`. */
export async function loadProfile(dir: string): Promise<ReferenceProfile> {
  const file = path.join(dir, PROFILE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DataError(`no reference profile at ${file}`, { file }, { cause: e });
    throw new DataError(`reference profile ${file} is not valid JSON`, { file }, { cause: e });
  }
  const p = raw as Partial<ReferenceProfile>;
  const need = (ok: boolean, field: string): void => {
    if (!ok)
      throw new DataError(`reference profile ${file}: field "${field}" is missing or malformed`, { file, field });
  };
  need(typeof p === 'object' && p !== null && p.v === 1, 'v');
  need(typeof p.model?.name === 'string' && Array.isArray(p.model?.labels), 'model');
  need(Array.isArray(p.vocabulary), 'vocabulary');
  need(Array.isArray(p.texts), 'texts');
  need(typeof p.columns === 'object' && p.columns !== null, 'columns');
  return p as ReferenceProfile;
}
