/**
 * USE-lite's SentencePiece unigram tokenizer, expressed as a Hugging Face `tokenizer.json` so that the project's
 * one tokenizer path (`TextTokenizer` over `@huggingface/tokenizers`) runs it: Viterbi over piece scores is the
 * library's Unigram model.
 *
 * How the TF.js pipeline prepares text (`@energetic-ai/embeddings`, the same code as tfjs-models' USE): NFKC,
 * then `▁` prepended to a non-empty string and every ' ' replaced by `▁` (no whitespace collapsing, no
 * lower-casing), then Viterbi over the whole string; reserved ids 0..5 are never matched, an unmatched character
 * becomes id 0 and consecutive id-0 tokens merge into one. The tokenizer.json below reproduces that:
 * - normalizer: Sequence[NFKC, Prepend('▁'), Replace(' ' -> '▁')], no pre-tokenizer (Metaspace would not
 *   prepend to text that already starts with a space, which the TF pipeline does);
 * - the reserved pieces 0..5 are renamed to strings containing a space, which normalised text never holds, so
 *   the Viterbi cannot pick them; id 0 is the unknown token and the library fuses consecutive unknowns.
 * Known difference: on exactly tied paths the TF.js code keeps the last candidate and the library the first
 * (1 sentence in the 15,000 of clinc150's train split tokenizes differently, 'sloooooooooowly').
 */
import { TextTokenizer } from '../hf/tokenizer.ts';
import type { VocabEntry } from './package.ts';

/** Pieces 0..5 of vocab.json are reserved (unknown, <s>, </s>, extra ids) and never produced by the text path. */
export const RESERVED_PIECES = 6;
/** The TF graph drops positions >= 128 (ClipToMaxLength). */
export const USE_LITE_MAX_LENGTH = 128;

/** A Hugging Face tokenizer.json object (Unigram) for the USE-lite vocabulary. */
export function useLiteTokenizerJson(vocab: readonly VocabEntry[]): Record<string, unknown> {
  const reservedNames = ['<unk> ', '<s> ', '</s> ', '<extra_1> ', '<extra_2> ', '<extra_3> '];
  const pieces = vocab.map(([p, s], i): [string, number] => [i < RESERVED_PIECES ? reservedNames[i] : p, s]);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFKC' },
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: false },
    model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: false },
  };
}

/** tokenizer_config.json for the cached folder: right padding (the TF graph assumes it), 128 tokens at most. */
export function useLiteTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: 'UseLiteUnigramTokenizer',
    model_max_length: USE_LITE_MAX_LENGTH,
    padding_side: 'right',
    unk_token: '<unk> ',
  };
}

/** The USE-lite tokenizer over a vocabulary (pad id 0, padding masked out by attention_mask). */
export function createUseLiteTokenizer(vocab: readonly VocabEntry[], file = 'vocab.json'): TextTokenizer {
  return TextTokenizer.fromJSON(useLiteTokenizerJson(vocab), useLiteTokenizerConfig(), file);
}
