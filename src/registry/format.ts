/** Plain-text tables for `tailor runs ...` and `tailor models ...` (the `--json` output is the data itself). */
import { renderTable } from '../util/table.ts';
import type { RunComparison } from './compare.ts';
import type { GcReport, RunDetails, VerifyReport } from './registry.ts';
import type { ModelSummary, ModelVersion, RunRecord } from './types.ts';

/** A number with up to 4 significant decimals, `-` for null. */
export function fmtNum(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return v.toFixed(4);
}

/** Byte count as B/KiB/MiB/GiB. */
export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Duration in ms as `1h02m`, `3m05s` or `4.2s`. */
export function fmtDuration(ms: number | null): string {
  if (ms === null) return '-';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function fmtTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

/** `tailor runs list` table. */
export function formatRunList(runs: RunRecord[]): string {
  if (runs.length === 0) return 'no runs';
  return renderTable(
    ['RUN', 'NAME', 'STATUS', 'STARTED (UTC)', 'DURATION', 'BASE MODEL'],
    runs.map((r) => [
      r.id,
      r.name ?? '',
      r.status,
      fmtTime(r.startedAt),
      fmtDuration(r.endedAt === null ? null : r.endedAt - r.startedAt),
      r.baseModel ?? '',
    ]),
    'auto',
  );
}

/** `tailor runs show` text. */
export function formatRunDetails(d: RunDetails): string {
  const out: string[] = [];
  out.push(`run ${d.id}${d.name ? ` (${d.name})` : ''}  ${d.status}${d.error ? `: ${d.error}` : ''}`);
  out.push(`experiment ${d.experiment}; started ${fmtTime(d.startedAt)} UTC; duration ${fmtDuration(d.durationMs)}`);
  if (d.baseModel) out.push(`base model ${d.baseModel}`);
  if (d.datasetFingerprint) out.push(`dataset ${d.datasetFingerprint}`);
  if (d.codeVersion)
    out.push(
      `code ${d.codeVersion.package}${d.codeVersion.git ? ` git ${d.codeVersion.git.slice(0, 12)}${d.codeVersion.dirty ? ' (dirty)' : ''}` : ''}`,
    );
  const params = Object.entries(d.params);
  if (params.length)
    out.push(
      '',
      renderTable(
        ['PARAM', 'VALUE'],
        params.map(([k, v]) => [k, JSON.stringify(v)]),
        'auto',
      ),
    );
  const metrics = Object.entries(d.latestMetrics);
  if (metrics.length)
    out.push(
      '',
      renderTable(
        ['METRIC', 'LAST'],
        metrics.map(([k, v]) => [k, fmtNum(v)]),
        'auto',
      ),
    );
  if (d.artifacts.length) {
    out.push(
      '',
      renderTable(
        ['ARTIFACT', 'KIND', 'SIZE', 'SHA256'],
        d.artifacts.map((a) => [a.path, a.kind, fmtBytes(a.size), a.hash.slice(0, 16)]),
        'auto',
      ),
    );
  }
  if (d.models.length) out.push('', `registered as ${d.models.map((m) => `${m.name}:${m.version}`).join(', ')}`);
  return out.join('\n');
}

function fmtCi(i: { estimate: number; lower: number; upper: number }): string {
  return `${fmtNum(i.estimate)} [${fmtNum(i.lower)}, ${fmtNum(i.upper)}]`;
}

/** `tailor runs compare A B` text: metric table, then the paired test when available, then notes. */
export function formatComparison(c: RunComparison): string {
  const label = (r: RunComparison['a']): string => (r.name ? `${r.name} (${r.id.slice(0, 8)})` : r.id);
  const out: string[] = [`A = ${label(c.a)}  B = ${label(c.b)}`, ''];
  out.push(
    renderTable(
      ['METRIC', 'A', 'B', 'B - A'],
      c.metrics.map((m) => [m.key, fmtNum(m.a), fmtNum(m.b), fmtNum(m.delta)]),
      'auto',
    ),
  );
  const s = c.significance;
  if (s) {
    const pct = `${Math.round(s.confidence * 100)}% CI`;
    out.push('', `paired on eval set '${s.evalSet}' (${s.count} examples, ${s.iterations} bootstrap resamples)`);
    out.push(
      renderTable(
        ['', `A (${pct})`, `B (${pct})`, `B - A (${pct})`],
        [
          ['accuracy', fmtCi(s.accuracy.a), fmtCi(s.accuracy.b), fmtCi(s.accuracy.difference)],
          ['macro F1', fmtCi(s.macroF1.a), fmtCi(s.macroF1.b), fmtCi(s.macroF1.difference)],
        ],
        'auto',
      ),
    );
    out.push(
      `McNemar exact: A right/B wrong = ${s.mcnemar.b}, A wrong/B right = ${s.mcnemar.c}, p = ${fmtNum(s.mcnemar.pValue)}`,
    );
  }
  const diff = c.params.filter((p) => !p.same);
  if (diff.length)
    out.push(
      '',
      renderTable(
        ['PARAM', 'A', 'B'],
        diff.map((p) => [p.key, JSON.stringify(p.a), JSON.stringify(p.b)]),
        'auto',
      ),
    );
  for (const n of c.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

/** `tailor models list` table. */
export function formatModelList(models: ModelSummary[]): string {
  if (models.length === 0) return 'no registered models';
  return renderTable(
    ['MODEL', 'LATEST', 'VERSIONS', 'ALIASES', 'UPDATED (UTC)'],
    models.map((m) => [
      m.name,
      String(m.latestVersion),
      String(m.versions),
      Object.entries(m.aliases)
        .map(([a, v]) => `${a}->${v}`)
        .join(' '),
      fmtTime(m.updatedAt),
    ]),
    'auto',
  );
}

/** `tailor models show` text for one version. */
export function formatModelVersion(v: ModelVersion): string {
  const out = [`${v.name}:${v.version}${v.aliases.length ? `  (${v.aliases.join(', ')})` : ''}`];
  out.push(`artifact ${v.artifact.hash} (${v.artifact.type}, ${fmtBytes(v.artifact.size)})`);
  out.push(`created ${fmtTime(v.createdAt)} UTC${v.runId ? ` by run ${v.runId}` : ''}`);
  if (v.description) out.push(v.description);
  for (const p of v.parents) out.push(`${p.relation}: ${p.model ? `${p.model.name}:${p.model.version}` : p.external}`);
  return out.join('\n');
}

/** One line per gc outcome. */
export function formatGcReport(r: GcReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  return `${verb} ${r.removedObjects.length} unreferenced object(s), ${fmtBytes(r.bytesFreed)}; ${r.removedTemp.length} stale temp folder(s); ${r.staleReservations} stale reservation(s); ${r.keptObjects} referenced object(s) kept`;
}

/** verify summary plus one line per problem. */
export function formatVerifyReport(r: VerifyReport): string {
  const lines = [
    `${r.ok ? 'ok' : 'FAILED'}: ${r.checkedObjects} referenced object(s) checked, ${r.problems.length} problem(s), ${r.unreferencedObjects} unreferenced`,
  ];
  for (const p of r.problems) lines.push(`${p.hash.slice(0, 16)} ${p.problem} (${p.referencedBy.join('; ')})`);
  return lines.join('\n');
}
