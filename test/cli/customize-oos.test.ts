/**
 * Out-of-scope detection from the CLI: `tailor customize --oos-label --abstain [msp|energy] --abstain-frr` stores the
 * rule with the model and reports in-scope accuracy and out-of-scope recall; `tailor evaluate --oos-label` reads the
 * stored rule back. Bad values are errors naming the flag, before anything is written. A tiny BERT (the base does
 * not matter here) on CLINC150 slices, with CLINC150's out-of-scope queries labelled "oos".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { clincArgs, clincRows, json, tailor, workspace, writeCsv, type Spawned, type Workspace } from './fixtures.ts';
import { readClinc } from '../clinc150.ts';
import type { AbstainSpec, OutOfScopeMetrics, OutOfScopeReport } from '../../src/eval/abstain.ts';

let ws: Workspace;
let oosEval: string;

test.before(async () => {
  ws = await workspace('oos');
  oosEval = writeCsv(path.join(ws.dir, 'oos-eval.csv'), readClinc('oos_test').slice(0, 20));
});
test.after(() => rmSync(ws.dir, { recursive: true, force: true }));

/** The error lines (progress lines come before them on stderr). */
const err = (stderr: string): string =>
  stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('tailor: ') || l.startsWith('error: '))
    .join('\n');

/** customize on the workspace's train/eval files, plus the oos eval file unless `withOos` is false. */
const customize = (out: string, extra: string[], withOos = true): Promise<Spawned> =>
  tailor([
    'customize',
    ...clincArgs(ws),
    ...(withOos ? ['--eval', oosEval] : []),
    ...['--strategy', 'head', '--epochs', '1', '--home', ws.home, '--out', path.join(ws.dir, out)],
    ...extra,
  ]);

