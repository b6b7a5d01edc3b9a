/** Terminal rendering of the disaggregated evaluation, the behavioural tests and the fairness budget. */
import { renderTable } from '../util/table.ts';
import type { BehaviourChange, BehaviourReport } from './behaviour.ts';
import { FOUR_FIFTHS, type DisaggregatedReport, type Estimate, type FairnessView } from './disaggregate.ts';
import type { BudgetResult } from './gate.ts';

const num = (v: number | undefined, d = 4): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : 'n/a');
const ci = (e: Estimate): string => (e.lower !== undefined ? `[${num(e.lower)}, ${num(e.upper)}]` : '');

const METRIC_NAMES: Record<string, string> = {
  accuracy: 'accuracy',
  macroF1: 'macro F1',
  selectionRate: 'selection rate',
  truePositiveRate: 'true-positive rate',
  falsePositiveRate: 'false-positive rate',
};
const metricName = (m: string): string => METRIC_NAMES[m] ?? m;

function formatView(r: DisaggregatedReport, v: FairnessView): string {
  const out: string[] = [];
  const metrics = Object.keys(v.groups[0]?.metrics ?? {}).filter((m) => m !== 'count');
  out.push(`By "${v.name}":`);
  out.push(
    renderTable(
      ['group', 'count', ...metrics.map(metricName)],
      v.groups.map((g) => [
        g.tooSmall ? `${g.group} (too small)` : g.group,
        String(g.count),
        ...metrics.map((m) => num(g.metrics[m])),
      ]),
      ['left', 'right', ...metrics.map(() => 'right' as const)],
    ),
  );
  if (v.note) {
    out.push(v.note);
    return out.join('\n');
  }
  const multi = r.task === 'multiclass';
  const row = (name: string, e: Estimate & { label?: string }, flag = ''): string[] => [
    name,
    num(e.estimate),
    ...(r.bootstrap ? [ci(e)] : []),
    ...(multi ? [e.label ?? ''] : []),
    flag,
  ];
  const di = v.disparateImpact;
  // Selection rate and TPR gaps are the demographic parity and equal opportunity rows already.
  const gapMetrics = metrics.filter((m) => m !== 'selectionRate' && m !== 'truePositiveRate');
  const rows = [
    row('demographic parity difference', v.demographicParityDifference),
    row('demographic parity ratio', v.demographicParityRatio),
    row('equal opportunity difference', v.equalOpportunityDifference),
    row('equalized odds difference', v.equalizedOddsDifference),
    row('equalized odds ratio', v.equalizedOddsRatio),
    row(
      'disparate impact ratio',
      di,
      di.fourFifthsViolated
        ? `below ${FOUR_FIFTHS} (four-fifths rule): "${di.lowestGroup}" vs "${di.highestGroup}"`
        : '',
    ),
    ...gapMetrics.flatMap((m) => [
      row(`${metricName(m)} difference`, v.difference[m]),
      row(`${metricName(m)} ratio`, v.ratio[m]),
    ]),
  ];
  const headers = [
    'measure',
    'value',
    ...(r.bootstrap ? [`${Math.round(r.bootstrap.confidence * 100)}% CI`] : []),
    ...(multi ? ['worst class'] : []),
    'flag',
  ];
  out.push('');
  out.push(`Between the judged groups of "${v.name}" (${v.judged.length}):`);
  out.push(
    renderTable(
      headers,
      rows,
      headers.map((h) => (h === 'value' ? 'right' : 'left')),
    ),
  );
  if (multi) {
    const shown = v.perClass.slice(0, 10);
    out.push('');
    out.push(
      v.perClass.length > shown.length
        ? `Per class, one-vs-rest (${shown.length} worst of ${v.perClass.length} by equalized odds; all in the JSON):`
        : 'Per class, one-vs-rest:',
    );
    out.push(
      renderTable(
        ['class', 'DP difference', 'EO difference', 'EOdds difference', 'disparate impact'],
        shown.map((p) => [
          p.label,
          num(p.demographicParityDifference),
          num(p.equalOpportunityDifference),
          num(p.equalizedOddsDifference),
          num(p.disparateImpact),
        ]),
        ['left', 'right', 'right', 'right', 'right'],
      ),
    );
  }
  if (v.tooSmall.length)
    out.push(
      `Too small to judge (< ${r.minGroupSize} examples): ${v.tooSmall.map((g) => `${g.group} (${g.count})`).join(', ')}`,
    );
  return out.join('\n');
}

