/**
 * A USE-lite classifier teacher (as `tailor customize` saves it: a plain ONNX graph whose parameters are recovered
 * by name) gets a student cut from its own graph: layer 1 removed, every other weight, the pooling and the head
 * kept. Checked: the student equals the teacher's graph without layer 1 computed independently (the USE-lite
 * graph's own pooling applied to layer 0's output), the parameter table, the error for layer 0, and that
 * distillTextClassifier picks this init and says so.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { attachHead } from '../../src/models/head.ts';
import {
  distillTextClassifier,
  removeLayers,
  studentFromTeacher,
  teacherGraphStudent,
} from '../../src/compress/distill/index.ts';
import { recoverParams } from '../../src/models/hf/names.ts';
import { countParams, paramValues, toOnnxModel, type Model } from '../../src/models/model.ts';
import { loadUseLite } from '../../src/models/use/index.ts';
import { Session, ort } from '../../src/runtime/session.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tailor-distill-use-'));
let teacher: Model;
const LABELS = ['balance', 'music', 'weather'];
const TEXTS = [
  'what is my balance',
  'how much money do i have',
  'play some jazz',
  'put on a song',
  'will it rain today',
  'is it sunny outside',
];

before(async () => {
  process.env.TAILOR_CACHE = path.join(tmp, 'cache');
  const { model } = await loadUseLite();
  const head = attachHead(model, { labels: LABELS, seed: 3 });
  // What loadArtifact gives for a customize folder: architecture 'onnx', no config, parameters recovered from names.
  teacher = { ...head, architecture: 'onnx', config: {}, params: recoverParams(head.graph), source: { kind: 'onnx' } };
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function feeds(model: Model, texts: string[]): Record<string, ort.Tensor> {
  const enc = model.tokenizer!.encodeBatch(texts, { maxLength: 16 });
  const d = [enc.batch, enc.seq];
  return {
    input_ids: new ort.Tensor('int64', enc.inputIds, d),
    attention_mask: new ort.Tensor('int64', enc.attentionMask, d),
  };
}

async function outputs(
  model: Model,
  f: Record<string, ort.Tensor>,
  names: string[],
): Promise<Record<string, Float32Array>> {
  const m = toOnnxModel(model);
  m.graph = {
    ...m.graph,
    outputs: [
      ...m.graph.outputs,
      ...names
        .filter((n) => !m.graph.outputs.some((o) => o.name === n))
        .map((name) => ({ name, dtype: 'float32' as const })),
    ],
  };
  const s = await Session.create(m, { intraOpThreads: 1 });
  try {
    const out = await s.run(f, names);
    return Object.fromEntries(names.map((n) => [n, out[n].data as Float32Array]));
  } finally {
    await s.release();
  }
}

test("the USE-lite student keeps layer 0 and the head: its logits equal pooling + head applied to the teacher's layer-0 output", async () => {
  const g = teacherGraphStudent(teacher, 1);
  assert.deepEqual(g.keptLayers, [0]);
  assert.deepEqual(g.removedLayers, [1]);
  const student = g.model;
  assert.ok(![...student.params.keys()].some((k) => k.startsWith('encoder.layer.1.')), 'layer 1 parameters dropped');
  assert.deepEqual(
    [...student.params.keys()].sort(),
    [...teacher.params.keys()].filter((k) => !k.startsWith('encoder.layer.1.')).sort(),
  );
  assert.ok(
    [...student.params.values()].every((p) => p.trainable),
    'the whole student trains',
  );
  const f = feeds(teacher, TEXTS);
  const layer0 = '/encoder/layer.0/output/Add_output_0';
  const t = await outputs(teacher, f, [layer0, 'logits']);
  const s = await outputs(student, f, ['logits']);
  // Independent reference: masked mean of layer 0's output -> tanh(x W + b) -> L2 normalise -> classifier, in plain JS.
  const P = (k: string): Float32Array => paramValues(teacher, k) as Float32Array;
  const [Wp, bp, Wc, bc] = ['pooler.dense.weight', 'pooler.dense.bias', 'classifier.weight', 'classifier.bias'].map(P);
  const B = TEXTS.length,
    S = f.input_ids.dims[1],
    H = 512,
    C = LABELS.length;
  const mask = f.attention_mask.data as BigInt64Array;
  const x = t[layer0];
  let worst = 0;
  for (let b = 0; b < B; b++) {
    const mean = new Float64Array(H);
    let n = 0;
    for (let q = 0; q < S; q++) {
      if (mask[b * S + q] === 0n) continue;
      n++;
      for (let h = 0; h < H; h++) mean[h] += x[(b * S + q) * H + h];
    }
    for (let h = 0; h < H; h++) mean[h] /= Math.max(n, 1);
    const pooled = Array.from({ length: H }, (_, o) => {
      let a = bp[o];
      for (let h = 0; h < H; h++) a += mean[h] * Wp[h * H + o];
      return Math.tanh(a);
    });
    const norm = Math.sqrt(
      Math.max(
        pooled.reduce((a, v) => a + v * v, 0),
        1e-12,
      ),
    );
    for (let c = 0; c < C; c++) {
      let a = bc[c];
      for (let h = 0; h < H; h++) a += (pooled[h] / norm) * Wc[h * C + c];
      worst = Math.max(worst, Math.abs(a - s.logits[b * C + c]));
    }
  }
  assert.ok(worst < 1e-5, `max |logit - reference| ${worst}`);
  assert.ok(
    t.logits.some((v, i) => Math.abs(v - s.logits[i]) > 1e-4),
    'layer 1 did matter to the teacher',
  );
  // studentFromTeacher takes the same route for this teacher when no width is given.
  assert.deepEqual(
    [...studentFromTeacher(teacher, { layers: 1 }).params.keys()].sort(),
    [...student.params.keys()].sort(),
  );
  assert.throws(
    () => removeLayers(teacher, [0]),
    /encoder layer 0 of graph 'use_lite' cannot be removed: it changes the width: its output \/encoder\/layer\.0\/output\/Add_output_0 has shape \[batch, seq, 512\] but none of its inputs \(\/embeddings\/Add_1_output_0 \[batch, seq, 256\], \/attention_bias\/Unsqueeze_output_0 \[batch, 1, 1, seq\]\) does/,
  );
});

test('distillTextClassifier on a USE-lite teacher: teacher-graph init, reported; FFN pruning narrows the kept layer', async () => {
  const labels = [0, 0, 1, 1, 2, 2];
  const r = await distillTextClassifier(teacher, {
    layers: 1,
    intermediate: 512,
    train: { texts: TEXTS, labels },
    epochs: 1,
    batchSize: 6,
    iterations: 2,
    throughputIterations: 1,
  });
  assert.deepEqual(r.init, {
    kind: 'teacher-graph',
    teacherLayers: [0],
    copiedParams: r.student.params.size,
    hidden: 512,
    layers: 1,
    heads: 0,
    removedLayers: [1],
    intermediate: 512,
  });
  assert.deepEqual(r.student.params.get('encoder.layer.0.intermediate.dense.weight')!.shape, [512, 512]);
  assert.deepEqual(r.student.params.get('encoder.layer.0.output.dense.weight')!.shape, [512, 512]);
  // Teacher minus layer 1 (3 x 512² attention + 512² output + 2 x 512·1536 FFN, biases, 2 LayerNorms) minus 1024 FFN units of layer 0.
  const layer1 = 4 * 512 * 512 + 4 * 512 + 2 * 512 * 1536 + 1536 + 512 + 4 * 512;
  const ffnCut = 1024 * (512 + 1 + 512);
  assert.equal(r.report.teacher.params - r.report.student.params, layer1 + ffnCut);
  assert.equal(r.report.student.params, countParams(r.student).total);
  assert.ok(r.report.student.bytesOnDisk < r.report.teacher.bytesOnDisk);
});
