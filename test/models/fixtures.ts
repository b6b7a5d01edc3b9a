/** Shared fixtures for the models tests: tiny configs, tokenizers and HF-layout folders built with Tailor's own code. */
import { mkdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { toOptimumOnnx } from '../../src/models/hf/export.ts';
import { saveHfModel } from '../../src/models/hf/load.ts';
import {
  bpeTokenizerJson,
  wordPieceTokenizerConfig,
  wordPieceTokenizerJson,
} from '../../src/models/hf/tokenizer-json.ts';
import { TextTokenizer, type BatchEncoding } from '../../src/models/hf/tokenizer.ts';
import { paramValues, toOnnxModel, type Model } from '../../src/models/model.ts';
import { bertConfig, buildBert, type BertConfig, type BertTask } from '../../src/models/zoo/bert.ts';
import { weightsFrom } from '../../src/models/zoo/params.ts';
import { writeModel } from '../../src/onnx/io.ts';
import { Session, ort, type Fetches } from '../../src/runtime/session.ts';

export const WP_VOCAB = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  'hello',
  'world',
  'un',
  '##aff',
  '##able',
  '!',
  'the',
  'cat',
  'sat',
  'on',
  'mat',
  '##s',
  ',',
  '.',
  'a',
];
export const BPE_VOCAB = [
  '<s>',
  '<pad>',
  '</s>',
  '<unk>',
  'l',
  'o',
  'w',
  'e',
  'r',
  'n',
  'lo',
  'low',
  'er',
  'lower',
  'newer',
  'ne',
  'new',
  's',
  't',
  'lowest',
  'es',
  'est',
];
export const BPE_MERGES = ['l o', 'lo w', 'e r', 'low er', 'n e', 'ne w', 'new er', 'e s', 'es t', 'low est'];

export function wordPiece(maxLength = 16): TextTokenizer {
  return TextTokenizer.fromJSON(wordPieceTokenizerJson(WP_VOCAB), wordPieceTokenizerConfig(maxLength));
}

export function bpe(): TextTokenizer {
  return TextTokenizer.fromJSON(bpeTokenizerJson(BPE_VOCAB, BPE_MERGES), { pad_token: '<pad>', model_max_length: 16 });
}

export function tinyConfig(overrides: Partial<BertConfig> = {}): BertConfig {
  return bertConfig({
    vocab_size: WP_VOCAB.length,
    hidden_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 24,
    max_position_embeddings: 24,
    num_labels: 3,
    initializer_range: 0.2,
    ...overrides,
  });
}

export async function tempDir(tag: string): Promise<string> {
  return mkdtemp(join(os.tmpdir(), `tailor-models-${tag}-`));
}

/**
 * Writes an HF folder for a zoo model: config.json, tokenizer files, model.safetensors (PyTorch layout) and
 * onnx/model.onnx in Optimum's form (opset 14, decomposed LayerNorm, Gemm heads, anonymous MatMul weights,
 * external data) carrying the same weights.
 */
export async function writeHfFixture(
  model: Model,
  dir: string,
  parts: { safetensors?: boolean; onnx?: boolean } = {},
): Promise<void> {
  if (parts.safetensors !== false) await saveHfModel(model, dir, { overwrite: true });
  else await saveHfModel(model, dir, { overwrite: true, format: 'onnx' });
  if (parts.onnx !== false) {
    const optimum = buildBert(model.config as BertConfig, {
      task: model.task as BertTask,
      style: 'optimum',
      weights: weightsFrom(model.params, (p) => paramValues(model, p.path) as Float32Array),
    });
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    await writeModel(toOptimumOnnx(optimum), join(dir, 'onnx', 'model.onnx'), { externalData: { threshold: 256 } });
  }
}

export function feeds(enc: BatchEncoding): Record<string, ort.Tensor> {
  const dims = [enc.batch, enc.seq];
  return {
    input_ids: new ort.Tensor('int64', enc.inputIds, dims),
    attention_mask: new ort.Tensor('int64', enc.attentionMask, dims),
    token_type_ids: new ort.Tensor('int64', enc.tokenTypeIds, dims),
  };
}

export async function runModel(model: Model, f: Record<string, ort.Tensor>): Promise<Fetches> {
  const s = await Session.create(toOnnxModel(model));
  try {
    return await s.run(f);
  } finally {
    await s.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
