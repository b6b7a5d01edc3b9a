/**
 * Running a text model over examples: graph feeds from a tokenizer batch, the frozen body's features, and
 * class scores of a model with a head. Batches are sorted by length so padding (and time) stays small.
 */
import { ConfigError } from '../errors.ts';
import { bodyGraph } from '../customize/head.ts';
import { feedInputs, toOnnxModel, type Model } from '../models/model.ts';
import { modelFromGraph } from '../onnx/ir.ts';
import { ort, Session, type ProviderSpec } from '../runtime/session.ts';

export interface RunTextOptions {
  /** Examples per ORT run. Default 32. */
  batchSize?: number;
  /** Longest token sequence kept. Default: the tokenizer's `model_max_length`, capped at 128. */
  maxLength?: number;
  providers?: ProviderSpec[];
  /** Threads inside one op (default: ORT's). */
  intraOpThreads?: number;
  /** Called after each batch with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Default longest sequence: enough for the short texts Tailor targets, and it bounds the cost of long emails. */
export const DEFAULT_MAX_LENGTH = 128;

/** ORT feeds for `texts`: every int64 text input the graph declares (input_ids, attention_mask, token_type_ids). */
export function textFeeds(
  model: Model,
  texts: readonly string[],
  maxLength = DEFAULT_MAX_LENGTH,
): Record<string, ort.Tensor> {
  const tok = model.tokenizer;
  if (!tok)
    throw new ConfigError(`model '${model.architecture}' has no tokenizer, so it cannot read text`, {
      field: 'tokenizer',
    });
  const enc = tok.encodeBatch(texts, { maxLength: Math.min(maxLength, tok.modelMaxLength) });
  const dims = [enc.batch, enc.seq];
  const byName: Record<string, BigInt64Array> = {
    input_ids: enc.inputIds,
    attention_mask: enc.attentionMask,
    token_type_ids: enc.tokenTypeIds,
  };
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of feedInputs(model)) {
    const data = byName[v.name];
    if (!data)
      throw new ConfigError(
        `model input '${v.name}' is not a text input (expected input_ids, attention_mask, token_type_ids)`,
        { field: v.name },
      );
    feeds[v.name] = new ort.Tensor('int64', data, dims);
  }
  return feeds;
}

/** Indices of `texts` ordered by length, so one batch holds texts of similar length. */
function lengthOrder(texts: readonly string[]): number[] {
  return texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length || a - b);
}

/**
 * Runs `session` over `texts` in length-sorted batches and returns `output` as one row per text, in the input
 * order: a Float32Array of `texts.length * width`.
 */
export async function runTexts(
  session: Session,
  model: Model,
  texts: readonly string[],
  output: string,
  opts: RunTextOptions = {},
): Promise<{ values: Float32Array; width: number }> {
  const bs = opts.batchSize ?? 32;
  const order = lengthOrder(texts);
  let values: Float32Array | undefined;
  let width = 0;
  for (let s = 0; s < order.length; s += bs) {
    const idx = order.slice(s, s + bs);
    const out = await session.run(
      textFeeds(
        model,
        idx.map((i) => texts[i]),
        opts.maxLength,
      ),
      [output],
    );
    const t = out[output];
    const data = t.data as Float32Array;
    width = data.length / idx.length;
    values ??= new Float32Array(texts.length * width);
    idx.forEach((row, j) => values!.set(data.subarray(j * width, (j + 1) * width), row * width));
    opts.onProgress?.(Math.min(s + bs, order.length), order.length);
  }
  return { values: values ?? new Float32Array(0), width };
}

/** A session over the model's body (inputs -> pooled feature) and the feature's name. */
export async function featureSession(
  model: Model,
  opts: RunTextOptions = {},
): Promise<{ session: Session; feature: string }> {
  const { graph, feature } = bodyGraph(model);
  const onnx = modelFromGraph(graph);
  if (model.opsets) onnx.opsetImports = model.opsets.map((o) => ({ ...o }));
  const session = await Session.create(onnx, {
    providers: opts.providers,
    intraOpThreads: opts.intraOpThreads,
    label: `${model.architecture} encoder`,
  });
  return { session, feature };
}

/** The frozen encoder's pooled features for `texts`: [n, width] row-major. */
export async function encodeTexts(
  model: Model,
  texts: readonly string[],
  opts: RunTextOptions = {},
): Promise<{ features: Float32Array; width: number }> {
  const { session, feature } = await featureSession(model, opts);
  try {
    const r = await runTexts(session, model, texts, feature, opts);
    return { features: r.values, width: r.width };
  } finally {
    await session.release();
  }
}

/** Class scores (logits) of a classification model for `texts`: one row per text. */
export async function predictTexts(
  model: Model,
  texts: readonly string[],
  opts: RunTextOptions = {},
): Promise<{ logits: Float32Array; classes: number }> {
  const session = await Session.create(toOnnxModel(model), {
    providers: opts.providers,
    intraOpThreads: opts.intraOpThreads,
    label: `${model.architecture} classifier`,
  });
  try {
    const r = await runTexts(session, model, texts, 'logits', opts);
    return { logits: r.values, classes: r.width };
  } finally {
    await session.release();
  }
}

/** Row-wise argmax of a [n, k] matrix. */
export function argmaxRows(values: Float32Array, k: number): number[] {
  const n = values.length / k;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (values[i * k + j] > values[i * k + best]) best = j;
    out[i] = best;
  }
  return out;
}
