/**
 * Quantizer numerics, checked against independent plain-JS arithmetic: per-channel int8 scales, the exact integer
 * pipeline of dynamic INT8 (DynamicQuantizeLinear + u8s8 MatMul), QDQ with calibrated ranges, MatMulNBits' INT4 byte
 * layout decoded by hand from the file's bytes, calibration thresholds, exclusion by module path, input models left
 * untouched, and files that run in a fresh ORT session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph, type ModelProto } from '../../src/onnx/ir.ts';
import { writeModel } from '../../src/onnx/io.ts';
import { tensorToArray } from '../../src/onnx/tensor.ts';
import { Session, ort } from '../../src/runtime/session.ts';
import { bertConfig, buildBert, toOnnxModel } from '../../src/models/index.ts';
import {
  entropyThreshold,
  layerErrors,
  percentileThreshold,
  quantizationReport,
  quantizeDynamic,
  quantizeInt4,
  quantizePerChannelInt8,
  quantizeStatic,
  RangeObserver,
  uint8Params,
} from '../../src/compress/quantize/index.ts';

function rng(seed: number): (scale?: number) => number {
  let s = seed >>> 0;
  return (scale = 1) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  };
}

function rand(n: number, r: (s?: number) => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => r(scale));
}

/** y = x·W with x [M, K] as the graph input; node scoped as `/enc/lin/MatMul`. */
function linearModel(w: Float32Array, k: number, n: number): ModelProto {
  const b = new GraphBuilder('lin');
  const x = b.input('x', 'float32', ['m', k]);
  const wn = b.initializer('enc.lin.weight', 'float32', w, [k, n]);
  const y = b.scope('enc.lin', () => b.matmul(x, wn));
  b.output(b.identity(y), 'float32', ['m', n]);
  return modelFromGraph(b.graph);
}

/** Two layers with a ReLU between: /l1/MatMul, /l2/MatMul. */
function mlpModel(r: (s?: number) => number, k = 64, h = 48, n = 10): ModelProto {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', 'float32', ['m', k]);
  const w1 = b.initializer('l1.weight', 'float32', rand(k * h, r, 0.2), [k, h]);
  const w2 = b.initializer('l2.weight', 'float32', rand(h * n, r, 0.2), [h, n]);
  const hdn = b.relu(b.scope('l1', () => b.matmul(x, w1)));
  b.output(b.identity(b.scope('l2', () => b.matmul(hdn, w2))), 'float32', ['m', n]);
  return modelFromGraph(b.graph);
}

async function run(model: ModelProto | string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await Session.create(model, { intraOpThreads: 1 });
  try {
    const out = await s.run(feeds);
    return out[s.outputNames[0]].data as Float32Array;
  } finally {
    await s.release();
  }
}

function matmulJs(x: ArrayLike<number>, w: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += x[i * k + t] * w[t * n + j];
      y[i * n + j] = s;
    }
  return y;
}

function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const maxAbs = (a: ArrayLike<number>): number => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

test('per-channel int8: scale = column absmax / 127 and |w - q·s| <= s/2', () => {
  const k = 5,
    n = 3;
  const w = Float32Array.from([0.5, -1, 0, 0.25, 0.5, 0, -0.127, 0.3, 0, 0.01, -0.2, 0, 0.127, 0.1, 0]);
  const { q, scales } = quantizePerChannelInt8(w, k, n);
  assert.deepEqual(Array.from(scales), [Math.fround(0.5 / 127), Math.fround(1 / 127), 1]);
  assert.deepEqual([q[0], q[1], q[6], q[12], q[2]], [127, -127, -32, 32, 0]);
  for (let i = 0; i < k * n; i++)
    assert.ok(Math.abs(w[i] - q[i] * scales[i % n]) <= scales[i % n] / 2 + 1e-9, `element ${i}`);
});

