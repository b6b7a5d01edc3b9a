/**
 * BatchNormalization in training: batch statistics in the training graph, running mean/variance carried between
 * steps as engine state (momentum update checked against a plain-JS reference), used by the eval graph, saved in
 * checkpoints and exported with the trained weights; the zoo CNN trains and validates on its running statistics.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { trainableParams } from '../../src/models/model.ts';
import { buildCnn, cnnConfig } from '../../src/models/zoo/cnn.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import type { Graph } from '../../src/onnx/ir.ts';
import { tensorToArray } from '../../src/onnx/tensor.ts';
import { ort } from '../../src/runtime/session.ts';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.ts';
import { TrainingEngine } from '../../src/train/engine.ts';
import { buildTrainingGraphs, resolveTrainable } from '../../src/train/graph.ts';
import { TrainRng } from '../../src/util/rng.ts';
import { tensorData, Trainer } from '../../src/train/trainer.ts';
import { buildGradientGraph } from '../../src/autodiff/index.ts';

const N = 4;
const C = 3;
const HW = 4; // 2x2
const MOMENTUM = 0.8;
const EPS = 1e-5;
const W0 = [1, 0.5, 2];
const B0 = [0, 0.1, -0.2];
const RM0 = [0.5, -1, 0];
const RV0 = [2, 1, 0.25];

const loss = (b: GraphBuilder): string =>
  b.op('SoftmaxCrossEntropyLoss', ['logits', b.input('labels', 'int64', ['batch'])], { reduction: 'mean' });

/** x [batch, 3, 2, 2] -> BatchNorm -> global average pool -> logits [batch, 3]. */
function bnModel(): Graph {
  const b = new GraphBuilder('bn');
  const x = b.input('x', 'float32', ['batch', C, 2, 2]);
  const args = [
    b.initializer('bn.weight', 'float32', Float32Array.from(W0), [C]),
    b.initializer('bn.bias', 'float32', Float32Array.from(B0), [C]),
    b.initializer('bn.running_mean', 'float32', Float32Array.from(RM0), [C]),
    b.initializer('bn.running_var', 'float32', Float32Array.from(RV0), [C]),
  ];
  const y = b.op('BatchNormalization', [x, ...args], { epsilon: EPS, momentum: MOMENTUM });
  b.output(b.node('Flatten', [b.op('GlobalAveragePool', [y])], {}, { outputs: ['logits'] })[0], 'float32', [
    'batch',
    C,
  ]);
  return b.graph;
}

function batchOf(seed: number): { x: Float32Array; feeds: Record<string, ort.Tensor> } {
  const rng = new TrainRng(seed);
  const x = Float32Array.from({ length: N * C * HW }, (_, i) => rng.normal() * (1 + (Math.floor(i / HW) % C)) + seed);
  const labels = BigInt64Array.from({ length: N }, (_, i) => BigInt((i + seed) % C));
  return { x, feeds: { x: new ort.Tensor('float32', x, [N, C, 2, 2]), labels: new ort.Tensor('int64', labels, [N]) } };
}

/** Per-channel batch mean and (biased, as ONNX's BatchNormalization-15 defines it) variance over N, H, W. */
function batchStats(x: Float32Array): { mean: number[]; variance: number[] } {
  const mean = Array.from({ length: C }, () => 0);
  const sq = Array.from({ length: C }, () => 0);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) for (let k = 0; k < HW; k++) mean[c] += x[(n * C + c) * HW + k] / (N * HW);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let k = 0; k < HW; k++) sq[c] += (x[(n * C + c) * HW + k] - mean[c]) ** 2 / (N * HW);
  return { mean, variance: sq };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('running statistics are state: momentum update per step, eval uses them, checkpoints and export carry them', async () => {
  for (const mode of ['fused', 'separate'] as const) {
    const model = bnModel();
    const engine = new TrainingEngine(
      model,
      { loss, trainable: (n) => n.startsWith('bn.'), optimizer: { type: 'sgd', lr: 0.1 }, mode },
      new TrainRng(0),
    );
    try {
      assert.deepEqual(
        engine.params.map((p) => p.name),
        ['bn.weight', 'bn.bias'],
        'a predicate never selects running statistics',
      );
      assert.deepEqual(
        engine.buffers.map((b) => b.name),
        ['bn.running_mean', 'bn.running_var'],
      );
      let rm = [...RM0];
      let rv = [...RV0];
      for (const seed of [1, 2, 3]) {
        const { x, feeds } = batchOf(seed);
        await engine.trainBatch(feeds);
        const s = batchStats(x);
        rm = rm.map((v, c) => v * MOMENTUM + s.mean[c] * (1 - MOMENTUM));
        rv = rv.map((v, c) => v * MOMENTUM + s.variance[c] * (1 - MOMENTUM));
        const vals = engine.paramValues();
        close(vals.get('bn.running_mean') as Float32Array, rm, 1e-5, `${mode} running_mean after batch ${seed}`);
        close(vals.get('bn.running_var') as Float32Array, rv, 1e-5, `${mode} running_var after batch ${seed}`);
      }
      // eval: inference-mode BatchNorm on the updated statistics and the trained affine parameters
      const { x, feeds } = batchOf(7);
      const out = await engine.evaluate(feeds);
      const w = engine.paramValues().get('bn.weight') as Float32Array;
      const bias = engine.paramValues().get('bn.bias') as Float32Array;
      assert.notDeepEqual(Array.from(w), W0, 'the affine parameters trained');
      const expected: number[] = [];
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          let m = 0;
          for (let k = 0; k < HW; k++) m += x[(n * C + c) * HW + k] / HW;
          expected.push(((m - rm[c]) / Math.sqrt(rv[c] + EPS)) * w[c] + bias[c]);
        }
      }
      close(out.logits.data as Float32Array, expected, 1e-5, `${mode} eval logits`);

      // state round trip through a checkpoint file
      const state = engine.getState();
      close(state.buffers?.['bn.running_mean'] as Float32Array, rm, 1e-5, 'state buffer');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-bn-'));
      try {
        const file = await saveCheckpoint(
          dir,
          { step: 3, epoch: 0, batchInEpoch: 3, rng: new TrainRng(0).getState(), badEpochs: 0, history: [] },
          state,
          new Map([...engine.params, ...engine.buffers].map((p) => [p.name, p.shape])),
        );
        const ck = await loadCheckpoint(file);
        close(ck.engine.buffers?.['bn.running_var'] as Float32Array, rv, 1e-6, 'checkpoint buffer');
        const fresh = new TrainingEngine(
          model,
          { loss, trainable: (n) => n.startsWith('bn.'), optimizer: { type: 'sgd', lr: 0.1 }, mode },
          new TrainRng(0),
        );
        fresh.setState(ck.engine);
        close(
          (await fresh.evaluate(feeds)).logits.data as Float32Array,
          expected,
          1e-5,
          'eval after restoring the checkpoint',
        );
        await fresh.release();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const exported = engine.exportGraph();
      close(
        tensorToArray(exported.initializers.get('bn.running_mean')!) as Float32Array,
        rm,
        1e-5,
        'exported running_mean',
      );
      close(
        Array.from(tensorToArray(model.initializers.get('bn.running_mean')!) as Float32Array),
        RM0,
        0,
        'the input model is unchanged',
      );
    } finally {
      await engine.release();
    }
  }
});

