/** The evaluation report: one plain object (JSON-serialisable) and its terminal rendering. */
import { renderTable } from '../util/table.ts';
import type { Interval } from './bootstrap.ts';
import type { CalibrationResult } from './calibration.ts';
import type { DisaggregatedReport } from './disaggregate.ts';
import type { FairnessReport } from './fairness.ts';
import { formatDisaggregated } from './fairness-format.ts';
import type { LatencyReport, ModelSize, ParameterCount } from './latency.ts';
import type { ClassMetrics } from './metrics.ts';
import type { ModelComparison } from './significance.ts';

export interface HeadlineMetrics {
  accuracy: number;
  macroF1: number;
  microF1: number;
  weightedF1: number;
  macroPrecision: number;
  macroRecall: number;
  /** "top3" → accuracy, for each requested k. */
  topK: Record<string, number>;
}

export interface EvalReport {
  model?: string;
  datasetFingerprint?: string;
  count: number;
  labels: string[];
  metrics: HeadlineMetrics;
  /** Bootstrap intervals keyed like the headline metrics (topK as "top3", plus "ece"). */
  intervals?: { confidence: number; iterations: number; seed: number | string; values: Record<string, Interval> };
  perClass: ClassMetrics[];
  confusion: number[][];
  calibration?: CalibrationResult;
  comparison?: ModelComparison & { baseline: string; candidate: string };
  fairness?: FairnessReport;
  /** Per sensitive column and intersection: metrics, differences/ratios with CIs, disparities. */
  disaggregated?: DisaggregatedReport;
  latency?: LatencyReport;
  size?: ModelSize;
  parameters?: ParameterCount;
}

/** JSON text of the report; NaN (undefined rates) and Infinity become null. */
export function evalReportToJson(report: EvalReport, indent = 2): string {
  return JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), indent);
}