test('dynamic int8 equals the exact u8s8 integer arithmetic, in both formulations', async () => {
  const r = rng(7);
  const m = 4,
    k = 64,
    n = 24;
  const w = rand(k * n, r, 0.3);
  const x = rand(m * k, r, 2);
  const model = linearModel(w, k, n);
  // Independent reference: ONNX DynamicQuantizeLinear on x, symmetric per-column int8 on W, integer dot products.
  const xmin = Math.min(0, ...x),
    xmax = Math.max(0, ...x);
  const sx = Math.fround((xmax - xmin) / 255);
  const zx = Math.max(0, Math.min(255, roundEven(-xmin / sx)));
  const xq = Array.from(x, (v) => Math.max(0, Math.min(255, roundEven(v / sx) + zx)) - zx);
  const sw = Array.from({ length: n }, (_, j) =>
    Math.fround(Math.max(...Array.from({ length: k }, (_, t) => Math.abs(w[t * n + j]))) / 127),
  );
  const wq = Array.from(w, (v, i) => Math.max(-127, Math.min(127, roundEven(v / sw[i % n]))));
  const acc = matmulJs(xq, wq, m, k, n);
  const expected = Array.from(acc, (v, i) => v * sx * sw[i % n]);
  const exact = matmulJs(x, w, m, k, n);
  for (const format of ['matmul-integer', 'dynamic-quantize-matmul'] as const) {
    const res = quantizeDynamic(model, { format });
    assert.deepEqual(
      res.quantized.map((q) => q.module),
      ['enc.lin'],
    );
    const y = await run(res.model, { x: new ort.Tensor('float32', x, [m, k]) });
    const tol = 1e-5 * maxAbs(expected);
    for (let i = 0; i < y.length; i++)
      assert.ok(Math.abs(y[i] - expected[i]) <= tol, `${format}[${i}]: ${y[i]} vs integer reference ${expected[i]}`);
    // And close to the float product: per element the error is bounded by Σ_t (|x|·sw/2 + |w|·sx/2 + sx·sw/4).
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let bound = 0;
        for (let t = 0; t < k; t++)
          bound += (Math.abs(x[i * k + t]) * sw[j]) / 2 + (Math.abs(w[t * n + j]) * sx) / 2 + (sx * sw[j]) / 4;
        assert.ok(Math.abs(y[i * n + j] - exact[i * n + j]) <= bound, `${format} error bound at ${i},${j}`);
      }
  }
});

