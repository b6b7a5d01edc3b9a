/**
 * The data a policy-triggered retraining runs on: the current version's training rows plus the texts that
 * received feedback labels since, de-duplicated (exact and near duplicates, the training rows winning),
 * leakage-checked against the held-out rows the gate will score on, and fingerprinted like any other data set
 * (src/data). Pure over its inputs; the caller reads the log and hands the rows to customize.
 */
import { cleanText } from '../data/clean.ts';
import { Deduplicator, heldOutKeys } from '../data/dedup.ts';
import { fingerprintSplits } from '../data/fingerprint.ts';
import type { RemovalReason } from '../data/report.ts';
import type { TextExample } from '../data/types.ts';
import { feedbackLabels, rowKey, type FeedbackRow, type PredictionRow } from './log.ts';

export interface RetrainingSet {
  examples: TextExample[];
  /** Feedback rows that made it into the set. */
  added: number;
  /** Rows dropped, by reason (duplicates of training rows, leakage into the held-out rows, ...). */
  removed: Partial<Record<RemovalReason, number>>;
  /** Kept rows that matched a rule set to "keep" (label conflicts by default). */
  flagged: Partial<Record<RemovalReason, number>>;
  /** First messages, for the run record. */
  messages: string[];
  /** Feedback labels the current version does not have (new intents). */
  newLabels: string[];
  fingerprint: string;
}

/** Training rows + labelled log texts, de-duplicated, leakage-checked and fingerprinted. */
export function retrainingSet(options: {
  training: Array<{ text: string; label: string }>;
  predictions: PredictionRow[];
  feedback: FeedbackRow[];
  /** Rows the gate will evaluate on; any text of theirs is kept out of the set. */
  heldOut: Array<{ text: string; label: string }>;
  /** The current version's labels. */
  labels: string[];
}): RetrainingSet {
  const held = heldOutKeys(
    options.heldOut.map((r, i) => ({ text: cleanText(r.text), label: r.label, file: 'held-out', line: i + 1 })),
  );
  const dedup = new Deduplicator({}, held);
  const labelOf = feedbackLabels(options.feedback);
  const candidates: TextExample[] = [
    ...options.training.map((r, i) => ({ text: cleanText(r.text), label: r.label, file: 'training', line: i + 1 })),
  ];
  const nTraining = candidates.length;
  options.predictions.forEach((p, i) => {
    const label = labelOf.get(rowKey(p));
    if (label === undefined || !p.input || !('text' in p.input)) return;
    const text = cleanText(p.input.text);
    if (text) candidates.push({ text, label, file: 'feedback', line: i + 1 });
  });
  const examples: TextExample[] = [];
  const removed: Partial<Record<RemovalReason, number>> = {};
  const flagged: Partial<Record<RemovalReason, number>> = {};
  const messages: string[] = [];
  let added = 0;
  candidates.forEach((e, i) => {
    const v = dedup.check(e);
    if (v.action !== 'keep') {
      const bucket = v.action === 'remove' ? removed : flagged;
      bucket[v.reason] = (bucket[v.reason] ?? 0) + 1;
      if (messages.length < 20) messages.push(v.message);
      if (v.action === 'remove') return;
    }
    examples.push(e);
    if (i >= nTraining) added++;
  });
  const known = new Set(options.labels);
  const newLabels = [...new Set(examples.filter((e) => !known.has(e.label)).map((e) => e.label))].sort();
  return {
    examples,
    added,
    removed,
    flagged,
    messages,
    newLabels,
    fingerprint: fingerprintSplits([{ name: 'train', examples }], { source: 'monitor-retraining' }),
  };
}
