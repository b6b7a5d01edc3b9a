/**
 * Duplicate, near-duplicate, label-conflict and leakage detection in one streaming pass with bounded memory
 * (hashes only, see HashMap64).
 */
import { normalizeForMatch } from './clean.ts';
import { HashMap64 } from './hashset.ts';
import type { RemovalReason } from './report.ts';
import type { TextExample } from './types.ts';

export interface DedupOptions {
  /** Same text after case/punctuation/whitespace normalisation, same label. Default 'remove'. */
  nearDuplicates?: 'remove' | 'keep';
  /** Same normalised text, different label. Default 'keep' (reported): which label is right is a human call. */
  labelConflicts?: 'remove' | 'keep';
  /** Normalised text also present in a held-out split. Default 'remove'. */
  leakage?: 'remove' | 'keep';
}

export type DedupVerdict = { action: 'keep' } | { action: 'remove' | 'flag'; reason: RemovalReason; message: string };

/** Interns file names so a first occurrence can be stored as two int32s (file index, line). */
class FileTable {
  private readonly ids = new Map<string, number>();
  readonly names: string[] = [];
  id(file: string): number {
    let id = this.ids.get(file);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(file, id);
      this.names.push(file);
    }
    return id;
  }
}

/** Normalised-text keys of held-out rows with where each first appeared, for leakage checks. */
export class HeldOutKeys {
  readonly keys = new HashMap64(1 << 12, 2);
  readonly files = new FileTable();
  add(example: TextExample): void {
    this.keys.setIfAbsent(normalizeForMatch(example.text), [this.files.id(example.file), example.line]);
  }
  /** "file:line" of the held-out row with the same normalised text, if any. */
  lookup(key: string): string | undefined {
    const v = this.keys.get(key);
    return v ? `${this.files.names[v[0]]}:${v[1]}` : undefined;
  }
}

/** Decides for each example, in stream order, whether it is new. The first occurrence always wins. */
export class Deduplicator {
  // Membership only: the first occurrence's location is kept in `near`, which an exact duplicate also hits.
  private readonly exact = new HashMap64(1 << 12, 0);
  // value: [label id, file id, line] of the first row with this normalised text.
  private readonly near = new HashMap64(1 << 12, 3);
  private readonly labelIds = new Map<string, number>();
  private readonly labelNames: string[] = [];
  private readonly files = new FileTable();

  constructor(
    private readonly options: DedupOptions = {},
    /** Held-out rows; a hit means train/eval leakage. */
    private readonly heldOut?: HeldOutKeys,
  ) {}

  private labelId(label: string): number {
    let id = this.labelIds.get(label);
    if (id === undefined) {
      id = this.labelNames.length;
      this.labelIds.set(label, id);
      this.labelNames.push(label);
    }
    return id;
  }

  /** `example.text` must be cleanText output (as streamExamples produces). */
  check(example: TextExample): DedupVerdict {
    const key = normalizeForMatch(example.text, true);
    const leak = this.heldOut?.lookup(key);
    if (leak !== undefined) {
      const verdict = this.options.leakage === 'keep' ? 'flag' : 'remove';
      return {
        action: verdict,
        reason: 'leakage',
        message: `${JSON.stringify(example.text)} also appears in held-out ${leak}`,
      };
    }
    const id = this.labelId(example.label);
    const where = [id, this.files.id(example.file), example.line];
    const exactKey = `${example.label}\u0000${example.text}`;
    const firstExact = this.exact.setIfAbsent(exactKey, []);
    const firstNear = this.near.setIfAbsent(key, where);
    if (firstNear === undefined) return { action: 'keep' };
    const at = `${this.files.names[firstNear[1]]}:${firstNear[2]}`;
    if (firstExact !== undefined) {
      return {
        action: 'remove',
        reason: 'exact-duplicate',
        message: `${JSON.stringify(example.text)} duplicates ${at}`,
      };
    }
    if (firstNear[0] === id) {
      const verdict = this.options.nearDuplicates === 'keep' ? 'flag' : 'remove';
      return {
        action: verdict,
        reason: 'near-duplicate',
        message: `${JSON.stringify(example.text)} is a near-duplicate of ${at}`,
      };
    }
    const verdict = this.options.labelConflicts === 'remove' ? 'remove' : 'flag';
    return {
      action: verdict,
      reason: 'label-conflict',
      message: `${JSON.stringify(example.text)} is labelled "${example.label}" here but "${this.labelNames[firstNear[0]]}" at ${at}`,
    };
  }
}

/** Builds held-out keys from examples. */
export function heldOutKeys(examples: Iterable<TextExample>): HeldOutKeys {
  const keys = new HeldOutKeys();
  for (const e of examples) keys.add(e);
  return keys;
}
