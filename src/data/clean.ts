/**
 * Text cleaning and normalisation. Two levels:
 * - `cleanText` is what the model sees: NFKC, invisible/control characters removed, whitespace collapsed.
 * - `normalizeForMatch` is only a key for near-duplicate and leakage detection: additionally case-folded and
 *   stripped of punctuation, so "Hello, world!" and "hello world" collide.
 */

// Zero-width characters and the BOM survive NFKC but are invisible; they make equal-looking texts differ.
const INVISIBLE = /[\u200B-\u200D\u2060\uFEFF\u00AD]/g;
// C0/C1 controls other than whitespace carry no meaning in a text label and break tokenizers.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/g;
const WHITESPACE = /\s+/gu;

/** NFKC + invisible/control removal + whitespace collapse + trim. */
export function cleanText(text: string): string {
  return text.normalize('NFKC').replace(INVISIBLE, '').replace(CONTROL, ' ').replace(WHITESPACE, ' ').trim();
}

const PUNCT_OR_SYMBOL = /[\p{P}\p{S}]/gu;

/**
 * Matching key for near-duplicates: cleaned, lower-cased, punctuation and symbols removed. Pass
 * `alreadyClean` for output of cleanText to skip cleaning twice (it dominates streaming time).
 */
export function normalizeForMatch(text: string, alreadyClean = false): string {
  return (alreadyClean ? text : cleanText(text))
    .toLowerCase()
    .replace(PUNCT_OR_SYMBOL, ' ')
    .replace(WHITESPACE, ' ')
    .trim();
}
