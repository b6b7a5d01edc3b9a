/**
 * Distillation: the loss against a plain-JS formula, DistilBERT-style students keep alternate teacher layers, the
 * teacher runs once (its cache is reused), a narrower student learns a task from teacher logits alone on unlabelled
 * text, hidden-state matching moves the student toward the teacher's hidden states, and the teacher-vs-student report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { emptyGraph, modelFromGraph } from '../../src/onnx/ir.ts';
import { Session, ort } from '../../src/runtime/session.ts';
import { buildBert, paramValues, trainableParams, type Model } from '../../src/models/index.ts';
import { tensorData, Trainer } from '../../src/train/trainer.ts';
import {
  alternateLayers,
  distill,
  distillationLoss,
  distillationReport,
  hardLabels,
  studentFromTeacher,
  teacherOutputs,
  type TransferSet,
} from '../../src/compress/distill/index.ts';
import { tinyConfig, wordPiece } from '../models/fixtures.ts';

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

const WORDS = ['the', 'cat', 'sat', 'on', 'mat', 'hello', 'world', 'a'];

/** Texts and "mentions a cat" labels. */
function catSet(n: number, seed: number): TransferSet {
  const rnd = lcg(seed);
  const texts: string[] = [];
  const labels: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const ws = Array.from({ length: 3 + Math.floor(rnd() * 4) }, () => WORDS[Math.floor(rnd() * WORDS.length)]);
    texts.push(ws.join(' '));
    labels.push(ws.includes('cat') ? 1n : 0n);
  }
  const enc = wordPiece(12).encodeBatch(texts, { padding: 'max_length', maxLength: 10 });
  const d = [enc.batch, enc.seq];
  return {
    inputs: {
      input_ids: new ort.Tensor('int64', enc.inputIds, d),
      attention_mask: new ort.Tensor('int64', enc.attentionMask, d),
      token_type_ids: new ort.Tensor('int64', enc.tokenTypeIds, d),
    },
    labels: BigInt64Array.from(labels),
  };
}

let teacherPromise: Promise<Model> | undefined;
/** A 2-layer tiny BERT trained on the cat task (shared by the tests). */
function trainedTeacher(): Promise<Model> {
  teacherPromise ??= (async () => {
    const model = buildBert(tinyConfig({ initializer_range: 0.02, num_labels: 2 }), {
      task: 'sequence-classification',
      seed: 1,
    });
    const set = catSet(128, 1);
    const data = tensorData({ ...set.inputs, labels: new ort.Tensor('int64', set.labels!, [128]) });
    const loss = (b: GraphBuilder): string =>
      b.op('SoftmaxCrossEntropyLoss', ['logits', b.input('labels', 'int64', ['batch'])], { reduction: 'mean' });
    const trainer = new Trainer(model.graph, loss, trainableParams(model), data, {
      seed: 1,
      epochs: 12,
      batchSize: 32,
      optimizer: { type: 'adamw', lr: 5e-3 },
      progress: 'none',
      session: { intraOpThreads: 1 },
    });
    try {
      const r = await trainer.fit();
      return { ...model, graph: r.graph };
    } finally {
      await trainer.release();
    }
  })();
  return teacherPromise;
}

async function accuracy(model: Model, set: TransferSet): Promise<{ acc: number; preds: number[] }> {
  const s = await Session.create(modelFromGraph(model.graph));
  try {
    const out = (await s.run(set.inputs, ['logits'])).logits;
    const d = out.data as Float32Array;
    const preds = Array.from({ length: out.dims[0] }, (_, i) => (d[2 * i + 1] > d[2 * i] ? 1 : 0));
    return { acc: preds.filter((p, i) => BigInt(p) === set.labels![i]).length / preds.length, preds };
  } finally {
    await s.release();
  }
}

