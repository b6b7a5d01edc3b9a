/**
 * Group-specific decision thresholds stored with a model (eval/mitigation.ts `GroupThresholds`, Fairlearn's
 * ThresholdOptimizer idea): `group-thresholds.json` next to model.onnx in the classifier folder. `Classifier.load`
 * reads it and `predict(texts, { groups })` applies it. This file is the one reader and writer of that file.
 */
import { GroupThresholds } from '../eval/mitigation.ts';
import { assertSidecarLabels, readSidecar, writeSidecar } from './artifact.ts';

export const GROUP_THRESHOLDS_FILE = 'group-thresholds.json';

/** Writes `thresholds` into the classifier folder `dir` atomically (temp file, then rename over any old one). */
export function writeGroupThresholds(dir: string, thresholds: GroupThresholds): Promise<string> {
  return writeSidecar(dir, GROUP_THRESHOLDS_FILE, thresholds.toJSON());
}

/**
 * Reads the thresholds of the classifier folder `dir`, or undefined when it has none. A file that is there but
 * unreadable, or whose labels differ from the model's, is an error (never silently ignored).
 */
export async function readGroupThresholds(
  dir: string,
  labels: readonly string[],
): Promise<GroupThresholds | undefined> {
  const found = await readSidecar(dir, GROUP_THRESHOLDS_FILE);
  if (!found) return undefined;
  const t = GroupThresholds.fromJSON(found.value, found.file);
  assertSidecarLabels(found.file, t.spec.labels, labels);
  return t;
}
