/**
 * The automatic search (src/customize/search.ts) with a simulated trainer on a fake clock, so every timing-driven
 * decision has a known answer worked out by hand below: the halving schedule, the stratified fractions, the budget
 * (skips, the kept-back last rung, the shortened last rung, the first trial that always runs), the winner and the
 * trial table. The real trainer on USE-lite is in search-customize.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  configOptions,
  defaultCandidates,
  describeConfig,
  fixCandidates,
  formatSearchTrials,
  halvingSchedule,
  runSearch,
  searchCustomize,
  stratifiedRows,
  type SearchConfig,
  type TrialPlan,
  type TrialRecord,
  type TrialRunner,
} from '../../src/customize/search.ts';
import { ConfigError } from '../../src/errors.ts';
import { tinyBert } from './fixtures.ts';

const near = (a: number, b: number, eps = 1e-9): boolean => Math.abs(a - b) < eps;

test('halvingSchedule: known schedules (configs, eta, minFraction, maxEpochs)', () => {
  const strip = (rs: ReturnType<typeof halvingSchedule>) =>
    rs.map((r) => [r.rung, r.configs, +r.fraction.toFixed(6), r.epochs]);
  // 9 configurations, eta 3: 9 on 1/9 of the data, 3 on 1/3, 1 on all of it for maxEpochs.
  assert.deepEqual(strip(halvingSchedule({ configs: 9, eta: 3, minFraction: 1 / 9, maxEpochs: 2 })), [
    [0, 9, 0.111111, 1],
    [1, 3, 0.333333, 1],
    [2, 1, 1, 2],
  ]);
  // 27 configurations: the fraction reaches 1 at rung 2, which keeps 3 for one epoch; the last keeps 1 for 3.
  assert.deepEqual(strip(halvingSchedule({ configs: 27, eta: 3, minFraction: 1 / 9, maxEpochs: 3 })), [
    [0, 27, 0.111111, 1],
    [1, 9, 0.333333, 1],
    [2, 3, 1, 1],
    [3, 1, 1, 3],
  ]);
  // eta 2 halves: 8, 4, 2, 1.
  assert.deepEqual(strip(halvingSchedule({ configs: 8, eta: 2, minFraction: 1 / 8, maxEpochs: 3 })), [
    [0, 8, 0.125, 1],
    [1, 4, 0.25, 1],
    [2, 2, 0.5, 1],
    [3, 1, 1, 3],
  ]);
  // 8 with eta 3: floor(8/9) = 0, so rung 2 is the last one, with one configuration.
  assert.deepEqual(strip(halvingSchedule({ configs: 8 })), [
    [0, 8, 0.111111, 1],
    [1, 2, 0.333333, 1],
    [2, 1, 1, 2],
  ]);
  // One configuration: just the last rung.
  assert.deepEqual(strip(halvingSchedule({ configs: 1, maxEpochs: 4 })), [[0, 1, 1, 4]]);
  // Small data (the whole training set at rung 0): equal resources are not run twice.
  assert.deepEqual(strip(halvingSchedule({ configs: 9, minFraction: 1, maxEpochs: 1 })), [[0, 9, 1, 1]]);
  assert.deepEqual(strip(halvingSchedule({ configs: 9, minFraction: 1, maxEpochs: 3 })), [
    [0, 9, 1, 1],
    [1, 1, 1, 3],
  ]);
  assert.throws(() => halvingSchedule({ configs: 0 }), /at least one configuration, got 0/);
  assert.throws(() => halvingSchedule({ configs: 3, eta: 1 }), /eta must be above 1, got 1/);
  assert.throws(() => halvingSchedule({ configs: 3, minFraction: 0 }), ConfigError);
  assert.throws(() => halvingSchedule({ configs: 3, maxEpochs: 1.5 }), /maxEpochs must be a positive integer/);
});

/** 30 labels x 30 rows. */
const LABELS = Array.from({ length: 900 }, (_, i) => `intent${String(i % 30).padStart(2, '0')}`);

