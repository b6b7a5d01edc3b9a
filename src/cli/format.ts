/** Terminal renderings of the CLI's results (the JSON forms are the API's return values). */
import { renderTable } from '../util/table.ts';
import type { AuditResult, MetricSummary } from '../audit/index.ts';
import type { TailorResult } from '../workflow/tailor.ts';
import { formatBehaviour, formatBehaviourChange, formatBudget } from '../eval/fairness-format.ts';
import { formatSearch } from '../customize/search.ts';
import { formatOutOfScope } from '../eval/abstain.ts';

const pct = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? 'n/a' : `${(v * 100).toFixed(2)}%`;
const ci = (c: [number, number] | undefined): string => (c ? `[${pct(c[0])}, ${pct(c[1])}]` : '');
const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;

function opTable(a: AuditResult, top: number): string {
  return renderTable(
    ['op type', 'calls', 'ms', 'share'],
    a.profile.byOpType
      .slice(0, top)
      .map((o) => [o.opType, String(o.calls), (o.totalUs / 1000).toFixed(2), `${(o.share * 100).toFixed(1)}%`]),
    ['left', 'right', 'right', 'right'],
  );
}

/** The audit as text: baseline quality, cost, where time goes, and the recommendation with its reasons. */
export function formatAudit(a: AuditResult, opts: { profile?: boolean } = {}): string {
  const out: string[] = [];
  out.push(
    `Audit of ${a.base.spec} (${a.base.architecture}, ${a.base.parameters.toLocaleString('en-US')} parameters) on ${a.data.labels.length} classes`,
  );
  out.push(
    `data: ${a.data.train} train, ${a.data.validation} validation, ${a.data.eval} eval (${a.data.evalSplit} split)${a.data.subsampled ? ', subsampled' : ''}; ` +
      `examples per class min/median/max ${a.data.examplesPerClass.min}/${a.data.examplesPerClass.median}/${a.data.examplesPerClass.max}`,
  );
  out.push('');
  out.push('Off-the-shelf baseline (frozen encoder + ridge linear head):');
  out.push(
    renderTable(
      ['metric', 'value', '95% CI'],
      [
        ['accuracy', pct(a.baseline.accuracy), ci(a.baseline.accuracy_ci)],
        ['macro F1', pct(a.baseline.macro_f1), ci(a.baseline.macro_f1_ci)],
      ],
      ['left', 'right', 'left'],
    ),
  );
  out.push('');
  const l = a.latency;
  out.push(
    renderTable(
      ['cost', 'value'],
      [
        ['latency p50 / p95 (batch 1)', `${l.batch1.p50Ms.toFixed(2)} / ${l.batch1.p95Ms.toFixed(2)} ms`],
        [`throughput (batch ${l.throughput.batchSize})`, `${l.throughput.itemsPerSecond.toFixed(1)} items/s`],
        ['weights in memory', mib(a.memory.parameterBytes)],
        ['session RSS growth / peak RSS', `${mib(a.memory.sessionRssBytes)} / ${mib(a.memory.peakRssBytes)}`],
      ],
      ['left', 'left'],
    ),
  );
  out.push('');
  out.push(`Where the time goes (ONNX Runtime profile, ${a.profile.runs} runs at batch 1):`);
  out.push(opTable(a, opts.profile ? 12 : 5));
  if (opts.profile) {
    out.push('');
    out.push(
      renderTable(
        ['node', 'op', 'mean µs'],
        a.profile.topNodes.map((n) => [n.node, n.opType, n.meanUs.toFixed(0)]),
        ['left', 'left', 'right'],
      ),
    );
  }
  out.push('');
  const r = a.recommendation;
  out.push(`Recommendation: ${r.strategy}${r.compression.length ? ` + ${r.compression.join(' + ')}` : ''}`);
  for (const reason of r.reasons) out.push(`  [${reason.rule}] ${reason.text}`);
  if (a.behaviour) {
    out.push('');
    out.push(formatBehaviour(a.behaviour));
  }
  return out.join('\n');
}

function metricRows(b: MetricSummary, c: MetricSummary): string[][] {
  const d = (x: number, y: number): string => `${y - x >= 0 ? '+' : ''}${((y - x) * 100).toFixed(2)} pts`;
  return [
    ['accuracy', pct(b.accuracy), ci(b.accuracy_ci), pct(c.accuracy), ci(c.accuracy_ci), d(b.accuracy, c.accuracy)],
    ['macro F1', pct(b.macro_f1), ci(b.macro_f1_ci), pct(c.macro_f1), ci(c.macro_f1_ci), d(b.macro_f1, c.macro_f1)],
  ];
}