const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(2)}%` : 'n/a');
const num = (v: number, d = 4): string => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const ms = (v: number): string => `${v.toFixed(2)} ms`;

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** Readable plain-text report for the terminal. Large tables are abbreviated; the JSON has everything. */
export function formatEvalReport(report: EvalReport): string {
  const out: string[] = [];
  out.push(
    `Evaluation${report.model ? ` of ${report.model}` : ''}: ${report.count} examples, ${report.labels.length} classes`,
  );
  if (report.datasetFingerprint) out.push(`Dataset: ${report.datasetFingerprint}`);
  out.push('');
  const ci = report.intervals;
  const head = (name: string, key: string, v: number): string[] => {
    const iv = ci?.values[key];
    return [name, pct(v), iv ? `[${pct(iv.lower)}, ${pct(iv.upper)}]` : ''];
  };
  const m = report.metrics;
  const rows = [
    head('accuracy', 'accuracy', m.accuracy),
    head('macro F1', 'macroF1', m.macroF1),
    head('micro F1', 'microF1', m.microF1),
    head('weighted F1', 'weightedF1', m.weightedF1),
    head('macro precision', 'macroPrecision', m.macroPrecision),
    head('macro recall', 'macroRecall', m.macroRecall),
    ...Object.entries(m.topK).map(([k, v]) => head(`${k.replace('top', 'top-')} accuracy`, k, v)),
  ];
  if (report.calibration) {
    const iv = ci?.values.ece;
    rows.push(['ECE', num(report.calibration.ece), iv ? `[${num(iv.lower)}, ${num(iv.upper)}]` : '']);
  }
  out.push(
    renderTable(
      ['metric', 'value', ci ? `${Math.round(ci.confidence * 100)}% CI (bootstrap, n=${ci.iterations})` : ''],
      rows,
      ['left', 'right', 'left'],
    ),
  );

  const pc = [...report.perClass]
    .filter((c) => c.support > 0)
    .sort((a, b) => a.f1 - b.f1 || a.label.localeCompare(b.label));
  out.push('');
  out.push(pc.length > 15 ? 'Per class (15 lowest F1; all classes in the JSON):' : 'Per class:');
  out.push(
    renderTable(
      ['label', 'precision', 'recall', 'F1', 'support'],
      pc.slice(0, 15).map((c) => [c.label, num(c.precision, 3), num(c.recall, 3), num(c.f1, 3), String(c.support)]),
      ['left', 'right', 'right', 'right', 'right'],
    ),
  );

  out.push('');
  if (report.labels.length <= 10) {
    out.push('Confusion matrix (rows: true, columns: predicted):');
    out.push(
      renderTable(
        ['', ...report.labels],
        report.confusion.map((r, i) => [report.labels[i], ...r.map(String)]),
        ['left', ...report.labels.map(() => 'right' as const)],
      ),
    );
  } else {
    const pairs: Array<[number, string, string]> = [];
    report.confusion.forEach((r, t) =>
      r.forEach((n, p) => t !== p && n > 0 && pairs.push([n, report.labels[t], report.labels[p]])),
    );
    pairs.sort((a, b) => b[0] - a[0]);
    out.push('Most frequent confusions (true → predicted):');
    out.push(
      renderTable(
        ['count', 'true', 'predicted'],
        pairs.slice(0, 10).map(([n, t, p]) => [String(n), t, p]),
        ['right', 'left', 'left'],
      ),
    );
  }

  if (report.calibration) {
    out.push('');
    out.push(`Reliability (ECE ${num(report.calibration.ece)}, MCE ${num(report.calibration.mce)}; non-empty bins):`);
    out.push(
      renderTable(
        ['confidence bin', 'count', 'accuracy', 'mean confidence', 'gap'],
        report.calibration.bins
          .filter((b) => b.count > 0)
          .map((b) => [
            `(${b.lower.toFixed(2)}, ${b.upper.toFixed(2)}]`,
            String(b.count),
            num(b.accuracy, 3),
            num(b.confidence, 3),
            num(b.gap, 3),
          ]),
        ['left', 'right', 'right', 'right', 'right'],
      ),
    );
  }

  const c = report.comparison;
  if (c) {
    out.push('');
    out.push(`Comparison ${c.candidate} vs ${c.baseline} (McNemar exact, same ${c.count} examples):`);
    out.push(
      renderTable(
        ['', 'value'],
        [
          [`accuracy ${c.baseline}`, pct(c.accuracyA)],
          [`accuracy ${c.candidate}`, pct(c.accuracyB)],
          ['difference', `${c.difference >= 0 ? '+' : ''}${(c.difference * 100).toFixed(2)} pts`],
          [`only ${c.baseline} right (b)`, String(c.b)],
          [`only ${c.candidate} right (c)`, String(c.c)],
          ['p-value', c.pValue < 1e-4 ? c.pValue.toExponential(2) : c.pValue.toFixed(4)],
        ],
        ['left', 'right'],
      ),
    );
  }

  const f = report.fairness;
  if (f) {
    out.push('');
    out.push('Fairness by group:');
    out.push(
      renderTable(
        ['group', 'count', 'accuracy', 'macro F1'],
        f.byGroup.map((g) => [g.group, String(g.count), pct(g.accuracy), pct(g.macroF1)]),
        ['left', 'right', 'right', 'right'],
      ),
    );
    out.push(`accuracy difference ${num(f.accuracyDifference)}, macro F1 difference ${num(f.macroF1Difference)}`);
    const w = f.worst;
    out.push(
      `demographic parity difference ${num(w.demographicParityDifference.value)} (class "${w.demographicParityDifference.label}")`,
    );
    out.push(
      `equal opportunity difference ${num(w.equalOpportunityDifference.value)} (class "${w.equalOpportunityDifference.label}")`,
    );
    out.push(
      `equalized odds difference ${num(w.equalizedOddsDifference.value)} (class "${w.equalizedOddsDifference.label}")`,
    );
  }

  if (report.disaggregated) {
    out.push('');
    out.push(formatDisaggregated(report.disaggregated));
  }

  if (report.latency || report.size || report.parameters) {
    out.push('');
    const r: string[][] = [];
    const l = report.latency;
    if (l) {
      r.push([
        'latency p50 / p95 / p99 (batch 1)',
        `${ms(l.batch1.p50Ms)} / ${ms(l.batch1.p95Ms)} / ${ms(l.batch1.p99Ms)}`,
      ]);
      r.push([`throughput (batch ${l.throughput.batchSize})`, `${l.throughput.itemsPerSecond.toFixed(1)} items/s`]);
    }
    if (report.size)
      r.push(['size on disk', `${bytes(report.size.totalBytes)} in ${report.size.files.length} file(s)`]);
    if (report.parameters) {
      const p = report.parameters;
      r.push([
        'parameters',
        `${p.total.toLocaleString('en-US')} (${p.trainable.toLocaleString('en-US')} trainable, ${p.frozen.toLocaleString('en-US')} frozen)`,
      ]);
    }
    out.push(renderTable(['cost', 'value'], r, ['left', 'left']));
  }
  return out.join('\n');
}
