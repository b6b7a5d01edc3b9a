/** The zoo models train with the project's Trainer (autodiff covers every op they use). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trainableParams, type Model } from '../../src/models/model.ts';
import { buildBert } from '../../src/models/zoo/bert.ts';
import { buildCnn, cnnConfig } from '../../src/models/zoo/cnn.ts';
import { buildMlp, mlpConfig } from '../../src/models/zoo/mlp.ts';
import type { GraphBuilder } from '../../src/onnx/builder.ts';
import { ort } from '../../src/runtime/session.ts';
import { tensorData, Trainer, type TrainData } from '../../src/train/trainer.ts';
import { tinyConfig, wordPiece } from './fixtures.ts';
import { logitsAccuracy } from '../../src/train/metrics.ts';

const loss = (b: GraphBuilder): string =>
  b.op('SoftmaxCrossEntropyLoss', ['logits', b.input('labels', 'int64', ['batch'])], { reduction: 'mean' });

const accuracy = logitsAccuracy();

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

async function fit(
  model: Model,
  data: TrainData,
  epochs: number,
  lr: number,
): Promise<{ first: number; last: number; acc: number }> {
  const trainer = new Trainer(model.graph, loss, trainableParams(model), data, {
    seed: 1,
    epochs,
    batchSize: 32,
    optimizer: { type: 'adamw', lr },
    progress: 'none',
    session: { intraOpThreads: 1 },
    validation: { data, batchSize: 128, metrics: accuracy },
  });
  try {
    const r = await trainer.fit();
    return {
      first: r.history[0].train_loss,
      last: r.history[r.history.length - 1].train_loss,
      acc: Math.max(...r.history.map((h) => h.accuracy)),
    };
  } finally {
    await trainer.release();
  }
}

test('zoo BERT sequence classifier learns "does the text mention a cat"', async () => {
  const rnd = lcg(1);
  const words = ['the', 'cat', 'sat', 'on', 'mat', 'hello', 'world', 'a'];
  const texts: string[] = [];
  const labels: bigint[] = [];
  for (let i = 0; i < 128; i++) {
    const ws = Array.from({ length: 3 + Math.floor(rnd() * 4) }, () => words[Math.floor(rnd() * words.length)]);
    texts.push(ws.join(' '));
    labels.push(ws.includes('cat') ? 1n : 0n);
  }
  const enc = wordPiece(12).encodeBatch(texts, { padding: 'max_length', maxLength: 10 });
  const d = [enc.batch, enc.seq];
  const data = tensorData({
    input_ids: new ort.Tensor('int64', enc.inputIds, d),
    attention_mask: new ort.Tensor('int64', enc.attentionMask, d),
    token_type_ids: new ort.Tensor('int64', enc.tokenTypeIds, d),
    labels: new ort.Tensor('int64', BigInt64Array.from(labels), [enc.batch]),
  });
  const r = await fit(
    buildBert(tinyConfig({ initializer_range: 0.02, num_labels: 2 }), { task: 'sequence-classification', seed: 1 }),
    data,
    12,
    5e-3,
  );
  assert.ok(r.last < r.first * 0.6, `loss ${r.first} -> ${r.last}`);
  assert.ok(r.acc >= 0.9, `accuracy ${r.acc}`);
});

test('zoo MLP learns a tabular rule and the CNN learns bright vs dark images', async () => {
  const rnd = lcg(2);
  const n = 128;
  const x = Float32Array.from({ length: n * 4 }, () => rnd() * 2 - 1);
  const y = BigInt64Array.from({ length: n }, (_, i) => (x[i * 4] + x[i * 4 + 1] > 0 ? 1n : 0n));
  const mlp = await fit(
    buildMlp(mlpConfig({ input_size: 4, hidden_sizes: [16], num_labels: 2 }), { seed: 1 }),
    tensorData({ features: new ort.Tensor('float32', x, [n, 4]), labels: new ort.Tensor('int64', y, [n]) }),
    15,
    1e-2,
  );
  assert.ok(mlp.acc >= 0.9, `MLP accuracy ${mlp.acc}`);

  const m = 64;
  const px = new Float32Array(m * 3 * 8 * 8);
  const py = new BigInt64Array(m);
  for (let i = 0; i < m; i++) {
    py[i] = BigInt(i % 2);
    for (let j = 0; j < 192; j++) px[i * 192 + j] = (i % 2 ? 0.3 : -0.3) + (rnd() - 0.5);
  }
  const cnn = buildCnn(
    cnnConfig({
      num_labels: 2,
      stem_channels: 4,
      stages: [
        { channels: 4, blocks: 1, stride: 1 },
        { channels: 8, blocks: 1, stride: 2 },
      ],
    }),
    { seed: 1 },
  );
  const r = await fit(
    cnn,
    tensorData({ pixel_values: new ort.Tensor('float32', px, [m, 3, 8, 8]), labels: new ort.Tensor('int64', py, [m]) }),
    8,
    1e-2,
  );
  assert.ok(r.last < r.first * 0.5, `CNN loss ${r.first} -> ${r.last}`);
  // Validation runs BatchNorm on the running statistics the Trainer carried between steps.
  assert.ok(r.acc >= 0.9, `CNN validation accuracy ${r.acc}`);
});
