import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ModelFileError } from '../../src/errors.ts';
import { loadHfModel, saveHfModel, stateDict } from '../../src/models/hf/load.ts';
import { nodeNameToModulePath } from '../../src/models/hf/names.ts';
import { fromPyTorchLayout, paramValues, toPyTorchLayout } from '../../src/models/model.ts';
import { loadBase } from '../../src/models/resolve.ts';
import { buildBert } from '../../src/models/zoo/bert.ts';
import { readModel } from '../../src/onnx/io.ts';
import { readSafetensors } from '../../src/onnx/safetensors.ts';
import { tensorToArray } from '../../src/onnx/tensor.ts';
import { feeds, maxAbsDiff, runModel, tempDir, tinyConfig, wordPiece, writeHfFixture } from './fixtures.ts';

const TEXTS = ['the cat sat on the mat.', 'hello world!', 'unaffable'];

for (const task of ['sequence-classification', 'token-classification', 'sentence-embedding'] as const) {
  test(`HF folder (${task}): safetensors and Optimum-style ONNX routes both reproduce the zoo model`, async () => {
    const zoo = {
      ...buildBert(tinyConfig({ id2label: { 0: 'neg', 1: 'neu', 2: 'pos' } }), { task, seed: 7 }),
      tokenizer: wordPiece(),
    };
    const dir = join(await tempDir('hf'), 'model');
    await writeHfFixture(zoo, dir);

    // The fixture is in HF's form: PyTorch layout in safetensors, Optimum's form in the ONNX file.
    const st = await readSafetensors(join(dir, 'model.safetensors'));
    const pre = task === 'sentence-embedding' ? '' : 'bert.';
    assert.deepEqual(st.tensors.get(`${pre}encoder.layer.0.intermediate.dense.weight`)?.dims, [24, 16]);
    assert.equal(st.metadata.format, 'pt');
    const onnx = await readModel(join(dir, 'onnx', 'model.onnx'));
    assert.deepEqual(onnx.opsetImports.find((o) => o.domain === '')?.version, 14);
    assert.ok(!onnx.graph.nodes.some((n) => n.opType === 'LayerNormalization'));
    assert.ok([...onnx.graph.initializers.keys()].some((k) => /^onnx::MatMul_\d+$/.test(k)));
    assert.ok(
      [...onnx.graph.initializers.values()].some((t) => t.external !== undefined),
      'weights should be external data',
    );

    const viaSt = await loadHfModel(dir);
    const viaOnnx = await loadHfModel(dir, { prefer: 'onnx' });
    assert.equal(viaSt.source.kind, 'safetensors');
    assert.equal(viaOnnx.source.kind, 'onnx');
    assert.equal(viaSt.task, task);
    assert.equal(viaOnnx.task, task);
    if (task !== 'sentence-embedding') assert.deepEqual(viaOnnx.labels, ['neg', 'neu', 'pos']);
    // Same module paths by both routes, with the anonymous MatMul weights recovered from node names.
    assert.deepEqual([...viaOnnx.params.keys()].sort(), [...zoo.params.keys()].sort());
    const q = viaOnnx.params.get(`${pre}encoder.layer.1.attention.self.query.weight`);
    assert.match(q?.initializer ?? '', /^onnx::MatMul_\d+$/);
    assert.equal(q?.layout, 'in_out');
    assert.deepEqual(
      paramValues(viaOnnx, `${pre}encoder.layer.1.attention.self.query.weight`),
      paramValues(zoo, `${pre}encoder.layer.1.attention.self.query.weight`),
    );

    // PyTorch-layout state dicts agree by both routes (Gemm heads are [out, in] already, MatMul weights transposed).
    const sdZoo = stateDict(zoo);
    for (const [k, t] of stateDict(viaOnnx)) {
      assert.deepEqual(t.dims, sdZoo.get(k)?.dims, k);
      assert.deepEqual(tensorToArray(t), tensorToArray(sdZoo.get(k) ?? assert.fail(k)), k);
    }
    if (task === 'sequence-classification') assert.equal(viaOnnx.params.get('classifier.weight')?.layout, 'out_in');

    const enc = viaSt.tokenizer?.encodeBatch(TEXTS);
    assert.ok(enc);
    const f = feeds(enc);
    const want = await runModel(zoo, f);
    for (const [route, m] of [
      ['safetensors', viaSt],
      ['onnx', viaOnnx],
    ] as const) {
      const got = await runModel(m, f);
      for (const k of Object.keys(want)) {
        const d = maxAbsDiff(got[k].data as Float32Array, want[k].data as Float32Array);
        // safetensors rebuilds the same graph: bit-identical. The ONNX route computes LayerNorm in another form.
        assert.ok(route === 'safetensors' ? d === 0 : d < 1e-5, `${route} ${k}: max diff ${d}`);
      }
    }
  });
}

