/**
 * `loadClassifier(ref)`: one line from a model to answers, like transformers.js's `pipeline()`: a registry reference
 * (`name`, `name:3`, `name@alias`) or a model folder, loaded as a `Classifier` whose `predict(texts)` gives labels
 * and calibrated probabilities.
 *
 * @example
 * import { loadClassifier } from 'tailor';
 * const clf = await loadClassifier('tickets@production');
 * console.log(await clf.predict(['my card was charged twice']));
 * await clf.release();
 */
import { Classifier, type ClassifierOptions } from '../models/classifier.ts';
import { resolveModelRef } from './sources.ts';

/** Loads a classifier by registry reference or folder (`home`: the registry folder, default TAILOR_HOME or ./.tailor). */
export async function loadClassifier(
  ref: string,
  opts: ClassifierOptions & { home?: string } = {},
): Promise<Classifier> {
  const { home, ...rest } = opts;
  const m = await resolveModelRef(ref, home);
  // fromArtifact: the group thresholds and abstain rule stored in the folder come with it.
  return Classifier.fromArtifact(m, rest);
}
