/**
 * `tailor mitigate` end to end: a tiny BERT customized on the seeded biased loan task (test/eval/synthetic-bias.ts),
 * group thresholds fitted on validation rows under demographic parity, stored with a copy of the model, registered
 * as a new version (`mitigated_from`), and applied by `Classifier.predict(texts, { groups })`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { json, tailor, writeTinyBert } from './fixtures.ts';
import { loanExamples, type LoanExample } from '../eval/synthetic-bias.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { GROUP_THRESHOLDS_FILE } from '../../src/models/group-thresholds.ts';
import { openRegistry } from '../../src/registry/index.ts';
import type { MitigateModelResult } from '../../src/workflow/mitigate.ts';

function writeLoans(file: string, rows: LoanExample[], group = 'district'): string {
  const lines = [
    `text,decision,${group}`,
    ...rows.map((r) => `"${r.text}",${r.label ? 'approve' : 'deny'},${r.group}`),
  ];
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

test('tailor mitigate: thresholds chosen on validation under demographic parity, stored with a new registered version, applied by predict', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-cli-mitigate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const train = loanExamples(400, 'train');
  const val = loanExamples(300, 'val');
  // Distinct texts: `tailor evaluate` drops repeated rows, and its figures are compared with counts over these.
  const heldOut = loanExamples(300, 'test').filter((x, i, all) => all.findIndex((y) => y.text === x.text) === i);
  const bert = await writeTinyBert(
    path.join(dir, 'tiny-bert'),
    [...train, ...val, ...heldOut].map((r) => r.text),
  );
  const home = path.join(dir, '.tailor');
  const valFile = writeLoans(path.join(dir, 'val.csv'), val);
  const c = await tailor([
    ...['customize', '--base', bert, '--train', writeLoans(path.join(dir, 'train.csv'), train)],
    ...['--eval', valFile, '--label-column', 'decision', '--strategy', 'none'],
    ...['--home', home, '--name', 'loans', '--out', path.join(dir, 'v1'), '--json'],
  ]);
  assert.equal(c.status, 0, c.stderr);

  const out = path.join(dir, 'loans-fair');
  const args = [
    ...['mitigate', '--model', 'loans:1', '--eval', valFile, '--label-column', 'decision'],
    ...['--sensitive-column', 'district', '--positive-label', 'approve', '--home', home, '--alias', 'fair'],
  ];
  const r = await tailor([...args, '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const m = json<MitigateModelResult>(r);
  assert.equal(m.model.ref, 'loans:2');
  assert.deepEqual(m.model.aliases, ['fair']);
  assert.deepEqual(m.model.parents, [{ relation: 'mitigated_from', model: 'loans:1' }]);
  assert.equal(m.constraint, 'demographic_parity');
  assert.deepEqual(Object.keys(m.thresholds).sort(), ['Northvale', 'Southmere']);
  assert.equal(m.validation.rows, 300);
  // Before: the model's argmax; after: within the default tolerance 0.02; the cost is the accuracy given up.
  assert.ok(m.validation.before.demographicParityDifference > 0.05, JSON.stringify(m.validation));
  assert.ok(m.validation.after.demographicParityDifference <= 0.02 + 1e-12, JSON.stringify(m.validation));
  assert.ok(Math.abs(m.accuracyCost - (m.validation.before.accuracy - m.validation.after.accuracy)) < 1e-15);

  // The folder is the model plus the thresholds, and tailor.json names the column.
  const stored = JSON.parse(readFileSync(path.join(out, GROUP_THRESHOLDS_FILE), 'utf8')) as {
    thresholds: Record<string, number>;
    labels: string[];
    positiveLabel: string;
  };
  assert.deepEqual(stored.thresholds, m.thresholds);
  const info = JSON.parse(readFileSync(path.join(out, 'tailor.json'), 'utf8')) as { groupThresholds: unknown };
  assert.deepEqual(info.groupThresholds, {
    file: GROUP_THRESHOLDS_FILE,
    sensitiveColumn: 'district',
    constraint: 'demographic_parity',
    positiveLabel: 'approve',
    from: 'loans:1',
  });
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
  );

  // The registered version predicts with the thresholds when given groups: the rule by hand from the stored file,
  // and on held-out rows the approval-rate gap between the districts shrinks.
  const reg = await openRegistry({ home });
  const registered = await reg.modelPath('loans@fair');
  await reg.close();
  const clf = await Classifier.load(registered);
  try {
    const texts = heldOut.map((x) => x.text);
    const groups = heldOut.map((x) => x.group);
    const plain = await clf.predict(texts);
    const fair = await clf.predict(texts, { groups });
    const pos = stored.labels.indexOf('approve');
    assert.deepEqual(
      fair.map((p) => p.label),
      plain.map((p, i) => (p.probabilities[pos] >= stored.thresholds[groups[i]] ? 'approve' : 'deny')),
    );
    const gap = (pred: string[]): number => {
      const rate = (g: string): number => {
        const idx = heldOut.flatMap((x, i) => (x.group === g ? [i] : []));
        return idx.filter((i) => pred[i] === 'approve').length / idx.length;
      };
      return Math.abs(rate('Northvale') - rate('Southmere'));
    };
    const before = gap(plain.map((p) => p.label));
    const after = gap(fair.map((p) => p.label));
    t.diagnostic(
      `validation: accuracy ${m.validation.before.accuracy} -> ${m.validation.after.accuracy}, DP ${m.validation.before.demographicParityDifference} -> ${m.validation.after.demographicParityDifference}; held-out DP ${before} -> ${after}`,
    );
    assert.ok(after < before / 2, `held-out parity gap ${before} -> ${after}`);

    // `tailor evaluate` with the thresholds' column applies them: its parity difference is the gap counted above.
    const testFile = writeLoans(path.join(dir, 'test.csv'), heldOut);
    const evalArgs = ['evaluate', '--model', 'loans@fair', '--eval', testFile, '--label-column', 'decision'];
    const e = await tailor([...evalArgs, '--sensitive-column', 'district', '--no-latency', '--home', home, '--json']);
    assert.equal(e.status, 0, e.stderr);
    const ej = json<{
      groupThresholds?: { column: string; thresholds: Record<string, number> };
      disaggregated: { views: Array<{ demographicParityDifference: { estimate: number } }> };
    }>(e);
    assert.deepEqual(ej.groupThresholds?.column, 'district');
    assert.deepEqual(ej.groupThresholds?.thresholds, stored.thresholds);
    assert.ok(Math.abs(ej.disaggregated.views[0].demographicParityDifference.estimate - after) < 1e-12);
    // Without the column there are no groups to apply them to: argmax, as before.
    const plainEval = await tailor([...evalArgs, '--no-latency', '--home', home, '--json']);
    assert.equal(plainEval.status, 0, plainEval.stderr);
    assert.equal(json<{ groupThresholds?: unknown }>(plainEval).groupThresholds, undefined);
  } finally {
    await clf.release();
  }

  // The text report: the thresholds, the before/after table and the accuracy cost.
  const text = await tailor([...args.filter((a) => a !== '--alias' && a !== 'fair'), '--out', path.join(dir, 'txt')]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    /Group thresholds on P\(approve\) by "district" \(demographic_parity\), chosen on 300 validation rows/,
  );
  assert.match(text.stdout, /demographic parity difference\s+0\.\d{4}\s+0\.\d{4}/);
  assert.match(text.stdout, /accuracy cost: -?\d+\.\d\d pt on validation/);
  assert.match(text.stdout, /written to .*txt; registered loans:3 \(mitigated-from loans:1\)/);

  // Bad input: nothing written. An existing --out, a missing column, a label the model does not know.
  const again = await tailor([...args, '--out', out]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /--out .*loans-fair already exists/);
  const noColumn = await tailor([...args.map((a) => (a === 'district' ? 'region' : a)), '--out', path.join(dir, 'x1')]);
  assert.equal(noColumn.status, 1);
  assert.match(noColumn.stderr, /region/);
  const badLabel = path.join(dir, 'bad.csv');
  writeFileSync(badLabel, 'text,decision,district\ni need a loan,maybe,Northvale\n');
  const bad = await tailor([...args.map((a) => (a === valFile ? badLabel : a)), '--out', path.join(dir, 'x2')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /bad\.csv:2: label "maybe" is not one of the model's 2 labels/);
  for (const f of ['x1', 'x2']) assert.equal(existsSync(path.join(dir, f)), false);
});
