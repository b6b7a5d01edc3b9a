import { renderTable } from '../../src/util/table.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { formatComparison, formatRunList, openRegistry } from '../../src/registry/index.ts';

const root = mkdtempSync(join(tmpdir(), 'tailor-cmp-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** sklearn-style macro F1 over the labels present in gold or predictions, written out longhand. */
function macroF1(gold: string[], pred: string[]): number {
  const labels = [...new Set([...gold, ...pred])];
  let sum = 0;
  for (const l of labels) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < gold.length; i++) {
      if (pred[i] === l && gold[i] === l) tp++;
      else if (pred[i] === l) fp++;
      else if (gold[i] === l) fn++;
    }
    sum += tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  }
  return sum / labels.length;
}

test('compareRuns: metrics side by side, McNemar exact p and bootstrap CIs on shared predictions', async () => {
  const reg = await openRegistry({ home: join(root, 'a') });
  // 40 examples over 3 classes. A is right on 0..24, B on 2..33: b = 2 (A right, B wrong), c = 9 (A wrong, B right).
  const classes = ['ham', 'spam', 'promo'];
  const gold = Array.from({ length: 40 }, (_, i) => classes[i % 3]);
  const wrong = (l: string): string => classes[(classes.indexOf(l) + 1) % 3];
  const predA = gold.map((l, i) => (i < 25 ? l : wrong(l)));
  const predB = gold.map((l, i) => (i >= 2 && i < 34 ? l : wrong(l)));

  const a = await reg.startRun({ name: 'head', params: { strategy: 'head', lr: 0.01 } });
  await a.logMetrics({ accuracy: 25 / 40, loss: 0.9 });
  await a.logPredictions('clinc-eval', gold, predA);
  await a.finish();
  const b = await reg.startRun({ name: 'lora', params: { strategy: 'lora', lr: 0.01 } });
  await b.logMetrics({ accuracy: 32 / 40, train_seconds: 12 });
  await b.logPredictions('clinc-eval', gold, predB);
  await b.finish();

  const c = await reg.compareRuns(a.id, b.id.slice(0, 8));
  assert.deepEqual(c.metrics, [
    { key: 'accuracy', a: 0.625, b: 0.8, delta: 0.8 - 0.625 },
    { key: 'loss', a: 0.9, b: null, delta: null },
    { key: 'train_seconds', a: null, b: 12, delta: null },
  ]);
  assert.deepEqual(c.params, [
    { key: 'lr', a: 0.01, b: 0.01, same: true },
    { key: 'strategy', a: 'head', b: 'lora', same: false },
  ]);
  assert.deepEqual(c.notes, []);
  const s = c.significance!;
  assert.equal(s.count, 40);
  assert.equal(s.mcnemar.b, 2);
  assert.equal(s.mcnemar.c, 9);
  // Two-sided exact binomial: 2 * (C(11,0) + C(11,1) + C(11,2)) / 2^11.
  assert.ok(Math.abs(s.mcnemar.pValue - (2 * (1 + 11 + 55)) / 2048) < 1e-12);
  assert.equal(s.accuracy.a.estimate, 25 / 40);
  assert.equal(s.accuracy.b.estimate, 32 / 40);
  assert.ok(Math.abs(s.accuracy.difference.estimate - 7 / 40) < 1e-12);
  assert.ok(Math.abs(s.macroF1.a.estimate - macroF1(gold, predA)) < 1e-12);
  assert.ok(Math.abs(s.macroF1.b.estimate - macroF1(gold, predB)) < 1e-12);
  for (const iv of [s.accuracy.a, s.accuracy.b, s.accuracy.difference, s.macroF1.difference]) {
    assert.ok(iv.lower <= iv.estimate && iv.estimate <= iv.upper && iv.lower < iv.upper, JSON.stringify(iv));
  }
  // The difference is resampled jointly with the marginals, so its interval is narrower than their widths added.
  assert.ok(
    s.accuracy.difference.upper - s.accuracy.difference.lower <
      s.accuracy.a.upper - s.accuracy.a.lower + (s.accuracy.b.upper - s.accuracy.b.lower),
  );
  assert.deepEqual((await reg.compareRuns(a.id, b.id)).significance, s, 'seeded: the same CIs every time');

  const text = formatComparison(c);
  assert.match(text, /McNemar exact: A right\/B wrong = 2, A wrong\/B right = 9, p = 0\.0654/);
  assert.match(text, /accuracy\s+0\.6250 \[/);
  assert.match(formatRunList(await reg.listRuns()), /lora\s+finished/);
  await reg.close();
});

test('compareRuns without shared predictions says why there is no test', async () => {
  const reg = await openRegistry({ home: join(root, 'b') });
  const a = await reg.startRun();
  await a.logMetric('accuracy', 0.5);
  const b = await reg.startRun();
  await b.logMetric('accuracy', 0.6);
  let c = await reg.compareRuns(a.id, b.id);
  assert.equal(c.significance, null);
  assert.deepEqual(c.notes, ['no McNemar test or bootstrap CIs: per-example predictions were not logged by both runs']);
  await a.logPredictions('set1', ['x', 'y'], ['x', 'x']);
  await b.logPredictions('set1', ['x', 'z'], ['x', 'x']);
  c = await reg.compareRuns(a.id, b.id);
  assert.equal(c.significance, null);
  assert.deepEqual(c.notes, [
    `eval set 'set1' differs between the runs (2 vs 2 examples or different gold labels); no paired test`,
  ]);
  await assert.rejects(reg.compareRuns(a.id, 'ffffffff'), /run 'ffffffff' does not exist/);
  await reg.close();
});

test("renderTable's auto mode right-aligns numeric columns", () => {
  assert.equal(
    renderTable(
      ['name', 'acc'],
      [
        ['a', '0.5'],
        ['longer', '10.25'],
      ],
      'auto',
    ),
    ['name      acc', '------  -----', 'a         0.5', 'longer  10.25'].join('\n'),
  );
});