test('PyTorch layout mapping is exact both ways and safetensors round-trips bit for bit', async () => {
  const zoo = { ...buildBert(tinyConfig(), { task: 'sequence-classification', seed: 3 }), tokenizer: wordPiece() };
  const p = zoo.params.get('bert.encoder.layer.0.attention.self.key.weight');
  assert.ok(p);
  const v = paramValues(zoo, p.path) as Float32Array;
  const pt = toPyTorchLayout(p, v) as Float32Array;
  // out-major: PyTorch W[o][i] is graph W[i][o].
  assert.equal(pt[2 * 16 + 5], v[5 * 16 + 2]);
  assert.deepEqual(fromPyTorchLayout(p, pt), v);
  const dir = join(await tempDir('rt'), 'm');
  await saveHfModel(zoo, dir);
  const back = await loadHfModel(dir);
  for (const k of zoo.params.keys()) assert.deepEqual(paramValues(back, k), paramValues(zoo, k), k);
  const dir2 = join(await tempDir('rt2'), 'm');
  await saveHfModel(back, dir2);
  assert.deepEqual(readFileSync(join(dir2, 'model.safetensors')), readFileSync(join(dir, 'model.safetensors')));
  assert.equal(stateDict(zoo).get('classifier.weight')?.dims.join(','), '3,16');
});

test('a base checkpoint (BertModel names, no head) loads into a classification model with a fresh head', async () => {
  const base = { ...buildBert(tinyConfig(), { task: 'sentence-embedding', seed: 5 }), tokenizer: wordPiece() };
  const dir = join(await tempDir('base'), 'm');
  await saveHfModel(base, dir);
  const cls = await loadHfModel(dir, { task: 'sequence-classification', seed: 9 });
  assert.deepEqual(cls.newlyInitialized, [
    'bert.pooler.dense.weight',
    'bert.pooler.dense.bias',
    'classifier.weight',
    'classifier.bias',
  ]);
  assert.deepEqual(
    paramValues(cls, 'bert.encoder.layer.1.output.dense.weight'),
    paramValues(base, 'encoder.layer.1.output.dense.weight'),
  );
});

test('Optimum node names map to module paths', () => {
  assert.equal(
    nodeNameToModulePath('/bert/encoder/layer.3/attention/self/query/MatMul'),
    'bert.encoder.layer.3.attention.self.query',
  );
  assert.equal(nodeNameToModulePath('/encoder/layer.11/output/dense/Add_1'), 'encoder.layer.11.output.dense');
  assert.equal(nodeNameToModulePath('MatMul_12'), null);
});

test('a bare .onnx file resolves through --base with config and tokenizer from its folder', async () => {
  const zoo = { ...buildBert(tinyConfig(), { task: 'sequence-classification', seed: 7 }), tokenizer: wordPiece() };
  const dir = join(await tempDir('bare'), 'm');
  await writeHfFixture(zoo, dir);
  const m = await loadBase(join(dir, 'onnx', 'model.onnx'));
  assert.equal(m.source.kind, 'onnx');
  assert.ok(m.tokenizer);
  const enc = wordPiece().encodeBatch(TEXTS);
  const d = maxAbsDiff(
    (await runModel(m, feeds(enc))).logits.data as Float32Array,
    (await runModel(zoo, feeds(enc))).logits.data as Float32Array,
  );
  assert.ok(d < 1e-5, `max diff ${d}`);
});

