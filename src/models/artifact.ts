/**
 * The on-disk form of a classifier Tailor made: a folder that `loadArtifact` (and so `predict`, `evaluate`,
 * `quantize`, `models export`, the server) reads back, and that plain onnxruntime can run:
 *
 *   model.onnx  tokenizer.json  tokenizer_config.json  tailor.json (labels, strategy, lineage, metrics)
 *
 * This file is the one reader and the one low-level writer; `saveCustomizedModel` (customize/save.ts) writes a
 * `customize` result with it, and the compression commands write their models with it.
 * There is deliberately no config.json: the folder is not a Hugging Face checkpoint (the graph may be USE-lite or
 * merged LoRA), and `loadOnnxFile` then reads model.onnx as is, recovering parameters by name.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ModelFileError } from '../errors.ts';
import { toOnnxModel, type Model } from './model.ts';
import { loadOnnxFile } from './resolve.ts';
import { writeFileAtomic, writeFileSynced, writeModel } from '../onnx/io.ts';

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
  // A saved customization (customize/save.ts) keeps the classifier in model/.
  if (!existsSync(path.join(dir, TAILOR_ARTIFACT)) && existsSync(path.join(dir, 'model', TAILOR_ARTIFACT)))
    dir = path.join(dir, 'model');
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

/**
 * Writes `value` as the JSON file `name` beside model.onnx in the classifier folder `dir` (abstain.json,
 * group-thresholds.json), atomically: a temp file, then a rename over any old one.
 */
export async function writeSidecar(dir: string, name: string, value: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFileAtomic(file, new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
  return file;
}

/**
 * Reads the JSON file `name` of the classifier folder `dir`, or undefined when there is none. A file that is there
 * but unreadable or not JSON is a ModelFileError naming it (never silently ignored: a rule stored with a model must
 * not quietly stop applying).
 */
export async function readSidecar(dir: string, name: string): Promise<{ file: string; value: unknown } | undefined> {
  const file = path.join(dir, name);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelFileError(`cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  try {
    return { file, value: JSON.parse(text) as unknown };
  } catch (e) {
    throw new ModelFileError(`${file} is not JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
}

/** A sidecar's labels must be the model's, in order; a ModelFileError naming the file and field otherwise. */
export function assertSidecarLabels(file: string, theirs: readonly string[], labels: readonly string[]): void {
  if (theirs.length !== labels.length || theirs.some((l, i) => l !== labels[i]))
    throw new ModelFileError(
      `${file}: field 'labels' is ${JSON.stringify(theirs)}, but the model's labels are ${JSON.stringify(labels)}`,
      { file, field: 'labels' },
    );
}
