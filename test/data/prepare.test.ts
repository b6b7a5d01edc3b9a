import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError } from '../../src/errors.ts';
import { formatDataReport, prepareDataset } from '../../src/data/index.ts';
import { tempFiles } from './helpers.ts';
import { clincPath } from '../clinc150.ts';
import { readFileSync } from 'node:fs';

const TRAIN = [
  'text,label,group',
  'book a flight to paris,travel,g1',
  'book a flight to paris,travel,g1', // exact duplicate
  'Book a flight to Paris!,travel,g2', // near duplicate
  'find hotels in rome,travel,g2',
  'what is the weather,weather,g1',
  'is it going to rain,weather,g2',
  'will it snow tomorrow,weather,g1',
  'play some jazz,music,g2',
  'put on my playlist,music,g1',
  'skip this song,music,g2',
  'odd one,lonely,g1', // rare class (1 example)
].join('\n');
const EVAL = [
  'text,label,group',
  'is it going to rain,weather,g1',
  'play the next song,music,g2',
  'rent a car,travel,g1',
].join('\n');

test('prepareDataset: counts every removal by reason, keeps row accounting exact', async () => {
  const t = await tempFiles({ 'train.csv': TRAIN, 'eval.csv': EVAL });
  try {
    const ds = await prepareDataset({
      train: t.path('train.csv'),
      eval: t.path('eval.csv'),
      groupColumn: 'group',
      rareClasses: 'drop',
      validationFraction: 0.34,
      seed: 1,
    });
    const tr = ds.report.splits.train;
    assert.equal(tr.rowsRead, 11);
    assert.deepEqual(tr.removed, { leakage: 1, 'exact-duplicate': 1, 'near-duplicate': 1, 'rare-class': 1 });
    assert.deepEqual(ds.labels, ['music', 'travel', 'weather']);
    // 7 remain: music 3, travel 2, weather 2; validation gets round(.34n) clamped to [1, n-1] per class.
    assert.equal(ds.validation.length, 3);
    assert.equal(ds.train.length, 4);
    assert.equal(tr.rowsKept + ds.report.splits.validation.rowsKept + 4, tr.rowsRead);
    assert.equal(ds.report.totalRemoved, 4);
    assert.ok(ds.train.every((e) => e.group === 'g1' || e.group === 'g2'));
    assert.equal(ds.eval!.length, 3);
    const leak = tr.samples.leakage![0];
    assert.equal(leak.line, 7);
    assert.match(leak.message, /eval\.csv:2/);
    const text = formatDataReport(ds.report);
    assert.match(text, /removed: leakage\s+1\s+0/);
    assert.match(text, /rows kept\s+4\s+3\s+3/);
    assert.match(ds.fingerprint, /^sha256:/);
    assert.equal(ds.report.fingerprint, ds.fingerprint);
    // JSON round trip keeps the report intact.
    const parsed = JSON.parse(JSON.stringify(ds.report)) as typeof ds.report;
    assert.deepEqual(parsed.splits, ds.report.splits);
    assert.deepEqual(parsed.classBalance, ds.report.classBalance);

    const again = await prepareDataset({
      train: t.path('train.csv'),
      eval: t.path('eval.csv'),
      groupColumn: 'group',
      rareClasses: 'drop',
      validationFraction: 0.34,
      seed: 1,
    });
    assert.equal(again.fingerprint, ds.fingerprint);
    const reseeded = await prepareDataset({
      train: t.path('train.csv'),
      eval: t.path('eval.csv'),
      groupColumn: 'group',
      rareClasses: 'drop',
      validationFraction: 0.34,
      seed: 2,
    });
    assert.notEqual(reseeded.fingerprint, ds.fingerprint);
    const aug = await prepareDataset({
      train: t.path('train.csv'),
      rareClasses: 'drop',
      augment: { copies: 2, seed: 4 },
    });
    assert.ok(aug.report.splits.train.rowsAugmented > 0);
    assert.equal(aug.train.filter((e) => e.augmented).length, aug.report.splits.train.rowsAugmented);
    assert.ok(aug.validation.every((e) => !e.augmented));
  } finally {
    await t.cleanup();
  }
});

