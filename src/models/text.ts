/**
 * The one path from text to ONNX Runtime feeds, for every caller (audit, customize, compress, evaluate, predict,
 * serve): the model's tokenizer, truncation at one default `maxLength`, padding to the batch's longest text (or to a
 * fixed length), one tensor per text input the graph declares, in the dtype it declares. Running a model over many
 * texts sorts them by length so one batch holds texts of similar length (less padding, less time).
 */
import { ConfigError } from '../errors.ts';
import { bodyGraph } from './head.ts';
import { feedInputs, toOnnxModel, type Model } from './model.ts';
import { modelFromGraph } from '../onnx/ir.ts';
import { ort, Session, type ProviderSpec } from '../runtime/session.ts';

/**
 * Longest token sequence kept by default, everywhere (audit, customize, compress, predict). Tailor's targets are
 * short texts (queries, tickets, subjects); 64 tokens hold them, and it bounds the cost of long emails.
 */
export const DEFAULT_MAX_LENGTH = 64;

export interface TextBatchOptions {
  /** Longest token sequence kept (default DEFAULT_MAX_LENGTH, and never beyond the tokenizer's `model_max_length`). */
  maxLength?: number;
  /** Pad every row to exactly this many tokens (truncating at it) instead of to the batch's longest text. */
  padTo?: number;
  /**
   * Models whose declared text inputs the feeds must cover (default: just the tokenizing model). Distillation feeds
   * one batch to a teacher and a student whose graphs may declare different inputs.
   */
  inputsOf?: readonly Model[];
}

/** Feeds for one batch of texts, and its padded sequence length. */
export interface TextBatch {
  feeds: Record<string, ort.Tensor>;
  batch: number;
  seq: number;
}

export interface RunTextOptions extends Pick<TextBatchOptions, 'maxLength'> {
  /** Examples per ORT run. Default 32. */
  batchSize?: number;
  providers?: ProviderSpec[];
  /** Threads inside one op (default: ORT's). */
  intraOpThreads?: number;
  /** Called after each batch with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Tokenizes `texts` into feeds for every text input the model's graph declares (input_ids, attention_mask, token_type_ids). */
export function encodeTextBatch(model: Model, texts: readonly string[], opts: TextBatchOptions = {}): TextBatch {
  const tok = model.tokenizer;
  if (!tok)
    throw new ConfigError(`model '${model.architecture}' has no tokenizer, so it cannot read text`, {
      field: 'tokenizer',
    });
  const maxLength = Math.min(opts.maxLength ?? DEFAULT_MAX_LENGTH, tok.modelMaxLength);
  const enc =
    opts.padTo !== undefined
      ? tok.encodeBatch(texts, { padding: 'max_length', maxLength: opts.padTo, truncation: true })
      : tok.encodeBatch(texts, { padding: 'longest', maxLength, truncation: true });
  const dims = [enc.batch, enc.seq];
  const byName: Record<string, BigInt64Array> = {
    input_ids: enc.inputIds,
    attention_mask: enc.attentionMask,
    token_type_ids: enc.tokenTypeIds,
  };
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of (opts.inputsOf ?? [model]).flatMap(feedInputs)) {
    if (feeds[v.name]) continue;
    const data = byName[v.name];
    if (!data)
      throw new ConfigError(
        `model input '${v.name}' is not a text input (expected input_ids, attention_mask, token_type_ids)`,
        { field: v.name },
      );
    // Zoo graphs may declare a float mask or int32 ids; exports declare int64.
    feeds[v.name] =
      v.dtype === 'float32'
        ? new ort.Tensor('float32', Float32Array.from(data, Number), dims)
        : v.dtype === 'int32'
          ? new ort.Tensor('int32', Int32Array.from(data, Number), dims)
          : new ort.Tensor('int64', data, dims);
  }
  return { feeds, batch: enc.batch, seq: enc.seq };
}

/** Feeds for `texts` (see `encodeTextBatch`). */
export function textFeeds(
  model: Model,
  texts: readonly string[],
  opts: TextBatchOptions = {},
): Record<string, ort.Tensor> {
  return encodeTextBatch(model, texts, opts).feeds;
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
        { maxLength: opts.maxLength },
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
export async function textFeatures(
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
