/**
 * `tailor evaluate --sensitive-column ... [--behaviour] [--max-parity-difference ...]` end to end: a tiny BERT head
 * customized on a CLINC150 slice, evaluated on an eval CSV with two extra sensitive columns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { clincRows, json, tailor, workspace, type Workspace, clincArgs } from './fixtures.ts';

interface Estimate {
  estimate: number | null;
  lower?: number | null;
  upper?: number | null;
}
interface View {
  name: string;
  groups: Array<{ group: string; count: number; tooSmall: boolean; metrics: { accuracy: number } }>;
  judged: string[];
  tooSmall: Array<{ group: string; count: number }>;
  demographicParityDifference: Estimate & { label: string };
  disparateImpact: Estimate & { label: string; fourFifthsViolated: boolean };
  note?: string;
}
interface EvalJson {
  count: number;
  metrics: { accuracy: number };
  disaggregated: { task: string; method: string; minGroupSize: number; sensitiveColumns: string[]; views: View[] };
  behaviour?: {
    tests: Array<{
      test: string;
      cases: number;
      flips: number;
      flipRate: number | null;
      meanAbsConfidenceShift: number;
    }>;
  };
  fairnessBudget?: { pass: boolean; reasons: string[] };
}

let ws: Workspace;
let model: string;
let evalCsv: string;

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

test('setup: customize a head on CLINC150 and write an eval file with "group" and "region" columns', async () => {
  ws = await workspace('evalfair');
  model = path.join(ws.dir, 'head');
  const r = await tailor([
    'customize',
    ...clincArgs(ws),
    '--strategy',
    'head',
    '--epochs',
    '2',
    '--out',
    model,
    '--home',
    ws.home,
    '--quiet',
  ]);
  assert.equal(r.status, 0, r.stderr);
  model = path.join(model, 'model');
  // 40 rows (4 intents x 10): group alternates f/m, region is n for the first half of each intent, s after.
  const rows = clincRows('test', 4, 10);
  evalCsv = path.join(ws.dir, 'eval-groups.csv');
  writeFileSync(
    evalCsv,
    [
      'text,intent,group,region',
      ...rows.map((row, i) => `${csvField(row.text)},${row.label},${i % 2 ? 'm' : 'f'},${i % 10 < 5 ? 'n' : 's'}`),
    ].join('\n') + '\n',
  );
});

test('evaluate --sensitive-column twice: per column and intersection, sizes from the file, tiny groups flagged', async () => {
  const args = ['evaluate', '--model', model, '--eval', evalCsv, '--label-column', 'intent', '--no-latency'];
  const r = await tailor([
    ...args,
    '--sensitive-column',
    'group',
    '--sensitive-column',
    'region',
    '--min-group-size',
    '15',
    '--bootstrap',
    '200',
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<EvalJson>(r);
  const d = j.disaggregated;
  assert.equal(d.task, 'multiclass');
  assert.match(d.method, /one-vs-rest to each of 4 classes and the worst class is reported/);
  assert.equal(d.minGroupSize, 15);
  assert.deepEqual(d.sensitiveColumns, ['group', 'region']);
  assert.deepEqual(
    d.views.map((v) => v.name),
    ['group', 'region', 'group × region'],
  );
  const [group, region, inter] = d.views;
  assert.deepEqual(
    group.groups.map((g) => [g.group, g.count, g.tooSmall]),
    [
      ['f', 20, false],
      ['m', 20, false],
    ],
  );
  assert.deepEqual(
    region.groups.map((g) => [g.group, g.count]),
    [
      ['n', 20],
      ['s', 20],
    ],
  );
  // Intersections (f: even rows; n: the first 5 of each block of 10, so 3 f and 2 m per block) have 12, 8, 8 and 12
  // rows (< 15): shown, not judged, and the disparities are undefined.
  assert.deepEqual(
    inter.groups.map((g) => [g.group, g.count, g.tooSmall]),
    [
      ['f × n', 12, true],
      ['f × s', 8, true],
      ['m × n', 8, true],
      ['m × s', 12, true],
    ],
  );
  assert.equal(inter.demographicParityDifference.estimate, null);
  assert.match(inter.note!, /only 0 group\(s\) of "group × region" have at least 15 examples/);
  // The per-group accuracies recombine into the overall accuracy of the same run.
  for (const v of [group, region, inter]) {
    const correct = v.groups.reduce((s, g) => s + g.metrics.accuracy * g.count, 0);
    assert.ok(Math.abs(correct / j.count - j.metrics.accuracy) < 1e-9, v.name);
  }
  const dp = group.demographicParityDifference;
  assert.ok(dp.lower! <= dp.upper!);

  // The text report: tables per view and the minimum size stated.
  const text = await tailor([
    ...args,
    '--sensitive-column',
    'group',
    '--sensitive-column',
    'region',
    '--min-group-size',
    '15',
    '--bootstrap',
    '50',
  ]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /Fairness by "group", "region" \(multi-class task: /);
  assert.match(text.stdout, /By "group × region":\ngroup +count +accuracy +macro F1\n/);
  assert.match(text.stdout, /f × n \(too small\) +12 /);
  assert.match(text.stdout, /Between the judged groups of "group" \(2\):/);
  assert.match(text.stdout, /Per class, one-vs-rest:/);
});

test('gates: exit 1 with the reason when the measured disparity is over the limit, 0 when within', async () => {
  const args = [
    'evaluate',
    '--model',
    model,
    '--eval',
    evalCsv,
    '--label-column',
    'intent',
    '--no-latency',
    '--sensitive-column',
    'group',
    '--min-group-size',
    '10',
    '--bootstrap',
    '50',
  ];
  const ok = await tailor([...args, '--max-parity-difference', '1', '--min-disparate-impact', '0', '--json']);
  assert.equal(ok.status, 0, ok.stderr);
  const j = json<EvalJson>(ok);
  assert.equal(j.fairnessBudget!.pass, true);
  const dp = j.disaggregated.views[0].demographicParityDifference;
  assert.ok(dp.estimate! > 0, 'the random tiny model selects classes at different rates per group');
  const bad = await tailor([...args, '--max-parity-difference', '0']);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /Fairness budget: FAIL/);
  assert.match(
    bad.stderr,
    new RegExp(
      `tailor: fairness budget failed: demographic parity difference ${dp.estimate!.toFixed(4)} in "group", class "${dp.label}", 95% CI \\[[0-9.]+, [0-9.]+\\] is above the limit 0`,
    ),
  );
  // A group gate without a sensitive column is a usage mistake, named.
  const none = await tailor([
    'evaluate',
    '--model',
    model,
    '--eval',
    evalCsv,
    '--label-column',
    'intent',
    '--no-latency',
    '--min-disparate-impact',
    '0.8',
  ]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /--min-disparate-impact needs at least one --sensitive-column/);
  const missing = await tailor([...args.slice(0, 7), '--sensitive-column', 'age']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /missing column "age"/);
  // An empty sensitive value is named by file and line (row 4 of the data is line 5).
  const lines = readFileSync(evalCsv, 'utf8').split('\n');
  lines[4] = lines[4].replace(/,(f|m),(n|s)$/, ',$1,');
  const holed = path.join(path.dirname(evalCsv), 'holed.csv');
  writeFileSync(holed, lines.join('\n'));
  const empty = await tailor([
    'evaluate',
    '--model',
    model,
    '--eval',
    holed,
    '--label-column',
    'intent',
    '--no-latency',
    '--sensitive-column',
    'region',
  ]);
  assert.equal(empty.status, 1);
  assert.equal(empty.stderr.trim(), `tailor: ${holed}:5: sensitive column "region" is empty`);
  // --positive-label narrows the one-vs-rest classes.
  const label = 'accept_reservations'; // the first of the slice's four intents
  const one = json<EvalJson & { disaggregated: { positiveLabels: string[] } }>(
    await tailor([...args, '--positive-label', label, '--json']),
  );
  assert.deepEqual(one.disaggregated.positiveLabels, [label]);
  assert.match(one.disaggregated.method, /each of 1 classes/);
  assert.equal(one.disaggregated.views[0].demographicParityDifference.label, label);
});

test('--behaviour: flip rates per test; the uncased tokenizer makes casing a no-op; --max-flip-rate gates', async (t) => {
  t.after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const args = ['evaluate', '--model', model, '--eval', evalCsv, '--label-column', 'intent', '--no-latency'];
  const r = await tailor([...args, '--behaviour', '--name-template', 'can {name} check my balance', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const b = json<EvalJson>(r).behaviour!;
  const by = Object.fromEntries(b.tests.map((x) => [x.test, x]));
  assert.deepEqual(Object.keys(by), ['name-swap', 'typos', 'casing', 'punctuation', 'contractions']);
  assert.ok(by['name-swap'].cases >= 10, 'ten template pairs at least');
  // The tiny BERT's WordPiece tokenizer lower-cases: upper-casing cannot change any prediction.
  assert.equal(by.casing.cases, 40);
  assert.equal(by.casing.flips, 0);
  assert.equal(by.casing.meanAbsConfidenceShift, 0);
  const gated = await tailor([...args, '--max-flip-rate', '0', '--quiet']);
  const worst = Math.max(...b.tests.filter((x) => x.cases > 0).map((x) => x.flipRate ?? 0));
  if (worst > 0) {
    assert.equal(gated.status, 1);
    assert.match(
      gated.stderr,
      /fairness budget failed: flip rate [0-9.]+ in [a-z-]+ \(\d+\/\d+ flipped\) is above the limit 0/,
    );
  } else assert.equal(gated.status, 0, gated.stderr);
});
