/**
 * `node --import tsx bench/distill.ts [--json] [--intents N] [--epochs N]`: compression on a CLINC150 slice, in
 * one run. A zoo BERT teacher (4 layers, hidden 128, word-level vocabulary) is trained on the first N intents;
 * then (1) a DistilBERT-style 2-layer student is distilled from it (alpha 0.5, T 2, teacher logits cached) and
 * (2) the teacher is quantized (dynamic INT8, static INT8 QDQ with percentile calibration, INT4). Every variant is
 * measured on CLINC150's validation rows of those intents: accuracy, macro-F1, size, p50 at batch 1, items/s at
 * batch 32. Threads: 2 for timing.
 */
import { bertConfig, buildBert, toOnnxModel, trainableParams, type Model } from '../src/models/index.ts';
import type { GraphBuilder } from '../src/onnx/builder.ts';
import type { ModelProto } from '../src/onnx/ir.ts';
import { ort } from '../src/runtime/session.ts';
import { tensorData, Trainer } from '../src/train/trainer.ts';
import {
  distill,
  distillationReport,
  formatDistillationReport,
  studentFromTeacher,
  type TransferSet,
} from '../src/compress/distill/index.ts';
import { readClinc, type ClincRow } from './clinc150.ts';
import {
  quantizationReport,
  quantizeDynamic,
  quantizeInt4,
  quantizeStatic,
  type QuantizationReport,
  type QuantizeResult,
} from '../src/compress/quantize/index.ts';
import { loadAverage, sayer } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const argOf = (k: string, d: number): number => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : d);
const INTENTS = argOf('--intents', 30);
const EPOCHS = argOf('--epochs', 8);
const SEQ = 16;
const say = sayer(json);

