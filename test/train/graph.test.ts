/** Training-graph lowering details that the step cost depends on: dropout masks, optimizer outputs, grad scale. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradientGraph } from '../../src/autodiff/index.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph } from '../../src/onnx/ir.ts';
import { Session, ort } from '../../src/runtime/session.ts';
import { buildTrainingGraphs, lowerDropout } from '../../src/train/graph.ts';
import { GRAD_SCALE } from '../../src/train/optim/index.ts';
import { TrainRng } from '../../src/util/rng.ts';
import { linearModel, mseLoss } from './helpers.ts';

test('fillDropoutMask draws the same uniforms as fillUniform: scale where u >= ratio, else 0', () => {
  const a = new TrainRng(9);
  const b = new TrainRng(9);
  const u = a.fillUniform(new Float32Array(1000));
  const m = b.fillDropoutMask(new Float32Array(1000), 0.3);
  for (let i = 0; i < u.length; i++) assert.equal(m[i], u[i] >= 0.3 ? Math.fround(1 / 0.7) : 0, `element ${i}`);
  assert.deepEqual(a.getState(), b.getState(), 'both advance the generator equally');
  const kept = m.filter((v) => v > 0).length;
  assert.ok(kept > 640 && kept < 760, `kept ${kept} of 1000 at ratio 0.3`);
});

test('lowered Dropout is one Mul by the fed mask; its bool mask output is mask > 0', async () => {
  const b = new GraphBuilder('d');
  const x = b.input('x', 'float32', [2, 5]);
  const [y, mask] = b.node(
    'Dropout',
    [x, b.scalar(0.25), b.constant('bool', Uint8Array.of(1), [])],
    {},
    { outputs: ['y', 'keep'] },
  );
  b.output(y, 'float32', [2, 5]);
  b.output(mask, 'bool', [2, 5]);
  const { graph, sites } = lowerDropout(b.graph, () => [2, 5]);
  assert.deepEqual(sites, [{ input: 'dropout::mask::0', shape: [2, 5], ratio: 0.25 }]);
  assert.deepEqual(
    graph.nodes
      .filter((n) => n.opType !== 'Constant')
      .map((n) => n.opType)
      .sort(),
    ['Greater', 'Mul'],
  );
  const xs = Float32Array.from({ length: 10 }, (_, i) => i - 3);
  const ms = new TrainRng(1).fillDropoutMask(new Float32Array(10), 0.25);
  const s = await Session.create(modelFromGraph(graph));
  const out = await s.run({
    x: new ort.Tensor('float32', xs, [2, 5]),
    'dropout::mask::0': new ort.Tensor('float32', ms, [2, 5]),
  });
  await s.release();
  assert.deepEqual(
    Array.from(out.y.data as Float32Array),
    Array.from(xs, (v, i) => Math.fround(v * ms[i])),
  );
  assert.deepEqual(
    Array.from(out.keep.data as Uint8Array, Boolean),
    Array.from(ms, (v) => v > 0),
  );
});

test('fused step: updated values are named by their producing nodes (no Identity copies); grad scale only with accumulation', () => {
  const base = {
    loss: mseLoss,
    trainable: ['W', 'B'],
    optimizer: { type: 'adamw' as const, lr: 0.1 },
    bindings: { batch: 4 },
    gradients: buildGradientGraph,
  };
  const g = buildTrainingGraphs(linearModel([1, 2, 3, 4, 5, 6], [0, 0]), base).train;
  const nexts = g.outputs.map((o) => o.name).filter((n) => n.endsWith('::next'));
  assert.equal(nexts.length, 6, 'W, B and two AdamW slots each');
  for (const name of nexts) {
    const producer = g.nodes.find((n) => n.outputs.includes(name));
    assert.ok(producer && producer.opType !== 'Identity', `${name} is produced by ${producer?.opType}`);
  }
  assert.ok(!g.inputs.some((i) => i.name === GRAD_SCALE));
  const acc = buildTrainingGraphs(linearModel([1, 2, 3, 4, 5, 6], [0, 0]), { ...base, accumulate: true }).train;
  assert.ok(acc.inputs.some((i) => i.name === GRAD_SCALE));
});

test('LoRA training graph: frozen weights stay initializers, get no dW, and dX only where a trainable lies upstream', async () => {
  const { buildEncoderClassifier, classificationLoss } = await import('../../bench/encoder.ts');
  const { inferredShapes } = await import('../../src/train/engine.ts');
  const model = buildEncoderClassifier({
    vocab: 50,
    hidden: 16,
    heads: 2,
    ffn: 32,
    layers: 2,
    maxSeq: 8,
    classes: 3,
    dropout: 0.1,
    lora: { rank: 2, alpha: 4 },
  });
  const trainable = (n: string): boolean => n.includes('lora_') || n.startsWith('classifier.');
  const g = buildTrainingGraphs(model, {
    loss: classificationLoss,
    trainable,
    optimizer: { type: 'adamw', lr: 1e-3 },
    bindings: { batch: 4, seq: 8 },
    gradients: buildGradientGraph,
    shapes: inferredShapes,
  }).train;
  const consumers = (v: string): string[] => g.nodes.filter((n) => n.inputs.includes(v)).map((n) => n.opType);
  for (const l of [0, 1]) {
    for (const m of ['attention.self.query', 'attention.self.value', 'intermediate.dense']) {
      const w = `encoder.layer.${l}.${m}.weight`;
      assert.ok(g.initializers.has(w), `${w} is an initializer`);
      // layer 0's query/value read the frozen embeddings: nothing trainable upstream, so only the forward product;
      // everything above a LoRA adapter also gets dX = dY·Wᵀ (one FusedMatMul), and no weight gradient anywhere
      const expected = l === 0 && m.startsWith('attention.self') ? ['MatMul'] : ['FusedMatMul', 'MatMul'];
      assert.deepEqual(consumers(w).sort(), expected, w);
    }
  }
  assert.ok(!g.outputs.some((o) => o.name.includes('encoder.layer.0.attention.self.query.weight')));
  assert.equal(
    g.inputs.filter((i) => i.name.endsWith('::next') || i.name.startsWith('optim::exp_avg::')).length,
    8 * 2 + 2,
    'AdamW slots only for the 16 LoRA tensors and the classifier',
  );
});

test('masks drawn ahead during a run leave the run generator exactly where sequential drawing would', async () => {
  const { buildEncoderClassifier, classificationLoss } = await import('../../bench/encoder.ts');
  const { TrainingEngine } = await import('../../src/train/engine.ts');
  const model = buildEncoderClassifier({
    vocab: 30,
    hidden: 8,
    heads: 2,
    ffn: 16,
    layers: 1,
    maxSeq: 6,
    classes: 2,
    dropout: 0.2,
  });
  const rng = new TrainRng(3);
  const engine = new TrainingEngine(
    model,
    { loss: classificationLoss, trainable: (n) => n.startsWith('classifier.'), optimizer: { type: 'sgd', lr: 0.1 } },
    rng,
  );
  const batch = {
    input_ids: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: 12 }, (_, i) => BigInt(i % 30)),
      [2, 6],
    ),
    attention_mask: new ort.Tensor('float32', new Float32Array(12).fill(1), [2, 6]),
    labels: new ort.Tensor('int64', BigInt64Array.of(0n, 1n), [2]),
  };
  const perStep = 3 * 2 * 6 * 8; // three dropout sites of [2, 6, 8]
  const ref = new TrainRng(3);
  for (let step = 1; step <= 3; step++) {
    await engine.trainBatch(batch);
    ref.fillUniform(new Float32Array(perStep));
    assert.deepEqual(rng.getState(), ref.getState(), `after step ${step}`);
  }
  // a draw between steps invalidates the masks drawn ahead: the next step draws afresh from the new state
  rng.next();
  ref.next();
  await engine.trainBatch(batch);
  ref.fillUniform(new Float32Array(perStep));
  assert.deepEqual(rng.getState(), ref.getState(), 'after an outside draw');
  await engine.release();
});