test('customize --oos-label oos --abstain energy --abstain-frr 0.2: rule stored with the model, out_of_scope reported; evaluate reads it back', async () => {
  const r = await customize('energy', ['--oos-label', 'oos', '--abstain', 'energy', '--abstain-frr', '0.2', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = json<{ out_of_scope: OutOfScopeReport; artifacts: { model: string }; customized: { count: number } }>(r);
  const o = j.out_of_scope;
  assert.equal(o.oosLabel, 'oos');
  assert.equal(o.trainedClass, false);
  // 4 intents x 10 test rows in scope, the 20 oos rows set aside from the closed-set metrics.
  assert.equal(j.customized.count, 40);
  assert.equal(o.withoutAbstention.inScope, 40);
  assert.equal(o.withoutAbstention.outOfScope, 20);
  assert.equal(o.withoutAbstention.outOfScopeRecall, 0);
  assert.equal(o.abstain!.score, 'energy');
  assert.deepEqual(o.abstain!.target, { kind: 'false_rejection_rate', value: 0.2 });
  assert.ok(o.abstain!.validation.falseRejectionRate <= 0.2);
  const stored = JSON.parse(readFileSync(path.join(j.artifacts.model, 'abstain.json'), 'utf8')) as AbstainSpec;
  assert.deepEqual(stored, o.abstain);

  const e = await tailor([
    'evaluate',
    ...['--model', j.artifacts.model, '--eval', ws.eval, '--eval', oosEval, '--label-column', 'intent'],
    ...['--oos-label', 'oos', '--no-latency', '--bootstrap', '10'],
  ]);
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /Out-of-scope detection on 40 in-scope and 20 out-of-scope rows \(label 'oos'\):/);
  assert.match(e.stdout, /argmax \(no abstention\) +\d+\.\d\d% +\d+\.\d\d% +0\.00% +0\.00%/);
  assert.match(e.stdout, /abstain: energy < -?\d/);
  const ej = json<{ count: number; outOfScope: { withAbstention: OutOfScopeMetrics } }>(
    await tailor([
      'evaluate',
      ...['--model', j.artifacts.model, '--eval', ws.eval, '--eval', oosEval, '--label-column', 'intent'],
      ...['--oos-label', 'oos', '--no-latency', '--bootstrap', '10', '--json'],
    ]),
  );
  assert.equal(ej.count, 40);
  assert.deepEqual(ej.outOfScope.withAbstention, o.withAbstention);
  const evalErr = async (files: string[], label: string, message: RegExp): Promise<void> => {
    const x = await tailor([
      'evaluate',
      ...['--model', j.artifacts.model, ...files.flatMap((f) => ['--eval', f]), '--label-column', 'intent'],
      ...['--oos-label', label, '--no-latency'],
    ]);
    assert.equal(x.status, 1, x.stderr);
    assert.match(err(x.stderr), message);
  };
  await evalErr([ws.eval, oosEval], 'nonesuch', /no eval row has the out-of-scope label 'nonesuch' \(--oos-label\)/);
  await evalErr([oosEval], 'oos', /every eval row has the out-of-scope label 'oos'; give in-scope rows too/);
});

test('an explicit oos class: oos rows in train are a class, and --oos-label reports its recall without --abstain', async () => {
  // The workspace's train rows (4 intents x 25) plus 25 oos rows.
  const trainWithOos = writeCsv(path.join(ws.dir, 'train-oos.csv'), [
    ...clincRows('train', 4, 25),
    ...readClinc('oos_train').slice(0, 25),
  ]);
  const r = await tailor([
    'customize',
    ...['--base', ws.bert, '--train', trainWithOos, '--eval', ws.eval, '--eval', oosEval, '--label-column', 'intent'],
    ...['--strategy', 'head', '--epochs', '1', '--home', ws.home, '--out', path.join(ws.dir, 'class')],
    ...['--oos-label', 'oos'],
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Out-of-scope detection on 40 in-scope and 20 out-of-scope rows \(label 'oos'\):/);
  assert.match(r.stdout, /argmax \(class 'oos'\)/);
  assert.doesNotMatch(r.stdout, /abstain:/);
  assert.equal(existsSync(path.join(ws.dir, 'class', 'model', 'abstain.json')), false);
  const info = JSON.parse(readFileSync(path.join(ws.dir, 'class', 'model', 'tailor.json'), 'utf8')) as {
    labels: string[];
  };
  assert.ok(info.labels.includes('oos'), 'oos is one of the classes');
});

test('bad --abstain values: errors naming the flag, exit 2 for usage and 1 for the library, nothing written', async () => {
  const cases: Array<{ args: string[]; status: number; message: RegExp; withOos?: false }> = [
    { args: ['--abstain', 'entropy'], status: 2, message: /--abstain.*entropy.*msp, energy/ },
    { args: ['--abstain-frr', '0.1'], status: 2, message: /--abstain-frr needs --abstain \(msp or energy\)/ },
    { args: ['--abstain', '--abstain-frr', 'lots'], status: 2, message: /--abstain-frr.*must be a number/ },
    {
      args: ['--abstain', '--abstain-frr', '0'],
      status: 1,
      message: /abstain\.targetFrr must be in \(0, 1\) \(--abstain-frr\), got 0/,
    },
    {
      args: ['--abstain', '--abstain-frr', '1.5'],
      status: 1,
      message: /abstain\.targetFrr must be in \(0, 1\) \(--abstain-frr\), got 1\.5/,
    },
    {
      args: ['--abstain', '--abstain-frr', '0.1', '--abstain-precision', '0.9'],
      status: 1,
      message: /--abstain-frr.*or.*--abstain-precision.*not both/,
    },
    {
      // The oos rows are only in the eval files: none to fit a precision on.
      args: ['--abstain', '--abstain-precision', '0.9', '--oos-label', 'oos'],
      status: 1,
      message: /--abstain-precision\) needs out-of-scope validation rows: no validation row is labelled 'oos'/,
    },
    {
      // Without the oos eval file (its "oos" rows would be an unseen label, an error of its own).
      args: ['--abstain', '--oos-label', 'nonesuch'],
      withOos: false,
      status: 1,
      message: /no row of the train, validation or eval data has the out-of-scope label 'nonesuch' \(--oos-label\)/,
    },
  ];
  for (const [i, c] of cases.entries()) {
    const out = `bad-${i}`;
    const r = await customize(out, c.args, c.withOos);
    assert.equal(r.status, c.status, `${c.args.join(' ')}: ${r.stderr}`);
    assert.match(err(r.stderr), c.message, c.args.join(' '));
    assert.equal(existsSync(path.join(ws.dir, out)), false, `${c.args.join(' ')} wrote ${out}`);
  }
});