test('stratifiedRows: round(fraction x count) rows of every label, nested fractions, seeded', () => {
  const third = stratifiedRows(LABELS, 1 / 3, 7);
  const ninth = stratifiedRows(LABELS, 1 / 9, 7);
  assert.equal(third.length, 300);
  assert.equal(ninth.length, 90);
  for (let l = 0; l < 30; l++) assert.equal(ninth.filter((i) => i % 30 === l).length, 3);
  assert.ok(
    ninth.every((i) => third.includes(i)),
    'the 1/9 rows are among the 1/3 rows',
  );
  assert.deepEqual(
    third,
    [...third].sort((a, b) => a - b),
  );
  assert.deepEqual(stratifiedRows(LABELS, 1 / 3, 7), third);
  assert.notDeepEqual(stratifiedRows(LABELS, 1 / 3, 8), third);
  assert.equal(stratifiedRows(LABELS, 1, 7).length, 900);
  // A label with a single row keeps it at any fraction.
  const one = stratifiedRows(['a', 'b', 'b', 'b'], 0.1, 0);
  assert.equal(one.length, 2);
  assert.equal(one[0], 0);
});

/**
 * A simulated trainer on a fake clock. Seconds of a trial: fixed[strategy] + epochs x (2 s of validation +
 * perRow[strategy] x rows); validation accuracy: quality[config] - 9 / (rows x epochs), so more data and epochs
 * score higher and configurations keep their order at every rung.
 */
const FIXED = { head: 1, lora: 5, partial: 6, full: 8 } as Record<string, number>;
const PER_ROW = { head: 0.0001, lora: 0.004, partial: 0.005, full: 0.008 } as Record<string, number>;
const QUALITY: Record<string, number> = {
  'head lr 1e-2': 0.9,
  'lora all-linear r8 lr 2e-3': 0.92,
  'lora all-linear r16 lr 1e-3': 0.915,
  'lora attention r8 lr 2e-3': 0.91,
  'partial 1 block lr 5e-4': 0.925,
  'full lr 1e-4': 0.93,
  'full lr 5e-5': 0.905,
  'head mlp lr 3e-4': 0.895,
  'full lr 2e-4': 0.935,
};

/**
 * The search space of the schedule tests, fixed here (it was the default space when they were written) so that they
 * test the halving and the budget, not what `defaultCandidates` holds today.
 */
const SPACE: SearchConfig[] = [
  { strategy: 'head' },
  { strategy: 'lora', lora: { r: 8, targets: 'all-linear' }, lr: 2e-3 },
  { strategy: 'lora', lora: { r: 16, targets: 'all-linear' }, lr: 1e-3 },
  { strategy: 'lora', lora: { r: 8, targets: 'attention' }, lr: 2e-3 },
  { strategy: 'partial', partial: { layers: 1 }, lr: 5e-4 },
  { strategy: 'full', lr: 1e-4 },
  { strategy: 'full', lr: 5e-5 },
  { strategy: 'full', lr: 2e-4 },
];

function simulated(setupSeconds = 10) {
  let now = 0;
  const plans: TrialPlan[] = [];
  const runner: TrialRunner = {
    async prepare() {
      now += setupSeconds;
      return { validationSeconds: 2 };
    },
    async run(plan) {
      plans.push(plan);
      const s = plan.config.strategy;
      const epoch = 2 + PER_ROW[s] * plan.rows.length;
      now += FIXED[s] + plan.epochs * epoch;
      const name = describeConfig(plan.config);
      assert.ok(name in QUALITY, name);
      return {
        accuracy: QUALITY[name] - 9 / (plan.rows.length * plan.epochs),
        logLoss: 0.3,
        epochSeconds: Array.from({ length: plan.epochs }, () => epoch),
      };
    },
  };
  return { runner, plans, clock: () => now };
}

const row = (t: TrialRecord) => [t.config, t.rung, t.trainRows, t.epochs, t.status];

