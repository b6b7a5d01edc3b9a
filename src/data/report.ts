/**
 * The data report: what was read, what was removed and why (with examples pointing at file:line), what was
 * kept but flagged, and the class balance. Nothing leaves the pipeline without being counted here.
 */
import { renderTable } from '../util/table.ts';

/** Why a row was removed (or, for flags, why it deserves a look). */
export type RemovalReason =
  | 'malformed-row'
  | 'missing-value'
  | 'non-text-value'
  | 'empty-text'
  | 'empty-label'
  | 'exact-duplicate'
  | 'near-duplicate'
  | 'label-conflict'
  | 'leakage'
  | 'rare-class'
  | 'unseen-label'
  | 'unreadable-image';

/** Where a removed or flagged row came from, and what was wrong with it. */
export interface RowIssue {
  file: string;
  line: number;
  field?: string;
  value?: string;
  message: string;
}

export interface SplitReport {
  /** Source files that fed this split. */
  files: string[];
  /** Rows read from the files (after the header), including ones later removed. */
  rowsRead: number;
  /** Rows in the final split (before augmentation). */
  rowsKept: number;
  /** Augmented rows added (train only). */
  rowsAugmented: number;
  removed: Partial<Record<RemovalReason, number>>;
  /** Kept rows that matched a rule whose policy is "keep" (e.g. label conflicts, leakage with leakage:'keep'). */
  flagged: Partial<Record<RemovalReason, number>>;
  /** The first few rows per reason, so a user can go and look. */
  samples: Partial<Record<RemovalReason, RowIssue[]>>;
  classCounts: Record<string, number>;
}

export interface ClassBalanceRow {
  label: string;
  train: number;
  validation: number;
  eval: number;
  /** Share of train rows. */
  share: number;
}

export interface DataReport {
  splits: { train: SplitReport; validation: SplitReport; eval?: SplitReport };
  classBalance: ClassBalanceRow[];
  /** Largest over smallest train class count; 1 means perfectly balanced. */
  imbalanceRatio: number;
  totalRemoved: number;
  fingerprint: string;
  options: Record<string, unknown>;
}

const MAX_SAMPLES = 10;

/** Accumulates counts for one split as rows stream past. */
export class SplitLog {
  readonly report: SplitReport;
  constructor(files: string[] = []) {
    this.report = {
      files,
      rowsRead: 0,
      rowsKept: 0,
      rowsAugmented: 0,
      removed: {},
      flagged: {},
      samples: {},
      classCounts: {},
    };
  }

  read(): void {
    this.report.rowsRead++;
  }

  removed(reason: RemovalReason, issue: RowIssue): void {
    this.report.removed[reason] = (this.report.removed[reason] ?? 0) + 1;
    this.sample(reason, issue);
  }

  flagged(reason: RemovalReason, issue: RowIssue): void {
    this.report.flagged[reason] = (this.report.flagged[reason] ?? 0) + 1;
    this.sample(reason, issue);
  }

  private sample(reason: RemovalReason, issue: RowIssue): void {
    const list = (this.report.samples[reason] ??= []);
    if (list.length < MAX_SAMPLES) list.push(issue);
  }

  /** Total removed rows. */
  get removedCount(): number {
    return Object.values(this.report.removed).reduce((a, b) => a + (b ?? 0), 0);
  }
}

/** Plain-text rendering of a data report for terminals and logs. */
export function formatDataReport(report: DataReport): string {
  const out: string[] = [];
  const names = ['train', 'validation', 'eval'] as const;
  const splits = names.filter((n) => report.splits[n] !== undefined);
  const reasons = new Set<RemovalReason>();
  for (const n of splits) {
    const s = report.splits[n]!;
    for (const r of Object.keys(s.removed) as RemovalReason[]) reasons.add(r);
    for (const r of Object.keys(s.flagged) as RemovalReason[]) reasons.add(r);
  }
  out.push(`Dataset fingerprint: ${report.fingerprint}`);
  out.push('');
  const rows: string[][] = [];
  rows.push(['rows read', ...splits.map((n) => String(report.splits[n]!.rowsRead))]);
  for (const r of [...reasons].sort()) {
    rows.push([
      `removed: ${r}`,
      ...splits.map((n) => {
        const s = report.splits[n]!;
        const rem = s.removed[r] ?? 0;
        const flag = s.flagged[r] ?? 0;
        return flag > 0 ? `${rem} (+${flag} flagged, kept)` : String(rem);
      }),
    ]);
  }
  rows.push(['rows kept', ...splits.map((n) => String(report.splits[n]!.rowsKept))]);
  if (report.splits.train.rowsAugmented > 0) {
    rows.push(['augmented rows added', ...splits.map((n) => String(report.splits[n]!.rowsAugmented))]);
  }
  out.push(renderTable(['', ...splits], rows, ['left', ...splits.map(() => 'right' as const)]));
  out.push('');
  const counts = report.classBalance.map((c) => c.train);
  out.push(
    `Classes: ${report.classBalance.length}; train examples per class min ${Math.min(...counts)}, max ${Math.max(...counts)}; imbalance ratio ${report.imbalanceRatio.toFixed(2)}`,
  );
  const shown = [...report.classBalance].sort((a, b) => a.train - b.train || a.label.localeCompare(b.label));
  const head = shown.length > 12 ? [...shown.slice(0, 6), ...shown.slice(-6)] : shown;
  out.push(
    renderTable(
      ['label', 'train', 'validation', 'eval', 'share'],
      head.map((c) => [
        c.label,
        String(c.train),
        String(c.validation),
        String(c.eval),
        `${(c.share * 100).toFixed(2)}%`,
      ]),
      ['left', 'right', 'right', 'right', 'right'],
    ),
  );
  if (shown.length > 12)
    out.push(`(${shown.length - 12} classes in between not shown; smallest 6 and largest 6 listed)`);
  for (const n of splits) {
    const s = report.splits[n]!;
    for (const [reason, list] of Object.entries(s.samples)) {
      if (!list || list.length === 0) continue;
      out.push('');
      out.push(`${n} / ${reason}, first ${list.length}:`);
      for (const i of list) out.push(`  ${i.file}:${i.line}${i.field ? ` [${i.field}]` : ''}: ${i.message}`);
    }
  }
  return out.join('\n');
}
