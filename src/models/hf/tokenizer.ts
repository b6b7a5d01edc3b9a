/**
 * Tokenizers from Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) through `@huggingface/tokenizers`
 * (the pure-JS tokenizer transformers.js uses; it works offline from in-memory JSON). The library encodes one
 * text; this wrapper adds what training and inference need: truncation that keeps the special tokens, padding
 * (to the longest in the batch or to a fixed length), attention masks, token type ids and int64 batches.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError, ModelFileError } from '../../errors.ts';

export type TokenizerKind = 'WordPiece' | 'BPE' | 'Unigram';
const KINDS: readonly TokenizerKind[] = ['WordPiece', 'BPE', 'Unigram'];

export interface EncodeOptions {
  /** Longest sequence kept, special tokens included (default: `model_max_length` from tokenizer_config.json, capped at 512). */
  maxLength?: number;
  /** Cut sequences longer than maxLength (default true); when false a longer text is an error. */
  truncation?: boolean;
  /** 'longest' (default): pad to the batch's longest; 'max_length': pad to maxLength; false: no padding (batch of one only). */
  padding?: 'longest' | 'max_length' | false;
  /** Round the padded length up to a multiple of this (sequence-length buckets). */
  padToMultipleOf?: number;
}

/** One text encoded, before padding. */
export interface Encoded {
  ids: number[];
  tokenTypeIds: number[];
  tokens: string[];
}

/** A padded batch as int64 arrays in row-major [batch, seq]. */
export interface BatchEncoding {
  batch: number;
  seq: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  tokenTypeIds: BigInt64Array;
  /** Unpadded length of each row (special tokens included). */
  lengths: number[];
}

interface PostProcessorLike {
  (tokens: string[], pair: string[] | null, addSpecialTokens: boolean): { tokens: string[]; token_type_ids?: number[] };
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content;
  return undefined;
}

/** A text tokenizer over an HF tokenizer.json. */
export class TextTokenizer {
  readonly kind: TokenizerKind;
  readonly padTokenId: number;
  readonly paddingSide: 'left' | 'right';
  readonly modelMaxLength: number;
  private readonly inner: Tokenizer;
  private readonly specialCount: { single: number; pair: number };

  private constructor(
    /** The tokenizer.json object, kept so the model folder can be written back unchanged. */
    readonly json: Record<string, unknown>,
    readonly config: Record<string, unknown>,
    readonly file: string,
  ) {
    const model = json.model as Record<string, unknown>;
    this.kind = model.type as TokenizerKind;
    try {
      this.inner = new Tokenizer(json, config);
    } catch (e) {
      throw new ModelFileError(`${file}: cannot build the tokenizer: ${(e as Error).message}`, { file }, { cause: e });
    }
    const padding = json.padding as { pad_id?: number; pad_token?: string } | null | undefined;
    const padTok = padding?.pad_token ?? tokenContent(config.pad_token);
    const padId = padding?.pad_id ?? (padTok !== undefined ? this.inner.token_to_id(padTok) : undefined);
    this.padTokenId = padId ?? 0;
    this.paddingSide = config.padding_side === 'left' ? 'left' : 'right';
    const mml = config.model_max_length;
    // HF writes a huge sentinel (1e30) when the length is unknown.
    this.modelMaxLength = typeof mml === 'number' && mml > 0 && mml < 1e6 ? mml : 512;
    const pp = this.inner.post_processor as unknown as PostProcessorLike | null;
    this.specialCount = pp
      ? { single: pp([], null, true).tokens.length, pair: pp([], [], true).tokens.length }
      : { single: 0, pair: 0 };
  }

