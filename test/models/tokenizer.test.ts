import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, ModelFileError } from '../../src/errors.ts';
import { TextTokenizer } from '../../src/models/hf/tokenizer.ts';
import { wordPieceTokenizerJson } from '../../src/models/hf/tokenizer-json.ts';
import { bpe, WP_VOCAB, wordPiece } from './fixtures.ts';

const id = (t: string): number => WP_VOCAB.indexOf(t);

test('WordPiece: lowercasing, sub-words, [CLS]/[SEP], pairs with token types', () => {
  const t = wordPiece();
  assert.equal(t.kind, 'WordPiece');
  const e = t.encode('Hello unaffable world!');
  assert.deepEqual(e.tokens, ['[CLS]', 'hello', 'un', '##aff', '##able', 'world', '!', '[SEP]']);
  assert.deepEqual(e.ids, e.tokens.map(id));
  const p = t.encode('the cat', 'sat on mats');
  assert.deepEqual(p.tokens, ['[CLS]', 'the', 'cat', '[SEP]', 'sat', 'on', 'mat', '##s', '[SEP]']);
  assert.deepEqual(p.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1, 1, 1]);
  assert.deepEqual(t.encode('zebra').tokens, ['[CLS]', '[UNK]', '[SEP]']);
});

test('batches pad to the longest row with masks; truncation keeps the special tokens', () => {
  const t = wordPiece();
  const b = t.encodeBatch(['hello world', 'the cat sat on the mat , a cat'], { maxLength: 6 });
  assert.equal(b.seq, 6);
  assert.deepEqual(b.lengths, [4, 6]);
  assert.deepEqual(Array.from(b.inputIds, Number), [2, 5, 6, 3, 0, 0, 2, 11, 12, 13, 14, 3]);
  assert.deepEqual(Array.from(b.attentionMask, Number), [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
  const fixed = t.encodeBatch(['hello'], { padding: 'max_length', maxLength: 8 });
  assert.equal(fixed.seq, 8);
  assert.equal(t.encodeBatch(['hello', 'cat'], { padToMultipleOf: 4 }).seq, 4);
  // Pairs truncate longest-first.
  const pair = t.encode('the cat sat on the mat', 'hello world', { maxLength: 8 });
  assert.deepEqual(pair.tokens, ['[CLS]', 'the', 'cat', 'sat', '[SEP]', 'hello', 'world', '[SEP]']);
  assert.throws(() => t.encode('the cat sat on the mat', undefined, { maxLength: 4, truncation: false }), ConfigError);
  assert.throws(() => t.encodeBatch(['a', 'the cat'], { padding: false }), /padding is off/);
});

test('left padding from tokenizer_config.json', () => {
  const t = TextTokenizer.fromJSON(wordPieceTokenizerJson(WP_VOCAB), { padding_side: 'left', pad_token: '[PAD]' });
  const b = t.encodeBatch(['hello world', 'hello']);
  assert.deepEqual(Array.from(b.inputIds, Number), [2, 5, 6, 3, 0, 2, 5, 3]);
  assert.deepEqual(Array.from(b.attentionMask, Number), [1, 1, 1, 1, 0, 1, 1, 1]);
});

test('BPE: merges in priority order, <s> ... </s>, pad id from the config', () => {
  const t = bpe();
  assert.equal(t.kind, 'BPE');
  assert.equal(t.padTokenId, 1);
  const e = t.encode('lower newer lowest z');
  assert.deepEqual(e.tokens, ['<s>', 'lower', 'newer', 'lowest', '<unk>', '</s>']);
  assert.deepEqual(e.ids, [0, 13, 14, 19, 3, 2]);
  const b = t.encodeBatch(['low', 'lower newer']);
  assert.deepEqual(Array.from(b.inputIds, Number), [0, 11, 2, 1, 0, 13, 14, 2]);
});

test('Unigram tokenizers load through the same class', () => {
  const json = {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    added_tokens: [],
    model: {
      type: 'Unigram',
      unk_id: 0,
      vocab: [
        ['<unk>', 0],
        ['▁', -2],
        ['▁hello', -1],
        ['▁wor', -3],
        ['ld', -3],
        ['w', -5],
        ['o', -5],
        ['r', -5],
        ['l', -5],
        ['d', -5],
      ],
    },
  };
  const t = TextTokenizer.fromJSON(json);
  assert.equal(t.kind, 'Unigram');
  assert.deepEqual(t.encode('hello world').tokens, ['▁hello', '▁wor', 'ld']);
});

test('an unknown tokenizer model type is a ModelFileError naming file and field', () => {
  assert.throws(
    () => TextTokenizer.fromJSON({ model: { type: 'WordLevel', vocab: {} } }, {}, 'm/tokenizer.json'),
    (e: unknown) =>
      e instanceof ModelFileError &&
      e.context.field === 'model.type' &&
      e.message ===
        "m/tokenizer.json: model.type 'WordLevel' is not a supported tokenizer model (supported: WordPiece, BPE, Unigram)",
  );
  assert.throws(() => TextTokenizer.fromJSON({ version: '1.0' }, {}, 'm/tokenizer.json'), /field 'model' is missing/);
});
