/** Fixtures for the customize tests: a tiny BERT with a word-level WordPiece vocabulary over a CLINC150 slice. */
import type { CustomizeData } from '../../src/customize/types.ts';
import { wordPieceTokenizerConfig, wordPieceTokenizerJson } from '../../src/models/hf/tokenizer-json.ts';
import { TextTokenizer } from '../../src/models/hf/tokenizer.ts';
import type { Model } from '../../src/models/model.ts';
import { bertConfig, buildBert, type BertTask } from '../../src/models/zoo/bert.ts';
import { clincIntents, firstPerIntent, readClinc } from '../clinc150.ts';

/** The first `intents` intents (sorted) of CLINC150's train and validation splits, `perIntent` training rows each. */
export function clincSlice(intents: number, perIntent = 100, valPerIntent = 20): CustomizeData {
  const labels = clincIntents(intents);
  return {
    train: firstPerIntent(readClinc('train'), perIntent, labels),
    validation: firstPerIntent(readClinc('validation'), valPerIntent, labels),
  };
}

/** A WordPiece tokenizer whose vocabulary is every lower-cased word of the texts (BERT's basic pre-tokenizer). */
export function wordTokenizer(texts: readonly string[], maxLength = 32): TextTokenizer {
  const words = new Set<string>();
  for (const t of texts)
    for (const w of t
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter(Boolean))
      words.add(w);
  const vocab = [
    '[PAD]',
    '[UNK]',
    '[CLS]',
    '[SEP]',
    '[MASK]',
    ...[...words].sort(),
    ...'abcdefghijklmnopqrstuvwxyz0123456789'.split('').filter((c) => !words.has(c)),
  ];
  return TextTokenizer.fromJSON(wordPieceTokenizerJson(vocab), wordPieceTokenizerConfig(maxLength));
}

/** Tiny BERT (hidden 32, 2 layers) with a tokenizer over `data`'s texts. */
export function tinyBert(data: CustomizeData, task: BertTask = 'sentence-embedding', seed = 1): Model {
  const tok = wordTokenizer([...data.train, ...data.validation].map((r) => r.text));
  const cfg = bertConfig({
    vocab_size: tok.vocabSize,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 64,
    max_position_embeddings: 64,
    num_labels: 2,
  });
  return { ...buildBert(cfg, { task, seed }), tokenizer: tok };
}