test('rare classes and unseen eval labels are clear errors by default, counted when dropped', async () => {
  const t = await tempFiles({
    'train.csv': TRAIN,
    'eval.csv': EVAL + '\nwhat time is it,clock,g2',
  });
  try {
    await assert.rejects(prepareDataset({ train: t.path('train.csv') }), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, /fewer than 2 train examples .*"lonely" \(1\).*line 12, column "label"/);
      assert.equal(e.context.line, 12);
      assert.equal(e.context.field, 'label');
      return true;
    });
    await assert.rejects(
      prepareDataset({ train: t.path('train.csv'), eval: t.path('eval.csv'), rareClasses: 'drop' }),
      (e: unknown) => {
        assert.ok(e instanceof DataError);
        assert.equal(e.context.file, t.path('eval.csv'));
        assert.equal(e.context.line, 5);
        assert.equal(e.context.field, 'label');
        assert.match(e.message, /label "clock" never appears in train/);
        return true;
      },
    );
    const ds = await prepareDataset({
      train: t.path('train.csv'),
      eval: t.path('eval.csv'),
      rareClasses: 'drop',
      unseenLabels: 'drop',
    });
    assert.deepEqual(ds.report.splits.eval!.removed, { 'unseen-label': 1 });
    await assert.rejects(
      prepareDataset({ train: t.path('train.csv'), minExamplesPerClass: 4, rareClasses: 'error' }),
      /"music" \(3\)/,
    );
  } finally {
    await t.cleanup();
  }
});

test('outOfScopeLabel: held-out rows with it are kept without being a class; other unseen labels still fail', async () => {
  const t = await tempFiles({
    'oos.csv': ['text,intent', 'what is the capital of peru,oos', 'play some jazz,oos'].join('\n'),
  });
  try {
    const ds = await prepareDataset({
      train: clincPath('train.csv'),
      eval: [clincPath('test.csv'), t.path('oos.csv')],
      labelColumn: 'intent',
      outOfScopeLabel: 'oos',
    });
    assert.equal(ds.labels.length, 150);
    assert.ok(!ds.labels.includes('oos'));
    assert.deepEqual(
      ds.eval!.filter((e) => e.label === 'oos').map((e) => e.text),
      ['what is the capital of peru', 'play some jazz'],
    );
    assert.equal(ds.report.splits.eval!.classCounts.oos, 2);
    assert.equal(ds.report.options.outOfScopeLabel, 'oos');
    await assert.rejects(
      prepareDataset({ train: clincPath('train.csv'), eval: t.path('oos.csv'), labelColumn: 'intent' }),
      /label "oos" never appears in train/,
    );
    await assert.rejects(
      prepareDataset({
        train: clincPath('train.csv'),
        eval: t.path('oos.csv'),
        labelColumn: 'intent',
        outOfScopeLabel: 'out_of_domain',
      }),
      /label "oos" never appears in train/,
    );
  } finally {
    await t.cleanup();
  }
});

test('CLINC150 slice: every row read is kept or counted; a train row repeated in eval is removed as leakage', async () => {
  // The committed slice has no repeats; one train query copied into the eval file (other case and
  // punctuation) must come out as leakage, counted, with the file and line of its twin.
  const t = await tempFiles({
    'test.csv': `${readFileSync(clincPath('test.csv'), 'utf8')}WHAT EXPRESSION would i use to say i love you if i were an italian?,translate\n`,
  });
  try {
    const ds = await prepareDataset({
      train: [clincPath('train.csv'), clincPath('oos_train.csv')],
      validation: [clincPath('validation.csv'), clincPath('oos_validation.csv')],
      eval: [t.path('test.csv'), clincPath('oos_test.csv')],
      labelColumn: 'intent',
    });
    const { train, validation, eval: ev } = ds.report.splits;
    assert.equal(train.rowsRead, 3300);
    assert.equal(validation.rowsRead, 1000);
    assert.equal(ev!.rowsRead, 1701);
    assert.equal(ds.labels.length, 151);
    for (const s of [train, validation, ev!]) {
      const removed = Object.values(s.removed).reduce((a, b) => a + (b ?? 0), 0);
      assert.equal(s.rowsKept + removed, s.rowsRead, 'every row is kept or counted as removed');
    }
    assert.equal(ds.report.totalRemoved, 1);
    const leak = train.samples.leakage![0];
    assert.match(leak.file, /train\.csv$/);
    assert.match(leak.message, /test\.csv:1502/);
    assert.equal(ds.train.length + ds.validation.length + ds.eval!.length, 3300 + 1000 + 1701 - 1);
    // 100 out-of-scope rows against the 19 'translate' rows left after the leaked one went.
    assert.equal(ds.report.imbalanceRatio, 100 / 19);
    assert.equal(ds.report.classBalance.find((c) => c.label === 'oos')!.eval, 200);
  } finally {
    await t.cleanup();
  }
});