/** The fairness section: method, then one block per sensitive column and per intersection. */
export function formatDisaggregated(r: DisaggregatedReport): string {
  const b = r.bootstrap;
  const out = [
    `Fairness by ${r.sensitiveColumns.map((c) => `"${c}"`).join(', ')} (${r.method}; groups under ${r.minGroupSize} examples are shown but not judged${b ? `; CIs: bootstrap, ${b.iterations} resamples, seed ${b.seed}` : ''})`,
  ];
  for (const v of r.views) {
    out.push('');
    out.push(formatView(r, v));
  }
  return out.join('\n');
}

/**
 * The two texts around their first difference, each at most `width` characters, so long texts stay readable in a
 * table (the JSON has them whole).
 */
export function clipPair(a: string, b: string, width = 60): [string, string] {
  let d = 0;
  while (d < a.length && d < b.length && a[d] === b[d]) d++;
  const start = Math.max(0, Math.min(d - Math.floor(width / 3), Math.max(a.length, b.length) - width));
  const clip = (s: string): string => {
    if (s.length <= width) return s;
    const from = Math.min(start, Math.max(0, s.length - width));
    const body = s.slice(from, from + width);
    return `${from > 0 ? '…' : ''}${body}${from + width < s.length ? '…' : ''}`;
  };
  return [clip(a), clip(b)];
}

/** The behavioural tests: flip rate and confidence shift per test, then flipped examples. */
export function formatBehaviour(r: BehaviourReport): string {
  const out = [`Behavioural tests (CheckList-style invariance, ${r.texts} texts, seed ${r.seed}):`];
  out.push(
    renderTable(
      ['test', 'cases', 'flips', 'flip rate', 'mean confidence shift', 'what changes'],
      r.tests.map((t) => [
        t.test,
        String(t.cases),
        String(t.flips),
        pct(t.flipRate),
        Number.isFinite(t.meanConfidenceShift)
          ? `${t.meanConfidenceShift >= 0 ? '+' : ''}${t.meanConfidenceShift.toFixed(4)}`
          : 'n/a',
        t.note ?? t.description,
      ]),
      ['left', 'right', 'right', 'right', 'right', 'left'],
    ),
  );
  const flipped = r.tests.filter((t) => t.examples.length);
  if (flipped.length) {
    out.push('');
    out.push('Flipped examples:');
    out.push(
      renderTable(
        ['test', 'original', 'perturbed', 'prediction'],
        flipped.flatMap((t) =>
          t.examples.map((e) => [t.test, ...clipPair(e.original, e.perturbed), `${e.before} -> ${e.after}`]),
        ),
        ['left', 'left', 'left', 'left'],
      ),
    );
  }
  return out.join('\n');
}

/** Flip rates of two models side by side (compareBehaviour). */
export function formatBehaviourChange(rows: BehaviourChange[], names = ['before', 'after']): string {
  const pts = (v: number): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)} pts` : 'n/a');
  return renderTable(
    ['test', `flip rate ${names[0]}`, `flip rate ${names[1]}`, 'change'],
    rows.map((r) => [
      r.test,
      `${pct(r.before.flipRate)} (${r.before.flips}/${r.before.cases})`,
      `${pct(r.after.flipRate)} (${r.after.flips}/${r.after.cases})`,
      pts(r.change),
    ]),
    ['left', 'right', 'right', 'right'],
  );
}

/** The budget verdict, with one line per failed limit. */
export function formatBudget(b: BudgetResult): string {
  const out = [`Fairness budget: ${b.pass ? 'PASS' : 'FAIL'}`];
  out.push(
    renderTable(
      ['limit', 'bound', 'measured', 'where', 'result'],
      b.checks.map((c) => [
        c.limit,
        String(c.bound),
        c.value === null ? 'n/a' : num(c.value),
        c.where,
        c.pass ? 'pass' : 'FAIL',
      ]),
      ['left', 'right', 'right', 'left', 'left'],
    ),
  );
  return out.join('\n');
}
