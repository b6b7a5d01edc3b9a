/**
 * The on-disk form of a classifier Tailor made: a folder that `loadArtifact` (and so `evaluate`, `quantize`,
 * `models export`) reads back, and that plain onnxruntime can run:
 *
 *   model.onnx  tokenizer.json  tokenizer_config.json  tailor.json (labels, strategy, lineage, metrics)
 *
 * `saveCustomizedModel` writes one from a `customize` result (the library's and the CLI's one implementation).
 * There is deliberately no config.json: the folder is not a Hugging Face checkpoint (the graph may be USE-lite or
 * merged LoRA), and `loadOnnxFile` then reads model.onnx as is, recovering parameters by name.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ModelFileError } from '../errors.ts';
import { toOnnxModel, type Model } from '../models/model.ts';
import { loadOnnxFile } from '../models/resolve.ts';
import { writeFileSynced, writeModel } from '../onnx/io.ts';
import { mergeAdapter } from './adapters.ts';
import type { CustomizeResult } from './customize.ts';
import type { Lineage } from './lineage.ts';

export const TAILOR_ARTIFACT = 'tailor.json';

export interface ArtifactInfo {
  format: 'tailor.classifier/1';
  labels: string[];
  /** Label maps as in a Hugging Face config (written by writeClassifier from `labels`). */
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  maxLength: number;
  strategy: string;
  base: string;
  [key: string]: unknown;
}

const json = (v: unknown): Uint8Array =>
  new TextEncoder().encode(
    `${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? null : x), 2)}\n`,
  );

/** Writes a classifier folder into `dir` (which must not exist yet; callers write into a temp folder). */
export async function writeClassifier(model: Model, dir: string, info: Omit<ArtifactInfo, 'format'>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeModel(toOnnxModel(model), path.join(dir, 'model.onnx'));
  if (model.tokenizer) {
    await writeFileSynced(path.join(dir, 'tokenizer.json'), json(model.tokenizer.json));
    await writeFileSynced(path.join(dir, 'tokenizer_config.json'), json(model.tokenizer.config));
  }
  const labels = (info as Pick<ArtifactInfo, 'labels'>).labels;
  const labelMaps = {
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
  };
  await writeFileSynced(
    path.join(dir, TAILOR_ARTIFACT),
    json({ format: 'tailor.classifier/1', ...info, ...labelMaps }),
  );
}

/** Reads a classifier folder (or its model.onnx) written by `writeClassifier`. */
export async function loadArtifact(dirOrFile: string): Promise<{ model: Model; info: ArtifactInfo; dir: string }> {
  let dir = dirOrFile;
  try {
    if (!(await stat(dirOrFile)).isDirectory()) dir = path.dirname(dirOrFile);
  } catch (e) {
    throw new ModelFileError(`${dirOrFile}: no such model folder or file`, { file: dirOrFile }, { cause: e });
  }
  const infoFile = path.join(dir, TAILOR_ARTIFACT);
  let info: ArtifactInfo;
  try {
    info = JSON.parse(await readFile(infoFile, 'utf8')) as ArtifactInfo;
  } catch (e) {
    throw new ModelFileError(
      `${dir} is not a Tailor classifier folder: cannot read ${TAILOR_ARTIFACT} (${(e as Error).message})`,
      { file: infoFile },
      { cause: e },
    );
  }
  if (info.format !== 'tailor.classifier/1' || !Array.isArray(info.labels)) {
    throw new ModelFileError(
      `${infoFile}: field 'format' is ${JSON.stringify(info.format)}, expected "tailor.classifier/1" with a 'labels' list`,
      { file: infoFile, field: 'format' },
    );
  }
  const model = await loadOnnxFile(path.join(dir, 'model.onnx'));
  if (!model.graph.outputs.some((o) => o.name === 'logits'))
    throw new ModelFileError(`${dir}/model.onnx has no 'logits' output`, { file: path.join(dir, 'model.onnx') });
  return { model: { ...model, labels: info.labels }, info, dir };
}

/** Fails unless `dir` is absent or an empty folder (so nothing of the user's is overwritten). */
export async function assertFreshOut(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const s = await stat(dir);
  if (!s.isDirectory() || (await readdir(dir)).length > 0) {
    throw new ConfigError(`--out ${dir} already exists and is not an empty folder; choose a new folder`, {
      file: dir,
      field: 'out',
    });
  }
}

/**
 * Runs `fill(tmp)` on a temporary sibling of `dir` and renames it into place, so `dir` is either complete or
 * absent. An existing empty `dir` is replaced.
 */
export async function writeFolderAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const target = path.resolve(dir);
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(path.dirname(target), { recursive: true });
    await mkdir(tmp);
    await fill(tmp);
    if (existsSync(target)) await rmdir(target);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

export interface SaveModelOptions {
  /** The base `customize` started from: a LoRA result is then merged into plain weights (else its adapter nodes stay in the graph). */
  base?: Model;
  /** Longest token sequence to use with the model (default: the run's `maxLength`, else 64). */
  maxLength?: number;
  /** Metrics to record (for example the eval's accuracy, or the baseline's and the customized model's). */
  metrics?: Record<string, unknown>;
  /** Extra fields for tailor.json. */
  extra?: Record<string, unknown>;
}

/**
 * Saves a customized model as a classifier folder (model.onnx, tokenizer files, tailor.json with labels, label
 * maps, strategy, lineage and metrics), atomically: `dir` is complete or absent afterwards. `dir` must not exist
 * or be an empty folder. Returns the folder's absolute path.
 */
export async function saveCustomizedModel(
  dir: string,
  result: Pick<CustomizeResult, 'model' | 'labels' | 'lineage' | 'adapter'>,
  opts: SaveModelOptions = {},
): Promise<string> {
  const out = path.resolve(dir);
  await assertFreshOut(out);
  const model = result.adapter && opts.base ? mergeAdapter(opts.base, result.adapter).model : result.model;
  const lineage: Lineage = result.lineage;
  const hp = lineage.hyperparameters;
  const maxLength = opts.maxLength ?? (typeof hp.maxLength === 'number' ? hp.maxLength : 64);
  await writeFolderAtomic(out, (tmp) =>
    writeClassifier(model, tmp, {
      labels: result.labels,
      maxLength,
      strategy: lineage.strategy,
      base: lineage.base.id,
      lineage,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...opts.extra,
    }),
  );
  return out;
}