test('training graph: BatchNorm nodes get running-statistics outputs; statistics cannot be trainable', () => {
  const g = buildTrainingGraphs(bnModel(), {
    loss,
    trainable: ['bn.weight'],
    optimizer: { type: 'sgd', lr: 0.1 },
    bindings: { batch: N },
    gradients: buildGradientGraph,
  });
  const bn = g.train.nodes.find((n) => n.opType === 'BatchNormalization')!;
  assert.deepEqual(bn.outputs.slice(1), ['bn.running_mean::next', 'bn.running_var::next']);
  assert.equal(bn.attrs.training_mode?.value, 1);
  assert.ok(g.train.inputs.some((i) => i.name === 'bn.running_mean') && !g.train.initializers.has('bn.running_mean'));
  assert.ok(g.train.outputs.some((o) => o.name === 'bn.running_var::next'));
  assert.throws(
    () => resolveTrainable(bnModel(), ['bn.running_var']),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        "'bn.running_var' is a BatchNormalization running statistic, updated by training itself; it cannot be a trainable parameter",
  );
});

test('zoo CNN trains with BatchNorm in training mode and validates on its updated running statistics', async () => {
  let s = 5;
  const rnd = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const m = 64;
  const px = new Float32Array(m * 3 * 8 * 8);
  const py = new BigInt64Array(m);
  // Classes differ by brightness offset +-0.3 on top of a shared +1 shift: the initial running mean (0) is wrong for
  // this data, so validation is good only when the running statistics followed training (momentum 0.9: 40 steps).
  for (let i = 0; i < m; i++) {
    py[i] = BigInt(i % 2);
    for (let j = 0; j < 192; j++) px[i * 192 + j] = 1 + (i % 2 ? 0.3 : -0.3) + (rnd() - 0.5);
  }
  const cnn = buildCnn(
    cnnConfig({ num_labels: 2, stem_channels: 4, stages: [{ channels: 4, blocks: 1, stride: 1 }] }),
    { seed: 1 },
  );
  const stats = [...cnn.graph.initializers.keys()].filter((k) => k.endsWith('running_mean'));
  assert.ok(stats.length >= 3);
  const data = tensorData({
    pixel_values: new ort.Tensor('float32', px, [m, 3, 8, 8]),
    labels: new ort.Tensor('int64', py, [m]),
  });
  const accuracy = (
    outs: Record<string, ort.Tensor>[],
    batches: Record<string, ort.Tensor>[],
  ): Record<string, number> => {
    let ok = 0;
    let n = 0;
    outs.forEach((o, bi) => {
      const l = o.logits.data as Float32Array;
      const y = batches[bi].labels.data as BigInt64Array;
      for (let i = 0; i < y.length; i++, n++) if ((l[i * 2 + 1] > l[i * 2] ? 1n : 0n) === y[i]) ok++;
    });
    return { accuracy: ok / n };
  };
  const trainer = new Trainer(cnn.graph, loss, trainableParams(cnn), data, {
    seed: 1,
    epochs: 10,
    batchSize: 16,
    optimizer: { type: 'adamw', lr: 1e-2 },
    progress: 'none',
    session: { intraOpThreads: 1 },
    validation: { data, batchSize: 64, metrics: accuracy },
  });
  try {
    const r = await trainer.fit();
    const last = r.history[r.history.length - 1];
    assert.ok(last.accuracy >= 0.9, `validation accuracy ${last.accuracy}`);
    // the stem BatchNorm sees the shifted pixels through the stem conv: its running mean must have moved from 0
    const stem = stats.find((k) => k.startsWith('bn1')) ?? stats[0];
    const moved = tensorToArray(r.graph.initializers.get(stem)!) as Float32Array;
    assert.ok(r.bestWeights.has(stem));
    assert.ok(
      Array.from(moved).some((v) => Math.abs(v) > 0.05),
      `running mean ${stem} = ${Array.from(moved).join(', ')}`,
    );
  } finally {
    await trainer.release();
  }
});
