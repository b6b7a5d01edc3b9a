/**
 * Dataset fingerprint: sha256 over a canonical encoding of the options that shape the data and of every
 * final row, in split order. Two runs with the same fingerprint trained on byte-identical examples, whatever
 * the file paths were (paths are deliberately left out so that moving a folder keeps the fingerprint).
 */
import { createHash, type Hash } from 'node:crypto';
import type { TextExample } from './types.ts';

const VERSION = 'tailor-dataset-v1';

/** JSON with sorted keys and undefined dropped, so equal options always hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Incremental fingerprint, fed split by split as rows stream. */
export class Fingerprinter {
  private readonly hash: Hash = createHash('sha256');
  private split = '';

  constructor(options: Record<string, unknown>) {
    this.hash.update(`${VERSION}\n${canonicalJson(options)}\n`);
  }

  /** Starts a new named split; rows added afterwards belong to it. */
  beginSplit(name: string): void {
    this.split = name;
    this.hash.update(`#split ${JSON.stringify(name)}\n`);
  }

  /** Adds one row. JSON array encoding makes the boundaries between fields unambiguous. */
  add(example: Pick<TextExample, 'text' | 'label' | 'group' | 'augmented'>): void {
    this.hash.update(JSON.stringify([example.text, example.label, example.group ?? null, example.augmented === true]));
    this.hash.update('\n');
  }

  /** Adds a binary payload (e.g. decoded image pixels) with its label. */
  addBytes(label: string, bytes: Uint8Array): void {
    this.hash.update(`${JSON.stringify(label)}:${bytes.length}:`);
    this.hash.update(bytes);
    this.hash.update('\n');
  }

  /** Hex sha256, prefixed with the algorithm. Can only be called once. */
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }

  get currentSplit(): string {
    return this.split;
  }
}

/** Fingerprint of whole splits in the given order. */
export function fingerprintSplits(
  splits: Array<{ name: string; examples: Iterable<Pick<TextExample, 'text' | 'label' | 'group' | 'augmented'>> }>,
  options: Record<string, unknown>,
): string {
  const fp = new Fingerprinter(options);
  for (const s of splits) {
    fp.beginSplit(s.name);
    for (const e of s.examples) fp.add(e);
  }
  return fp.digest();
}