const trainRows = readClinc('train');
const labels = [...new Set(trainRows.map((r) => r.label))].sort().slice(0, INTENTS);
const labelId = new Map(labels.map((l, i) => [l, i]));
const vocab = new Map<string, number>([
  ['[PAD]', 0],
  ['[UNK]', 1],
  ['[CLS]', 2],
]);
const words = (t: string): string[] =>
  t
    .toLowerCase()
    .split(/[^a-z0-9']+/)
    .filter(Boolean);
for (const r of trainRows)
  if (labelId.has(r.label)) for (const w of words(r.text)) if (!vocab.has(w)) vocab.set(w, vocab.size);

function encode(rows: ClincRow[]): TransferSet {
  const kept = rows.filter((r) => labelId.has(r.label));
  const ids = new BigInt64Array(kept.length * SEQ);
  const mask = new BigInt64Array(kept.length * SEQ);
  kept.forEach((r, i) => {
    const toks = [2, ...words(r.text).map((w) => vocab.get(w) ?? 1)].slice(0, SEQ);
    toks.forEach((t, j) => {
      ids[i * SEQ + j] = BigInt(t);
      mask[i * SEQ + j] = 1n;
    });
  });
  const d = [kept.length, SEQ];
  return {
    inputs: {
      input_ids: new ort.Tensor('int64', ids, d),
      attention_mask: new ort.Tensor('int64', mask, d),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(kept.length * SEQ), d),
    },
    labels: BigInt64Array.from(kept, (r) => BigInt(labelId.get(r.label)!)),
  };
}

const train = encode(trainRows);
const val = encode(readClinc('validation'));
const n = train.labels!.length;
say(
  `CLINC150 slice: ${INTENTS} intents, ${n} train / ${val.labels!.length} validation rows, vocab ${vocab.size}, seq ${SEQ}; load ${loadAverage()}`,
);

const cfg = bertConfig({
  vocab_size: vocab.size,
  hidden_size: 128,
  num_hidden_layers: 4,
  num_attention_heads: 2,
  intermediate_size: 512,
  max_position_embeddings: SEQ,
  num_labels: INTENTS,
  id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
});
let teacher: Model = buildBert(cfg, { task: 'sequence-classification', seed: 1 });
const t0 = performance.now();
{
  const loss = (b: GraphBuilder): string =>
    b.op('SoftmaxCrossEntropyLoss', ['logits', b.input('labels', 'int64', ['batch'])], { reduction: 'mean' });
  const trainer = new Trainer(
    teacher.graph,
    loss,
    trainableParams(teacher),
    tensorData({ ...train.inputs, labels: new ort.Tensor('int64', train.labels!, [n]) }),
    {
      seed: 1,
      epochs: EPOCHS,
      batchSize: 32,
      optimizer: { type: 'adamw', lr: 1e-3 },
      schedule: { type: 'linear', warmupSteps: 20, totalSteps: EPOCHS * Math.floor(n / 32) },
      progress: 'none',
    },
  );
  const r = await trainer.fit();
  await trainer.release();
  teacher = { ...teacher, graph: r.graph };
}
say(`teacher trained: ${EPOCHS} epochs in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

const t1 = performance.now();
const student0 = studentFromTeacher(teacher, { layers: 2 });
const d = await distill(teacher, student0, train, {
  alpha: 0.5,
  temperature: 2,
  epochs: EPOCHS,
  batchSize: 32,
  lr: 1e-3,
  seed: 2,
});
say(
  `student distilled (2 of 4 layers, alpha 0.5, T 2): ${EPOCHS} epochs in ${((performance.now() - t1) / 1000).toFixed(0)} s; teacher ran ${d.cache.runs} forward batches once`,
);
const dist = await distillationReport(teacher, d.student, val, {
  iterations: 40,
  throughputIterations: 6,
  intraOpThreads: 2,
});
say(`\n${formatDistillationReport(dist)}`);

const feedsFor = (bs: number): Record<string, ort.Tensor> => {
  const idx = Array.from({ length: bs }, (_, i) => i % val.labels!.length);
  return Object.fromEntries(
    Object.entries(val.inputs).map(([k, t]) => {
      const src = t.data as BigInt64Array;
      const out = new BigInt64Array(bs * SEQ);
      idx.forEach((r, i) => out.set(src.subarray(r * SEQ, (r + 1) * SEQ), i * SEQ));
      return [k, new ort.Tensor('int64', out, [bs, SEQ])];
    }),
  );
};
const evalBatches: Record<string, ort.Tensor>[] = [];
const vn = val.labels!.length;
for (let s = 0; s < vn; s += 128) {
  const e = Math.min(vn, s + 128);
  evalBatches.push(
    Object.fromEntries(
      Object.entries(val.inputs).map(([k, t]) => [
        k,
        new ort.Tensor('int64', (t.data as BigInt64Array).slice(s * SEQ, e * SEQ), [e - s, SEQ]),
      ]),
    ),
  );
}
const fp32: ModelProto = toOnnxModel(teacher);
const calib = [
  Object.fromEntries(
    Object.entries(train.inputs).map(([k, t]) => [
      k,
      new ort.Tensor('int64', (t.data as BigInt64Array).slice(0, 128 * SEQ), [128, SEQ]),
    ]),
  ),
];
const variants: Array<[string, QuantizeResult]> = [
  ['dynamic int8', quantizeDynamic(fp32)],
  ['static int8 (QDQ, percentile)', await quantizeStatic(fp32, { calibration: calib, method: 'percentile' })],
  ['int4 (MatMulNBits, block 32)', quantizeInt4(fp32)],
];
const quant: Array<{ name: string; report: QuantizationReport }> = [];
say(`\nquantized teacher (vs fp32: size, p50 b=1, items/s b=32, accuracy):`);
for (const [name, q] of variants) {
  const r = await quantizationReport(fp32, q, {
    eval: { batches: evalBatches, labels: Array.from(val.labels!, Number), labelNames: labels },
    feedsFor,
    iterations: 40,
    throughputIterations: 6,
    intraOpThreads: 2,
  });
  quant.push({ name, report: r });
  say(
    `${name.padEnd(32)} ${(1 / r.sizeRatio).toFixed(2)}x smaller  ${r.speedupBatch1!.toFixed(2)}x b=1  ${r.speedupThroughput!.toFixed(2)}x b=32  accuracy ${(r.float.accuracy! * 100).toFixed(2)}% -> ${(r.quantized.accuracy! * 100).toFixed(2)}%  macro-F1 ${(r.float.macroF1! * 100).toFixed(2)}% -> ${(r.quantized.macroF1! * 100).toFixed(2)}%`,
  );
  for (const note of r.notes) say(`  note: ${note}`);
}
say(`load after: ${loadAverage()}`);
if (json)
  console.log(
    JSON.stringify(
      {
        bench: 'distill+quantize on CLINC150 slice',
        intents: INTENTS,
        epochs: EPOCHS,
        distillation: dist,
        quantization: quant,
      },
      null,
      2,
    ),
  );