test('bad model folders fail with ModelFileErrors naming the file and field', async () => {
  const zoo = { ...buildBert(tinyConfig(), { task: 'sequence-classification', seed: 1 }), tokenizer: wordPiece() };
  const root = await tempDir('bad');
  const good = join(root, 'good');
  await writeHfFixture(zoo, good, { onnx: false });
  const variant = (name: string): string => {
    const d = join(root, name);
    mkdirSync(d);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'])
      copyFileSync(join(good, f), join(d, f));
    return d;
  };
  const isErr =
    (file: string, field: string, msg: RegExp) =>
    (e: unknown): boolean => {
      assert.ok(e instanceof ModelFileError, String(e));
      assert.ok(e.context.file?.endsWith(file), `file ${e.context.file} should end with ${file}`);
      assert.equal(e.context.field, field);
      assert.match(e.message, msg);
      return true;
    };

  const noCfg = variant('nocfg');
  rmSync(join(noCfg, 'config.json'));
  await assert.rejects(loadHfModel(noCfg), isErr('config.json', 'config.json', /config\.json: file not found/));

  const noW = variant('noweights');
  rmSync(join(noW, 'model.safetensors'));
  await assert.rejects(
    loadHfModel(noW),
    isErr('noweights', 'model.safetensors', /no weights: expected model\.safetensors or onnx\/model\.onnx/),
  );

  const shapes = variant('shapes');
  const cfg = JSON.parse(readFileSync(join(shapes, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(shapes, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 32 }));
  await assert.rejects(
    loadHfModel(shapes),
    isErr(
      'model.safetensors',
      'bert.encoder.layer.0.intermediate.dense.weight',
      /tensor 'bert\.encoder\.layer\.0\.intermediate\.dense\.weight' has shape \[24, 16\] but config\.json implies \[32, 16\] \(hidden_size, intermediate_size\)/,
    ),
  );

  const layers = variant('layers');
  writeFileSync(join(layers, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
  await assert.rejects(
    loadHfModel(layers),
    isErr(
      'model.safetensors',
      'bert.encoder.layer.2.attention.self.query.weight',
      /is missing \(config\.json describes 3 layers/,
    ),
  );

  const arch = variant('arch');
  writeFileSync(join(arch, 'config.json'), JSON.stringify({ ...cfg, model_type: 'llama' }));
  await assert.rejects(
    loadHfModel(arch),
    isErr('config.json', 'model_type', /model_type 'llama' is not supported \(supported: bert\)/),
  );

  const tok = variant('tok');
  const tj = JSON.parse(readFileSync(join(tok, 'tokenizer.json'), 'utf8')) as { model: Record<string, unknown> };
  tj.model.type = 'CharLevel';
  writeFileSync(join(tok, 'tokenizer.json'), JSON.stringify(tj));
  await assert.rejects(
    loadHfModel(tok),
    isErr(
      'tokenizer.json',
      'model.type',
      /model\.type 'CharLevel' is not a supported tokenizer model \(supported: WordPiece, BPE, Unigram\)/,
    ),
  );

  const badJson = variant('badjson');
  writeFileSync(join(badJson, 'config.json'), '{"model_type": "bert",');
  await assert.rejects(loadHfModel(badJson), isErr('config.json', undefined as unknown as string, /invalid JSON/));

  // ONNX route: config.json disagreeing with the graph.
  const onnxDir = join(root, 'onnxbad');
  await writeHfFixture(zoo, onnxDir, { safetensors: false });
  writeFileSync(join(onnxDir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 99 }));
  await assert.rejects(
    loadHfModel(onnxDir),
    isErr('config.json', 'vocab_size', /has shape \[20, 16\] but config\.json says vocab_size 99/),
  );
  assert.equal(
    tensorToArray(
      (await readModel(join(onnxDir, 'onnx', 'model.onnx'))).graph.initializers.get('bert.pooler.dense.bias') ??
        assert.fail('no pooler bias'),
    ).length,
    16,
  );
});
