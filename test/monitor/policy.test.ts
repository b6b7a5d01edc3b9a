import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideTrigger, parsePolicy } from '../../src/monitor/policy.ts';

const full = `
version: 1
model: tickets@production
schedule: { every: 15m }
window: 1h
lookback: 24h
min_window_size: 50
cooldown: 6h
drift:
  drift_share: 0.5
  numeric: { test: psi, threshold: 0.2 }
  columns:
    confidence: { test: ks }
  text: { enabled: true, threshold: 0.6 }
  embeddings: { enabled: true, method: mmd }
performance:
  min_estimated_accuracy: 0.8
  min_realized_accuracy: 0.8
  min_labels: 20
trigger:
  on: [dataset_drift, text_drift, performance]
  consecutive_windows: 2
gate:
  min_accuracy: 0.85
  min_accuracy_change: -0.005
  latency_budget_ms: 25
`;

test('parsePolicy: durations in ms, library option shapes, defaults', () => {
  const p = parsePolicy(full);
  assert.equal(p.model, 'tickets@production');
  assert.equal(p.scheduleMs, 900000);
  assert.equal(p.windowMs, 3600000);
  assert.equal(p.cooldownMs, 21600000);
  assert.deepEqual(p.drift, {
    driftShare: 0.5,
    largeReference: 1000,
    numeric: { test: 'psi', threshold: 0.2 },
    columns: { confidence: { test: 'ks' } },
  });
  assert.deepEqual(p.embeddings, { enabled: true, method: 'mmd' });
  assert.equal(p.gate.latencyBudgetMs, 25);
  const d = parsePolicy('version: 1\nmodel: m@production\n');
  assert.equal(d.minWindowSize, 100);
  assert.deepEqual(d.trigger, { on: ['dataset_drift', 'text_drift', 'performance'], consecutiveWindows: 1 });
  assert.equal(d.gate.minAccuracyChange, -0.005);
  assert.deepEqual(d.text, { enabled: true, threshold: 0.55 });
});

test('parsePolicy: errors name the file and the field', () => {
  assert.throws(
    () => parsePolicy('version: 1\nmodel: m\ndrift:\n  numeric: { test: anova }\n', 'p.yaml'),
    (e: Error & { context: { field?: string } }) =>
      /^p\.yaml: field "drift\.numeric\.test": /.test(e.message) && e.context.field === 'drift.numeric.test',
  );
  assert.throws(
    () => parsePolicy('version: 1\nmodel: m\nwindow: soon\n'),
    /field "window": expected a duration like 90s, 30m, 24h or 7d/,
  );
  assert.throws(
    () => parsePolicy('version: 1\nmodel: m\ncooldwn: 1h\n'),
    /field "\(top level\)": Unrecognized key: "cooldwn"/,
  );
  assert.throws(() => parsePolicy('version: 2\nmodel: m\n'), /field "version"/);
  assert.throws(() => parsePolicy('model: [unclosed\n'), /policy.yaml: not valid YAML/);
});

test('decideTrigger: consecutive windows, minimum size, cool-down', () => {
  const p = parsePolicy(full);
  const now = new Date('2026-11-29T18:00:00Z');
  const quiet = { start: 'w1', count: 80, datasetDrift: false, textDrift: false };
  const drifted = { start: 'w2', count: 80, datasetDrift: false, textDrift: true };
  const small = { start: 'w3', count: 10, datasetDrift: true };
  assert.deepEqual(decideTrigger(p, [quiet, drifted], undefined, now), {
    fire: false,
    reasons: ['no drift or performance signal'],
  });
  assert.deepEqual(decideTrigger(p, [drifted, { ...drifted, estimatedAccuracy: 0.7 }, small], undefined, now), {
    fire: true,
    reasons: ['text drift', 'estimated accuracy 0.700 < 0.8'],
  });
  const held = decideTrigger(p, [drifted, drifted], new Date('2026-11-29T15:00:00Z'), now);
  assert.equal(held.fire, false);
  assert.equal(held.heldBy, 'cooldown');
  assert.equal(held.reasons.at(-1), 'held: last trigger at 2026-11-29T15:00:00.000Z is within the 6h cool-down');
  assert.equal(decideTrigger(p, [drifted, drifted], new Date('2026-11-29T11:00:00Z'), now).fire, true);
  assert.deepEqual(decideTrigger(p, [small, small], undefined, now).reasons, [
    '0 window(s) with at least 50 predictions; need 2',
  ]);
});

test('policy gate: the fairness budget and the fairness data it is measured on', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { loadPolicy } = await import('../../src/monitor/policy.ts');
  const text =
    'version: 1\nmodel: loans@production\ngate:\n  max_parity_difference: 0.1\n  min_disparate_impact: 0.8\n' +
    '  max_flip_rate: 0.05\n  fairness_data: { file: audit.csv, label_column: decision, sensitive_column: district }\n';
  const p = parsePolicy(text);
  assert.deepEqual(p.gate.fairnessBudget, { maxParityDifference: 0.1, minDisparateImpact: 0.8, maxFlipRate: 0.05 });
  assert.deepEqual(p.fairnessData, {
    file: 'audit.csv',
    textColumn: 'text',
    labelColumn: 'decision',
    sensitiveColumns: ['district'],
    minGroupSize: 30,
  });
  // No limits: no budget; a flip-rate limit alone needs no data.
  assert.equal(parsePolicy('version: 1\nmodel: m\n').gate.fairnessBudget, undefined);
  assert.deepEqual(parsePolicy('version: 1\nmodel: m\ngate: { max_flip_rate: 0.1 }\n').gate.fairnessBudget, {
    maxFlipRate: 0.1,
  });
  // A group limit without fairness data is an error naming the field.
  assert.throws(
    () => parsePolicy('version: 1\nmodel: m\ngate: { max_equalized_odds_difference: 0.2 }\n', 'p.yaml'),
    /p\.yaml: field "gate\.max_equalized_odds_difference": a group limit needs gate\.fairness_data/,
  );
  assert.throws(() => parsePolicy('version: 1\nmodel: m\ngate: { max_flip_rate: 2 }\n'), /field "gate\.max_flip_rate"/);
  // loadPolicy resolves the data file against the policy file's folder.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-policy-'));
  try {
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(file, text);
    assert.equal(loadPolicy(file).fairnessData?.file, path.join(dir, 'audit.csv'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
