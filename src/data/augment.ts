/**
 * Seeded augmentation. Text: EDA-style random word dropout and random word swap (Wei & Zou, 2019) without the
 * synonym operations, which would need a language-specific thesaurus. Images: horizontal flip and random crop
 * on raw HWC buffers. Augmentation only ever applies to train rows, after the validation split.
 */
import { ConfigError } from '../errors.ts';
import type { RawImage } from './load.ts';
import { createRng, type Rng } from '../util/rng.ts';
import type { TextExample } from './types.ts';

export interface TextAugmentOptions {
  /** Augmented copies generated per train example. */
  copies: number;
  /** Probability of dropping each word (at least one word always survives). Default 0.1. */
  wordDropout?: number;
  /** Number of random word-pair swaps per copy. Default 1. */
  wordSwaps?: number;
  seed?: number | string;
}

/** Drops each word with probability p, keeping at least one. */
export function wordDropout(text: string, p: number, rng: Rng): string {
  const words = text.split(' ');
  if (words.length <= 1 || p <= 0) return text;
  const kept = words.filter(() => rng.next() >= p);
  return kept.length > 0 ? kept.join(' ') : words[rng.int(words.length)];
}

/** Swaps two randomly chosen words, `n` times. */
export function wordSwap(text: string, n: number, rng: Rng): string {
  const words = text.split(' ');
  if (words.length < 2) return text;
  for (let k = 0; k < n; k++) {
    const i = rng.int(words.length);
    let j = rng.int(words.length - 1);
    if (j >= i) j++;
    [words[i], words[j]] = [words[j], words[i]];
  }
  return words.join(' ');
}

/**
 * Returns augmented copies (marked `augmented: true`) of the given examples. Copies that come out identical to
 * the original are not emitted: they would only re-weight that example.
 */
export function augmentText(examples: TextExample[], options: TextAugmentOptions): TextExample[] {
  const { copies, wordDropout: p = 0.1, wordSwaps = 1 } = options;
  if (!Number.isInteger(copies) || copies < 0)
    throw new ConfigError(`augment.copies must be a non-negative integer, got ${copies}`, { field: 'augment.copies' });
  if (!(p >= 0 && p < 1))
    throw new ConfigError(`augment.wordDropout must be in [0, 1), got ${p}`, { field: 'augment.wordDropout' });
  const rng = createRng(options.seed ?? 0);
  const out: TextExample[] = [];
  for (const e of examples) {
    const seen = new Set<string>([e.text]);
    for (let c = 0; c < copies; c++) {
      const text = wordSwap(wordDropout(e.text, p, rng), wordSwaps, rng);
      if (seen.has(text)) continue;
      seen.add(text);
      out.push({ ...e, text, augmented: true });
    }
  }
  return out;
}

/** Mirrors an image left-right. */
export function flipHorizontal(img: RawImage): RawImage {
  const { width, height, channels, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const src = (y * width + x) * channels;
      const dst = (y * width + (width - 1 - x)) * channels;
      for (let c = 0; c < channels; c++) out[dst + c] = data[src + c];
    }
  }
  return { width, height, channels, data: out };
}

/** Copies the rectangle at (x, y) of size width×height. */
export function crop(img: RawImage, x: number, y: number, width: number, height: number): RawImage {
  if (x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > img.width || y + height > img.height) {
    throw new ConfigError(`crop ${width}x${height}+${x}+${y} is outside the ${img.width}x${img.height} image`, {
      field: 'crop',
    });
  }
  const { channels } = img;
  const out = new Uint8Array(width * height * channels);
  for (let row = 0; row < height; row++) {
    const start = ((y + row) * img.width + x) * channels;
    out.set(img.data.subarray(start, start + width * channels), row * width * channels);
  }
  return { width, height, channels, data: out };
}

export interface ImageAugmentOptions {
  /** Probability of a horizontal flip. Default 0.5. */
  flipProbability?: number;
  /** Random crop to this size (must fit in the image). */
  crop?: { width: number; height: number };
}

/** Random crop (if configured) then random horizontal flip, drawing from `rng`. */
export function augmentImage(img: RawImage, options: ImageAugmentOptions, rng: Rng): RawImage {
  let out = img;
  if (options.crop) {
    const { width, height } = options.crop;
    out = crop(out, rng.int(img.width - width + 1), rng.int(img.height - height + 1), width, height);
  }
  if (rng.next() < (options.flipProbability ?? 0.5)) out = flipHorizontal(out);
  return out;
}
