import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ModelFileError } from '../../src/errors.ts';
import { countParameters, latencyStats, measureLatency, modelSizeOnDisk } from '../../src/eval/latency.ts';

const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('latency percentiles and throughput from a fake model on a fake clock', async () => {
  let now = 0;
  let single = 0;
  const calls: number[] = [];
  // Warm-up runs take 1000 ms and must not count; timed batch-1 runs take 1, 2, ..., 100 ms; batch 32 takes 64 ms.
  const run = async (batch: number): Promise<void> => {
    calls.push(batch);
    if (batch === 1) {
      single++;
      now += single <= 3 ? 1000 : single - 3;
    } else {
      now += 64;
    }
  };
  const r = await measureLatency(run, { warmup: 3, iterations: 100, throughputIterations: 10, clock: () => now });
  // numpy.percentile(range(1, 101), [50, 95, 99]) -> 50.5, 95.05, 99.01
  close(r.batch1.p50Ms, 50.5);
  close(r.batch1.p95Ms, 95.05);
  close(r.batch1.p99Ms, 99.01);
  close(r.batch1.meanMs, 50.5);
  assert.equal(r.batch1.maxMs, 100);
  assert.equal(r.throughput.batchSize, 32);
  close(r.throughput.itemsPerSecond, 500); // 32 items / 64 ms
  assert.equal(calls.filter((b) => b === 32).length, 12); // 2 warm-up + 10 timed
});

test('real sleeps are measured at least as long as they last', async () => {
  const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));
  const r = await measureLatency(() => sleep(5), { warmup: 0, iterations: 5, throughputIterations: 2 });
  assert.ok(r.batch1.p50Ms >= 4.5, `p50 ${r.batch1.p50Ms}`);
  assert.ok(r.throughput.itemsPerSecond <= 32 / 0.0045);
});

test('latencyStats and option validation', () => {
  const s = latencyStats([3, 1, 2]);
  assert.equal(s.p50Ms, 2);
  assert.equal(s.minMs, 1);
  assert.throws(() => latencyStats([]), ConfigError);
  return assert.rejects(
    measureLatency(async () => {}, { iterations: 0 }),
    ConfigError,
  );
});

test('model size on disk sums a folder recursively, largest first', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tailor-size-'));
  try {
    await writeFile(join(dir, 'model.onnx'), Buffer.alloc(1000));
    await mkdir(join(dir, 'tok'));
    await writeFile(join(dir, 'tok', 'vocab.txt'), Buffer.alloc(250));
    await writeFile(join(dir, 'config.json'), '{}');
    const s = await modelSizeOnDisk(dir);
    assert.equal(s.totalBytes, 1252);
    assert.deepEqual(
      s.files.map((f) => f.path),
      ['model.onnx', join('tok', 'vocab.txt'), 'config.json'],
    );
    assert.equal((await modelSizeOnDisk(join(dir, 'model.onnx'))).totalBytes, 1000);
    await assert.rejects(modelSizeOnDisk(join(dir, 'missing')), ModelFileError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('parameter counts, trainable vs frozen', () => {
  const c = countParameters([
    { name: 'encoder.layer.0.attention.self.query.weight', shape: [768, 768], trainable: false },
    { name: 'encoder.layer.0.attention.self.query.bias', shape: [768], trainable: false },
    { name: 'classifier.weight', shape: [150, 768] },
    { name: 'classifier.bias', shape: [150] },
    { name: 'scalar', shape: [] },
  ]);
  assert.equal(c.total, 768 * 768 + 768 + 150 * 768 + 150 + 1);
  assert.equal(c.trainable, 150 * 768 + 150 + 1);
  assert.equal(c.frozen, 768 * 768 + 768);
  assert.equal(c.tensors, 5);
  assert.throws(() => countParameters([{ name: 'dyn', shape: [-1, 4] }]), /dyn/);
});
