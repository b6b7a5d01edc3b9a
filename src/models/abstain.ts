/**
 * The abstain rule stored with a model (eval/abstain.ts `AbstainRule`): `abstain.json` next to model.onnx in the
 * classifier folder, beside group-thresholds.json. `Classifier.load` reads it and `predict` answers `OUT_OF_SCOPE`
 * for the rows it rejects; the server's engines read it too. This file is the one reader and writer of that file.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ModelFileError } from '../errors.ts';
import { AbstainRule } from '../eval/abstain.ts';
import { writeFileSynced } from '../onnx/io.ts';

export const ABSTAIN_FILE = 'abstain.json';

/** The file's text for `rule` (for writers that put it into a folder themselves, like `saveCustomizedModel`'s files). */
export function abstainFileText(rule: AbstainRule): string {
  return `${JSON.stringify(rule.toJSON(), null, 2)}\n`;
}

/** Writes `rule` into the classifier folder `dir` atomically (temp file, then rename over any old one). */
export async function writeAbstainRule(dir: string, rule: AbstainRule): Promise<string> {
  const file = path.join(dir, ABSTAIN_FILE);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFileSynced(tmp, new TextEncoder().encode(abstainFileText(rule)));
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  return file;
}

/**
 * Reads the abstain rule of the classifier folder `dir`, or undefined when it has none. A file that is there but
 * unreadable, or whose labels differ from the model's, is an error (never silently ignored: a model that should
 * abstain must not quietly answer everything).
 */
export async function readAbstainRule(dir: string, labels: readonly string[]): Promise<AbstainRule | undefined> {
  const file = path.join(dir, ABSTAIN_FILE);
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
  let rule: AbstainRule;
  try {
    rule = AbstainRule.fromJSON(value, file);
  } catch (e) {
    throw new ModelFileError((e as Error).message, { file, field: (e as ModelFileError).context?.field }, { cause: e });
  }
  if (rule.spec.labels.length !== labels.length || rule.spec.labels.some((l, i) => l !== labels[i]))
    throw new ModelFileError(
      `${file}: field 'labels' is ${JSON.stringify(rule.spec.labels)}, but the model's labels are ${JSON.stringify(labels)}`,
      { file, field: 'labels' },
    );
  return rule;
}
