/**
 * `saveCustomizedModel`: the one writer of a `customize` result, for every strategy, used by the library's
 * `tailorModel`, the CLI and the server's tests alike. The folder it writes, atomically (complete or absent):
 *
 *   model/      the classifier (models/artifact.ts format): adapters folded into the weights, runs anywhere
 *   adapter/    LoRA or IA3 only: the adapter in PEFT's format (adapter_config.json, adapter_model.safetensors)
 *   <files>     any extra files the caller passes (reports)
 *
 * `loadArtifact` reads the folder (or its model/ directly).
 */
import path from 'node:path';
import { writeFileSynced } from '../onnx/io.ts';
import type { Model } from '../models/model.ts';
import { assertFreshOut, writeClassifier, writeFolderAtomic } from '../models/artifact.ts';
import { DEFAULT_MAX_LENGTH } from '../models/text.ts';
import { mergeAdapter } from './adapters.ts';
import { mergeIa3, saveIa3Adapter } from './ia3.ts';
import { saveAdapter } from './peft.ts';
import type { CustomizeResult } from './customize.ts';

export interface SaveModelOptions {
  /** The base `customize` started from: needed to fold a LoRA adapter into plain weights. */
  base?: Model;
  /** Longest token sequence to use with the model (default: the run's `maxLength`). */
  maxLength?: number;
  /** Metrics to record in tailor.json (for example the eval's accuracy, or the baseline's and the customized model's). */
  metrics?: Record<string, unknown>;
  /** Extra fields for tailor.json. */
  extra?: Record<string, unknown>;
  /** Extra files written beside model/ (name -> text content), such as reports. */
  files?: Record<string, string>;
}

/** Where the parts of a saved customization lie. */
export interface SavedModel {
  dir: string;
  model: string;
  adapter?: string;
}

/** The customized model as one plain graph: a LoRA adapter merged into the base's weights, IA3 vectors folded in. */
export function mergedModel(result: Pick<CustomizeResult, 'model' | 'adapter' | 'ia3'>, base?: Model): Model {
  if (result.adapter) {
    if (!base) return result.model;
    return mergeAdapter(base, result.adapter).model;
  }
  if (result.ia3) return mergeIa3(result.model, result.ia3.spec);
  return result.model;
}

/**
 * Saves a customized model (see the module comment). `dir` must not exist or be an empty folder; nothing is left
 * behind on failure. Returns the absolute paths written.
 */
export async function saveCustomizedModel(
  dir: string,
  result: Pick<CustomizeResult, 'model' | 'labels' | 'lineage' | 'adapter' | 'ia3'>,
  opts: SaveModelOptions = {},
): Promise<SavedModel> {
  const out = path.resolve(dir);
  await assertFreshOut(out);
  const model = mergedModel(result, opts.base);
  const lineage = result.lineage;
  const hp = lineage.hyperparameters;
  const maxLength = opts.maxLength ?? (typeof hp.maxLength === 'number' ? hp.maxLength : DEFAULT_MAX_LENGTH);
  const hasAdapter = Boolean(result.adapter || result.ia3);
  await writeFolderAtomic(out, async (tmp) => {
    await writeClassifier(model, path.join(tmp, 'model'), {
      labels: result.labels,
      maxLength,
      strategy: lineage.strategy,
      base: lineage.base.id,
      lineage,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...opts.extra,
    });
    if (result.adapter) await saveAdapter(path.join(tmp, 'adapter'), result.adapter);
    if (result.ia3) await saveIa3Adapter(path.join(tmp, 'adapter'), result.ia3.adapter);
    for (const [name, text] of Object.entries(opts.files ?? {}))
      await writeFileSynced(path.join(tmp, name), new TextEncoder().encode(text));
  });
  return { dir: out, model: path.join(out, 'model'), ...(hasAdapter ? { adapter: path.join(out, 'adapter') } : {}) };
}
