import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelFileError } from '../../src/errors.ts';
import { countParams, paramValues, type Model } from '../../src/models/model.ts';
import { bertConfig, buildBert, parseBertConfig, type BertConfig } from '../../src/models/zoo/bert.ts';
import { feeds, runModel, tinyConfig, wordPiece } from './fixtures.ts';

/** erf by its Maclaurin series (|x| < 3) and continued fraction (beyond): ~1e-14 in float64, independent of ORT's. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = 0;
    let term = ax;
    for (let n = 0; n < 80; n++) {
      sum += term / (2 * n + 1);
      term *= (-ax * ax) / (n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f));
}

type Mat = Float64Array[];

/** Plain float64 BERT forward over the model's parameters (graph layout: linear weights [in, out]). */
function referenceBert(
  model: Model,
  cfg: BertConfig,
  ids: number[][],
  mask: number[][],
  tt: number[][],
): { hidden: Mat[]; pooled?: Float64Array[]; logits?: Float64Array[] | Mat[] } {
  const P = (k: string): Float64Array => Float64Array.from(paramValues(model, k) as Float32Array);
  const pre = model.task === 'sentence-embedding' ? '' : 'bert.';
  const H = cfg.hidden_size;
  const nh = cfg.num_attention_heads;
  const hd = H / nh;
  const linear = (x: Mat, path: string, inF: number, outF: number): Mat => {
    const w = P(`${path}.weight`);
    const b = P(`${path}.bias`);
    return x.map((row) => {
      const out = Float64Array.from(b);
      for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) out[o] += row[i] * w[i * outF + o];
      return out;
    });
  };
  const ln = (x: Mat, path: string): Mat => {
    const g = P(`${path}.weight`);
    const b = P(`${path}.bias`);
    return x.map((row) => {
      const mean = row.reduce((s, v) => s + v, 0) / row.length;
      const v = row.reduce((s, x2) => s + (x2 - mean) ** 2, 0) / row.length;
      return row.map((x2, i) => ((x2 - mean) / Math.sqrt(v + cfg.layer_norm_eps)) * g[i] + b[i]);
    });
  };
  const word = P(`${pre}embeddings.word_embeddings.weight`);
  const pos = P(`${pre}embeddings.position_embeddings.weight`);
  const typ = P(`${pre}embeddings.token_type_embeddings.weight`);
  const hidden: Mat[] = [];
  for (let bi = 0; bi < ids.length; bi++) {
    const S = ids[bi].length;
    let x: Mat = ids[bi].map((id, s) => {
      const r = new Float64Array(H);
      for (let h = 0; h < H; h++) r[h] = word[id * H + h] + typ[tt[bi][s] * H + h] + pos[s * H + h];
      return r;
    });
    x = ln(x, `${pre}embeddings.LayerNorm`);
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const L = `${pre}encoder.layer.${l}`;
      const q = linear(x, `${L}.attention.self.query`, H, H);
      const k = linear(x, `${L}.attention.self.key`, H, H);
      const v = linear(x, `${L}.attention.self.value`, H, H);
      const ctx: Mat = Array.from({ length: S }, () => new Float64Array(H));
      for (let h = 0; h < nh; h++) {
        for (let i = 0; i < S; i++) {
          const scores = Array.from({ length: S }, (_, j) => {
            let d = 0;
            for (let e = 0; e < hd; e++) d += q[i][h * hd + e] * k[j][h * hd + e];
            return mask[bi][j] ? d / Math.sqrt(hd) : -Infinity;
          });
          const m = Math.max(...scores);
          const ex = scores.map((s) => Math.exp(s - m));
          const z = ex.reduce((a, b) => a + b, 0);
          for (let j = 0; j < S; j++) for (let e = 0; e < hd; e++) ctx[i][h * hd + e] += (ex[j] / z) * v[j][h * hd + e];
        }
      }
      const a = ln(
        linear(ctx, `${L}.attention.output.dense`, H, H).map((r, i) => r.map((y, j) => y + x[i][j])),
        `${L}.attention.output.LayerNorm`,
      );
      const inter = linear(a, `${L}.intermediate.dense`, H, cfg.intermediate_size).map((r) =>
        r.map((y) => 0.5 * y * (1 + erf(y / Math.SQRT2))),
      );
      x = ln(
        linear(inter, `${L}.output.dense`, cfg.intermediate_size, H).map((r, i) => r.map((y, j) => y + a[i][j])),
        `${L}.output.LayerNorm`,
      );
    }
    hidden.push(x);
  }
  if (model.task === 'sequence-classification') {
    const pooled = hidden.map((x) => linear([x[0]], `${pre}pooler.dense`, H, H)[0].map(Math.tanh));
    return { hidden, pooled, logits: pooled.map((p) => linear([p], 'classifier', H, cfg.num_labels)[0]) };
  }
  if (model.task === 'token-classification')
    return { hidden, logits: hidden.map((x) => linear(x, 'classifier', H, cfg.num_labels)) };
  return { hidden };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs reference ${expected[i]}`,
    );
  }
}

const TEXTS = ['the cat sat on the mat.', 'hello world!', 'unaffable cats'];

for (const task of ['sequence-classification', 'token-classification', 'sentence-embedding'] as const) {
  test(`zoo BERT (${task}) matches a plain float64 implementation, padding masked`, async () => {
    const cfg = tinyConfig({ hidden_act: 'gelu' });
    const model = buildBert(cfg, { task, seed: 11 });
    const enc = wordPiece().encodeBatch(TEXTS);
    // Distinct token types in the second half of row 0, to exercise the token-type table.
    for (let s = 4; s < enc.lengths[0]; s++) enc.tokenTypeIds[s] = 1n;
    const rows = (a: BigInt64Array, bi: number, n: number): number[] =>
      Array.from(a.subarray(bi * enc.seq, bi * enc.seq + n), Number);
    const ids = enc.lengths.map((n, bi) => rows(enc.inputIds, bi, n));
    const tt = enc.lengths.map((n, bi) => rows(enc.tokenTypeIds, bi, n));
    const mask = ids.map((r) => r.map(() => 1));
    const out = await runModel(model, feeds(enc));
    // Reference on unpadded rows: a padded forward must give the same values at real positions.
    const ref = referenceBert(model, cfg, ids, mask, tt);
    const H = cfg.hidden_size;
    if (task === 'sequence-classification') {
      assertClose(
        out.logits.data as Float32Array,
        (ref.logits as Float64Array[]).flatMap((r) => [...r]),
        2e-5,
        'logits',
      );
    } else if (task === 'token-classification') {
      const got = out.logits.data as Float32Array;
      const L = cfg.num_labels;
      (ref.logits as Mat[]).forEach((rowsRef, bi) =>
        rowsRef.forEach((r, s) =>
          assertClose(got.subarray((bi * enc.seq + s) * L, (bi * enc.seq + s + 1) * L), r, 2e-5, `logits[${bi},${s}]`),
        ),
      );
    } else {
      const hid = out.last_hidden_state.data as Float32Array;
      ref.hidden.forEach((x, bi) =>
        x.forEach((r, s) =>
          assertClose(hid.subarray((bi * enc.seq + s) * H, (bi * enc.seq + s + 1) * H), r, 2e-5, `hidden[${bi},${s}]`),
        ),
      );
      const emb = out.sentence_embedding.data as Float32Array;
      ref.hidden.forEach((x, bi) => {
        const mean = new Float64Array(H);
        for (const r of x) for (let h = 0; h < H; h++) mean[h] += r[h] / x.length;
        assertClose(emb.subarray(bi * H, (bi + 1) * H), mean, 2e-5, `sentence_embedding[${bi}]`);
      });
    }
  });
}

test('HF names, shapes and counts: a BertForSequenceClassification-shaped parameter table', () => {
  const cfg = tinyConfig();
  const m = buildBert(cfg, { task: 'sequence-classification' });
  const H = 16,
    I = 24,
    V = cfg.vocab_size;
  assert.deepEqual(m.params.get('bert.encoder.layer.1.attention.self.query.weight')?.shape, [H, H]);
  assert.equal(m.params.get('bert.encoder.layer.1.attention.self.query.weight')?.layout, 'in_out');
  assert.deepEqual(m.params.get('bert.encoder.layer.0.intermediate.dense.weight')?.shape, [H, I]);
  assert.deepEqual(m.params.get('classifier.weight')?.shape, [H, 3]);
  assert.ok(m.graph.nodes.some((n) => n.name === '/bert/encoder/layer.1/attention/self/query/MatMul'));
  const perLayer = 4 * (H * H + H) + 2 * 2 * H + (H * I + I) + (I * H + H);
  const expected = V * H + 24 * H + 2 * H + 2 * H + 2 * perLayer + (H * H + H) + (H * 3 + 3);
  assert.deepEqual(countParams(m), { total: expected, trainable: expected });
  // Same seed, same weights; the padding row of the word embeddings is zero as HF initialises it.
  const again = buildBert(cfg, { task: 'sequence-classification' });
  assert.deepEqual(paramValues(again, 'bert.pooler.dense.weight'), paramValues(m, 'bert.pooler.dense.weight'));
  assert.ok(
    Array.from(paramValues(m, 'bert.embeddings.word_embeddings.weight').subarray(0, H) as Float32Array).every(
      (v) => v === 0,
    ),
  );
  const w = paramValues(m, 'bert.encoder.layer.0.output.dense.weight') as Float32Array;
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std - 0.2) < 0.03, `init std ${std} should be initializer_range 0.2`);
});

test('config.json validation names the field at fault', () => {
  assert.throws(
    () => parseBertConfig({ model_type: 'gpt2' }, 'x/config.json'),
    (e: unknown) =>
      e instanceof ModelFileError &&
      e.context.field === 'model_type' &&
      /x\/config\.json: model_type 'gpt2' is not supported/.test(e.message),
  );
  assert.throws(
    () => bertConfig({ hidden_size: 10, num_attention_heads: 3 }),
    /hidden_size 10 is not a multiple of num_attention_heads 3/,
  );
  assert.throws(
    () => parseBertConfig({ model_type: 'bert', hidden_act: 'swish2' }),
    (e: unknown) => e instanceof ModelFileError && e.context.field === 'hidden_act',
  );
  assert.throws(
    () => parseBertConfig({ model_type: 'bert', vocab_size: -1 }),
    /field 'vocab_size' must be an integer >= 1, found -1/,
  );
  assert.throws(
    () => parseBertConfig({ model_type: 'bert', num_labels: 3, id2label: { 0: 'a', 1: 'b' } }),
    /num_labels 3 disagrees with id2label's 2 entries/,
  );
  assert.equal(parseBertConfig({ model_type: 'bert', id2label: { 0: 'neg', 1: 'neu', 2: 'pos' } }).num_labels, 3);
});
