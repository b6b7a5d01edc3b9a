/**
 * Behavioural tests (eval/behaviour.ts) on a loaded `Model`: the adapter from a model with a classification head to
 * the `predict(texts)` callback the tests take. Shared by the audit (the base with its ridge head) and `tailorModel`
 * (the customized model), so both see the same perturbed texts for the same seed and `compareBehaviour` applies.
 */
import { runBehaviourTests, type BehaviourOptions, type BehaviourReport } from '../eval/index.ts';
import { softmaxRows } from '../models/classifier.ts';
import type { Model } from '../models/model.ts';
import { predictTexts } from '../models/text.ts';
import type { ProviderSpec } from '../runtime/session.ts';

export interface ModelBehaviourOptions extends Pick<BehaviourOptions, 'seed' | 'templates' | 'tests'> {
  maxLength?: number;
  providers?: ProviderSpec[];
}

/** Runs the behavioural tests on `texts` with `model`; `labels` name the model's output classes, in order. */
export async function modelBehaviour(
  model: Model,
  labels: readonly string[],
  texts: readonly string[],
  o: ModelBehaviourOptions = {},
): Promise<BehaviourReport> {
  return runBehaviourTests(
    texts,
    async (batch) => {
      const r = await predictTexts(model, batch, { maxLength: o.maxLength, providers: o.providers, batchSize: 32 });
      return softmaxRows(r.logits, r.classes).map((probabilities) => ({
        label: labels[probabilities.indexOf(Math.max(...probabilities))],
        probabilities,
      }));
    },
    {
      seed: o.seed ?? 0,
      batchSize: 4096,
      ...(o.templates ? { templates: o.templates } : {}),
      ...(o.tests ? { tests: o.tests } : {}),
    },
  );
}
