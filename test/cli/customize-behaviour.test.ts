/**
 * Behavioural tests and the flip-rate fairness budget in the product flow: `tailor customize --behaviour` /
 * `--max-flip-rate` and `tailor audit --behaviour`, end to end on a tiny BERT with CLINC150 slices.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { clincRows, json, tailor, workspace, type Workspace, clincArgs } from './fixtures.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { changeCase, changePunctuation } from '../../src/eval/behaviour.ts';

interface TestResult {
  test: string;
  cases: number;
  flips: number;
  flipRate: number;
}
interface Behaviour {
  seed: number;
  texts: number;
  tests: TestResult[];
}
interface Change {
  test: string;
  before: { cases: number; flips: number; flipRate: number };
  after: { cases: number; flips: number; flipRate: number };
  change: number;
}
interface CustomizeJson {
  model: { name: string; version: number; ref: string; aliases: string[] };
  artifacts: { model: string; report: string };
  audit: { behaviour?: Behaviour };
  behaviour?: { baseline: Behaviour; customized: Behaviour; comparison: Change[] };
  fairness_budget?: { pass: boolean; checks: Array<{ limit: string; bound: number; value: number | null }> };
  alias_decision: {
    requested: string[];
    moved: boolean;
    regression: boolean;
    fairness_failed: boolean;
    reason: string;
  };
}

/**
 * Flips of a deterministic perturbation counted independently: the saved artifact through the library's Classifier,
 * original vs perturbed text.
 */
async function countFlips(dir: string, texts: string[], perturb: (t: string) => string | undefined) {
  const pairs = texts.flatMap((t) => {
    const p = perturb(t);
    return p === undefined ? [] : [[t, p] as const];
  });
  const clf = await Classifier.load(dir);
  try {
    const a = await clf.predict(pairs.map((p) => p[0]));
    const b = await clf.predict(pairs.map((p) => p[1]));
    return { cases: pairs.length, flips: a.filter((x, i) => x.label !== b[i].label).length };
  } finally {
    await clf.release();
  }
}

let ws: Workspace;
const common = (): string[] => [
  ...clincArgs(ws),
  '--strategy',
  'head',
  '--epochs',
  '1',
  '--home',
  ws.home,
  '--name',
  'clinc',
  '--json',
];

test('customize --behaviour --max-flip-rate: both models tested on the same perturbations; budget gates the alias (exit 3)', async (t) => {
  ws = await workspace('behaviour');
  t.after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const evalTexts = clincRows('test', 4, 10).map((r) => r.text);

  // 1. A budget every model meets: the alias moves, exit 0.
  const r1 = await tailor([
    'customize',
    ...common(),
    '--out',
    path.join(ws.dir, 'v1'),
    '--behaviour',
    '--max-flip-rate',
    '1',
    '--alias',
    'prod',
    '--allow-regression',
  ]);
  assert.equal(r1.status, 0, r1.stderr);
  const j1 = json<CustomizeJson>(r1);
  const b = j1.behaviour!;
  assert.ok(b, 'behaviour in the result');
  assert.equal(b.baseline.texts, evalTexts.length);
  assert.equal(b.customized.texts, evalTexts.length);
  assert.deepEqual(
    b.customized.tests.map((x) => x.test),
    ['name-swap', 'typos', 'casing', 'punctuation', 'contractions'],
  );
  // The baseline's report is the audit's own; both models saw the same pairs.
  assert.deepEqual(j1.audit.behaviour, b.baseline);
  for (const c of b.comparison) {
    const before = b.baseline.tests.find((x) => x.test === c.test)!;
    const after = b.customized.tests.find((x) => x.test === c.test)!;
    assert.equal(before.cases, after.cases, c.test);
    assert.deepEqual(c.after, { cases: after.cases, flips: after.flips, flipRate: after.flipRate });
    assert.ok(Math.abs(c.change - (after.flipRate - before.flipRate)) < 1e-12);
  }
  // Every eval text ends in a letter or has punctuation: punctuation changes all 40; casing changes all 40.
  const model = j1.artifacts.model;
  for (const [name, perturb] of [
    ['casing', changeCase],
    ['punctuation', changePunctuation],
  ] as const) {
    const ref = await countFlips(model, evalTexts, perturb);
    const got = b.customized.tests.find((x) => x.test === name)!;
    assert.equal(ref.cases, evalTexts.length, name);
    assert.deepEqual({ cases: got.cases, flips: got.flips }, ref, name);
  }
  assert.equal(j1.fairness_budget!.pass, true);
  assert.equal(j1.fairness_budget!.checks[0].limit, 'maxFlipRate');
  const worst = Math.max(...b.customized.tests.filter((x) => x.cases > 0).map((x) => x.flipRate));
  assert.equal(j1.fairness_budget!.checks[0].value, worst);
  assert.equal(j1.alias_decision.fairness_failed, false);
  assert.deepEqual(j1.model.aliases, ['prod']);
  const report = JSON.parse(readFileSync(j1.artifacts.report, 'utf8')) as Pick<
    CustomizeJson,
    'behaviour' | 'fairness_budget'
  >;
  assert.deepEqual(report.behaviour, b);
  assert.deepEqual(report.fairness_budget, j1.fairness_budget);

  // 2. A budget below the measured worst flip rate: registered as v2, alias stays on v1, exit 3.
  assert.ok(worst > 0, `the tiny model flips on some perturbation (worst ${worst})`);
  const limit = worst / 2;
  const r2 = await tailor([
    'customize',
    ...common(),
    '--out',
    path.join(ws.dir, 'v2'),
    '--max-flip-rate',
    String(limit),
    '--alias',
    'prod',
    '--allow-regression',
  ]);
  assert.equal(r2.status, 3, r2.stderr);
  const j2 = json<CustomizeJson>(r2);
  assert.equal(j2.model.version, 2);
  assert.deepEqual(j2.model.aliases, []);
  assert.equal(j2.alias_decision.moved, false);
  assert.equal(j2.alias_decision.fairness_failed, true);
  assert.match(
    j2.alias_decision.reason,
    /the fairness budget failed: flip rate [0-9.]+ in .* is above the limit .*; aliases were not moved/,
  );
  // --max-flip-rate implies --behaviour; same seed and data: the same flip rates as run 1.
  assert.deepEqual(j2.behaviour, b);
  const reg = await openRegistry({ home: ws.home });
  try {
    assert.equal((await reg.getModel('clinc@prod')).version, 1);
  } finally {
    await reg.close();
  }

  // 3. `tailor audit --behaviour` on the same data and seed gives the baseline report customize recorded.
  const a = await tailor(['audit', ...clincArgs(ws), '--behaviour', '--json']);
  assert.equal(a.status, 0, a.stderr);
  assert.deepEqual(json<{ behaviour?: Behaviour }>(a).behaviour, b.baseline);
  const text = await tailor(['audit', ...clincArgs(ws), '--behaviour']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /Behavioural tests \(CheckList-style invariance, 40 texts, seed 0\):/);
});

test('customize --max-flip-rate out of [0, 1] is a usage error', async () => {
  const r = await tailor(['customize', '--train', 'x.csv', '--out', 'y', '--max-flip-rate', '2']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--max-flip-rate/);
});
