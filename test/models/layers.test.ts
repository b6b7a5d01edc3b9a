/**
 * Layer surgery on module-scoped graphs (src/models/layers.ts): removing a layer equals a reference built without
 * it (the zoo's own dropLayers on an Optimum-style BERT export; a tiny USE-lite-like model built with and without
 * its second layer), the error cases, FFN pruning, and the USE-lite teacher-graph student.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoverParams } from '../../src/models/hf/names.ts';
import { toOptimumOnnx } from '../../src/models/hf/export.ts';
import { layerScopes, pruneFfn, removeLayers } from '../../src/models/layers.ts';
import { paramValues, toOnnxModel, withParamValues, type Model, type Parameter } from '../../src/models/model.ts';
import { dropLayers } from '../../src/models/modules.ts';
import { bertConfig, buildBert } from '../../src/models/zoo/bert.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { Session, ort } from '../../src/runtime/session.ts';

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

async function run(model: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await Session.create(toOnnxModel(model), { intraOpThreads: 1 });
  try {
    const out = await s.run(Object.fromEntries(s.inputNames.map((k) => [k, feeds[k]])), ['logits']);
    return out.logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

function textFeeds(batch: number, seq: number, vocab: number, seed: number): Record<string, ort.Tensor> {
  const rnd = lcg(seed);
  const ids = new BigInt64Array(batch * seq),
    mask = new BigInt64Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const len = 2 + Math.floor(rnd() * (seq - 1));
    for (let t = 0; t < len; t++) {
      ids[b * seq + t] = BigInt(1 + Math.floor(rnd() * (vocab - 1)));
      mask[b * seq + t] = 1n;
    }
  }
  const d = [batch, seq];
  return {
    input_ids: new ort.Tensor('int64', ids, d),
    attention_mask: new ort.Tensor('int64', mask, d),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(batch * seq), d),
  };
}

/**
 * A USE-lite-shaped classifier: embeddings (width E), layer 0 changes the width E -> H with a projected residual,
 * layers 1.. keep H (pre-LayerNorm attention-free blocks: x += W2·relu(W1·LN(x))), masked mean, head. With
 * `layers: [0]` it is built without layer 1 from the same weights: the reference for removing it.
 */
function useLike(opts: { E?: number; H?: number; I?: number; layers?: number[]; seed?: number } = {}): Model {
  const E = opts.E ?? 6,
    H = opts.H ?? 8,
    I = opts.I ?? 12,
    V = 20,
    C = 3;
  const layers = opts.layers ?? [0, 1, 2];
  const rnd = lcg(opts.seed ?? 5);
  const values = new Map<string, Float32Array>();
  // Every weight is drawn up front for all three layers, so a model without a layer holds the same values as one with it.
  const draw = (path: string, n: number, scale = 0.5): Float32Array => {
    const v = Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * scale);
    values.set(path, v);
    return v;
  };
  const spec: Array<[string, number[]]> = [['embeddings.word_embeddings.weight', [V, E]]];
  for (let l = 0; l < 3; l++) {
    const din = l === 0 ? E : H;
    spec.push(
      [`encoder.layer.${l}.ffn.layer_norm.weight`, [din]],
      [`encoder.layer.${l}.ffn.layer_norm.bias`, [din]],
      [`encoder.layer.${l}.intermediate.dense.weight`, [din, I]],
      [`encoder.layer.${l}.intermediate.dense.bias`, [I]],
      [`encoder.layer.${l}.output.dense.weight`, [I, H]],
      [`encoder.layer.${l}.output.dense.bias`, [H]],
    );
    if (l === 0) spec.push(['encoder.layer.0.residual.dense.weight', [E, H]]);
  }
  spec.push(['classifier.weight', [H, C]], ['classifier.bias', [C]]);
  for (const [p, d] of spec)
    draw(
      p,
      d.reduce((a, b) => a * b, 1),
    );
  const b = new GraphBuilder('use_like');
  const params = new Map<string, Parameter>();
  const P = (path: string): string => {
    const dims = spec.find(([p]) => p === path)![1];
    b.initializer(path, 'float32', values.get(path)!, dims);
    params.set(path, {
      path,
      initializer: path,
      dtype: 'float32',
      shape: dims,
      trainable: true,
      role: path.endsWith('bias') ? 'bias' : 'weight',
      layout: dims.length === 2 && !path.startsWith('embeddings') ? 'in_out' : 'same',
    });
    return path;
  };
  const ids = b.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = b.cast(b.input('attention_mask', 'int64', ['batch', 'seq']), 'float32');
  let x = b.scope('embeddings', () => b.gather(P('embeddings.word_embeddings.weight'), ids, 0));
  for (const l of layers) {
    const L = `encoder.layer.${l}`;
    const xin = x;
    const h = b.scope(`${L}.ffn.layer_norm`, () =>
      b.layerNorm(xin, P(`${L}.ffn.layer_norm.weight`), P(`${L}.ffn.layer_norm.bias`)),
    );
    const f = b.scope(`${L}.intermediate`, () =>
      b.relu(
        b.scope('dense', () =>
          b.add(b.matmul(h, P(`${L}.intermediate.dense.weight`)), P(`${L}.intermediate.dense.bias`)),
        ),
      ),
    );
    const o = b.scope(`${L}.output.dense`, () =>
      b.add(b.matmul(f, P(`${L}.output.dense.weight`)), P(`${L}.output.dense.bias`)),
    );
    const res =
      l === 0 ? b.scope(`${L}.residual.dense`, () => b.matmul(xin, P('encoder.layer.0.residual.dense.weight'))) : xin;
    x = b.scope(`${L}.output`, () => b.add(res, o));
  }
  const pooled = b.scope('pooler', () => {
    const m = b.unsqueeze(mask, [2]);
    return b.div(b.reduceSum(b.mul(x, m), [1], false), b.op('Max', [b.reduceSum(mask, [1], true), b.scalar(1)]));
  });
  b.node('Add', [b.matmul(pooled, P('classifier.weight')), P('classifier.bias')], {}, { outputs: ['logits'] });
  b.output('logits', 'float32', ['batch', C]);
  return {
    architecture: 'use-like',
    task: 'sequence-classification',
    graph: b.graph,
    params,
    config: { hidden_sizes: layers.map(() => H), num_hidden_layers: layers.length },
    source: { kind: 'onnx' },
  };
}

