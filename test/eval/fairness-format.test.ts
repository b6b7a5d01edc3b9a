import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, evalReportToJson, formatEvalReport } from '../../src/eval/index.ts';

// Fairlearn's user-guide arrays (see disaggregate.test.ts).
const Y_TRUE = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1];
const Y_PRED = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
const SF = ['b', 'b', 'a', 'b', 'b', 'c', 'c', 'c', 'a', 'a', 'c', 'a', 'b', 'c', 'c', 'b', 'c', 'c'];

test('evaluate with sensitive columns: the fairness section in the text report and in the JSON', async () => {
  const r = await evaluate({
    labels: ['0', '1'],
    yTrue: Y_TRUE,
    yPred: Y_PRED,
    sensitive: { sf: SF },
    minGroupSize: 5,
    bootstrap: { iterations: 50 },
  });
  const text = formatEvalReport(r);
  assert.match(
    text,
    /Fairness by "sf" \(binary task: "1" is the positive \(selected\) outcome; groups under 5 examples are shown but not judged; CIs: bootstrap, 50 resamples, seed 0\)/,
  );
  assert.match(text, /\na \(too small\) +4 +0\.2500 +0\.2000 +0\.7500 +0\.5000 +1\.0000\n/);
  assert.match(text, /\nb +6 +0\.6667 /);
  // Judged: b (sel .5) and c (sel .5) -> no disparity in selection; TPR .6 vs .4.
  assert.match(text, /\ndemographic parity difference +0\.0000 /);
  assert.match(text, /\nequal opportunity difference +0\.2000 /);
  assert.match(text, /Too small to judge \(< 5 examples\): a \(4\)/);
  const json = JSON.parse(evalReportToJson(r)) as { disaggregated: { views: Array<{ judged: string[] }> } };
  assert.deepEqual(json.disaggregated.views[0].judged, ['b', 'c']);
});

test('clipPair keeps the first difference of two long texts in view', async () => {
  const { clipPair } = await import('../../src/eval/fairness-format.ts');
  const a = `${'x'.repeat(100)} Jeremy wrote ${'y'.repeat(100)}`;
  const b = `${'x'.repeat(100)} Amandie wrote ${'y'.repeat(100)}`;
  const [ca, cb] = clipPair(a, b, 30);
  // The change is at index 101; the window starts a third of its width (10) before it: 9 x, a space, the name.
  assert.equal(ca, `…${'x'.repeat(9)} Jeremy wrote ${'y'.repeat(7)}…`);
  assert.equal(cb, `…${'x'.repeat(9)} Amandie wrote ${'y'.repeat(6)}…`);
  assert.deepEqual(clipPair('short', 'short.', 30), ['short', 'short.']);
});
