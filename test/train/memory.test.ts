/**
 * What keeps training memory bounded: one eval session for every validation batch shape (each ORT session holds its
 * own arena), and a peak-RSS measurement that sees spikes between samples.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ort } from '../../src/runtime/session.ts';
import { RssSampler, rssHighWaterMark } from '../../src/runtime/memory.ts';
import { TrainingEngine } from '../../src/train/engine.ts';
import { tensorData, Trainer } from '../../src/train/trainer.ts';
import { TrainRng } from '../../src/util/rng.ts';
import { IN, lcg, linearGradients, linearModel, mseLoss, OUT } from './helpers.ts';

const W = [0.5, -1, 2, 0.25, -0.75, 1.5];
const B = [0.1, -0.2];

function rows(n: number, seed: number): { x: Float32Array; t: Float32Array } {
  const r = lcg(seed);
  return {
    x: Float32Array.from({ length: n * IN }, () => r() * 2 - 1),
    t: Float32Array.from({ length: n * OUT }, () => r() * 2 - 1),
  };
}

test('validation batches of 4, 4 and 2 rows run in one eval session next to the one training session', async () => {
  const train = rows(8, 1);
  const val = rows(10, 2);
  const trainer = new Trainer(
    linearModel(W, B),
    mseLoss,
    ['W', 'B'],
    tensorData({ x: new ort.Tensor('float32', train.x, [8, IN]), t: new ort.Tensor('float32', train.t, [8, OUT]) }),
    {
      seed: 1,
      epochs: 2,
      batchSize: 4,
      optimizer: { type: 'sgd', lr: 0.1 },
      gradients: linearGradients,
      validation: {
        data: tensorData({
          x: new ort.Tensor('float32', val.x, [10, IN]),
          t: new ort.Tensor('float32', val.t, [10, OUT]),
        }),
        batchSize: 4,
      },
      progress: 'none',
    },
  );
  try {
    const r = await trainer.fit();
    assert.equal(r.history.length, 2);
    assert.deepEqual(trainer.engine.sessionLabels(), ['training step t:4x2,x:4x3', 'eval']);
  } finally {
    await trainer.release();
  }
  assert.deepEqual(trainer.engine.sessionLabels(), []);
});

test('the shared eval session gives every batch size the float64 reference outputs and mean loss', async () => {
  const engine = new TrainingEngine(
    linearModel(W, B),
    { loss: mseLoss, trainable: ['W', 'B'], optimizer: { type: 'sgd', lr: 0.1 }, gradients: linearGradients },
    new TrainRng(1),
  );
  try {
    for (const n of [5, 1, 3]) {
      const { x, t } = rows(n, 10 + n);
      const out = await engine.evaluate({
        x: new ort.Tensor('float32', x, [n, IN]),
        t: new ort.Tensor('float32', t, [n, OUT]),
      });
      let loss = 0;
      for (let i = 0; i < n; i++)
        for (let o = 0; o < OUT; o++) {
          let y = B[o];
          for (let k = 0; k < IN; k++) y += x[i * IN + k] * W[k * OUT + o];
          assert.ok(Math.abs((out.y.data as Float32Array)[i * OUT + o] - y) < 1e-5, `row ${i} of ${n}`);
          loss += (y - t[i * OUT + o]) ** 2 / (n * OUT);
        }
      assert.deepEqual(out.y.dims, [n, OUT]);
      assert.ok(Math.abs(Number(out.loss.data[0]) - loss) < 1e-5, `loss of ${n} rows`);
    }
    assert.deepEqual(engine.sessionLabels(), ['eval']);
  } finally {
    await engine.release();
  }
});

test(
  'RssSampler reports a spike that came and went between two samples (kernel high-water mark)',
  { skip: rssHighWaterMark() === undefined ? 'no /proc/self/status VmHWM on this platform' : false },
  async () => {
    const sampler = new RssSampler().start(60_000); // no periodic sample falls inside the spike
    const before = process.memoryUsage.rss();
    const spike = 160 * 2 ** 20;
    // A worker touches 160 MB and exits; its memory goes back to the OS before `stop` samples again.
    await new Promise<void>((resolve, reject) => {
      const w = new Worker(`new Uint8Array(${spike}).fill(1);`, { eval: true });
      w.on('error', reject);
      w.on('exit', () => resolve());
    });
    assert.ok(process.memoryUsage.rss() - before < spike / 2, 'the spike is gone by the time stop() samples');
    const peak = sampler.stop();
    assert.ok(peak - before >= spike * 0.9, `peak ${peak} should be >= ${before} + ${spike * 0.9}`);
  },
);
