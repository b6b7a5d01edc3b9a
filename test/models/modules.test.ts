import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import {
  countParams,
  freeze,
  paramValues,
  trainableParams,
  trainOnly,
  unfreeze,
  toOnnxModel,
} from '../../src/models/model.ts';
import { addLayers, dropLayers, keepLayers, replaceHead } from '../../src/models/modules.ts';
import { loadHfModel } from '../../src/models/hf/load.ts';
import { buildBert } from '../../src/models/zoo/bert.ts';
import { buildCnn, cnnConfig } from '../../src/models/zoo/cnn.ts';
import { buildMlp, mlpConfig } from '../../src/models/zoo/mlp.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { feeds, maxAbsDiff, runModel, tempDir, tinyConfig, wordPiece, writeHfFixture } from './fixtures.ts';
import { join } from 'node:path';

const TEXTS = ['the cat sat on the mat.', 'hello world!'];

test('freeze / unfreeze / trainOnly by name pattern; patterns that match nothing list the modules', () => {
  const m = buildBert(tinyConfig(), { task: 'sequence-classification' });
  const f = freeze(m, ['embeddings', /layer\.0\./]);
  assert.ok(!f.params.get('bert.embeddings.word_embeddings.weight')?.trainable);
  assert.ok(!f.params.get('bert.encoder.layer.0.output.dense.bias')?.trainable);
  assert.ok(f.params.get('bert.encoder.layer.1.output.dense.bias')?.trainable);
  assert.ok(m.params.get('bert.embeddings.word_embeddings.weight')?.trainable, 'the input model is unchanged');
  assert.deepEqual(trainableParams(trainOnly(m, ['^classifier\\.'])), ['classifier.weight', 'classifier.bias']);
  assert.equal(trainableParams(unfreeze(f, ['embeddings'])).length, trainableParams(m).length - 16);
  assert.throws(
    () => freeze(m, ['decoder']),
    (e: unknown) =>
      e instanceof ConfigError &&
      /'decoder' matches no parameter; modules are: bert\.embeddings\.word_embeddings, /.test(e.message),
  );
});

test('replaceHead keeps the body bit for bit, gives a fresh head of the new width, and keeps frozen flags', async () => {
  const base = buildBert(tinyConfig(), { task: 'sentence-embedding', seed: 2 });
  const cls = replaceHead(freeze(base, ['embeddings']), {
    task: 'sequence-classification',
    labels: ['x', 'y', 'z', 'w'],
    seed: 3,
  });
  assert.equal(cls.task, 'sequence-classification');
  assert.deepEqual(cls.labels, ['x', 'y', 'z', 'w']);
  assert.deepEqual(cls.params.get('classifier.weight')?.shape, [16, 4]);
  assert.deepEqual(
    paramValues(cls, 'bert.encoder.layer.1.attention.self.value.weight'),
    paramValues(base, 'encoder.layer.1.attention.self.value.weight'),
  );
  assert.equal(cls.params.get('bert.embeddings.LayerNorm.weight')?.trainable, false);
  const out = await runModel(cls, feeds(wordPiece().encodeBatch(TEXTS)));
  assert.deepEqual(out.logits.dims, [2, 4]);
  // The encoder's hidden states are the base model's: the same [CLS] vector feeds the new pooler.
  const again = replaceHead(cls, { task: 'sentence-embedding' });
  const h1 = await runModel(again, feeds(wordPiece().encodeBatch(TEXTS)));
  const h0 = await runModel(base, feeds(wordPiece().encodeBatch(TEXTS)));
  assert.equal(maxAbsDiff(h1.sentence_embedding.data as Float32Array, h0.sentence_embedding.data as Float32Array), 0);
});