/** One line saying whether the customization is worth keeping, by McNemar's test at the 5% level. */
export function verdict(
  r: Pick<TailorResult, 'comparison' | 'strategy'> & Partial<Pick<TailorResult, 'baseline' | 'customized'>>,
): string {
  const c = r.comparison;
  if (r.strategy === 'none') return 'the baseline is kept as the model (no customization)';
  if (c.p_value >= 0.05 && r.baseline && r.customized && r.customized.accuracy <= r.baseline.accuracy) {
    return (
      `customizing did not beat the off-the-shelf baseline here (${pct(r.customized.accuracy)} vs ${pct(r.baseline.accuracy)}; the difference is not significant, p = ${c.p_value.toFixed(3)}): ` +
      'the frozen encoder + linear head already separates this data well, and what training adds is within the noise of this eval set; keep the baseline unless more data or a target says otherwise'
    );
  }
  if (c.p_value >= 0.05)
    return `no significant difference from the baseline at the 5% level (p = ${c.p_value.toFixed(3)}); more data, epochs or another strategy may help`;
  return c.only_customized_right > c.only_baseline_right
    ? `the customized model is significantly better than the baseline (p = ${c.p_value.toPrecision(2)})`
    : `the customized model is significantly WORSE than the baseline (p = ${c.p_value.toPrecision(2)}): keep the baseline`;
}

/** Before/after table of a customize run and where its artifacts are. */
export function formatPipeline(r: TailorResult, opts: { profile?: boolean } = {}): string {
  const out: string[] = [];
  out.push(
    `Customized ${r.model.ref} with strategy '${r.strategy}'${r.requested_strategy === 'auto' ? (r.search ? ` (the search's winner: ${r.search.winner.config})` : ' (recommended by the audit)') : ''}: ` +
      `${r.trainable_params.toLocaleString('en-US')} of ${r.total_params.toLocaleString('en-US')} parameters trained in ${r.train_seconds.toFixed(1)} s`,
  );
  if (r.recommendation) for (const reason of r.recommendation.reasons) out.push(`  [${reason.rule}] ${reason.text}`);
  if (r.search) {
    out.push('');
    out.push(formatSearch(r.search));
  }
  out.push('');
  out.push(`On ${r.customized.count} eval examples:`);
  out.push(
    renderTable(
      ['metric', 'baseline', '95% CI', 'customized', '95% CI', 'change'],
      metricRows(r.baseline, r.customized),
      ['left', 'right', 'left', 'right', 'left', 'right'],
    ),
  );
  const c = r.comparison;
  out.push(
    `McNemar exact: only baseline right ${c.only_baseline_right}, only customized right ${c.only_customized_right}, p = ${c.p_value < 1e-4 ? c.p_value.toExponential(2) : c.p_value.toFixed(4)}`,
  );
  if (r.calibration) {
    const k = r.calibration;
    out.push(
      `calibration: temperature ${k.temperature.toFixed(3)} fitted on validation and folded into the head; ` +
        `validation ECE ${k.eceBefore.toFixed(3)} -> ${k.eceAfter.toFixed(3)}, log-loss ${k.logLossBefore.toFixed(3)} -> ${k.logLossAfter.toFixed(3)}`,
    );
  }
  if (r.reweighing)
    out.push(
      `reweighing by "${r.reweighing.column}" (AIF360, P(group) P(label) / P(group, label)): ` +
        r.reweighing.factors.map((f) => `${f.group}/${f.label} (${f.count}) ${f.weight.toFixed(4)}`).join(', '),
    );
  out.push(`verdict: ${verdict(r)}`);
  if (r.behaviour) {
    out.push('');
    out.push(`Behavioural tests on ${r.behaviour.customized.texts} eval texts (same perturbations for both models):`);
    out.push(formatBehaviourChange(r.behaviour.comparison, ['baseline', 'customized']));
  }
  if (r.fairness_budget) {
    out.push('');
    out.push(formatBudget(r.fairness_budget));
  }
  if (r.out_of_scope) {
    out.push('');
    out.push(formatOutOfScope(r.out_of_scope));
  }
  if (!r.alias_decision.moved) out.push(`alias not moved: ${r.alias_decision.reason}`);
  out.push('');
  out.push(
    renderTable(
      ['artifact', 'where'],
      [
        ['model (ONNX + tokenizer)', r.artifacts.model],
        ...(r.artifacts.adapter
          ? [[`${r.strategy === 'ia3' ? 'IA3' : 'LoRA'} adapter (PEFT format)`, r.artifacts.adapter]]
          : []),
        ['report', r.artifacts.report],
        ['registry model version', `${r.model.ref}${r.model.aliases.length ? ` (${r.model.aliases.join(', ')})` : ''}`],
        ['runs', `baseline ${r.baseline_run_id.slice(0, 8)}, customized ${r.run_id.slice(0, 8)}`],
      ],
      ['left', 'left'],
    ),
  );
  out.push(`compare them: tailor runs compare ${r.baseline_run_id.slice(0, 8)} ${r.run_id.slice(0, 8)}`);
  if (opts.profile) {
    out.push('');
    out.push(`Where the base's time goes (ONNX Runtime profile, ${r.audit.profile.runs} runs at batch 1):`);
    out.push(opTable(r.audit, 12));
  }
  return out.join('\n');
}
