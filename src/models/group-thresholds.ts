/**
 * Group-specific decision thresholds stored with a model (eval/mitigation.ts `GroupThresholds`, Fairlearn's
 * ThresholdOptimizer idea): `group-thresholds.json` next to model.onnx in the classifier folder. `Classifier.load`
 * reads it and `predict(texts, { groups })` applies it. This file is the one reader and writer of that file.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ModelFileError } from '../errors.ts';
import { GroupThresholds } from '../eval/mitigation.ts';
import { writeFileSynced } from '../onnx/io.ts';

export const GROUP_THRESHOLDS_FILE = 'group-thresholds.json';

/** Writes `thresholds` into the classifier folder `dir` atomically (temp file, then rename over any old one). */
export async function writeGroupThresholds(dir: string, thresholds: GroupThresholds): Promise<string> {
  const file = path.join(dir, GROUP_THRESHOLDS_FILE);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFileSynced(tmp, new TextEncoder().encode(`${JSON.stringify(thresholds.toJSON(), null, 2)}\n`));
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  return file;
}

/**
 * Reads the thresholds of the classifier folder `dir`, or undefined when it has none. A file that is there but
 * unreadable, or whose labels differ from the model's, is an error (never silently ignored).
 */
export async function readGroupThresholds(
  dir: string,
  labels: readonly string[],
): Promise<GroupThresholds | undefined> {
  const file = path.join(dir, GROUP_THRESHOLDS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelFileError(`cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(`${file} is not JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
  const t = GroupThresholds.fromJSON(value, file);
  if (t.spec.labels.length !== labels.length || t.spec.labels.some((l, i) => l !== labels[i]))
    throw new ModelFileError(
      `${file}: field 'labels' is ${JSON.stringify(t.spec.labels)}, but the model's labels are ${JSON.stringify(labels)}`,
      { file, field: 'labels' },
    );
  return t;
}