test('runSearch with room for everything: 8 + 2 + 1 trials, the best of each rung goes on, the winner is the best at the last rung', async () => {
  const sim = simulated();
  const seen: TrialRecord[] = [];
  const s = await runSearch(LABELS, sim.runner, {
    candidates: SPACE,
    budgetSeconds: 1000,
    seed: 3,
    first: 'lora',
    fill: false,
    clock: sim.clock,
    onTrial: (t) => seen.push(t),
  });
  assert.deepEqual(s.trials.map(row), [
    // The audit's strategy (lora) first, then one configuration of each strategy in turn.
    ['lora all-linear r8 lr 2e-3', 0, 90, 1, 'pruned'],
    ['head lr 1e-2', 0, 90, 1, 'pruned'],
    ['partial 1 block lr 5e-4', 0, 90, 1, 'pruned'],
    ['full lr 1e-4', 0, 90, 1, 'promoted'],
    ['lora all-linear r16 lr 1e-3', 0, 90, 1, 'pruned'],
    ['full lr 5e-5', 0, 90, 1, 'pruned'],
    ['lora attention r8 lr 2e-3', 0, 90, 1, 'pruned'],
    ['full lr 2e-4', 0, 90, 1, 'promoted'],
    // floor(8 / 3) = 2 best on 1/3 of the rows, best first.
    ['full lr 2e-4', 1, 300, 1, 'promoted'],
    ['full lr 1e-4', 1, 300, 1, 'pruned'],
    ['full lr 2e-4', 2, 900, 2, 'winner'],
  ]);
  assert.equal(s.winner, s.trials[10]);
  assert.ok(near(s.winner.accuracy!, 0.935 - 9 / 1800));
  assert.equal(s.trials[10].epochsRun, 2);
  // Only the last rung gets early stopping.
  assert.deepEqual(
    sim.plans.map((p) => p.patience),
    [...Array(10).fill(undefined), 1],
  );
  // Seconds by hand: setup 10; rung 0: head 3.009, lora 3 x 7.36, partial 8.45, full 3 x 10.72; rung 1: 2 x 12.4;
  // rung 2: 8 + 2 x (2 + 7.2).
  assert.ok(near(s.setupSeconds, 10));
  assert.ok(near(s.seconds, 10 + 3.009 + 3 * 7.36 + 8.45 + 3 * 10.72 + 2 * 12.4 + 26.4, 1e-6), String(s.seconds));
  assert.ok(near(s.trials[10].seconds, 26.4, 1e-9));
  assert.deepEqual(seen, s.trials);
  assert.equal(s.trials.filter((t) => t.note).length, 0, 'nothing timing-driven');
  assert.match(
    s.reasons[0],
    /^8 configurations \(the audit's strategy, lora, first\), 3 rung\(s\): 8 on 11\.1% .* 1 on 100% of the training rows for 2 epoch\(s\)/,
  );
  assert.match(
    s.reasons[1],
    /^winner: full lr 2e-4, validation accuracy 93% .* at rung 2 \(100% of the training rows, 2 epoch\(s\)\)/,
  );
  // Deterministic: the same inputs give the same report.
  const again = await runSearch(LABELS, simulated().runner, {
    candidates: SPACE,
    budgetSeconds: 1000,
    seed: 3,
    first: 'lora',
    fill: false,
    clock: simulated().clock,
  });
  assert.deepEqual(again.trials.map(row), s.trials.map(row));
});

test('runSearch fills the time left after the schedule: one more configuration per strategy first, and a late bloomer can win', async () => {
  // Learning curves cross: full fine-tuning pays 20 / (rows x epochs) instead of 9, so at rung 0 (90 rows) every
  // full configuration ranks last and is pruned, while on all the rows full lr 2e-4 (0.935 - 20/1800 = 0.9239) beats
  // the schedule's winner, partial (0.925 - 9/1800 = 0.92).
  const crossing = (fill: boolean) => {
    const sim = simulated();
    const runner: TrialRunner = {
      prepare: sim.runner.prepare,
      async run(plan) {
        const out = await sim.runner.run(plan);
        if (plan.config.strategy !== 'full') return out;
        return {
          ...out,
          accuracy: out.accuracy + 9 / (plan.rows.length * plan.epochs) - 20 / (plan.rows.length * plan.epochs),
        };
      },
    };
    return runSearch(LABELS, runner, {
      candidates: SPACE,
      budgetSeconds: 1000,
      seed: 3,
      first: 'lora',
      clock: sim.clock,
      fill,
    });
  };
  const without = await crossing(false);
  assert.equal(without.winner.config, 'partial 1 block lr 5e-4');
  assert.equal(without.trials.length, 11);
  const s = await crossing(true);
  // The schedule is the same 11 trials (rung 1: partial 0.895, lora r8 0.89; the last rung: partial).
  assert.deepEqual(
    s.trials.slice(0, 11).map((t) => [t.config, t.rung]),
    without.trials.map((t) => [t.config, t.rung]),
  );
  // Then on all the rows: the best not-yet-there configuration of lora, head and full (partial is there), by the
  // highest rung reached and its score (lora r8 reached rung 1), then the rest by their rung-0 scores.
  assert.deepEqual(
    s.trials.slice(11).map((t) => [t.config, t.rung, t.trainRows, t.epochs, t.status]),
    [
      ['lora all-linear r8 lr 2e-3', 2, 900, 2, 'pruned'],
      ['head lr 1e-2', 2, 900, 2, 'pruned'],
      ['full lr 2e-4', 2, 900, 2, 'winner'],
      ['lora all-linear r16 lr 1e-3', 2, 900, 2, 'pruned'],
      ['lora attention r8 lr 2e-3', 2, 900, 2, 'pruned'],
      ['full lr 1e-4', 2, 900, 2, 'pruned'],
      ['full lr 5e-5', 2, 900, 2, 'pruned'],
    ],
  );
  assert.ok(s.trials.slice(11).every((t) => t.extra && t.note === 'extra: run with the time left after the schedule'));
  assert.ok(near(s.winner.accuracy!, 0.935 - 20 / 1800));
  // An extra run does not make the rung-0 trial "promoted": it was pruned by the schedule.
  assert.equal(s.trials.find((t) => t.config === 'full lr 2e-4' && t.rung === 0)!.status, 'pruned');
  assert.equal(s.trials.find((t) => t.config === 'partial 1 block lr 5e-4' && t.rung === 2)!.status, 'pruned');
  assert.ok(
    s.reasons.some((r) =>
      /^\d+ s were left after the schedule, so 7 more configuration\(s\) ran on all the rows: lora all-linear r8 lr 2e-3, head lr 1e-2, full lr 2e-4, /.test(
        r,
      ),
    ),
    s.reasons.join('\n'),
  );
  // The extras' seconds by hand (900 rows, 2 epochs): lora 5 + 2 x (2 + 3.6) = 16.2 (three of them), head 5.18,
  // full 8 + 2 x (2 + 7.2) = 26.4 (three).
  const extraSeconds = s.trials.slice(11).reduce((a, t) => a + t.seconds, 0);
  assert.ok(near(extraSeconds, 3 * 16.2 + 5.18 + 3 * 26.4, 1e-6), String(extraSeconds));
});

test('runSearch fill: configurations whose estimate does not fit are passed over for cheaper ones', async () => {
  // The schedule ends at 126.899 s (as in the first test); 150 - 126.899 = 23.1 s are left: partial's last rung
  // (19 s) fits first, then nothing does (lora 16.2 s, head 5.18 s > 4.1 s).
  const sim = simulated();
  const s = await runSearch(LABELS, sim.runner, {
    candidates: SPACE,
    budgetSeconds: 150,
    seed: 3,
    first: 'lora',
    clock: sim.clock,
  });
  assert.deepEqual(
    s.trials.slice(11).map((t) => t.config),
    ['partial 1 block lr 5e-4'],
  );
  assert.equal(s.winner.config, 'full lr 2e-4');
  assert.ok(s.seconds <= 150);
  assert.equal(
    s.reasons.find((r) => r.includes('were left after the schedule')),
    '23 s were left after the schedule, so 1 more configuration(s) ran on all the rows: partial 1 block lr 5e-4; ' +
      'lora all-linear r8 lr 2e-3, head lr 1e-2, full lr 1e-4, lora all-linear r16 lr 1e-3, lora attention r8 lr 2e-3, full lr 5e-5 did not fit',
  );
});

test('runSearch under a tight budget: untried strategies wait while the leader last rung is kept back; that rung is shortened to fit', async () => {
  const sim = simulated();
  const s = await runSearch(LABELS, sim.runner, {
    candidates: SPACE,
    budgetSeconds: 45,
    seed: 3,
    first: 'lora',
    clock: sim.clock,
  });
  // By hand (setup 10 s, budget 45 s), in the search order (lora first, then one of each strategy in turn): lora
  // r8 (7.36 s), head (3.009 s) and partial (8.45 s) fit with the leader's last rung kept back (lora r8: 5 + 2 x
  // (2 + 3.6) = 16.2 s; from partial on, partial's 6 + 2 x (2 + 4.5) = 19 s). Then 16.181 s are left: full has no
  // estimate yet and the 19 s kept back are more than that, so it waits, and so do the rest. At rung 1 the two
  // promoted (partial, lora r8) need 9.5 and 8.2 s besides the 19 s. The last rung takes partial: 2 epochs (19 s)
  // do not fit in 16.181 s, 1 epoch (12.5 s) does.
  assert.deepEqual(s.trials.map(row), [
    ['lora all-linear r8 lr 2e-3', 0, 90, 1, 'promoted'],
    ['head lr 1e-2', 0, 90, 1, 'pruned'],
    ['partial 1 block lr 5e-4', 0, 90, 1, 'promoted'],
    ['full lr 1e-4', 0, 90, 1, 'skipped'],
    ['lora all-linear r16 lr 1e-3', 0, 90, 1, 'skipped'],
    ['full lr 5e-5', 0, 90, 1, 'skipped'],
    ['lora attention r8 lr 2e-3', 0, 90, 1, 'skipped'],
    ['full lr 2e-4', 0, 90, 1, 'skipped'],
    ['partial 1 block lr 5e-4', 1, 300, 1, 'skipped'],
    ['lora all-linear r8 lr 2e-3', 1, 300, 1, 'skipped'],
    ['partial 1 block lr 5e-4', 2, 900, 1, 'winner'],
  ]);
  assert.deepEqual(
    s.trials.map((t) => t.note),
    [
      undefined,
      undefined,
      undefined,
      '16 s left, all kept for the last rung (~19 s)',
      'needs ~7 s + ~19 s kept for the last rung, 16 s left',
      '16 s left, all kept for the last rung (~19 s)',
      'needs ~7 s + ~19 s kept for the last rung, 16 s left',
      '16 s left, all kept for the last rung (~19 s)',
      'needs ~10 s + ~19 s kept for the last rung, 16 s left',
      'needs ~8 s + ~19 s kept for the last rung, 16 s left',
      'shortened from 2 to 1 epoch(s): ~19 s estimated, 16 s left',
    ],
  );
  assert.equal(s.winner.epochsRun, 1);
  assert.ok(near(s.winner.accuracy!, 0.925 - 9 / 900));
  assert.ok(near(s.seconds, 10 + 7.36 + 3.009 + 8.45 + 12.5, 1e-6), String(s.seconds));
  assert.ok(s.seconds <= 45);
  // The timing-driven decisions are part of the reasons, one sentence per distinct decision.
  assert.deepEqual(s.reasons.slice(2), [
    'full lr 1e-4 at rung 0, full lr 5e-5 at rung 0, full lr 2e-4 at rung 0 skipped: 16 s left, all kept for the last rung (~19 s)',
    'lora all-linear r16 lr 1e-3 at rung 0, lora attention r8 lr 2e-3 at rung 0 skipped: needs ~7 s + ~19 s kept for the last rung, 16 s left',
    'partial 1 block lr 5e-4 at rung 1 skipped: needs ~10 s + ~19 s kept for the last rung, 16 s left',
    'lora all-linear r8 lr 2e-3 at rung 1 skipped: needs ~8 s + ~19 s kept for the last rung, 16 s left',
    'partial 1 block lr 5e-4 at rung 2 shortened from 2 to 1 epoch(s): ~19 s estimated, 16 s left',
  ]);
});

test('runSearch with a little more time: full is tried, leads, and its last rung is what is kept back', async () => {
  const sim = simulated();
  const s = await runSearch(LABELS, sim.runner, {
    candidates: SPACE,
    budgetSeconds: 60,
    seed: 3,
    first: 'lora',
    clock: sim.clock,
  });
  // As above until partial (28.819 s); full (10.72 s) fits beside the 19 s kept back for partial, and leads (0.83):
  // from then on full's last rung, 8 + 2 x (2 + 7.2) = 26.4 s, is kept back and 20.461 s are left, so the rest of
  // rung 0 and both of rung 1 wait; full's last rung runs 1 epoch (17.2 s).
  assert.deepEqual(s.trials.map(row), [
    ['lora all-linear r8 lr 2e-3', 0, 90, 1, 'pruned'],
    ['head lr 1e-2', 0, 90, 1, 'pruned'],
    ['partial 1 block lr 5e-4', 0, 90, 1, 'promoted'],
    ['full lr 1e-4', 0, 90, 1, 'promoted'],
    ['lora all-linear r16 lr 1e-3', 0, 90, 1, 'skipped'],
    ['full lr 5e-5', 0, 90, 1, 'skipped'],
    ['lora attention r8 lr 2e-3', 0, 90, 1, 'skipped'],
    ['full lr 2e-4', 0, 90, 1, 'skipped'],
    ['full lr 1e-4', 1, 300, 1, 'skipped'],
    ['partial 1 block lr 5e-4', 1, 300, 1, 'skipped'],
    ['full lr 1e-4', 2, 900, 1, 'winner'],
  ]);
  assert.equal(s.trials[5].note, 'needs ~11 s + ~26 s kept for the last rung, 20 s left');
  assert.equal(s.trials[8].note, 'needs ~12 s + ~26 s kept for the last rung, 20 s left');
  assert.equal(s.trials[10].note, 'shortened from 2 to 1 epoch(s): ~26 s estimated, 20 s left');
  assert.ok(near(s.seconds, 39.539 + 17.2, 1e-6), String(s.seconds));
});

test('runSearch: the first trial runs even when the setup spent the budget; nothing else does', async () => {
  const sim = simulated(10);
  const s = await runSearch(LABELS, sim.runner, {
    candidates: SPACE,
    budgetSeconds: 5,
    first: 'lora',
    clock: sim.clock,
  });
  assert.deepEqual(s.trials.filter((t) => t.status !== 'skipped').map(row), [
    ['lora all-linear r8 lr 2e-3', 0, stratifiedRows(LABELS, 1 / 9, 0).length, 1, 'winner'],
  ]);
  assert.ok(s.trials.slice(1).every((t) => t.status === 'skipped'));
  // Past the budget by one trial's time (7.36 s), no more.
  assert.ok(near(s.seconds, 10 + 7.36, 1e-9));
  assert.match(s.trials.at(-1)!.note!, /^one epoch over all the data needs ~11 s, 0 s left$/);
  assert.match(
    s.reasons[2],
    /^head lr 1e-2 at rung 0, partial 1 block lr 5e-4 at rung 0, .*, full lr 2e-4 at rung 0, lora all-linear r8 lr 2e-3 at rung 1 skipped: the budget is spent$/,
  );
});

test('runSearch: a winner found on a lower rung when the last rung cannot run, and bad options', async () => {
  const cands: SearchConfig[] = [{ strategy: 'head' }, { strategy: 'full', lr: 1e-4 }];
  const sim = simulated(0);
  // 2 configurations: rung 0 on 1/9 of the rows, then the last rung (1 configuration, 2 epochs).
  const s = await runSearch(LABELS, sim.runner, { budgetSeconds: 12, candidates: cands, clock: sim.clock });
  // head 3.009 s, full 10.72 s: the budget is spent before the last rung, so the winner is rung 0's best.
  assert.deepEqual(s.trials.map(row), [
    ['head lr 1e-2', 0, 90, 1, 'pruned'],
    ['full lr 1e-4', 0, 90, 1, 'winner'],
    ['full lr 1e-4', 1, 900, 2, 'skipped'],
  ]);
  assert.equal(s.winner.config, 'full lr 1e-4');
  assert.equal(s.winner.rung, 0);
  await assert.rejects(
    runSearch(LABELS, sim.runner, { candidates: SPACE, budgetSeconds: 0 }),
    /budget must be a positive number/,
  );
  await assert.rejects(runSearch([], sim.runner, { budgetSeconds: 10 }), /training split is empty/);
  await assert.rejects(
    runSearch(LABELS, sim.runner, { budgetSeconds: 10, candidates: [{ strategy: 'nope' as 'head' }] }),
    /unknown strategy 'nope'/,
  );
});

test('formatSearchTrials: one row per trial with rung, data, epochs, seconds, scores and the decision', async () => {
  const sim = simulated();
  const s = await runSearch(LABELS, sim.runner, {
    candidates: SPACE,
    budgetSeconds: 45,
    first: 'lora',
    clock: sim.clock,
    seed: 3,
  });
  const lines = formatSearchTrials(s).split('\n');
  assert.match(lines[0], /^ #\s+config\s+rung\s+data\s+rows\s+epochs\s+seconds\s+val acc\s+val loss\s+result$/);
  assert.equal(lines.length, 2 + s.trials.length);
  assert.match(
    lines[2],
    /^ 1\s+lora all-linear r8 lr 2e-3\s+0\s+11\.1%\s+90\s+1\/1\s+7\.4\s+82\.00%\s+0\.3000\s+promoted$/,
  );
  assert.match(
    lines[5],
    /^ 4\s+full lr 1e-4\s+0\s+11\.1%\s+90\s+-\s+-\s+-\s+-\s+skipped \(16 s left, all kept for the last rung \(~19 s\)\)$/,
  );
  assert.match(
    lines.at(-1)!,
    /^11\s+partial 1 block lr 5e-4\s+2\s+100%\s+900\s+1\/1\s+12\.5\s+91\.50%\s+0\.3000\s+winner \(shortened from 2 to 1 epoch\(s\)/,
  );
});

test('defaultCandidates: the recommended strategy first, then one of each strategy in turn; every configuration distinct', () => {
  assert.deepEqual(defaultCandidates('full').map(describeConfig), [
    'full lr 1e-4',
    'head lr 1e-2',
    'lora all-linear r8 lr 2e-3',
    'partial 1 block lr 5e-4',
    'full lr 2e-4',
    // The head type is searched on the head strategy, at the MLP head's own default learning rate.
    'head mlp lr 3e-4',
    'lora all-linear r16 lr 1e-3',
    'lora attention r8 lr 2e-3',
  ]);
  const plain = defaultCandidates().map(describeConfig);
  assert.equal(new Set(plain).size, 8);
  assert.deepEqual(configOptions(defaultCandidates()[4]), { strategy: 'head', headType: 'mlp' });
  // A strategy not among the candidates changes nothing.
  assert.deepEqual(defaultCandidates('ia3').map(describeConfig), plain);
});

test('defaultCandidates with little data: setfit joins, and goes first when the audit recommends it', () => {
  const few = defaultCandidates('lora', { littleData: true }).map(describeConfig);
  assert.equal(few.length, 9);
  // lora (the audit's) first, then one of each strategy in turn; setfit's group comes first among the rest.
  assert.deepEqual(few.slice(0, 5), [
    'lora all-linear r8 lr 2e-3',
    'setfit lr 1e-2',
    'head lr 1e-2',
    'partial 1 block lr 5e-4',
    'full lr 1e-4',
  ]);
  assert.deepEqual(
    few.filter((c) => c !== 'setfit lr 1e-2').sort(),
    [...defaultCandidates().map(describeConfig)].sort(),
  );
});

test('runSearch keeps two rows of every label at every rung when a candidate needs them (setfit)', async () => {
  // 40 labels x 5 rows: rung 0 would take 1/9 (round(0.56) = 1 row a label); setfit's pairs need 2, so the rungs
  // start at 2/5 of the rows.
  const labels = Array.from({ length: 200 }, (_, i) => `l${i % 40}`);
  const plans: TrialPlan[] = [];
  let now = 0;
  const runner: TrialRunner = {
    async run(plan) {
      plans.push(plan);
      now += 1;
      return { accuracy: 0.5 + plan.rows.length / 1000, logLoss: 1, epochSeconds: [0.5] };
    },
  };
  const cands: SearchConfig[] = [
    { strategy: 'head' },
    { strategy: 'setfit' },
    { strategy: 'lora', lora: { r: 8, targets: 'all-linear' } },
  ];
  const s = await runSearch(labels, runner, { budgetSeconds: 100, candidates: cands, clock: () => now, fill: false });
  assert.deepEqual(
    s.schedule.map((r) => [r.configs, r.fraction]),
    [
      [3, 0.4],
      [1, 1],
    ],
  );
  for (const p of plans) {
    const per = new Map<string, number>();
    for (const i of p.rows) per.set(labels[i], (per.get(labels[i]) ?? 0) + 1);
    assert.equal(per.size, 40);
    assert.ok(Math.min(...per.values()) >= 2, `${describeConfig(p.config)} at rung ${p.rung}`);
  }
  // One row a label: setfit cannot pair anything, so it is left out with the reason; alone, it is an error.
  const single = Array.from({ length: 40 }, (_, i) => `l${i}`);
  const left = await runSearch(single, runner, {
    budgetSeconds: 100,
    candidates: cands,
    clock: () => now,
    fill: false,
  });
  assert.ok(left.trials.every((t) => t.strategy !== 'setfit'));
  assert.ok(
    left.reasons.includes(
      'setfit lr 1e-2 left out: it needs 2 training rows of some label, the most any label has is 1',
    ),
    left.reasons.join('\n'),
  );
  await assert.rejects(
    runSearch(single, runner, { budgetSeconds: 100, candidates: [cands[1]], clock: () => now }),
    /^ConfigError: no configuration can train on these rows: setfit lr 1e-2 left out/,
  );
  // Without setfit the same data starts at 1/9.
  const without = await runSearch(labels, runner, {
    budgetSeconds: 100,
    candidates: [cands[0], cands[2]],
    clock: () => now,
  });
  assert.ok(near(without.schedule[0].fraction, 1 / 9));
});

test('fixCandidates: fixed hyper-parameters apply where they mean something; equal configurations are kept once', () => {
  const c = fixCandidates(defaultCandidates('lora'), { lr: 1e-3, rank: 4, targets: 'query|value', layers: 2 });
  assert.deepEqual(c.map(describeConfig), [
    'lora /query|value/ r4 lr 1e-3',
    'head lr 1e-3',
    'partial 2 blocks lr 1e-3',
    'full lr 1e-3',
    'head mlp lr 1e-3',
  ]);
  // A fixed head type applies to every configuration; fixing the linear head drops the MLP head's row.
  const h = fixCandidates(defaultCandidates(), { head: 'mlp' });
  assert.ok(h.every((x) => x.head === 'mlp'));
  assert.ok(h.map(describeConfig).includes('lora all-linear r8 mlp head lr 2e-3'));
  assert.ok(fixCandidates(defaultCandidates(), { head: 'linear' }).every((x) => x.head === undefined));
  assert.equal(fixCandidates(defaultCandidates(), { head: 'linear' }).length, 7);
  const d = fixCandidates(defaultCandidates(), { loraDropout: 0.1 });
  assert.equal(d.length, 8);
  assert.ok(d.filter((x) => x.lora).every((x) => x.lora!.dropout === 0.1 && describeConfig(x).includes('dropout 0.1')));
});

test('strategyEpochs: at the last rung and in the time left, head trains its own 10 epochs, the rest the schedule maxEpochs; searchCustomize turns it on unless maxEpochs is given', async () => {
  const space: SearchConfig[] = [
    { strategy: 'head' },
    { strategy: 'full', lr: 1e-4 },
    { strategy: 'lora', lora: { r: 8, targets: 'all-linear' }, lr: 2e-3 },
  ];
  const top = (s: { trials: TrialRecord[] }, strategy: string) =>
    s.trials.filter((t) => t.strategy === strategy && t.trainRows === 900).map((t) => t.epochs);
  const on = simulated();
  const s = await runSearch(LABELS, on.runner, {
    candidates: space,
    budgetSeconds: 1000,
    seed: 3,
    clock: on.clock,
    strategyEpochs: true,
  });
  assert.deepEqual(top(s, 'head'), [10]);
  assert.deepEqual(top(s, 'full'), [2]);
  // The lower rungs keep their one epoch.
  assert.ok(s.trials.filter((t) => t.trainRows < 900).every((t) => t.epochs === 1));
  assert.ok(on.plans.some((p) => p.config.strategy === 'head' && p.epochs === 10));
  const off = simulated();
  const o = await runSearch(LABELS, off.runner, { candidates: space, budgetSeconds: 1000, seed: 3, clock: off.clock });
  assert.deepEqual(top(o, 'head'), [2]);

  // searchCustomize: on by default, off when the caller sets the epochs (`--epochs` with auto).
  const data = {
    train: LABELS.map((label, i) => ({ text: `t${i}`, label })),
    validation: [{ text: 'v', label: LABELS[0] }],
  };
  const base = tinyBert(data);
  const run = async (maxEpochs?: number) => {
    const sim = simulated();
    return searchCustomize(base, data, {
      runner: sim.runner,
      candidates: space,
      budgetSeconds: 1000,
      seed: 3,
      clock: sim.clock,
      minRows: 0,
      ...(maxEpochs ? { maxEpochs } : {}),
    });
  };
  assert.deepEqual(top(await run(), 'head'), [10]);
  assert.deepEqual(top(await run(), 'full'), [3]);
  assert.deepEqual(top(await run(2), 'head'), [2]);
});
