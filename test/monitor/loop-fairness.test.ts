/**
 * The fairness budget in the promotion gate of the retraining loop (`retrainAndPromote`): the policy's group limit
 * is measured on its `fairness_data` rows with the challenger's predictions, the flip rate on the held-out texts;
 * a failed limit refuses the challenger like a failed accuracy bar and production stays. The logs are written as
 * the server writes them (docs/monitor.md), without a server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeCsv, writeTinyBert, type Row } from '../cli/fixtures.ts';
import { readClinc } from '../clinc150.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { policyFromObject, retrainAndPromote, tailorWithReference } from '../../src/monitor/index.ts';
import { openRegistry } from '../../src/registry/index.ts';

const KNOWN = ['accept_reservations', 'account_blocked', 'alarm', 'application_status'];
const rowsOf = (split: string, from: number, to: number): Row[] =>
  KNOWN.flatMap((l) =>
    readClinc(split)
      .filter((r) => r.label === l)
      .slice(from, to),
  );

test('promotion gate with a fairness budget: a parity limit measured on the fairness data refuses the challenger', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-loop-fairness-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const train = rowsOf('train', 0, 20);
  const traffic = rowsOf('train', 20, 30);
  const evalRows = rowsOf('test', 0, 10);
  const audit = rowsOf('validation', 0, 20);
  const bert = await writeTinyBert(
    path.join(dir, 'bert'),
    [...train, ...traffic, ...evalRows, ...audit].map((r) => r.text),
  );
  const home = path.join(dir, '.tailor');
  await tailorWithReference({
    base: bert,
    train: writeCsv(path.join(dir, 'train.csv'), train),
    eval: writeCsv(path.join(dir, 'eval.csv'), evalRows),
    labelColumn: 'intent',
    strategy: 'head',
    epochs: 4,
    out: path.join(dir, 'v1'),
    name: 'tickets',
    home,
    aliases: ['production'],
  });
  // 40 served and labelled rows, as the server logs them.
  for (const sub of ['predictions', 'feedback']) mkdirSync(path.join(home, sub), { recursive: true });
  const time = '2026-11-29T12:00:00.000Z';
  writeFileSync(
    path.join(home, 'predictions', '2026-11-29T12.jsonl'),
    traffic
      .map((r, i) =>
        JSON.stringify({
          v: 1,
          time,
          request_id: `req-${i}`,
          index: 0,
          model: { ref: 'tickets@production', name: 'tickets', version: 1 },
          variant: 'production',
          shadow: false,
          input: { text: r.text },
          label: r.label,
          confidence: 0.25,
          scores: [0.25, 0.25, 0.25, 0.25],
          latency_ms: 3,
        }),
      )
      .join('\n') + '\n',
  );
  writeFileSync(
    path.join(home, 'feedback', '2026-11-29T12.jsonl'),
    traffic.map((r, i) => JSON.stringify({ v: 1, time, request_id: `req-${i}`, index: 0, label: r.label })).join('\n') +
      '\n',
  );
  // The fairness data: 80 labelled rows whose group is whether the request is about an alarm (20 rows) or not (60).
  const groupOf = (r: Row): string => (r.label === 'alarm' ? 'alarm' : 'other');
  const auditFile = path.join(dir, 'audit.csv');
  writeFileSync(
    auditFile,
    ['text,intent,asker', ...audit.map((r) => `"${r.text.replace(/"/g, '""')}",${r.label},${groupOf(r)}`)].join('\n') +
      '\n',
  );
  const policy = policyFromObject(
    {
      version: 1,
      model: 'tickets@production',
      gate: {
        min_accuracy_change: -1,
        max_parity_difference: 0.2,
        max_flip_rate: 1,
        fairness_gap_budget: 1,
        fairness_data: { file: auditFile, label_column: 'intent', sensitive_column: 'asker', min_group_size: 20 },
      },
    },
    'test-policy',
  );
  const out = await retrainAndPromote({ home, policy, tailor: { epochs: 4 } });
  assert.equal(out.status, 'refused', out.reasons.join('; '));
  const checks = Object.fromEntries(out.gate!.checks.map((c) => [c.name, c]));
  assert.deepEqual(
    out.gate!.checks.map((c) => [c.name, c.passed]),
    [
      ['fairness_gap', true],
      ['parity_difference', false],
      ['flip_rate', true],
      ['no_regression', true],
    ],
  );

  // Recomputed by hand from the registered challenger's predictions on the fairness data: the worst class's gap in
  // the share of each group predicted as that class (one-vs-rest), and the gap in accuracy.
  const reg = await openRegistry({ home });
  t.after(() => reg.close());
  const clf = await Classifier.load(await reg.modelPath(`tickets:${out.challenger!.version}`));
  let pred: string[];
  try {
    pred = (await clf.predict(audit.map((r) => r.text))).map((p) => p.label);
  } finally {
    await clf.release();
  }
  const share = (g: string, keep: (p: string, r: Row) => boolean): number => {
    const idx = audit.flatMap((r, i) => (groupOf(r) === g ? [i] : []));
    return idx.filter((i) => keep(pred[i], audit[i])).length / idx.length;
  };
  const parity = Math.max(
    ...KNOWN.map((c) => Math.abs(share('alarm', (p) => p === c) - share('other', (p) => p === c))),
  );
  const accGap = Math.abs(share('alarm', (p, r) => p === r.label) - share('other', (p, r) => p === r.label));
  assert.ok(
    Math.abs(checks.parity_difference.value - parity) < 1e-12,
    `${checks.parity_difference.value} vs ${parity}`,
  );
  assert.ok(Math.abs(checks.fairness_gap.value - accGap) < 1e-12, `${checks.fairness_gap.value} vs ${accGap}`);
  assert.ok(parity > 0.2, String(parity));
  assert.ok(checks.flip_rate.value >= 0 && checks.flip_rate.value <= 1);
  assert.equal(out.reasons.length, 1);
  assert.match(
    out.reasons[0],
    /^demographic parity difference \d\.\d{4} in "asker", class "[a-z_]+", 95% CI \[\d\.\d{4}, \d\.\d{4}\] is above the limit 0\.2$/,
  );
  assert.equal((await reg.getModel('tickets@production')).version, 1);
  assert.deepEqual((await reg.getModel(`tickets:${out.challenger!.version}`)).aliases, []);
});
