/**
 * The abstain rule stored with a model (eval/abstain.ts `AbstainRule`): `abstain.json` next to model.onnx in the
 * classifier folder, beside group-thresholds.json. `Classifier.load` reads it and `predict` answers `OUT_OF_SCOPE`
 * for the rows it rejects; the server's engines read it too. This file is the one reader and writer of that file.
 */
import { ModelFileError } from '../errors.ts';
import { AbstainRule } from '../eval/abstain.ts';
import { assertSidecarLabels, readSidecar, writeSidecar } from './artifact.ts';

export const ABSTAIN_FILE = 'abstain.json';

/** The file's text for `rule` (for writers that put it into a folder themselves, like `saveCustomizedModel`'s files). */
export function abstainFileText(rule: AbstainRule): string {
  return `${JSON.stringify(rule.toJSON(), null, 2)}\n`;
}

/** Writes `rule` into the classifier folder `dir` atomically (temp file, then rename over any old one). */
export function writeAbstainRule(dir: string, rule: AbstainRule): Promise<string> {
  return writeSidecar(dir, ABSTAIN_FILE, rule.toJSON());
}

/**
 * Reads the abstain rule of the classifier folder `dir`, or undefined when it has none. A file that is there but
 * unreadable, or whose labels differ from the model's, is an error (never silently ignored: a model that should
 * abstain must not quietly answer everything).
 */
export async function readAbstainRule(dir: string, labels: readonly string[]): Promise<AbstainRule | undefined> {
  const found = await readSidecar(dir, ABSTAIN_FILE);
  if (!found) return undefined;
  const { file, value } = found;
  let rule: AbstainRule;
  try {
    rule = AbstainRule.fromJSON(value, file);
  } catch (e) {
    throw new ModelFileError((e as Error).message, { file, field: (e as ModelFileError).context?.field }, { cause: e });
  }
  assertSidecarLabels(file, rule.spec.labels, labels);
  return rule;
}
