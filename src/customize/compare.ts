/** Runs several strategies on the same base and data and tabulates them (the decision table). */
import type { Model } from '../models/model.ts';
import { customize, type CustomizeResult } from './customize.ts';
import type { CustomizeData, CustomizeOptions } from './types.ts';

export interface ComparisonRow {
  strategy: string;
  accuracy: number;
  macroF1: number;
  trainableParams: number;
  totalParams: number;
  trainablePercent: number;
  seconds: number;
  secondsPerEpoch: number;
  peakRssMB: number;
}

/** One customize() per strategy (run one after another, so peak RSS is per run only as far as the GC allows). */
export async function compareStrategies(
  base: Model,
  data: CustomizeData,
  runs: readonly CustomizeOptions[],
  onResult?: (r: CustomizeResult) => void,
): Promise<ComparisonRow[]> {
  const rows: ComparisonRow[] = [];
  for (const opts of runs) {
    const r = await customize(base, data, opts);
    onResult?.(r);
    const e = r.report.epochSeconds;
    rows.push({
      strategy: opts.strategy,
      accuracy: r.report.accuracy,
      macroF1: r.report.macroF1,
      trainableParams: r.report.trainableParams,
      totalParams: r.report.totalParams,
      trainablePercent: (100 * r.report.trainableParams) / r.report.totalParams,
      seconds: r.report.totalSeconds,
      secondsPerEpoch: e.reduce((a, b) => a + b, 0) / Math.max(1, e.length),
      peakRssMB: r.report.peakRssBytes / 2 ** 20,
    });
  }
  return rows;
}

/** A Markdown table of comparison rows. */
export function formatComparison(rows: readonly ComparisonRow[]): string {
  const head =
    '| strategy | val accuracy | macro-F1 | trainable / total params | trainable % | time (s) | s / epoch | peak RSS (MiB) |';
  const sep = '| --- | --- | --- | --- | --- | --- | --- | --- |';
  const body = rows.map(
    (r) =>
      `| ${r.strategy} | ${(100 * r.accuracy).toFixed(2)} | ${(100 * r.macroF1).toFixed(2)} | ${r.trainableParams.toLocaleString('en')} / ${r.totalParams.toLocaleString('en')} | ${r.trainablePercent.toFixed(2)} | ${r.seconds.toFixed(0)} | ${r.secondsPerEpoch.toFixed(1)} | ${r.peakRssMB.toFixed(0)} |`,
  );
  return [head, sep, ...body].join('\n');
}
