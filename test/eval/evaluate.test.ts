import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { evalReportToJson, evaluate, evaluatePredictor, formatEvalReport } from '../../src/eval/index.ts';

const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);
const labels = ['a', 'b', 'c'];
const yTrue = [0, 0, 0, 1, 1, 2];
// argmax predictions: 0,0,1,1,2,2 (same fixture as metrics.test.ts)
const scores = [
  [0.8, 0.1, 0.1],
  [0.6, 0.3, 0.1],
  [0.3, 0.6, 0.1],
  [0.1, 0.8, 0.1],
  [0.1, 0.4, 0.5],
  [0.1, 0.2, 0.7],
];

test('evaluate: headline metrics, top-k, calibration, intervals, comparison, fairness, cost', async () => {
  let now = 0;
  const r = await evaluate({
    labels,
    yTrue,
    scores,
    model: 'custom',
    baseline: { name: 'base', yPred: [0, 1, 1, 1, 1, 1] },
    groups: ['x', 'x', 'x', 'y', 'y', 'y'],
    topK: [2],
    calibrationBins: 10,
    bootstrap: { iterations: 200, seed: 1 },
    latency: {
      run: async () => void (now += 2),
      options: { warmup: 0, iterations: 10, throughputIterations: 2, clock: () => now },
    },
    parameters: [{ name: 'w', shape: [3, 4] }],
  });
  close(r.metrics.accuracy, 4 / 6);
  close(r.metrics.macroF1, (0.8 + 0.5 + 2 / 3) / 3);
  // top-2: the two misses (ex2 true a at .3, ex4 true b at .4) both rank second -> every example is a top-2 hit
  close(r.metrics.topK.top2, 1);
  // calibration by hand, 10 bins: (.6,.7] and (.7,.8] hold .8 (ex0), .8 (ex3), .7 (ex5), all right;
  // (.5,.6]: .6 (ex1 right), .6 (ex2 wrong) -> acc .5 conf .6; (.4,.5]: .5 (ex4 wrong) -> acc 0 conf .5
  const expected = (2 / 6) * (1 - 0.8) + (1 / 6) * (1 - 0.7) + (2 / 6) * 0.1 + (1 / 6) * 0.5;
  close(r.calibration!.ece, expected);
  const iv = r.intervals!.values;
  for (const k of ['accuracy', 'macroF1', 'microF1', 'weightedF1', 'top2', 'ece']) {
    assert.ok(iv[k].lower <= iv[k].estimate && iv[k].estimate <= iv[k].upper, k);
  }
  close(iv.accuracy.estimate, 4 / 6);
  // baseline correct on {0,3,4}, custom on {0,1,3,5}: only-baseline {4} = b, only-custom {1,5} = c
  assert.equal(r.comparison!.b, 1);
  assert.equal(r.comparison!.c, 2);
  close(r.comparison!.pValue, 1);
  assert.equal(r.fairness!.byGroup.length, 2);
  close(r.fairness!.byGroup[0].accuracy, 2 / 3);
  close(r.latency!.batch1.p50Ms, 2);
  assert.equal(r.parameters!.total, 12);

  const json = JSON.parse(evalReportToJson(r)) as {
    metrics: { accuracy: number };
    calibration: { bins: Array<{ accuracy: number | null }> };
  };
  close(json.metrics.accuracy, 4 / 6);
  assert.equal(json.calibration.bins[0].accuracy, null, 'NaN (empty bin) serialises as null');
  const text = formatEvalReport(r);
  assert.match(text, /accuracy\s+66\.67%\s+\[/);
  assert.match(text, /Confusion matrix/);
  assert.match(text, /p-value\s+1\.0000/);
  assert.match(text, /latency p50 \/ p95 \/ p99 \(batch 1\)\s+2\.00 ms/);
  assert.match(text, /equalized odds difference/);
});

test('evaluate with yPred only, and the same seed reproduces the intervals', async () => {
  const a = await evaluate({ labels, yTrue, yPred: [0, 0, 1, 1, 2, 2], bootstrap: { iterations: 100, seed: 3 } });
  const b = await evaluate({ labels, yTrue, yPred: [0, 0, 1, 1, 2, 2], bootstrap: { iterations: 100, seed: 3 } });
  assert.deepEqual(a.intervals, b.intervals);
  assert.equal(a.calibration, undefined);
  assert.deepEqual(a.metrics.topK, {});
  await assert.rejects(evaluate({ labels, yTrue }), ConfigError);
  await assert.rejects(evaluate({ labels, yTrue, scores: [[1, 0]] }), ConfigError);
});

test('evaluatePredictor drives a fake model in batches and measures it', async () => {
  const batches: number[] = [];
  const predictor = {
    async predict(inputs: string[]): Promise<number[][]> {
      batches.push(inputs.length);
      // Predicts by the first letter; logits.
      return inputs.map((t) => labels.map((l) => (t.startsWith(l) ? 5 : 0)));
    },
  };
  const examples = [
    { input: 'apple', label: 'a', group: 'g1' },
    { input: 'banana', label: 'b', group: 'g1' },
    { input: 'cherry', label: 'c', group: 'g2' },
    { input: 'avocado', label: 'b', group: 'g2' },
  ];
  const r = await evaluatePredictor(predictor, examples, labels, {
    batchSize: 3,
    scoresAre: 'logits',
    bootstrap: false,
    measureLatency: { warmup: 0, iterations: 3, throughputBatchSize: 4, throughputIterations: 1 },
  });
  assert.deepEqual(batches.slice(0, 2), [3, 1]);
  close(r.metrics.accuracy, 0.75);
  assert.ok(r.calibration!.bins.some((b) => b.count > 0));
  assert.equal(r.fairness!.byGroup.length, 2);
  assert.equal(r.latency!.batch1.samples, 3);
  await assert.rejects(evaluatePredictor(predictor, [{ input: 'x', label: 'zzz' }], labels), /zzz/);
});
