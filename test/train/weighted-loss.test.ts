/**
 * Sample-weighted cross-entropy through the Trainer: the weights are one more data column fed to a graph input,
 * the way reweighing weights (src/eval/mitigation.ts reweighingWeights) reach training.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { softmaxCrossEntropy } from '../../src/autodiff/losses.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import type { Graph } from '../../src/onnx/ir.ts';
import { ort } from '../../src/runtime/session.ts';
import { tensorData, Trainer } from '../../src/train/trainer.ts';

/** logits = x·W + B with x of width 1, two classes. */
function model(): Graph {
  const b = new GraphBuilder('lin');
  const x = b.input('x', 'float32', ['batch', 1]);
  b.initializer('W', 'float32', Float32Array.of(0, 0), [1, 2]);
  b.initializer('B', 'float32', Float32Array.of(0, 0), [2]);
  b.output(b.node('Add', [b.matmul(x, 'W'), 'B'], {}, { outputs: ['logits'] })[0], 'float32', ['batch', 2]);
  return b.graph;
}

/** P(class 1) the trained bias gives (x = 0 everywhere, so only B matters). */
async function trainedP1(weights?: number[]): Promise<number> {
  // 8 identical inputs, 6 labelled 0 and 2 labelled 1.
  const labels = [0, 0, 0, 0, 0, 0, 1, 1];
  const columns: Record<string, ort.Tensor> = {
    x: new ort.Tensor('float32', new Float32Array(8), [8, 1]),
    labels: new ort.Tensor('int64', BigInt64Array.from(labels.map(BigInt)), [8]),
  };
  if (weights) columns.w = new ort.Tensor('float32', Float32Array.from(weights), [8]);
  const trainer = new Trainer(
    model(),
    (b) => {
      b.input('labels', 'int64', ['batch']);
      if (weights) b.input('w', 'float32', ['batch']);
      return softmaxCrossEntropy(b, 'logits', 'labels', weights ? { sampleWeights: 'w' } : {});
    },
    ['B'],
    tensorData(columns),
    { seed: 0, epochs: 400, batchSize: 8, optimizer: { type: 'sgd', lr: 1 }, progress: 'none' },
  );
  const r = await trainer.fit();
  await trainer.release();
  const [b0, b1] = r.finalWeights.get('B')!;
  return 1 / (1 + Math.exp(b0 - b1));
}

test('weighted cross-entropy in the Trainer moves the optimum to the weighted label rate', async () => {
  // Unweighted: the optimum is the label rate 2/8. Weights 1 (label 0) and 3 (label 1): 6 / (6 + 6) = 0.5.
  const plain = await trainedP1();
  const weighted = await trainedP1([1, 1, 1, 1, 1, 1, 3, 3]);
  assert.ok(Math.abs(plain - 0.25) < 1e-3, String(plain));
  assert.ok(Math.abs(weighted - 0.5) < 1e-3, String(weighted));
});
