/**
 * The engine for ordinary model folders (a customized classifier, merged LoRA, INT8): one ONNX Runtime session per
 * model version behind a dynamic batcher. Adapter-aware engines implement the same `ServedModel` seam.
 */
import { softmax } from '../eval/metrics.ts';
import path from 'node:path';
import type { Prediction, ServedModel } from './backend.ts';
import { Batcher, type BatchingOptions, type BatchObserver } from './batcher.ts';
import { HttpError } from './errors.ts';
import { abstainedLabel, loadArtifact, readAbstainRule, runTexts, Session, type ProviderSpec } from './library.ts';

/** How to load one model version. */
export interface EngineOptions {
  name: string;
  version: number;
  batching?: BatchingOptions;
  observer?: BatchObserver;
  providers?: ProviderSpec[];
  /** ORT threads inside one op (default ORT's). */
  intraOpThreads?: number;
}

export { softmax };

/** Index of the largest value (first on ties). */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Loads a classifier folder (tailor.json + model.onnx + tokenizer) as a batched ServedModel. With an abstain rule in
 * the folder (abstain.json), the texts it rejects are answered OUT_OF_SCOPE (their scores are still the model's).
 */
export async function loadFolderModel(dir: string, opts: EngineOptions): Promise<ServedModel> {
  const { model, info, dir: root } = await loadArtifact(dir);
  // From the file, not from the parsed graph: ORT reads external data beside it and nothing is re-encoded.
  const session = await Session.create(path.join(root, 'model.onnx'), {
    providers: opts.providers,
    intraOpThreads: opts.intraOpThreads,
    label: `${opts.name}:${opts.version}`,
  });
  const labels = [...info.labels];
  const abstain = await readAbstainRule(root, labels);
  const maxLength = info.maxLength;
  const execute = async (texts: string[]): Promise<Prediction[]> => {
    // runTexts sorts by length so a batch pads to similar lengths (sequence-length bucketing within a batch).
    const r = await runTexts(session, model, texts, 'logits', { batchSize: texts.length, maxLength });
    if (r.width !== labels.length)
      throw new HttpError(
        500,
        `model ${opts.name}:${opts.version} returned ${r.width} logits per text but tailor.json lists ${labels.length} labels`,
        { file: path.join(root, 'tailor.json'), field: 'labels' },
      );
    return texts.map((_, i) => {
      const row = r.values.subarray(i * r.width, (i + 1) * r.width);
      const scores = softmax(row);
      return { label: abstainedLabel(labels[argmax(scores)], row, abstain), scores };
    });
  };
  const batcher = new Batcher(`${opts.name}:${opts.version}`, execute, opts.batching, opts.observer);
  let released = false;
  return {
    name: opts.name,
    version: opts.version,
    labels,
    predict(texts, o = {}) {
      if (released)
        return Promise.reject(new HttpError(503, `model ${opts.name}:${opts.version} has been unloaded`, {}));
      return batcher.submit(texts, o.signal);
    },
    async release() {
      if (released) return;
      released = true;
      await batcher.idle();
      await session.release();
    },
  };
}
