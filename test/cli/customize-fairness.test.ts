/**
 * The group fairness budget in the product flow: `tailor customize --sensitive-column --max-parity-difference
 * --min-disparate-impact`, end to end on a tiny BERT with a seeded synthetic loan set whose labels are biased
 * against one district (test/eval/synthetic-bias.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { json, tailor, writeTinyBert } from './fixtures.ts';
import { loanExamples, type LoanExample } from '../eval/synthetic-bias.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { openRegistry } from '../../src/registry/index.ts';

interface CustomizeJson {
  model: { name: string; version: number; aliases: string[] };
  artifacts: { model: string };
  fairness_budget?: {
    pass: boolean;
    checks: Array<{ limit: string; bound: number; value: number | null; pass: boolean }>;
    reasons: string[];
  };
  alias_decision: { moved: boolean; regression: boolean; fairness_failed: boolean; reason: string };
}

function writeLoans(file: string, rows: LoanExample[]): string {
  const lines = [
    'text,decision,district',
    ...rows.map((r) => `"${r.text}",${r.label ? 'approve' : 'deny'},${r.group}`),
  ];
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

test('customize --sensitive-column with a parity/disparate-impact budget: measured on the eval groups, a failed budget keeps the alias (exit 3)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-cli-fairness-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const train = loanExamples(160, 'fair-train', 1);
  const evalRows = loanExamples(80, 'fair-eval', 1);
  const trainFile = writeLoans(path.join(dir, 'train.csv'), train);
  const evalFile = writeLoans(path.join(dir, 'eval.csv'), evalRows);
  const bert = await writeTinyBert(
    path.join(dir, 'tiny-bert'),
    [...train, ...evalRows].map((r) => r.text),
  );
  const home = path.join(dir, '.tailor');
  const common = (out: string): string[] => [
    'customize',
    '--base',
    bert,
    '--train',
    trainFile,
    '--eval',
    evalFile,
    '--label-column',
    'decision',
    '--strategy',
    'head',
    '--epochs',
    '2',
    '--home',
    home,
    '--name',
    'loans',
    '--sensitive-column',
    'district',
    '--alias',
    'prod',
    '--allow-regression',
    '--json',
    '--out',
    path.join(dir, out),
  ];

  // 1. A budget every model meets (parity difference <= 1, disparate impact >= 0): the alias moves, exit 0.
  const r1 = await tailor([
    ...common('v1'),
    '--max-parity-difference',
    '1',
    '--min-disparate-impact',
    '0',
    '--positive-label',
    'approve',
  ]);
  assert.equal(r1.status, 0, r1.stderr);
  const j1 = json<CustomizeJson>(r1);
  assert.equal(j1.fairness_budget!.pass, true);
  assert.deepEqual(
    j1.fairness_budget!.checks.map((c) => c.limit),
    ['maxParityDifference', 'minDisparateImpact'],
  );
  assert.equal(j1.alias_decision.fairness_failed, false);
  assert.deepEqual(j1.model.aliases, ['prod']);

  // The measured values, recomputed independently from the saved artifact's predictions on the eval rows.
  const clf = await Classifier.load(j1.artifacts.model);
  let preds: string[];
  try {
    preds = (await clf.predict(evalRows.map((r) => r.text))).map((p) => p.label);
  } finally {
    await clf.release();
  }
  const rate = (group: string, label: string): number => {
    const idx = evalRows.flatMap((r, i) => (r.group === group ? [i] : []));
    return idx.filter((i) => preds[i] === label).length / idx.length;
  };
  const parity = Math.abs(rate('Northvale', 'approve') - rate('Southmere', 'approve'));
  const ratios = ['approve', 'deny'].map((l) => {
    const a = rate('Northvale', l);
    const b = rate('Southmere', l);
    return Math.min(a, b) / Math.max(a, b);
  });
  const [pd, di] = j1.fairness_budget!.checks;
  assert.ok(Math.abs(pd.value! - parity) < 1e-12, `parity ${pd.value} vs ${parity}`);
  // --positive-label approve: the disparate impact is the ratio of approval rates (not of denial rates).
  assert.ok(Math.abs(di.value! - ratios[0]) < 1e-12, `disparate impact ${di.value} vs approve ${ratios[0]}`);
  assert.ok(parity > 0, `the model treats the districts differently (parity difference ${parity})`);

  // 2. A parity limit below the measured difference: registered as v2, alias stays on v1, exit 3.
  const r2 = await tailor([...common('v2'), '--max-parity-difference', String(parity / 2)]);
  assert.equal(r2.status, 3, r2.stderr);
  const j2 = json<CustomizeJson>(r2);
  assert.equal(j2.model.version, 2);
  assert.deepEqual(j2.model.aliases, []);
  assert.equal(j2.fairness_budget!.pass, false);
  assert.equal(j2.alias_decision.moved, false);
  assert.equal(j2.alias_decision.fairness_failed, true);
  assert.match(
    j2.alias_decision.reason,
    /the fairness budget failed: demographic parity difference [0-9.]+ in "district".* is above the limit .*; aliases were not moved/,
  );
  const reg = await openRegistry({ home });
  try {
    assert.equal((await reg.getModel('loans@prod')).version, 1);
  } finally {
    await reg.close();
  }

  // 3. A group limit without a sensitive column is a usage error before anything is read.
  const r3 = await tailor([
    ...common('v3').filter((a, i, all) => a !== 'district' && all[i + 1] !== 'district'),
    '--min-disparate-impact',
    '0.8',
  ]);
  assert.notEqual(r3.status, 0);
  assert.match(r3.stderr, /minDisparateImpact needs at least one sensitive column \(--sensitive-column\)/);

  // 4. A positive label that is no label of the data: an error naming it, before any training; nothing registered.
  const r4 = await tailor([...common('v4'), '--positive-label', 'maybe']);
  assert.equal(r4.status, 1, r4.stderr);
  assert.match(r4.stderr, /positive label "maybe" is not one of the labels \(approve, deny\)/);
  assert.equal(existsSync(path.join(dir, 'v4')), false);
});

test('customize --max-equalized-odds-difference and --min-group-size: the worst TPR/FPR gap is measured and gated; groups under the minimum are not judged', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-cli-eodds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The default bias (0.6): every district has both labels, so both rates are defined in both groups.
  const train = loanExamples(160, 'fair-train');
  const evalRows = loanExamples(80, 'fair-eval');
  const trainFile = writeLoans(path.join(dir, 'train.csv'), train);
  const evalFile = writeLoans(path.join(dir, 'eval.csv'), evalRows);
  const bert = await writeTinyBert(
    path.join(dir, 'tiny-bert'),
    [...train, ...evalRows].map((r) => r.text),
  );
  const home = path.join(dir, '.tailor');
  const args = (out: string, minGroupSize: number, limit: number): string[] => [
    'customize',
    '--base',
    bert,
    '--train',
    trainFile,
    '--eval',
    evalFile,
    '--label-column',
    'decision',
    '--strategy',
    'head',
    '--epochs',
    '2',
    '--home',
    home,
    '--name',
    'loans',
    '--sensitive-column',
    'district',
    '--min-group-size',
    String(minGroupSize),
    '--max-equalized-odds-difference',
    String(limit),
    '--alias',
    'prod',
    '--allow-regression',
    '--json',
    '--out',
    path.join(dir, out),
  ];

  // Each district has 40 eval rows: judged with a minimum of 40.
  const r1 = await tailor(args('v1', 40, 1));
  assert.equal(r1.status, 0, r1.stderr);
  const j1 = json<CustomizeJson>(r1);
  assert.deepEqual(
    j1.fairness_budget!.checks.map((c) => [c.limit, c.bound, c.pass]),
    [['maxEqualizedOddsDifference', 1, true]],
  );
  // Recomputed from the saved model's predictions: the positive class of ['approve', 'deny'] is 'deny' (the
  // second label); equalized odds difference = max(|TPR gap|, |FPR gap|) between the districts.
  const clf = await Classifier.load(j1.artifacts.model);
  let preds: string[];
  try {
    preds = (await clf.predict(evalRows.map((r) => r.text))).map((p) => p.label);
  } finally {
    await clf.release();
  }
  const rate = (group: string, truth: string): number => {
    const idx = evalRows.flatMap((r, i) => (r.group === group && (r.label ? 'approve' : 'deny') === truth ? [i] : []));
    return idx.filter((i) => preds[i] === 'deny').length / idx.length;
  };
  const eodds = Math.max(
    Math.abs(rate('Northvale', 'deny') - rate('Southmere', 'deny')),
    Math.abs(rate('Northvale', 'approve') - rate('Southmere', 'approve')),
  );
  assert.ok(
    Math.abs(j1.fairness_budget!.checks[0].value! - eodds) < 1e-12,
    `${j1.fairness_budget!.checks[0].value} vs ${eodds}`,
  );

  // A minimum of 41 leaves no group to judge: the limit cannot be checked, so the budget fails (exit 3, alias kept).
  const r2 = await tailor(args('v2', 41, 1));
  assert.equal(r2.status, 3, r2.stderr);
  const j2 = json<CustomizeJson>(r2);
  assert.deepEqual(j2.fairness_budget!.checks[0].value, null);
  assert.deepEqual(j2.fairness_budget!.reasons, [
    'equalized odds difference was not measured (no sensitive column with two groups of at least 41 examples), so the limit 1 cannot be checked',
  ]);
  assert.deepEqual(j2.model.aliases, []);

  // --min-group-size without a sensitive column is an error before anything is read.
  const r3 = await tailor([
    'customize',
    '--base',
    bert,
    '--train',
    trainFile,
    '--label-column',
    'decision',
    '--min-group-size',
    '5',
    '--home',
    home,
    '--out',
    path.join(dir, 'v3'),
  ]);
  assert.notEqual(r3.status, 0);
  assert.match(r3.stderr, /minGroupSize needs at least one sensitive column \(--sensitive-column\)/);
});

test('customize --reweigh: AIF360 weights per (district, decision) cell, and a lower parity difference than the unweighted run', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-cli-reweigh-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const train = loanExamples(400, 'train');
  const evalRows = loanExamples(200, 'test');
  const trainFile = writeLoans(path.join(dir, 'train.csv'), train);
  const evalFile = writeLoans(path.join(dir, 'eval.csv'), evalRows);
  const bert = await writeTinyBert(
    path.join(dir, 'tiny-bert'),
    [...train, ...evalRows].map((r) => r.text),
  );
  const home = path.join(dir, '.tailor');
  const args = (out: string, ...extra: string[]): string[] => [
    'customize',
    '--base',
    bert,
    '--train',
    trainFile,
    '--eval',
    evalFile,
    '--label-column',
    'decision',
    '--strategy',
    'head',
    '--home',
    home,
    '--sensitive-column',
    'district',
    '--max-parity-difference',
    '1',
    '--json',
    '--out',
    path.join(dir, out),
    ...extra,
  ];
  type Factor = { group: string; label: string; count: number; weight: number };
  const [plain, reweighed] = [await tailor(args('plain')), await tailor(args('reweighed', '--reweigh', 'district'))];
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(reweighed.status, 0, reweighed.stderr);
  const jp = json<CustomizeJson>(plain);
  const jr = json<CustomizeJson & { reweighing: { column: string; factors: Factor[] } }>(reweighed);
  assert.equal(jr.reweighing.column, 'district');
  // AIF360: w(g, y) = n_g n_y / (n n_gy), recomputed from the cell counts of the rows trained on (the validation
  // rows split off the train file are not among them).
  const f = jr.reweighing.factors;
  assert.deepEqual(
    f.map((c) => `${c.group}/${c.label}`),
    ['Northvale/approve', 'Northvale/deny', 'Southmere/approve', 'Southmere/deny'],
  );
  const n = f.reduce((s, c) => s + c.count, 0);
  const sum = (keep: (c: Factor) => boolean): number => f.filter(keep).reduce((s, c) => s + c.count, 0);
  for (const c of f) {
    const expected = (sum((d) => d.group === c.group) * sum((d) => d.label === c.label)) / (n * c.count);
    assert.ok(Math.abs(c.weight - expected) < 1e-12, `${c.group}/${c.label}: ${c.weight} vs ${expected}`);
  }
  assert.ok(n < 400 && n > 300, `${n} training rows`);
  // The biased cell (Southmere, approve) is the rarest and weighs most.
  assert.ok(f[2].weight > 1.5, String(f[2].weight));
  // Parity difference on the eval rows, measured by the budget check of each run.
  const parity = (j: CustomizeJson): number => j.fairness_budget!.checks[0].value!;
  assert.ok(parity(jr) < parity(jp), `parity ${parity(jp)} -> ${parity(jr)}`);
  const accuracy = (j: CustomizeJson): number =>
    (j as unknown as { customized: { accuracy: number } }).customized.accuracy;
  t.diagnostic(
    `eval parity difference ${parity(jp).toFixed(4)} -> ${parity(jr).toFixed(4)}, accuracy ${accuracy(jp).toFixed(4)} -> ${accuracy(jr).toFixed(4)}`,
  );

  // Strategy none trains nothing to reweigh: an error before anything is read.
  const none = await tailor([...args('none', '--reweigh', 'district'), '--strategy', 'none']);
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /reweigh \(--reweigh\) reweighs training, but strategy 'none' trains nothing/);
  // A column the train file lacks names the column and the file.
  const missing = await tailor(args('missing', '--reweigh', 'region'));
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /region/);
  assert.match(missing.stderr, /train\.csv/);
});
