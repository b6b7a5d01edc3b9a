import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ort } from '../../src/runtime/session.ts';
import { logitsAccuracy } from '../../src/train/metrics.ts';

test('logitsAccuracy takes the argmax per row, across batches, skipping unlabelled rows', () => {
  const logits = (v: number[], rows: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from(v), [rows, 3]);
  const labels = (v: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [v.length]);
  const outs = [{ logits: logits([0, 2, 1, 5, 1, 0], 2) }, { logits: logits([0, 0, 1, 3, 2, 9], 2) }];
  // argmaxes: 1, 0 | 2, 2 — labels 1 (ok), 2 (wrong) | 2 (ok), -1 (skipped): 2 of 3.
  const batches = [{ labels: labels([1, 2]) }, { labels: labels([2, -1]) }];
  assert.deepEqual(logitsAccuracy()(outs, batches), { accuracy: 2 / 3 });
  const renamed = [{ y: outs[0].logits }];
  assert.deepEqual(logitsAccuracy('y', 'gold')(renamed, [{ gold: labels([1, 0]) }]), { accuracy: 1 });
});
