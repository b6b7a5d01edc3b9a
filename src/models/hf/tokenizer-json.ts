/**
 * Writers of small `tokenizer.json` objects in Hugging Face's format: a BERT-style WordPiece tokenizer and a
 * RoBERTa-style BPE tokenizer over a given vocabulary. Used to give zoo models trained from scratch a real
 * tokenizer and to build HF-layout fixture folders; the output loads in HF `tokenizers` and transformers.js.
 */

function added(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * A BERT WordPiece tokenizer.json. `vocab` lists tokens in id order and must contain [PAD], [UNK], [CLS], [SEP]
 * (and usually [MASK]); continuation pieces start with `##`.
 */
export function wordPieceTokenizerJson(
  vocab: readonly string[],
  opts: { lowercase?: boolean } = {},
): Record<string, unknown> {
  const ids = new Map(vocab.map((t, i) => [t, i]));
  const need = (t: string): number => {
    const id = ids.get(t);
    if (id === undefined) throw new RangeError(`WordPiece vocabulary lacks ${t}`);
    return id;
  };
  const [cls, sep] = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].map(need).slice(2);
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].filter((t) => ids.has(t));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => added(ids.get(t) as number, t)),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: opts.lowercase ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [cls], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [sep], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  };
}

/** The tokenizer_config.json that goes with `wordPieceTokenizerJson`. */
export function wordPieceTokenizerConfig(maxLength = 512): Record<string, unknown> {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: true,
    model_max_length: maxLength,
    padding_side: 'right',
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    mask_token: '[MASK]',
  };
}

/**
 * A RoBERTa-style BPE tokenizer.json (whitespace pre-tokenizer, `<s> ... </s>` template) over `vocab` (id order,
 * must contain <s>, <pad>, </s>, <unk>) and `merges` ("a b" pairs in priority order).
 */
export function bpeTokenizerJson(vocab: readonly string[], merges: readonly string[]): Record<string, unknown> {
  const ids = new Map(vocab.map((t, i) => [t, i]));
  const need = (t: string): number => {
    const id = ids.get(t);
    if (id === undefined) throw new RangeError(`BPE vocabulary lacks ${t}`);
    return id;
  };
  const [bos, , eos] = ['<s>', '<pad>', '</s>', '<unk>'].map(need);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<s>', '<pad>', '</s>', '<unk>'].map((t) => added(ids.get(t) as number, t)),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', eos],
      cls: ['<s>', bos],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: null,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges: [...merges],
    },
  };
}
