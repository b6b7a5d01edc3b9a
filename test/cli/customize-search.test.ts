/**
 * `tailor customize --strategy auto --budget`: the search in the product flow on a tiny BERT (4 CLINC150 intents),
 * and the flag's parsing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { clincArgs, json, tailor, workspace, type Workspace } from './fixtures.ts';
import { openRegistry } from '../../src/registry/index.ts';
import type { SearchReport } from '../../src/customize/search.ts';
import { duration } from '../../src/cli/common.ts';
import { InvalidArgumentError } from 'commander';

let ws: Workspace;
test.before(async () => {
  ws = await workspace('search');
});
test.after(() => rmSync(ws.dir, { recursive: true, force: true }));

test('--budget: 90s, 10m and 1h parse; anything else is a usage error naming the flag, before anything is written', async () => {
  // The option's parser (the 90s and 1m runs below go through it end to end).
  assert.deepEqual(['90s', '10m', '1h', '1.5h'].map(duration), [90, 600, 3600, 5400]);
  assert.throws(() => duration('ten minutes'), InvalidArgumentError);
  for (const bad of ['soon', '0', '-5m', '10x', '1e3']) {
    const out = path.join(ws.dir, `o-bad-${bad}`);
    const r = await tailor(['customize', ...clincArgs(ws), '--budget', bad, '--out', out, '--home', ws.home]);
    assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(
        `option '--budget <duration>' argument '${bad}' is invalid\\. must be a positive duration such as 90s, 10m or 1h`,
      ),
    );
    assert.equal(existsSync(out), false);
  }
  assert.equal(existsSync(ws.home), false);
  // A budget with a fixed strategy is a mistake too (the library's ConfigError: exit 1), caught before any work.
  const out = path.join(ws.dir, 'o-budget-head');
  const r = await tailor([
    'customize',
    ...clincArgs(ws),
    '--strategy',
    'head',
    '--budget',
    '10m',
    '--out',
    out,
    '--home',
    ws.home,
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /^tailor: budget is the time of the search behind strategy 'auto'; strategy 'head' trains one configuration/m,
  );
  assert.equal(existsSync(out), false);
  assert.equal(existsSync(ws.home), false);
});

interface SearchJson {
  strategy: string;
  requested_strategy: string;
  run_id: string;
  search: SearchReport;
  curve: unknown[];
  artifacts: { report: string };
}

test('customize --strategy auto --budget 90s --json: the search table in the result, the run and report.json; the winner is what was saved', async () => {
  const out = path.join(ws.dir, 'o-auto');
  // --rank/--targets/--lr fix those hyper-parameters: the space collapses to head, lora, partial, full and the MLP head.
  const args = [
    'customize',
    ...clincArgs(ws),
    '--strategy',
    'auto',
    '--budget',
    '90s',
    '--epochs',
    '2',
    '--rank',
    '4',
    '--targets',
    'attention',
    '--lr',
    '3e-3',
    '--batch-size',
    '10',
    '--threads',
    '1',
    '--out',
    out,
    '--home',
    ws.home,
  ];
  const r = await tailor([...args, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = json<SearchJson>(r);
  const s = j.search;
  assert.equal(j.requested_strategy, 'auto');
  assert.equal(s.budgetSeconds, 90);
  // The audit recommends lora (no target accuracy): its configuration goes first.
  assert.deepEqual(s.candidates, [
    'lora attention r4 lr 3e-3',
    'head lr 3e-3',
    'partial 1 block lr 3e-3',
    'full lr 3e-3',
    'head mlp lr 3e-3',
  ]);
  // 5 configurations, eta 3: all 5 on 40 of the 88 training rows (100 less the validation split; 1/9 raised to 4
  // batches of 10: 10 of 22 per intent), then the best on all of them.
  assert.deepEqual(
    s.schedule.map((x) => [x.configs, x.epochs]),
    [
      [5, 1],
      [1, 2],
    ],
  );
  const ran = s.trials.filter((t) => t.status !== 'skipped');
  assert.ok(ran.length >= 1);
  assert.equal(s.trials[0].config, 'lora attention r4 lr 3e-3');
  assert.equal(s.trials[0].trainRows, 40);
  assert.equal(s.trials[0].fraction, 40 / 88);
  assert.equal(j.strategy, s.winner.strategy);
  assert.equal(s.winner.status, 'winner');
  // The winner is the best of the highest rung that ran.
  const topRung = Math.max(...ran.map((t) => t.rung));
  const best = Math.max(...ran.filter((t) => t.rung === topRung).map((t) => t.accuracy!));
  assert.equal(s.winner.accuracy, best);
  assert.equal(j.curve.length, s.winner.epochsRun);
  // The budget holds but for one trial's time.
  assert.ok(s.seconds <= 90 + Math.max(...ran.map((t) => t.seconds)), `${s.seconds} s`);

  // The saved model is the winner's: its strategy and learning rate.
  const saved = JSON.parse(readFileSync(path.join(out, 'model', 'tailor.json'), 'utf8')) as {
    strategy: string;
    lineage: { hyperparameters: { lr: number } };
  };
  assert.equal(saved.strategy, s.winner.strategy);
  assert.equal(saved.lineage.hyperparameters.lr, 3e-3);
  const report = JSON.parse(readFileSync(j.artifacts.report, 'utf8')) as { search: SearchReport };
  assert.deepEqual(report.search, s);
  const reg = await openRegistry({ home: ws.home });
  try {
    const run = await reg.showRun(j.run_id);
    assert.equal(run.name, 'auto');
    assert.equal(run.params.strategy, j.strategy);
    assert.equal(run.params.search_winner, s.winner.config);
    assert.equal(run.params.search_budget_seconds, 90);
    assert.ok(run.artifacts.some((a) => a.path === 'search.json' && a.kind === 'report'));
  } finally {
    await reg.close();
  }
});

test('customize --strategy auto (text): the trial table is printed', async () => {
  const out = path.join(ws.dir, 'o-auto-text');
  const r = await tailor([
    'customize',
    ...clincArgs(ws),
    '--budget',
    '1m',
    '--lr',
    '3e-3',
    '--rank',
    '4',
    '--targets',
    'attention',
    '--epochs',
    '1',
    '--threads',
    '1',
    '--out',
    out,
    '--home',
    ws.home,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Customized \S+ with strategy '\w+' \(the search's winner: .+\)/);
  assert.match(r.stdout, /^Search: \d+ trial\(s\) in \d+ s of a 60 s budget/m);
  assert.match(r.stdout, /^#\s+config\s+rung\s+data\s+rows\s+epochs\s+seconds\s+val acc\s+val loss\s+result$/m);
  // Batches of 32: 4 of them need more than the 88 training rows, so every trial trains on all of them, once: one rung.
  assert.match(
    r.stdout,
    /^ {2}5 configurations \(the audit's strategy, lora, first\), 1 rung\(s\): 5 on 100% of the training rows for 1 epoch\(s\)$/m,
  );
  assert.match(r.stdout, /^1\s+lora attention r4 lr 3e-3\s+0\s+100%\s+88\s+1\/1\s+[\d.]+\s+[\d.]+%\s+[\d.]+\s+\w+/m);
});
