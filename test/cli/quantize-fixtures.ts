/** A tiny zoo-BERT classifier folder (the format `tailor customize` writes) on CLINC150 slices, for quantize/distill CLI tests. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeClassifier } from '../../src/models/artifact.ts';
import { wordPieceTokenizerConfig, wordPieceTokenizerJson } from '../../src/models/hf/tokenizer-json.ts';
import { TextTokenizer } from '../../src/models/hf/tokenizer.ts';
import { bertConfig, buildBert } from '../../src/models/zoo/bert.ts';
import { clincRows, writeCsv, type Row } from './fixtures.ts';

export interface CompressionWorkspace {
  dir: string;
  home: string;
  /** Classifier folder: zoo BERT, 2 layers, hidden 32, 4 labels. */
  teacher: string;
  labels: string[];
  train: string;
  eval: string;
  /** JSONL with a `text` field only. */
  unlabelled: string;
  trainRows: Row[];
  evalRows: Row[];
}

export async function compressionWorkspace(tag: string): Promise<CompressionWorkspace> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `tailor-${tag}-`));
  const trainRows = clincRows('train', 4, 20);
  const evalRows = clincRows('test', 4, 8);
  const unl = clincRows('validation', 4, 10);
  const labels = [...new Set(trainRows.map((r) => r.label))];
  const words = [
    ...new Set(
      [...trainRows, ...evalRows, ...unl].flatMap((r) => r.text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? []),
    ),
  ].sort();
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words];
  const model = buildBert(
    bertConfig({
      vocab_size: vocab.length,
      hidden_size: 32,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      intermediate_size: 64,
      max_position_embeddings: 64,
      num_labels: labels.length,
    }),
    { task: 'sequence-classification', seed: 5 },
  );
  const tokenizer = TextTokenizer.fromJSON(wordPieceTokenizerJson(vocab), wordPieceTokenizerConfig(32));
  const teacher = path.join(dir, 'teacher');
  await writeClassifier({ ...model, tokenizer, labels }, teacher, {
    labels,
    maxLength: 32,
    strategy: 'full',
    base: 'zoo-bert',
  });
  const unlabelled = path.join(dir, 'unlabelled.jsonl');
  writeFileSync(unlabelled, unl.map((r) => JSON.stringify({ text: r.text })).join('\n') + '\n');
  return {
    dir,
    home: path.join(dir, '.tailor'),
    teacher,
    labels,
    trainRows,
    evalRows,
    unlabelled,
    train: writeCsv(path.join(dir, 'train.csv'), trainRows, 'text', 'intent'),
    eval: writeCsv(path.join(dir, 'eval.csv'), evalRows, 'text', 'intent'),
  };
}

/** Asserts that a refused command left nothing behind: no out folder, no registry, no temp folder beside `out`. */
export function assertNothingWritten(dir: string, out: string, home: string): void {
  assert.equal(existsSync(out), false);
  assert.equal(existsSync(home), false);
  const base = path.basename(out);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith(`${base}.tmp`)),
    [],
  );
}