  /**
   * Builds a tokenizer from parsed tokenizer.json / tokenizer_config.json objects. `file` is named in errors.
   * Throws ModelFileError for a model type other than WordPiece, BPE or Unigram.
   */
  static fromJSON(json: unknown, config: unknown = {}, file = 'tokenizer.json'): TextTokenizer {
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      throw new ModelFileError(`${file}: expected a JSON object`, { file });
    const o = json as Record<string, unknown>;
    const model = o.model;
    if (typeof model !== 'object' || model === null)
      throw new ModelFileError(`${file}: field 'model' is missing`, { file, field: 'model' });
    const type = (model as Record<string, unknown>).type;
    if (!KINDS.includes(type as TokenizerKind)) {
      throw new ModelFileError(
        `${file}: model.type '${String(type)}' is not a supported tokenizer model (supported: ${KINDS.join(', ')})`,
        { file, field: 'model.type', value: String(type) },
      );
    }
    // The library indexes these unconditionally; HF omits them in some hand-written files.
    const full: Record<string, unknown> = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...o,
    };
    const cfg = typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : {};
    return new TextTokenizer(full, cfg, file);
  }

  /** Reads `tokenizer.json` and, when present, `tokenizer_config.json` from a model folder. */
  static async fromDir(dir: string): Promise<TextTokenizer> {
    const file = join(dir, 'tokenizer.json');
    const json = await readJson(file);
    const cfgFile = join(dir, 'tokenizer_config.json');
    let cfg: unknown = {};
    try {
      cfg = await readJson(cfgFile);
    } catch (e) {
      if (!(e instanceof ModelFileError && (e.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')) throw e;
    }
    return TextTokenizer.fromJSON(json, cfg, file);
  }

  /** Vocabulary size, added tokens included. */
  get vocabSize(): number {
    return this.inner.get_vocab(true).size;
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  /** Tokens of a text without special tokens (the library's tokenize). */
  tokenize(text: string): string[] {
    return this.inner.tokenize(text, { add_special_tokens: false });
  }

  /** Encodes one text (or a pair) with special tokens, truncated to maxLength (longest-first for pairs). */
  encode(text: string, pair?: string, opts: Pick<EncodeOptions, 'maxLength' | 'truncation'> = {}): Encoded {
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    let a = this.tokenize(text);
    let b = pair !== undefined ? this.tokenize(pair) : null;
    const budget = maxLength - (b ? this.specialCount.pair : this.specialCount.single);
    if (budget < 0)
      throw new ConfigError(`maxLength ${maxLength} leaves no room for the tokenizer's special tokens`, {
        field: 'maxLength',
      });
    const total = a.length + (b?.length ?? 0);
    if (total > budget) {
      if (opts.truncation === false) {
        throw new ConfigError(`text of ${total} tokens exceeds maxLength ${maxLength} and truncation is off`, {
          field: 'maxLength',
          value: text.slice(0, 80),
        });
      }
      if (!b) a = a.slice(0, budget);
      else {
        // longest_first: drop from whichever is longer, one token at a time (HF's default strategy).
        let la = a.length;
        let lb = b.length;
        while (la + lb > budget) {
          if (la >= lb) la--;
          else lb--;
        }
        a = a.slice(0, la);
        b = b.slice(0, lb);
      }
    }
    const pp = this.inner.post_processor as unknown as PostProcessorLike | null;
    const out = pp ? pp(a, b, true) : { tokens: b ? [...a, ...b] : a };
    const unk = this.inner.model?.unk_token_id;
    const ids = out.tokens.map((t) => {
      const id = this.inner.token_to_id(t) ?? unk;
      if (id === undefined)
        throw new ModelFileError(`${this.file}: token '${t}' is not in the vocabulary and there is no unk_token`, {
          file: this.file,
          field: 'model.vocab',
          value: t,
        });
      return id;
    });
    const tokenTypeIds = out.token_type_ids ?? new Array<number>(ids.length).fill(0);
    return { ids, tokenTypeIds, tokens: out.tokens };
  }

  /** Encodes a batch into padded int64 arrays with attention masks. `pairs`, when given, pairs each text. */
  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}, pairs?: readonly string[]): BatchEncoding {
    if (pairs && pairs.length !== texts.length)
      throw new ConfigError(`${texts.length} texts but ${pairs.length} pairs`, { field: 'pairs' });
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    const enc = texts.map((t, i) => this.encode(t, pairs?.[i], { maxLength, truncation: opts.truncation }));
    const lengths = enc.map((e) => e.ids.length);
    const padding = opts.padding ?? 'longest';
    let seq = padding === 'max_length' ? maxLength : Math.max(1, ...lengths);
    if (padding === false && texts.length > 1 && new Set(lengths).size > 1) {
      throw new ConfigError('padding is off but the texts have different lengths', { field: 'padding' });
    }
    const mult = opts.padToMultipleOf;
    if (mult && mult > 1) seq = Math.ceil(seq / mult) * mult;
    const n = texts.length * seq;
    const inputIds = new BigInt64Array(n).fill(BigInt(this.padTokenId));
    const attentionMask = new BigInt64Array(n);
    const tokenTypeIds = new BigInt64Array(n);
    enc.forEach((e, r) => {
      const off = r * seq + (this.paddingSide === 'left' ? seq - e.ids.length : 0);
      for (let j = 0; j < e.ids.length; j++) {
        inputIds[off + j] = BigInt(e.ids[j]);
        attentionMask[off + j] = 1n;
        tokenTypeIds[off + j] = BigInt(e.tokenTypeIds[j]);
      }
    });
    return { batch: texts.length, seq, inputIds, attentionMask, tokenTypeIds, lengths };
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.inner.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }
}

/** Reads and parses a JSON file; ModelFileError names the file on a missing file or bad JSON. */
export async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(
      code === 'ENOENT' ? `${file}: file not found` : `${file}: cannot read: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelFileError(`${file}: invalid JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
}
