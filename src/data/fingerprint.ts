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
  // Row strings are joined into ~64 KiB pieces: one native update per row costs more than the hashing.
  private pending: string[] = [];
  private pendingLength = 0;

  private push(s: string): void {
    this.pending.push(s);
    this.pendingLength += s.length;
    if (this.pendingLength > 65536) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.hash.update(this.pending.join(''));
    this.pending = [];
    this.pendingLength = 0;
  }

  constructor(options: Record<string, unknown>) {
    this.hash.update(`${VERSION}\n${canonicalJson(options)}\n`);
  }

  /** Starts a new named split; rows added afterwards belong to it. */
  beginSplit(name: string): void {
    this.split = name;
    this.push(`#split ${JSON.stringify(name)}\n`);
  }

  /** Adds one row. JSON array encoding makes the boundaries between fields unambiguous. */
  add(example: Pick<TextExample, 'text' | 'label' | 'group' | 'augmented'>): void {
    this.push(`${JSON.stringify([example.text, example.label, example.group ?? null, example.augmented === true])}\n`);
  }

  /** Adds a binary payload (e.g. decoded image pixels) with its label. */
  addBytes(label: string, bytes: Uint8Array): void {
    this.flush();
    this.hash.update(`${JSON.stringify(label)}:${bytes.length}:`);
    this.hash.update(bytes);
    this.hash.update('\n');
  }

  /** Hex sha256, prefixed with the algorithm. Can only be called once. */
  digest(): string {
    this.flush();
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