test('distillation loss equals alpha·T²·KL(teacher‖student) + (1-alpha)·CE computed in plain JS', async () => {
  const B = 3,
    C = 4,
    T = 2.5,
    alpha = 0.7;
  const b = new GraphBuilder('loss');
  b.input('logits', 'float32', ['batch', C]);
  b.output(distillationLoss(b, { classes: C, temperature: T, alpha }), 'float32', []);
  const rnd = lcg(9);
  const s = Float32Array.from({ length: B * C }, () => rnd() * 6 - 3);
  const t = Float32Array.from({ length: B * C }, () => rnd() * 6 - 3);
  const y = BigInt64Array.from([1n, 3n, 0n]);
  const sess = await Session.create(modelFromGraph(b.graph));
  const out = await sess.run({
    logits: new ort.Tensor('float32', s, [B, C]),
    teacher_logits: new ort.Tensor('float32', t, [B, C]),
    labels: new ort.Tensor('int64', y, [B]),
  });
  await sess.release();
  const logSoftmax = (v: number[]): number[] => {
    const m = Math.max(...v);
    const z = Math.log(v.reduce((a, x) => a + Math.exp(x - m), 0)) + m;
    return v.map((x) => x - z);
  };
  let kl = 0,
    ce = 0;
  for (let i = 0; i < B; i++) {
    const si = Array.from(s.subarray(i * C, i * C + C)),
      ti = Array.from(t.subarray(i * C, i * C + C));
    const lps = logSoftmax(si.map((x) => x / T)),
      lpt = logSoftmax(ti.map((x) => x / T));
    for (let c = 0; c < C; c++) kl += Math.exp(lpt[c]) * (lpt[c] - lps[c]);
    ce -= logSoftmax(si)[Number(y[i])];
  }
  const expected = alpha * T * T * (kl / B) + (1 - alpha) * (ce / B);
  const got = (out[b.graph.outputs[0].name].data as Float32Array)[0];
  assert.ok(Math.abs(got - expected) < 1e-5 * Math.max(1, Math.abs(expected)), `loss ${got} vs ${expected}`);
  assert.throws(
    () => distillationLoss(new GraphBuilder('x'), { classes: 2, temperature: 1, alpha: 1.5 }),
    /alpha must be in \[0, 1\], got 1.5/,
  );
});

