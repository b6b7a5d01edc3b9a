/**
 * Self-contained HTML report: inline CSS and inline SVG drawn here (no script, no network), so the file can be
 * mailed or archived and opens anywhere. Plots: drift over time, estimated and realized accuracy over time with
 * CBPE's band and limits, and per-column reference vs current distributions; plus the most drifted texts.
 */
import type { ColumnDrift } from './drift.ts';
import type { MonitorReport, WindowReport } from './report.ts';
import { signalNames } from './report.ts';

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

const W = 640;
const H = 220;
const M = { l: 48, r: 36, t: 28, b: 40 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

interface Series {
  name: string;
  values: Array<number | undefined>;
  color: string;
  dashed?: boolean;
}

function num(x: number): string {
  return Number(x.toFixed(2)).toString();
}

/** A line chart over window indices with optional horizontal reference lines and a shaded band. */
function lineChart(
  title: string,
  xLabels: string[],
  series: Series[],
  yRange: [number, number],
  hlines: Array<{ y: number; label: string }> = [],
  band?: { lo: Array<number | undefined>; hi: Array<number | undefined> },
): string {
  const [y0, y1] = yRange;
  const n = Math.max(1, xLabels.length);
  const x = (i: number): number => M.l + (n === 1 ? (W - M.l - M.r) / 2 : (i * (W - M.l - M.r)) / (n - 1));
  const y = (v: number): number => M.t + (1 - (Math.min(y1, Math.max(y0, v)) - y0) / (y1 - y0 || 1)) * (H - M.t - M.b);
  const parts: string[] = [];
  parts.push(`<text x="${M.l}" y="16" class="t">${escapeHtml(title)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const v = y0 + ((y1 - y0) * k) / 4;
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${num(y(v))}" y2="${num(y(v))}" class="grid"/>`);
    parts.push(`<text x="${M.l - 6}" y="${num(y(v) + 4)}" class="ax" text-anchor="end">${num(v)}</text>`);
  }
  const step = Math.max(1, Math.ceil(n / 8));
  xLabels.forEach((l, i) => {
    if (i % step === 0)
      parts.push(`<text x="${num(x(i))}" y="${H - M.b + 16}" class="ax" text-anchor="middle">${escapeHtml(l)}</text>`);
  });
  if (band) {
    const pts: string[] = [];
    const back: string[] = [];
    band.lo.forEach((lo, i) => {
      const hi = band.hi[i];
      if (lo === undefined || hi === undefined) return;
      pts.push(`${num(x(i))},${num(y(hi))}`);
      back.unshift(`${num(x(i))},${num(y(lo))}`);
    });
    if (pts.length) parts.push(`<polygon points="${[...pts, ...back].join(' ')}" class="band"/>`);
  }
  for (const h of hlines) {
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${num(y(h.y))}" y2="${num(y(h.y))}" class="ref"/>`);
    parts.push(
      `<text x="${W - M.r}" y="${num(y(h.y) - 3)}" class="ax" text-anchor="end">${escapeHtml(h.label)}</text>`,
    );
  }
  series.forEach((s) => {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === undefined || Number.isNaN(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${num(x(i))},${num(y(v))}`;
      pen = true;
      parts.push(
        `<circle cx="${num(x(i))}" cy="${num(y(v))}" r="3" fill="${s.color}"><title>${escapeHtml(`${s.name} ${xLabels[i]}: ${v.toFixed(3)}`)}</title></circle>`,
      );
    });
    if (d)
      parts.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
  });
  const legend = series
    .map(
      (s, i) =>
        `<rect x="${M.l + i * 150}" y="${H - 14}" width="10" height="10" fill="${s.color}"/><text x="${M.l + 14 + i * 150}" y="${H - 5}" class="ax">${escapeHtml(s.name)}</text>`,
    )
    .join('');
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">${parts.join('')}${legend}</svg>`;
}

/** Grouped bars: reference vs current share per bin. */
function distributionChart(c: ColumnDrift): string {
  const bins = c.distribution.bins.slice(0, 30);
  const n = Math.max(1, bins.length);
  const max = Math.max(1e-9, ...c.distribution.reference.slice(0, 30), ...c.distribution.current.slice(0, 30));
  const bw = (W - M.l - M.r) / n;
  const y = (v: number): number => M.t + (1 - v / max) * (H - M.t - M.b);
  const parts: string[] = [];
  const verdict = c.drift ? 'DRIFT' : 'no drift';
  parts.push(
    `<text x="${M.l}" y="16" class="t">${escapeHtml(`${c.column}: ${c.test} ${c.kind === 'p_value' ? 'p' : 'score'} = ${c.score.toPrecision(3)} (threshold ${c.threshold}) ${verdict}`)}</text>`,
  );
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${num(y(v))}" y2="${num(y(v))}" class="grid"/>`);
    parts.push(`<text x="${M.l - 6}" y="${num(y(v) + 4)}" class="ax" text-anchor="end">${num(v)}</text>`);
  }
  bins.forEach((b, i) => {
    const x0 = M.l + i * bw;
    const r = c.distribution.reference[i];
    const cu = c.distribution.current[i];
    parts.push(
      `<rect x="${num(x0 + bw * 0.1)}" y="${num(y(r))}" width="${num(bw * 0.4)}" height="${num(y(0) - y(r))}" fill="${COLORS[0]}"><title>${escapeHtml(`${b} reference ${(r * 100).toFixed(1)}%`)}</title></rect>`,
    );
    parts.push(
      `<rect x="${num(x0 + bw * 0.5)}" y="${num(y(cu))}" width="${num(bw * 0.4)}" height="${num(y(0) - y(cu))}" fill="${COLORS[1]}"><title>${escapeHtml(`${b} current ${(cu * 100).toFixed(1)}%`)}</title></rect>`,
    );
    // Histogram bins are labelled by their lower edge; at most about eight labels fit under a chart.
    const label = c.type === 'numeric' && b.startsWith('[') ? b.slice(1, b.indexOf(',')) : b;
    if (i % Math.ceil(n / 8) === 0)
      parts.push(
        `<text x="${num(x0 + bw / 2)}" y="${H - M.b + 14}" class="ax" text-anchor="middle">${escapeHtml(label.length > 14 ? `${label.slice(0, 13)}…` : label)}</text>`,
      );
  });
  parts.push(
    `<rect x="${M.l}" y="${H - 14}" width="10" height="10" fill="${COLORS[0]}"/><text x="${M.l + 14}" y="${H - 5}" class="ax">reference</text>`,
  );
  parts.push(
    `<rect x="${M.l + 100}" y="${H - 14}" width="10" height="10" fill="${COLORS[1]}"/><text x="${M.l + 114}" y="${H - 5}" class="ax">current</text>`,
  );
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(c.column)} distribution">${parts.join('')}</svg>`;
}

function shortTime(iso: string): string {
  return iso.slice(5, 16).replace('T', ' ');
}

function windowRow(w: WindowReport): string {
  const cells = w.tested
    ? [
        w.data ? `${w.data.driftedColumns}/${w.data.columns.length}` : '-',
        w.text ? `${w.text.auc.toFixed(3)} / ${w.text.threshold.toFixed(3)}` : '-',
        w.cbpe ? w.cbpe.estimatedAccuracy.toFixed(3) : '-',
        w.realized ? `${w.realized.accuracy.toFixed(3)} (${w.realized.count})` : '-',
        signalNames(w).join('; ') || 'none',
      ]
    : ['not tested', '', '', '', ''];
  const alert = w.tested && (w.data?.drift || w.text?.drift || w.embeddings?.drift || w.cbpe?.alert);
  const cls = alert ? ' class="alert"' : '';
  return `<tr${cls}><td>${escapeHtml(w.start)}</td><td>${w.count}</td>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
}

/** Renders the monitoring report as one self-contained HTML page. */
export function renderHtml(report: MonitorReport): string {
  const labels = report.windows.map((w) => shortTime(w.start));
  const tested = (f: (w: WindowReport) => number | undefined): Array<number | undefined> =>
    report.windows.map((w) => (w.tested ? f(w) : undefined));
  const driftChart = lineChart(
    'Drift per window',
    labels,
    [
      { name: 'share of drifted columns', values: tested((w) => w.data?.share), color: COLORS[0] },
      { name: 'text domain-classifier AUC', values: tested((w) => w.text?.auc), color: COLORS[1] },
      ...(report.windows.some((w) => w.embeddings)
        ? [{ name: 'embedding score', values: tested((w) => w.embeddings?.score), color: COLORS[3] }]
        : []),
    ],
    [0, 1],
    [{ y: report.overall.data?.driftShare ?? 0.5, label: 'drift share' }],
  );
  const lim = report.cbpeLimits;
  const accChart = lineChart(
    'Accuracy per window: CBPE estimate (band ±3 sampling errors) and realized',
    labels,
    [
      { name: 'estimated (CBPE)', values: tested((w) => w.cbpe?.estimatedAccuracy), color: COLORS[2] },
      { name: 'realized (feedback)', values: tested((w) => w.realized?.accuracy), color: COLORS[4], dashed: true },
    ],
    [0, 1],
    lim
      ? [
          { y: lim.lower, label: 'lower limit' },
          { y: lim.upper, label: 'upper limit' },
        ]
      : [],
    { lo: tested((w) => w.cbpe?.band[0]), hi: tested((w) => w.cbpe?.band[1]) },
  );
  const cols = report.overall.data?.columns ?? [];
  const examples = report.overall.examples;
  const latest = report.windows.filter((w) => w.tested).at(-1);
  const css = `body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.chart{background:#fff;border:1px solid #ddd;margin:6px}.t{font-size:13px;font-weight:600}.ax{font-size:10px;fill:#555}
.grid{stroke:#eee}.ref{stroke:#999;stroke-dasharray:4 3}.band{fill:#2ca02c;opacity:.15}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}tr.alert td{background:#fdecea}
.verdict{padding:8px 12px;background:#f4f4f4;border-left:4px solid #1f77b4}.grid2{display:flex;flex-wrap:wrap}li{margin:3px 0}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(`Tailor monitor: ${report.model.name} v${report.model.version}`)}</title>
<style>${css}</style></head><body>
<h1>${escapeHtml(`Monitoring report: ${report.model.name} v${report.model.version}`)}</h1>
<p>${escapeHtml(`${report.range.since} to ${report.range.until}, windows of ${report.range.windowMs / 60000} min (at least ${report.range.minWindowSize} predictions to test); reference profile of ${report.profile.createdAt} (${report.profile.referenceTexts} texts, ${report.profile.validationRows} validation rows); generated ${report.generatedAt}.`)}</p>
<p class="verdict">${escapeHtml(report.summary.verdict)}. ${escapeHtml(`${report.summary.tested}/${report.summary.windows} windows tested, ${report.summary.drifted} drifted, ${report.summary.cbpeAlerts} CBPE alerts.`)}</p>
<h2>Over time</h2><div class="grid2">${driftChart}${accChart}</div>
<h2>Reference vs current, whole period (${report.overall.count} predictions)</h2><div class="grid2">${cols.map(distributionChart).join('')}</div>
<h2>Most drifted texts (whole period)</h2><ol>${examples.map((e) => `<li>${escapeHtml(e)}</li>`).join('')}</ol>
${latest && latest.examples.length ? `<h2>Most drifted texts, latest window (${escapeHtml(latest.start)})</h2><ol>${latest.examples.map((e) => `<li>${escapeHtml(e)}</li>`).join('')}</ol>` : ''}
<h2>Windows</h2><table><tr><th>start</th><th>n</th><th>drifted columns</th><th>text AUC / threshold</th><th>est. accuracy</th><th>realized accuracy (n)</th><th>signals</th></tr>
${report.windows.map(windowRow).join('\n')}</table>
</body></html>
`;
}