test('quantizers leave the input model exactly as it was, and their files run in a fresh session', async () => {
  const r = rng(3);
  const model = mlpModel(r);
  const before = structuredClone(model);
  const x = new ort.Tensor('float32', rand(3 * 64, r), [3, 64]);
  const calibration = [{ x: new ort.Tensor('float32', rand(8 * 64, r), [8, 64]) }];
  const results = [
    quantizeDynamic(model, { format: 'matmul-integer' }),
    quantizeDynamic(model, { format: 'dynamic-quantize-matmul' }),
    quantizeInt4(model, { minWeightElements: 0 }),
    quantizeInt4(model, { minWeightElements: 0, symmetric: false }),
    await quantizeStatic(model, { calibration, method: 'minmax' }),
  ];
  assert.deepStrictEqual(model, before);
  const ref = await run(model, { x });
  const dir = mkdtempSync(join(os.tmpdir(), 'tailor-quant-'));
  try {
    for (const res of results) {
      assert.equal(res.quantized.length, 2, res.mode);
      const file = join(dir, `${res.mode}-${res.model.metadata['tailor.quantization'].replace(/[^\w-]/g, '_')}.onnx`);
      await writeModel(res.model, file);
      const y = await run(file, { x });
      // Two quantized layers with 0.2-scaled weights: outputs within 5% of the output range (int4: 15%).
      const tol = (res.mode === 'int4' ? 0.15 : 0.05) * maxAbs(ref);
      for (let i = 0; i < y.length; i++)
        assert.ok(
          Math.abs(y[i] - ref[i]) <= tol,
          `${res.model.metadata['tailor.quantization']}[${i}]: ${y[i]} vs ${ref[i]}`,
        );
      assert.ok(
        !res.model.graph.initializers.has('l1.weight') && !res.model.graph.initializers.has('l2.weight'),
        `${res.mode}: float weights were dropped`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Decodes MatMulNBits' B/scales/zero_points bytes by the schema, independently of src's unpackInt4. */
function decodeNBits(
  b: Uint8Array,
  scales: Float32Array,
  zp: Uint8Array | undefined,
  k: number,
  n: number,
  block: number,
): Float32Array {
  const kb = Math.ceil(k / block);
  const out = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let row = 0; row < k; row++) {
      const blk = Math.floor(row / block),
        inBlk = row % block;
      const byte = b[col * kb * (block / 2) + blk * (block / 2) + Math.floor(inBlk / 2)];
      const code = inBlk % 2 === 0 ? byte % 16 : Math.floor(byte / 16);
      let z = 8;
      if (zp) {
        const zb = zp[col * Math.ceil(kb / 2) + Math.floor(blk / 2)];
        z = blk % 2 === 0 ? zb % 16 : Math.floor(zb / 16);
      }
      out[row * n + col] = (code - z) * scales[col * kb + blk];
    }
  }
  return out;
}

test('INT4 MatMulNBits: packed bytes decode to a close weight, and ORT multiplies by exactly that weight', async () => {
  const r = rng(11);
  // K = 80 is not a multiple of 32: the last block is zero-padded.
  const k = 80,
    n = 20,
    m = 3;
  const w = rand(k * n, r, 0.5);
  w[5 * n + 2] = 2; // an outlier in one block only widens that block's scale
  const x = rand(m * k, r);
  for (const symmetric of [true, false]) {
    const res = quantizeInt4(linearModel(w, k, n), { symmetric, minWeightElements: 0, accuracyLevel: 0 });
    const node = res.model.graph.nodes.find((nd) => nd.opType === 'MatMulNBits')!;
    assert.equal(node.domain, 'com.microsoft');
    assert.deepEqual(
      [node.attrs.K, node.attrs.N, node.attrs.bits, node.attrs.block_size].map((a) => a.value),
      [k, n, 4, 32],
    );
    const [bT, sT, zT] = node.inputs.slice(1).map((v) => res.model.graph.initializers.get(v)!);
    assert.deepEqual(bT.dims, [n, 3, 16]);
    assert.deepEqual(sT.dims, [n, 3]);
    assert.equal(zT === undefined, symmetric);
    if (zT) assert.deepEqual(zT.dims, [n, 2]);
    const deq = decodeNBits(bT.data, tensorToArray(sT) as Float32Array, zT?.data, k, n, 32);
    // Every weight within half a step of its block's scale.
    for (let row = 0; row < k; row++)
      for (let col = 0; col < n; col++) {
        const s = (tensorToArray(sT) as Float32Array)[col * 3 + Math.floor(row / 32)];
        assert.ok(
          Math.abs(deq[row * n + col] - w[row * n + col]) <= s / 2 + 1e-7,
          `${symmetric ? 'sym' : 'asym'} w[${row},${col}]`,
        );
      }
    // Padding codes decode to exactly 0 is not observable in the product (K stops at 80), but the bytes must hold the zero point.
    const lastByte = bT.data[(0 * 3 + 2) * 16 + 15];
    const zp0 = zT ? zT.data[1] & 0x0f : 8;
    assert.equal(lastByte, zp0 | (zp0 << 4));
    const y = await run(res.model, { x: new ort.Tensor('float32', x, [m, k]) });
    const expected = matmulJs(x, deq, m, k, n);
    for (let i = 0; i < y.length; i++)
      assert.ok(
        Math.abs(y[i] - expected[i]) <= 1e-4,
        `${symmetric ? 'sym' : 'asym'} y[${i}] ${y[i]} vs ${expected[i]}`,
      );
  }
});

test('INT4 symmetric packing of a hand-made block: codes q + 8, low nibble first', () => {
  // One column, one block of 32: w = [-7s .. 7s] pattern with absmax 0.7 -> scale 0.1.
  const w = new Float32Array(32);
  for (let i = 0; i < 32; i++) w[i] = ((i % 15) - 7) / 10;
  const res = quantizeInt4(linearModel(w, 32, 1), { minWeightElements: 0 });
  const b = res.model.graph.initializers.get(
    res.model.graph.nodes.find((nd) => nd.opType === 'MatMulNBits')!.inputs[1],
  )!;
  const codes = Array.from({ length: 32 }, (_, i) => (i % 15) + 1);
  assert.deepEqual(
    Array.from(b.data),
    Array.from({ length: 16 }, (_, i) => codes[2 * i] | (codes[2 * i + 1] << 4)),
  );
});

test('static QDQ: min-max ranges are the observed extremes and outputs match fixed-scale arithmetic', async () => {
  const r = rng(5);
  const m = 6,
    k = 32,
    n = 8;
  const w = rand(k * n, r, 0.4);
  const model = linearModel(w, k, n);
  const c1 = rand(m * k, r, 1.5),
    c2 = rand(m * k, r, 0.5);
  c2[3] = 3.25;
  const calibration = [{ x: new ort.Tensor('float32', c1, [m, k]) }, { x: new ort.Tensor('float32', c2, [m, k]) }];
  const res = await quantizeStatic(model, { calibration, method: 'minmax' });
  assert.equal(res.activations.length, 1);
  const act = res.activations[0];
  assert.equal(act.tensor, 'x');
  assert.equal(act.range.hi, 3.25);
  assert.equal(act.range.lo, Math.min(...c1, ...c2));
  const { scale, zeroPoint } = uint8Params(act.range.lo, act.range.hi);
  assert.equal(act.scale, scale);
  assert.equal(act.zeroPoint, zeroPoint);
  assert.deepEqual(
    res.model.graph.nodes.map((nd) => nd.opType),
    ['QuantizeLinear', 'DequantizeLinear', 'DequantizeLinear', 'MatMul', 'Identity'],
  );
  // Data outside the calibrated range saturates: 10 -> hi.
  const x = rand(m * k, r, 1);
  x[0] = 10;
  const y = await run(res.model, { x: new ort.Tensor('float32', x, [m, k]) });
  const xd = Array.from(x, (v) => (Math.max(0, Math.min(255, roundEven(v / scale) + zeroPoint)) - zeroPoint) * scale);
  const { q, scales } = quantizePerChannelInt8(w, k, n);
  const wd = Array.from(q, (v, i) => v * scales[i % n]);
  const expected = matmulJs(xd, wd, m, k, n);
  for (let i = 0; i < y.length; i++)
    assert.ok(Math.abs(y[i] - expected[i]) <= 1e-4 * maxAbs(expected), `y[${i}] ${y[i]} vs ${expected[i]}`);
});

test('calibration thresholds: percentile cuts the tail, entropy clips a lone outlier, minmax keeps it', () => {
  const hist = new Float64Array(2048);
  for (let i = 0; i < 200; i++) hist[i] = 1000 - 4 * i; // a decaying bulk in bins [0, 200)
  hist[2047] = 1; // one outlier at the top
  const width = 0.01;
  let total = 0;
  for (const c of hist) total += c;
  // 99.99% of the mass lies below the end of bin 199: the outlier is the last 1/total.
  assert.ok(1 / total < 1e-4, 'the outlier is under 0.01% of the mass');
  assert.equal(percentileThreshold(hist, width, 99.99), 200 * width);
  assert.equal(percentileThreshold(hist, width, 100), 2048 * width);
  const t = entropyThreshold(hist, width);
  assert.ok(t < 0.5 * 2048 * width && t >= 128 * width, `entropy threshold ${t}`);
  // A Laplace-like bulk (|x| decays, as activations do) plus one far outlier at 50.
  const bulk = Array.from({ length: 4999 }, (_, i) => (i % 2 ? 1 : -1) * -Math.log((i + 0.5) / 4999) * 0.1);
  const data = Float32Array.from([...bulk, 50]);
  const lo = Math.fround(Math.min(...bulk));
  const obs = new RangeObserver(2048);
  obs.observeMinMax('v', data);
  obs.observeHistogram('v', data);
  assert.deepEqual(obs.range('v', { method: 'minmax' }), { lo, hi: 50, min: lo, max: 50 });
  const p = obs.range('v', { method: 'percentile', percentile: 99.9 });
  assert.ok(p.hi < 1 && p.lo === -p.hi, `percentile range ${JSON.stringify(p)}`);
  const e = obs.range('v', { method: 'entropy' });
  assert.ok(e.hi < 5 && e.hi > 0.1, `entropy range ${JSON.stringify(e)}`);
});

function bertCase(): { model: ModelProto; feeds: (bs: number, seed?: number) => Record<string, ort.Tensor> } {
  const cfg = bertConfig({
    vocab_size: 60,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 128,
    max_position_embeddings: 16,
    num_labels: 4,
  });
  const model = toOnnxModel(buildBert(cfg, { task: 'sequence-classification', seed: 2 }));
  const seq = 8;
  const feeds = (bs: number, seed = bs): Record<string, ort.Tensor> => {
    const r = rng(seed);
    const ids = BigInt64Array.from({ length: bs * seq }, () => BigInt(1 + Math.floor((r() + 1) * 29)));
    return {
      input_ids: new ort.Tensor('int64', ids, [bs, seq]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(bs * seq).fill(1n), [bs, seq]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(bs * seq), [bs, seq]),
    };
  };
  return { model, feeds };
}

test('exclusion by module pattern keeps those MatMuls float and says why', () => {
  const { model } = bertCase();
  const all = quantizeDynamic(model);
  assert.equal(all.quantized.length, 2 * 6 + 2); // 6 linears per layer, pooler, classifier
  assert.ok(
    all.quantized.some((q) => q.module === 'bert.encoder.layer.0.attention.self.query'),
    'module paths from node names',
  );
  const res = quantizeDynamic(model, { exclude: ['attention\\.self', /^classifier$/] });
  assert.equal(res.quantized.length, 2 * 3 + 1);
  assert.ok(
    res.quantized.every((q) => !/attention\.self|^classifier$/.test(q.module)),
    'excluded modules stay float',
  );
  const skippedQuery = res.skipped.find((s) => s.module === 'bert.encoder.layer.1.attention.self.key')!;
  assert.equal(skippedQuery.reason, 'excluded by /attention\\.self/');
  assert.equal(
    res.model.graph.nodes.filter((nd) => nd.opType === 'MatMul' && res.model.graph.initializers.has(nd.inputs[1]))
      .length,
    7,
  );
  assert.throws(() => quantizeDynamic(model, { exclude: ['('] }), /invalid exclude pattern '\('/);
});

test('embedding tables: int8 with one scale per row, dequantized after the lookup', async () => {
  const r = rng(21);
  const rows = 6,
    dim = 5;
  const table = rand(rows * dim, r, 0.3);
  table.fill(0, 2 * dim, 3 * dim); // an all-zero row (a padding embedding) keeps scale 1 and stays exactly 0
  const b = new GraphBuilder('emb');
  const ids = b.input('ids', 'int64', ['batch', 3]);
  const t = b.initializer('embeddings.word_embeddings.weight', 'float32', table, [rows, dim]);
  b.output(b.identity(b.scope('embeddings.word_embeddings', () => b.gather(t, ids))), 'float32', ['batch', 3, dim]);
  const model = modelFromGraph(b.graph);
  const res = quantizeDynamic(model);
  assert.deepEqual(res.embeddings, [
    { module: 'embeddings.word_embeddings', table: 'embeddings.word_embeddings.weight', rows, dim },
  ]);
  assert.deepEqual(quantizeDynamic(model, { embeddings: false }).embeddings, []);
  const idv = BigInt64Array.from([0n, 2n, 5n, 5n, 1n, 3n]);
  const y = await run(res.model, { ids: new ort.Tensor('int64', idv, [2, 3]) });
  for (let i = 0; i < idv.length; i++) {
    const row = Array.from(table.subarray(Number(idv[i]) * dim, (Number(idv[i]) + 1) * dim));
    const s = maxAbs(row) > 0 ? Math.fround(maxAbs(row) / 127) : 1;
    for (let c = 0; c < dim; c++) {
      const want = Math.fround(roundEven(row[c] / s) * s);
      assert.ok(Math.abs(y[i * dim + c] - want) <= 1e-7, `row ${idv[i]} col ${c}: ${y[i * dim + c]} vs ${want}`);
    }
  }
  // An opset-11 graph gets Unsqueeze's attribute form (its opset is never raised: that would change other ops).
  const old: ModelProto = { ...model, opsetImports: [{ domain: '', version: 11 }] };
  const res11 = quantizeDynamic(old);
  assert.equal(res11.model.opsetImports[0].version, 11);
  assert.deepEqual(await run(res11.model, { ids: new ort.Tensor('int64', idv, [2, 3]) }), y);
  await assert.rejects(
    quantizeStatic(old, { calibration: [] }),
    /static INT8 \(per-channel QDQ\) needs opset 13 or newer; this model uses opset 11/,
  );
});

test('report on a zoo BERT: sizes, accuracy delta against float predictions, per-layer errors worst first', async () => {
  const { model, feeds } = bertCase();
  const evalBatches = [feeds(16, 1), feeds(16, 2)];
  // Labels = the float model's own predictions, so float accuracy is exactly 1.
  // One intra-op thread everywhere: under load from other jobs, ORT's spinning pool threads are what made this slow.
  const s = await Session.create(model, { intraOpThreads: 1 });
  const labels: number[] = [];
  for (const b of evalBatches) {
    const d = (await s.run(b)).logits.data as Float32Array;
    for (let i = 0; i < 16; i++)
      labels.push(Array.from(d.subarray(i * 4, i * 4 + 4)).reduce((bi, v, j, a) => (v > a[bi] ? j : bi), 0));
  }
  await s.release();
  const q = await quantizeStatic(model, { calibration: [feeds(8, 9)], method: 'percentile' });
  const rep = await quantizationReport(model, q, {
    eval: { batches: evalBatches, labels },
    feedsFor: (bs) => feeds(bs),
    iterations: 3,
    throughputIterations: 1,
    throughputBatchSize: 4,
    intraOpThreads: 1,
  });
  assert.equal(rep.float.accuracy, 1);
  assert.equal(rep.accuracyDelta, rep.quantized.accuracy! - 1);
  assert.ok(rep.quantized.bytes < rep.float.bytes, 'smaller file');
  assert.equal(rep.sizeRatio, rep.quantized.bytes / rep.float.bytes);
  // Weights and embedding tables in int8 would be a quarter; norms, biases, scales and the graph's own bytes (large
  // next to 75k parameters) stay, so this tiny model lands near 0.39.
  assert.ok(rep.sizeRatio > 0.25 && rep.sizeRatio < 0.45, `size ratio ${rep.sizeRatio}`);
  assert.deepEqual(rep.quantizedEmbeddings, [
    'bert.embeddings.word_embeddings',
    'bert.embeddings.token_type_embeddings',
    'bert.embeddings.position_embeddings',
  ]);
  assert.equal(rep.layerErrors.length, q.quantized.length);
  for (let i = 1; i < rep.layerErrors.length; i++)
    assert.ok(rep.layerErrors[i - 1].relativeMse >= rep.layerErrors[i].relativeMse, 'sorted worst first');
  assert.ok(
    rep.layerErrors.every((l) => l.relativeMse > 0 && l.relativeMse < 0.05),
    JSON.stringify(rep.layerErrors.slice(0, 2)),
  );
  assert.ok(rep.speedupBatch1! > 0 && rep.speedupThroughput! > 0, 'timed');
  assert.equal(rep.pays, rep.speedupBatch1! > 1 && rep.speedupThroughput! > 1);
  // The per-layer probe agrees with a direct recomputation for one layer.
  const errs = await layerErrors(model, q, [evalBatches[0]]);
  assert.equal(errs.length, q.quantized.length);
});