test('replaceHead on an imported ONNX encoder appends a head to last_hidden_state', async () => {
  const base = { ...buildBert(tinyConfig(), { task: 'sentence-embedding', seed: 2 }), tokenizer: wordPiece() };
  const dir = join(await tempDir('mod'), 'm');
  await writeHfFixture(base, dir, { safetensors: false });
  const onnx = await loadHfModel(dir);
  const tok = replaceHead(onnx, { task: 'token-classification', numLabels: 5 });
  assert.deepEqual(tok.newlyInitialized, ['classifier.weight', 'classifier.bias']);
  const out = await runModel(tok, feeds(wordPiece().encodeBatch(TEXTS)));
  assert.deepEqual(out.logits.dims.slice(0, 1).concat(out.logits.dims.slice(2)), [2, 5]);
  assert.throws(() => dropLayers(onnx, [0]), /needs a zoo-built model/);
});

test('dropLayers / keepLayers / addLayers renumber layers and carry weights by module path', () => {
  const m = buildBert(tinyConfig({ num_hidden_layers: 3 }), { task: 'sequence-classification', seed: 1 });
  const d = dropLayers(m, [1]);
  assert.equal(d.config.num_hidden_layers, 2);
  assert.deepEqual(
    paramValues(d, 'bert.encoder.layer.1.intermediate.dense.weight'),
    paramValues(m, 'bert.encoder.layer.2.intermediate.dense.weight'),
  );
  assert.deepEqual(paramValues(d, 'classifier.weight'), paramValues(m, 'classifier.weight'));
  assert.ok(!d.params.has('bert.encoder.layer.2.intermediate.dense.weight'));
  const k = keepLayers(m, 1);
  assert.equal(k.config.num_hidden_layers, 1);
  const a = addLayers(k, 2, 9);
  assert.equal(a.config.num_hidden_layers, 3);
  assert.deepEqual(
    paramValues(a, 'bert.encoder.layer.0.output.dense.weight'),
    paramValues(m, 'bert.encoder.layer.0.output.dense.weight'),
  );
  assert.notDeepEqual(
    paramValues(a, 'bert.encoder.layer.1.output.dense.weight'),
    paramValues(m, 'bert.encoder.layer.1.output.dense.weight'),
  );
  assert.equal(countParams(a).total, countParams(m).total);
  assert.throws(() => dropLayers(m, [3]), /layer index 3 is out of range: the encoder has layers 0\.\.2/);
});

test('MLP forward equals a plain-JS computation; CNN gives logits of the right shape with torchvision names', async () => {
  const m = buildMlp(mlpConfig({ input_size: 3, hidden_sizes: [5], num_labels: 2, activation: 'tanh' }), { seed: 4 });
  const x = [0.5, -1, 2];
  const w0 = paramValues(m, 'layers.0.weight') as Float32Array,
    b0 = paramValues(m, 'layers.0.bias') as Float32Array;
  const w1 = paramValues(m, 'classifier.weight') as Float32Array,
    b1 = paramValues(m, 'classifier.bias') as Float32Array;
  const h = Array.from({ length: 5 }, (_, o) => Math.tanh(x.reduce((s, v, i) => s + v * w0[i * 5 + o], b0[o])));
  const want = [0, 1].map((o) => h.reduce((s, v, i) => s + v * w1[i * 2 + o], b1[o]));
  const s = await Session.create(toOnnxModel(m));
  const got = (await s.run({ features: new ort.Tensor('float32', Float32Array.from(x), [1, 3]) })).logits
    .data as Float32Array;
  assert.ok(maxAbsDiff(got, want) < 1e-6, `${got} vs ${want}`);
  assert.ok(Math.max(...Array.from(w0, Math.abs)) <= 1 / Math.sqrt(3));

  const c = buildCnn(
    cnnConfig({
      num_labels: 4,
      stem_channels: 4,
      stages: [
        { channels: 4, blocks: 1, stride: 1 },
        { channels: 8, blocks: 1, stride: 2 },
      ],
    }),
  );
  assert.ok(c.params.has('layer2.0.downsample.0.weight') && !c.params.has('layer1.0.downsample.0.weight'));
  assert.equal(c.params.get('layer1.0.bn1.running_var')?.trainable, false);
  const sc = await Session.create(toOnnxModel(c));
  const out = await sc.run({
    pixel_values: new ort.Tensor('float32', new Float32Array(2 * 3 * 8 * 8).fill(0.5), [2, 3, 8, 8]),
  });
  assert.deepEqual(out.logits.dims, [2, 4]);
});