test('removeLayers on an Optimum-style BERT export equals the zoo rebuild without those layers; kept layers renumbered', async () => {
  const zoo = buildBert(
    bertConfig({
      vocab_size: 30,
      hidden_size: 16,
      num_hidden_layers: 4,
      num_attention_heads: 2,
      intermediate_size: 24,
      max_position_embeddings: 12,
      num_labels: 3,
    }),
    { task: 'sequence-classification', seed: 3 },
  );
  const onnx = toOptimumOnnx(zoo);
  // What loading the bare .onnx gives: anonymous MatMul weights, parameters recovered from node names.
  const exported: Model = {
    architecture: 'onnx',
    task: 'sequence-classification',
    graph: onnx.graph,
    params: recoverParams(onnx.graph),
    config: {},
    source: { kind: 'onnx' },
  };
  assert.deepEqual(layerScopes(exported.graph), [0, 1, 2, 3]);
  const cut = removeLayers(exported, [1, 3]);
  const ref = dropLayers(zoo, [1, 3]);
  const feeds = textFeeds(3, 10, 30, 7);
  const d = maxDiff(await run(cut, feeds), await run(ref, feeds));
  assert.ok(d < 1e-5, `max |logit difference| ${d}`);
  assert.deepEqual(layerScopes(cut.graph), [0, 1]);
  assert.ok(!cut.graph.nodes.some((n) => /layer\.[23]\//.test(n.name)), 'no node of layers 2, 3 left');
  // Student layer 1 is teacher layer 2, under the renumbered path (anonymous initializers keep their names).
  const q = [...cut.params.values()].find((p) => p.path === 'bert.encoder.layer.1.attention.self.query.weight')!;
  assert.ok(q.initializer.startsWith('onnx::MatMul_'), q.initializer);
  assert.deepEqual(paramValues(cut, q.path), paramValues(zoo, 'bert.encoder.layer.2.attention.self.query.weight'));
  assert.deepEqual(
    paramValues(cut, 'bert.encoder.layer.1.output.LayerNorm.bias'),
    paramValues(zoo, 'bert.encoder.layer.2.output.LayerNorm.bias'),
  );
  assert.deepEqual(
    [...cut.params.keys()].sort(),
    [...recoverParams(cut.graph).keys()].sort(),
    'parameter table matches the graph',
  );
  assert.equal(cut.params.size, exported.params.size - 2 * 16);
  // The input is untouched.
  assert.deepEqual(layerScopes(exported.graph), [0, 1, 2, 3]);
  assert.ok(exported.params.has('bert.encoder.layer.3.output.dense.bias'));
});

test('removing the width-preserving layer of a USE-lite-like model equals the model built without it', async () => {
  const full = useLike();
  const feeds = textFeeds(4, 7, 20, 11);
  const cut = removeLayers(full, [1]);
  const ref = useLike({ layers: [0, 2] });
  // Node names differ (layer 2 became layer 1) but the computation is the same.
  assert.equal(maxDiff(await run(cut, feeds), await run(ref, feeds)), 0);
  assert.deepEqual(layerScopes(cut.graph), [0, 1]);
  assert.deepEqual(
    paramValues(cut, 'encoder.layer.1.intermediate.dense.weight'),
    paramValues(full, 'encoder.layer.2.intermediate.dense.weight'),
  );
  assert.ok(!cut.params.has('encoder.layer.2.output.dense.bias'));
  assert.deepEqual(cut.config, { hidden_sizes: [8, 8], num_hidden_layers: 2 });
  const last = removeLayers(full, [1, 2], { renumber: false });
  assert.equal(maxDiff(await run(last, feeds), await run(useLike({ layers: [0] }), feeds)), 0);
  assert.ok(
    ![...last.graph.initializers.keys()].some(
      (k) => k.startsWith('encoder.layer.1.') || k.startsWith('encoder.layer.2.'),
    ),
    'their initializers are pruned',
  );
});

test('removeLayers errors: a width-changing layer, a missing layer, every layer, a graph without layer scopes', () => {
  const full = useLike();
  assert.throws(
    () => removeLayers(full, [0]),
    (e: Error) => {
      assert.equal(e.name, 'ConfigError');
      assert.match(
        e.message,
        /^encoder layer 0 of graph 'use_like' cannot be removed: it changes the width: its output \/encoder\/layer\.0\/output\/Add_output_0 has shape \[batch, seq, 8\] but none of its inputs \(\/embeddings\/Gather_output_0 \[batch, seq, 6\]\) does/,
      );
      return true;
    },
  );
  assert.throws(
    () => removeLayers(full, [5]),
    /^ConfigError: encoder layer 5 is not in graph 'use_like': its node names show layers 0, 1, 2$/,
  );
  assert.throws(() => removeLayers(full, [0, 1, 2]), /would leave no encoder layer/);
  const b = new GraphBuilder('flat');
  b.output(b.relu(b.input('x', 'float32', [2])), 'float32', [2]);
  assert.throws(
    () => removeLayers({ ...full, graph: b.graph }, [0]),
    /graph 'flat' has no encoder layer scopes \(node names like '\/encoder\/layer\.0\/\.\.\.'\)/,
  );
});

test('pruneFfn keeps the highest-magnitude units: exact when the dropped units have zero output rows', async () => {
  const I = 12,
    H = 8;
  const base = useLike({ I });
  // Units 1, 4, 5 and 9 of layer 2 write nothing: pruning them away must not change any output.
  const w2 = Float32Array.from(paramValues(base, 'encoder.layer.2.output.dense.weight') as Float32Array);
  for (const j of [1, 4, 5, 9]) w2.fill(0, j * H, (j + 1) * H);
  const model = withParamValues(base, 'encoder.layer.2.output.dense.weight', w2);
  const pruned = pruneFfn(model, 2, 8);
  const feeds = textFeeds(3, 6, 20, 3);
  const d = maxDiff(await run(pruned, feeds), await run(model, feeds));
  assert.ok(d < 1e-6, `max |logit difference| ${d}`);
  const kept = [0, 2, 3, 6, 7, 8, 10, 11];
  const w1 = paramValues(model, 'encoder.layer.2.intermediate.dense.weight') as Float32Array;
  const n1 = paramValues(pruned, 'encoder.layer.2.intermediate.dense.weight') as Float32Array;
  assert.deepEqual(pruned.params.get('encoder.layer.2.intermediate.dense.weight')!.shape, [H, 8]);
  for (let i = 0; i < H; i++) kept.forEach((j, u) => assert.equal(n1[i * 8 + u], w1[i * I + j]));
  assert.deepEqual(
    Array.from(paramValues(pruned, 'encoder.layer.2.intermediate.dense.bias') as Float32Array),
    kept.map((j) => (paramValues(model, 'encoder.layer.2.intermediate.dense.bias') as Float32Array)[j]),
  );
  assert.deepEqual(pruned.params.get('encoder.layer.2.output.dense.weight')!.shape, [8, H]);
  // Fewer units than the zero ones changes outputs (a real approximation), but the graph still runs.
  assert.equal((await run(pruneFfn(model, 2, 3), feeds)).length, 9);
  assert.throws(() => pruneFfn(model, 2, 13), /encoder layer 2: keep must be 1\.\.12 FFN units, got 13/);
  assert.throws(() => pruneFfn(model, 7, 4), /encoder layer 7 has no FFN parameters/);
  assert.equal(paramValues(model, 'encoder.layer.2.output.dense.weight').length, I * H, 'input untouched');
});

test('sanity: the reference builder differs with and without a layer, and equals its removal when that layer writes zeros', async () => {
  const feeds = textFeeds(2, 5, 20, 1);
  assert.ok(maxDiff(await run(useLike(), feeds), await run(useLike({ layers: [0, 2] }), feeds)) > 1e-3);
  // A residual block whose output projection is all zeros is the identity, so the model then equals the one built
  // without that layer: the fixture is residual where removing a layer is meant to be exact.
  const H = 8,
    I = 12;
  const zeroed = withParamValues(
    withParamValues(useLike(), 'encoder.layer.1.output.dense.weight', new Float32Array(I * H)),
    'encoder.layer.1.output.dense.bias',
    new Float32Array(H),
  );
  assert.equal(maxDiff(await run(zeroed, feeds), await run(useLike({ layers: [0, 2] }), feeds)), 0);
});
