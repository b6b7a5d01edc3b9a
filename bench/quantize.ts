/**
 * `node --import tsx bench/quantize.ts [--json] [--iters N] [--wide]`: FP32 vs dynamic INT8 (MatMulInteger chain
 * and com.microsoft DynamicQuantizeMatMul) vs static INT8 (QDQ) vs weight-only INT4 (MatMulNBits, accuracy_level 4
 * and 0) on zoo BERT encoders (4 layers, hidden 256, seq 64; with --wide also hidden 512). All variants are timed
 * interleaved (one run of each per round) so that load on a shared machine hits all of them alike; figures are
 * medians. Threads: 2.
 */
import os from 'node:os';
import { bertConfig, buildBert, toOnnxModel } from '../src/models/index.ts';
import type { ModelProto } from '../src/onnx/ir.ts';
import { encodeModel } from '../src/onnx/serialize.ts';
import { Session, ort, type Feeds } from '../src/runtime/session.ts';
import { quantizeDynamic, quantizeInt4, quantizeStatic, timeInterleaved } from '../src/compress/quantize/index.ts';
import { loadAverage, sayer } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const iters = Number(args[args.indexOf('--iters') + 1] || 20);
const SEQ = 64;
const say = sayer(json);

function feedsFor(vocab: number): (bs: number) => Feeds {
  return (bs) => {
    const ids = BigInt64Array.from({ length: bs * SEQ }, (_, i) => BigInt(1 + ((i * 7919) % (vocab - 1))));
    return {
      input_ids: new ort.Tensor('int64', ids, [bs, SEQ]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(bs * SEQ).fill(1n), [bs, SEQ]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(bs * SEQ), [bs, SEQ]),
    };
  };
}

interface Row {
  variant: string;
  bytes: number;
  p50b1: number;
  p50b32: number;
  maxAbsDiff: number;
}

async function benchCase(hidden: number): Promise<{ name: string; rows: Row[] }> {
  const name = `bert L4 H${hidden} FFN${4 * hidden} seq${SEQ}`;
  const vocab = 30522; // BERT's WordPiece vocabulary: embeddings are a realistic share of the file
  const cfg = bertConfig({
    vocab_size: vocab,
    hidden_size: hidden,
    num_hidden_layers: 4,
    num_attention_heads: hidden / 64,
    intermediate_size: 4 * hidden,
    max_position_embeddings: 512,
    num_labels: 10,
  });
  const fp32 = toOnnxModel(buildBert(cfg, { task: 'sequence-classification', seed: 1 }));
  const feeds = feedsFor(vocab);
  const variants: Array<[string, ModelProto]> = [
    ['fp32', fp32],
    ['int8 dynamic (MatMulInteger)', quantizeDynamic(fp32, { format: 'matmul-integer' }).model],
    ['int8 dynamic (DynamicQuantizeMatMul)', quantizeDynamic(fp32, { format: 'dynamic-quantize-matmul' }).model],
    ['int8 static QDQ (minmax)', (await quantizeStatic(fp32, { calibration: [feeds(4)], method: 'minmax' })).model],
    ['int4 MatMulNBits acc4', quantizeInt4(fp32, { accuracyLevel: 4 }).model],
    ['int4 MatMulNBits acc0', quantizeInt4(fp32, { accuracyLevel: 0 }).model],
  ];
  const sessions = await Promise.all(variants.map(([, m]) => Session.create(m, { intraOpThreads: 2 })));
  const probe = feeds(2);
  const outs = await Promise.all(sessions.map(async (s) => (await s.run(probe)).logits.data as Float32Array));
  const b1 = await timeInterleaved(sessions, feeds(1), iters, 3);
  const b32 = await timeInterleaved(sessions, feeds(32), Math.max(3, Math.round(iters / 5)), 1);
  for (const s of sessions) await s.release();
  return {
    name,
    rows: variants.map(([variant, m], i) => ({
      variant,
      bytes: encodeModel(m).byteLength,
      p50b1: b1[i].p50Ms,
      p50b32: b32[i].p50Ms,
      maxAbsDiff: outs[i].reduce((mx, v, j) => Math.max(mx, Math.abs(v - outs[0][j])), 0),
    })),
  };
}

const cases = [256, ...(args.includes('--wide') ? [512] : [])];
const results = [];
say(`quantization bench: ${os.cpus()[0]?.model}, 2 threads, load ${loadAverage()}`);
for (const h of cases) {
  const r = await benchCase(h);
  results.push(r);
  const base = r.rows[0];
  say(`\n${r.name}`);
  say(
    `${'variant'.padEnd(38)} ${'size MB'.padStart(8)} ${'x smaller'.padStart(9)} ${'p50 b1 ms'.padStart(10)} ${'speedup'.padStart(8)} ${'p50 b32 ms'.padStart(11)} ${'speedup'.padStart(8)} ${'max|dlogit|'.padStart(11)}`,
  );
  for (const row of r.rows) {
    say(
      `${row.variant.padEnd(38)} ${(row.bytes / 1e6).toFixed(2).padStart(8)} ${(base.bytes / row.bytes).toFixed(2).padStart(9)} ${row.p50b1.toFixed(2).padStart(10)} ${(base.p50b1 / row.p50b1).toFixed(2).padStart(8)} ${row.p50b32.toFixed(1).padStart(11)} ${(base.p50b32 / row.p50b32).toFixed(2).padStart(8)} ${row.maxAbsDiff.toExponential(1).padStart(11)}`,
    );
  }
}
say(`load after: ${loadAverage()}`);
if (json) console.log(JSON.stringify({ bench: 'quantize', threads: 2, seq: SEQ, results }, null, 2));
