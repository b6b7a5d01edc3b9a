/**
 * What the promotion gate's fairness budget reads about a challenger (gate.ts `fairnessReports`): behavioural
 * tests on the gate's held-out texts (no group needed, for the flip rate) and metrics disaggregated by the
 * policy's `fairness_data` rows (for the group limits and the fairness gap). The prediction log carries no group
 * column, so groups come only from that file.
 */
import { readTable } from '../data/index.ts';
import { DataError } from '../errors.ts';
import { runBehaviourTests, type BehaviourReport } from '../eval/behaviour.ts';
import { disaggregate, type DisaggregatedReport } from '../eval/disaggregate.ts';
import { Classifier } from '../models/classifier.ts';
import type { FairnessData, Policy } from './policy.ts';

/** Labelled rows of the fairness data with their sensitive values; an empty value is an error naming its line. */
async function readFairnessData(
  d: FairnessData,
): Promise<{ texts: string[]; labels: string[]; sensitive: Record<string, string[]> }> {
  const out = {
    texts: [] as string[],
    labels: [] as string[],
    sensitive: Object.fromEntries(d.sensitiveColumns.map((c) => [c, [] as string[]])),
  };
  for await (const ev of readTable(d.file, {
    requiredColumns: [d.textColumn, d.labelColumn, ...d.sensitiveColumns],
  })) {
    if (ev.kind !== 'row') continue;
    const t = ev.values[d.textColumn];
    if (t === null || t === undefined || String(t).trim() === '') continue;
    out.texts.push(String(t));
    out.labels.push(String(ev.values[d.labelColumn] ?? ''));
    for (const c of d.sensitiveColumns) {
      const v = ev.values[c];
      const g = v === null || v === undefined ? '' : String(v).trim();
      if (g === '')
        throw new DataError(`${d.file}:${ev.line}: sensitive column "${c}" is empty`, {
          file: d.file,
          line: ev.line,
          field: c,
        });
      out.sensitive[c].push(g);
    }
  }
  if (out.texts.length === 0)
    throw new DataError(`fairness data ${d.file} has no labelled rows`, { file: d.file, field: d.textColumn });
  return out;
}

/**
 * Measures the challenger in folder `dir` for `policy.gate.fairnessBudget` and `fairnessGapBudget`: behavioural
 * tests on `heldOutTexts` when there is a flip-rate limit, disaggregated metrics on the policy's fairness data
 * when there is one. `seed` seeds the perturbations and the bootstrap.
 */
export async function challengerFairness(
  dir: string,
  policy: Pick<Policy, 'gate' | 'fairnessData'>,
  heldOutTexts: readonly string[],
  seed: number,
): Promise<{ fairness?: DisaggregatedReport; behaviour?: BehaviourReport }> {
  const clf = await Classifier.load(dir);
  try {
    const out: { fairness?: DisaggregatedReport; behaviour?: BehaviourReport } = {};
    if (policy.gate.fairnessBudget?.maxFlipRate !== undefined)
      out.behaviour = await runBehaviourTests(heldOutTexts, async (batch) => clf.predict(batch), { seed });
    const d = policy.fairnessData;
    if (d) {
      const rows = await readFairnessData(d);
      const predicted = (await clf.predict(rows.texts)).map((p) => p.label);
      // The challenger's label space, widened by labels it never learned (those rows can only be wrong).
      const labels = [...clf.labels, ...[...new Set(rows.labels)].filter((l) => !clf.labels.includes(l)).sort()];
      const id = new Map(labels.map((l, i) => [l, i]));
      out.fairness = disaggregate({
        labels,
        yTrue: rows.labels.map((l) => id.get(l)!),
        yPred: predicted.map((l) => id.get(l)!),
        sensitive: rows.sensitive,
        minGroupSize: d.minGroupSize,
        bootstrap: { iterations: 1000, seed },
      });
    }
    return out;
  } finally {
    await clf.release();
  }
}

/** The largest accuracy difference between judged groups over every view (NaN when none has two judged groups). */
export function accuracyGap(report: DisaggregatedReport): number {
  const gaps = report.views.map((v) => v.difference.accuracy?.estimate).filter((x): x is number => Number.isFinite(x));
  return gaps.length ? Math.max(...gaps) : Number.NaN;
}