test('DistilBERT-style student keeps alternate teacher layers with their weights', async () => {
  assert.deepEqual(alternateLayers(12, 6), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(alternateLayers(4, 2), [0, 2]);
  assert.deepEqual(alternateLayers(6, 4), [0, 1, 3, 4]);
  assert.throws(() => alternateLayers(4, 5), /a student needs 1\.\.4 layers, got 5/);
  const teacher = buildBert(tinyConfig({ num_hidden_layers: 4, num_labels: 2 }), {
    task: 'sequence-classification',
    seed: 4,
  });
  const student = studentFromTeacher(teacher, { layers: 2 });
  assert.equal((student.config as { num_hidden_layers: number }).num_hidden_layers, 2);
  for (const [s, t] of [
    [0, 0],
    [1, 2],
  ]) {
    for (const leaf of ['attention.self.query.weight', 'output.dense.bias', 'output.LayerNorm.weight']) {
      assert.deepEqual(
        paramValues(student, `bert.encoder.layer.${s}.${leaf}`),
        paramValues(teacher, `bert.encoder.layer.${t}.${leaf}`),
        `layer ${s} <- ${t}: ${leaf}`,
      );
    }
  }
  assert.deepEqual(paramValues(student, 'classifier.weight'), paramValues(teacher, 'classifier.weight'));
  assert.ok(!student.params.has('bert.encoder.layer.2.output.dense.weight'), 'only two layers');
  const narrow = studentFromTeacher(teacher, { layers: 1, hidden: 8, heads: 2, intermediate: 16 });
  assert.equal(paramValues(narrow, 'bert.encoder.layer.0.attention.self.query.weight').length, 64);
  // Any classifier teacher (here an 'onnx' model without a BERT config) gets a fresh zoo BERT student.
  const imported: Model = { ...teacher, architecture: 'onnx', config: {}, labels: ['no', 'yes'] };
  const fresh = studentFromTeacher(imported, { layers: 1, hidden: 8, heads: 2, vocabSize: 20, maxPositions: 12 });
  assert.equal(fresh.architecture, 'bert');
  assert.deepEqual(fresh.labels, ['no', 'yes']);
  assert.equal(paramValues(fresh, 'bert.embeddings.word_embeddings.weight').length, 20 * 8);
  assert.throws(
    () => studentFromTeacher({ ...imported, labels: undefined }, { hidden: 8, vocabSize: 20 }),
    /the teacher has no label list/,
  );
  const encoderOnly = buildBert(tinyConfig(), { task: 'sentence-embedding' });
  await assert.rejects(
    teacherOutputs(encoderOnly, catSet(4, 1).inputs),
    /the teacher has no 'logits' output \(outputs: last_hidden_state, sentence_embedding\)/,
  );
});

test('a narrower student learns the task from teacher logits alone on unlabelled text; the teacher runs once', async () => {
  const teacher = await trainedTeacher();
  const heldOut = catSet(96, 7);
  const tAcc = await accuracy(teacher, heldOut);
  assert.ok(tAcc.acc >= 0.9, `teacher accuracy ${tAcc.acc}`);
  const unlabelled = catSet(192, 3);
  delete unlabelled.labels;
  const cache = await teacherOutputs(teacher, unlabelled.inputs, { batchSize: 64 });
  assert.equal(cache.runs, 3);
  assert.equal(cache.logits.length, 192 * 2);
  // Teacher labels the unlabelled rows.
  assert.equal(hardLabels(cache).teacherLabelled, 192);
  const student = studentFromTeacher(teacher, { layers: 1, hidden: 8, heads: 2, intermediate: 16, seed: 5 });
  const before = await accuracy(student, heldOut);
  // A teacher whose graph cannot run proves the cached logits are all the student sees of it.
  const brokenTeacher: Model = { ...teacher, graph: emptyGraph('no teacher here') };
  const res = await distill(brokenTeacher, student, unlabelled, {
    cache,
    alpha: 1,
    temperature: 2,
    epochs: 15,
    batchSize: 32,
    lr: 1e-2,
    seed: 2,
    trainer: { session: { intraOpThreads: 1 } },
  });
  assert.equal(res.cache, cache);
  assert.equal(res.config.labelledRows, 0);
  const after = await accuracy(res.student, heldOut);
  const agree = after.preds.filter((p, i) => p === tAcc.preds[i]).length / after.preds.length;
  assert.ok(after.acc >= 0.85 && after.acc > before.acc + 0.15, `student accuracy ${before.acc} -> ${after.acc}`);
  assert.ok(agree >= 0.85, `agreement with teacher ${agree}`);
  assert.notEqual(res.student.graph, student.graph);
  assert.ok(res.train.history[res.train.history.length - 1].train_loss < res.train.history[0].train_loss, 'loss fell');
});

/** Mean squared difference between two models' final hidden states over `inputs` (every position, as the loss). */
async function hiddenMse(a: Model, b: Model, inputs: TransferSet['inputs']): Promise<number> {
  const [x, y] = [await teacherOutputs(a, inputs, { hidden: true }), await teacherOutputs(b, inputs, { hidden: true })];
  assert.deepEqual(x.hiddenDims, y.hiddenDims);
  let s = 0;
  for (let i = 0; i < x.hidden!.length; i++) s += (x.hidden![i] - y.hidden![i]) ** 2;
  return s / x.hidden!.length;
}

test('hidden-state matching measurably moves the student toward the teacher; labelled validation picks the returned epoch; the report matches predictions recomputed here', async () => {
  const teacher = await trainedTeacher();
  const transfer = catSet(128, 11);
  const validation = catSet(64, 12);
  const student = studentFromTeacher(teacher, { layers: 1 });
  const common = {
    alpha: 0.5,
    epochs: 3,
    lr: 5e-3,
    seed: 3,
    validation,
    trainer: { session: { intraOpThreads: 1 } },
  };
  const res = await distill(teacher, student, transfer, { ...common, hiddenWeight: 1 });
  assert.ok(res.cache.hidden && res.cache.hiddenDims, 'teacher hidden states cached');
  assert.deepEqual(res.cache.hiddenDims, [128, 10, 16]);
  assert.equal(res.config.labelledRows, 128);
  // The same run (seed, data, schedule) without the hidden-state term: the term alone makes the difference.
  const plain = await distill(teacher, student, transfer, { ...common, hiddenWeight: 0 });
  assert.equal(plain.cache.hidden, undefined);
  const moved = [...res.student.graph.initializers.keys()].filter(
    (k) =>
      !Buffer.from(res.student.graph.initializers.get(k)!.data).equals(
        Buffer.from(plain.student.graph.initializers.get(k)!.data),
      ),
  );
  assert.ok(moved.includes('bert.encoder.layer.0.output.dense.weight'), `weights that differ: ${moved.join(', ')}`);
  const [withTerm, without, untrained] = [
    await hiddenMse(res.student, teacher, transfer.inputs),
    await hiddenMse(plain.student, teacher, transfer.inputs),
    await hiddenMse(student, teacher, transfer.inputs),
  ];
  // Without the term the copied layer drifts away from the teacher's states (logits only constrain the head's view);
  // with it the student ends closer to them than where it started.
  assert.ok(
    withTerm < 0.5 * without && withTerm < untrained,
    `hidden MSE to the teacher: ${withTerm} with the term, ${without} without, ${untrained} before training`,
  );
  // The returned student is the epoch validation picked: its accuracy, recomputed here, is the best one recorded.
  const valAcc = (await accuracy(res.student, validation)).acc;
  assert.equal(valAcc, res.train.best!.metric);
  assert.equal(valAcc, Math.max(...res.train.history.map((h) => h.accuracy)));
  await assert.rejects(
    distill(teacher, studentFromTeacher(teacher, { layers: 1, hidden: 8, heads: 2 }), transfer, { hiddenWeight: 1 }),
    /hidden-state matching needs equal hidden sizes \(teacher 16, student 8\)/,
  );
  const heldOut = catSet(64, 13);
  const t0 = performance.now();
  const rep = await distillationReport(teacher, res.student, heldOut, {
    iterations: 5,
    throughputIterations: 2,
    throughputBatchSize: 8,
  });
  const wallMs = performance.now() - t0;
  assert.ok(rep.student.params < rep.teacher.params, 'fewer parameters');
  assert.ok(rep.student.bytesOnDisk < rep.teacher.bytesOnDisk, 'smaller file');
  const [t, st] = [await accuracy(teacher, heldOut), await accuracy(res.student, heldOut)];
  // (Learning from scratch is test 3's narrower student; this one starts from the teacher's own layer 0 and head.)
  assert.ok(t.acc >= 0.85 && st.acc >= 0.85, `teacher ${t.acc}, student ${st.acc} on held-out rows`);
  assert.equal(rep.teacher.accuracy, t.acc);
  assert.equal(rep.student.accuracy, st.acc);
  assert.equal(rep.agreement, st.preds.filter((p, i) => p === t.preds[i]).length / st.preds.length);
  // Timed inside the call: neither a median batch-1 latency nor a mean 8-row batch can take longer than the call.
  for (const side of [rep.teacher, rep.student]) {
    assert.ok(side.latencyBatch1.p50Ms > 0 && side.latencyBatch1.p50Ms < wallMs, `p50 ${side.latencyBatch1.p50Ms} ms`);
    assert.ok(side.throughput.itemsPerSecond > 8 / (wallMs / 1000), `${side.throughput.itemsPerSecond} rows/s`);
  }
});
