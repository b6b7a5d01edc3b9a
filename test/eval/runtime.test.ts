import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measureSessionLatency, sessionRunner } from '../../src/eval/runtime.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph, type Graph } from '../../src/onnx/ir.ts';
import { ort, type Feeds } from '../../src/runtime/session.ts';

test('sessionRunner builds feeds once per batch size and runs the session with them', async () => {
  const built: number[] = [];
  const runs: Array<[Feeds, readonly string[] | undefined]> = [];
  const run = sessionRunner(
    {
      run: async (f: Feeds, fetches?: readonly string[]) => {
        runs.push([f, fetches]);
        return {};
      },
    },
    (n) => {
      built.push(n);
      return { x: new ort.Tensor('float32', new Float32Array(n), [n]) };
    },
    ['y'],
  );
  for (const n of [1, 1, 8, 1, 8]) await run(n);
  assert.deepEqual(built, [1, 8]);
  assert.deepEqual(
    runs.map(([f, o]) => [f.x.dims[0], o]),
    [
      [1, ['y']],
      [1, ['y']],
      [8, ['y']],
      [1, ['y']],
      [8, ['y']],
    ],
  );
  assert.equal(runs[0][0], runs[1][0], 'the same feeds object is reused');
});

test('measureSessionLatency times a real ONNX model through src/runtime and reports the requested sample counts', async () => {
  const g: Graph = { name: 'tiny', nodes: [], inputs: [], outputs: [], initializers: new Map(), valueInfo: new Map() };
  const b = new GraphBuilder(g);
  const x = b.input('x', 'float32', ['batch', 4]);
  b.node('Relu', [x], {}, { outputs: ['y'] });
  b.output('y', 'float32', ['batch', 4]);
  const sizes: number[] = [];
  const r = await measureSessionLatency(
    modelFromGraph(g),
    (n) => {
      sizes.push(n);
      return { x: new ort.Tensor('float32', new Float32Array(4 * n).fill(-1), [n, 4]) };
    },
    { warmup: 2, iterations: 7, throughputBatchSize: 3, throughputIterations: 4, fetches: ['y'] },
  );
  assert.deepEqual(sizes.sort(), [1, 3]);
  assert.equal(r.batch1.samples, 7);
  assert.equal(r.throughput.batchSize, 3);
  assert.equal(r.throughput.samples, 4);
  assert.ok(r.batch1.p50Ms > 0 && r.batch1.p50Ms <= r.batch1.p99Ms);
  assert.ok(r.throughput.itemsPerSecond > 0);
});
