import { ia3Name } from '../../src/customize/ia3.ts';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { predictTexts } from '../../src/models/text.ts';
import { mergeAdapter } from '../../src/customize/adapters.ts';
import { loadArtifact } from '../../src/models/artifact.ts';
import { Classifier, softmaxRows } from '../../src/models/classifier.ts';
import { saveCustomizedModel } from '../../src/customize/save.ts';
import { customize } from '../../src/customize/customize.ts';
import { ConfigError } from '../../src/errors.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(3, 20, 5);
const base = tinyBert(data);
const tmp = mkdtempSync(path.join(tmpdir(), 'tailor-save-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('saveCustomizedModel: a LoRA result is merged into model/, its PEFT adapter written to adapter/, and the folder loads back with the same logits and predictions', async () => {
  const r = await customize(base, data, {
    strategy: 'lora',
    epochs: 1,
    batchSize: 20,
    seed: 1,
    threads: 1,
    maxLength: 24,
    lora: { targets: 'query|value', r: 2 },
  });
  const dir = path.join(tmp, 'saved');
  const out = await saveCustomizedModel(dir, r, {
    base,
    metrics: { accuracy: r.report.accuracy },
    files: { 'report.json': '{}\n' },
  });
  assert.deepEqual(out, { dir, model: path.join(dir, 'model'), adapter: path.join(dir, 'adapter') });
  assert.deepEqual(readdirSync(dir).sort(), ['adapter', 'model', 'report.json']);
  assert.deepEqual(readdirSync(out.model).sort(), [
    'model.onnx',
    'tailor.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  assert.deepEqual(readdirSync(out.adapter!).sort(), [
    'adapter_config.json',
    'adapter_model.safetensors',
    'tailor.json',
  ]);
  const info = JSON.parse(readFileSync(path.join(out.model, 'tailor.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(info.format, 'tailor.classifier/1');
  assert.deepEqual(info.labels, r.labels);
  assert.deepEqual(info.id2label, Object.fromEntries(r.labels.map((l, i) => [String(i), l])));
  assert.deepEqual(info.label2id, Object.fromEntries(r.labels.map((l, i) => [l, i])));
  assert.equal(info.strategy, 'lora');
  assert.equal(info.maxLength, 24);
  assert.deepEqual(info.lineage, JSON.parse(JSON.stringify(r.lineage)));
  assert.deepEqual(info.metrics, { accuracy: r.report.accuracy });
  const loaded = await loadArtifact(dir);
  assert.ok(!loaded.model.graph.nodes.some((n) => n.name.includes('lora')), 'merged: no adapter nodes');
  const texts = data.validation.map((x) => x.text);
  const a = await predictTexts(loaded.model, texts, { maxLength: 24 });
  const b = await predictTexts(mergeAdapter(base, r.adapter!).model, texts, { maxLength: 24 });
  assert.deepEqual(a.logits, b.logits);
  // predict on the saved folder: labels by argmax of those logits, probabilities = their softmax.
  const clf = await Classifier.load(dir);
  try {
    const preds = await clf.predict(texts);
    const probs = softmaxRows(b.logits, b.classes);
    preds.forEach((p, i) => {
      const best = probs[i].indexOf(Math.max(...probs[i]));
      assert.equal(p.label, r.labels[best]);
      assert.equal(p.confidence, probs[i][best]);
      assert.ok(Math.abs(p.probabilities.reduce((x, y) => x + y, 0) - 1) < 1e-9);
    });
  } finally {
    await clf.release();
  }
  // A non-empty folder is refused and left as it was.
  await assert.rejects(
    saveCustomizedModel(dir, r, { base }),
    (e: unknown) => e instanceof ConfigError && e.message.includes('already exists'),
  );
  assert.deepEqual(readdirSync(dir).sort(), ['adapter', 'model', 'report.json']);
});

test('saveCustomizedModel is atomic: a failure while writing leaves no folder and no temporary one', async () => {
  const r = await customize(base, data, {
    strategy: 'head',
    epochs: 1,
    batchSize: 20,
    seed: 1,
    threads: 1,
    maxLength: 24,
  });
  const dir = path.join(tmp, 'failed');
  // tailor.json is written after model.onnx; a value JSON cannot encode makes that last write throw.
  await assert.rejects(saveCustomizedModel(dir, r, { extra: { bad: 1n } }), TypeError);
  assert.ok(!existsSync(dir));
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.startsWith('failed')),
    [],
  );
  // An existing empty folder is filled.
  const empty = path.join(tmp, 'empty');
  mkdirSync(empty);
  await saveCustomizedModel(empty, r);
  assert.equal(JSON.parse(readFileSync(path.join(empty, 'model', 'tailor.json'), 'utf8')).strategy, 'head');
  assert.deepEqual(readdirSync(empty), ['model'], 'head-only: no adapter folder');
  writeFileSync(path.join(tmp, 'file'), 'x');
  await assert.rejects(saveCustomizedModel(path.join(tmp, 'file'), r), ConfigError);
});

test('saveCustomizedModel: an IA3 result is folded into model/ and its PEFT adapter written to adapter/', async () => {
  const r = await customize(base, data, {
    strategy: 'ia3',
    epochs: 1,
    batchSize: 20,
    seed: 2,
    threads: 1,
    maxLength: 24,
  });
  assert.ok(r.ia3);
  const dir = path.join(tmp, 'ia3');
  const out = await saveCustomizedModel(dir, r);
  const cfg = JSON.parse(readFileSync(path.join(out.adapter!, 'adapter_config.json'), 'utf8')) as { peft_type: string };
  assert.equal(cfg.peft_type, 'IA3');
  const loaded = await loadArtifact(dir);
  assert.ok(!loaded.model.params.has(ia3Name(r.ia3.spec.sites[0].module)), 'folded: no IA3 vectors left');
  const texts = data.validation.map((x) => x.text);
  const a = await predictTexts(loaded.model, texts, { maxLength: 24 });
  // Against the injected model itself (vectors applied by Mul nodes), not the folded one.
  const b = await predictTexts(r.model, texts, { maxLength: 24 });
  for (let i = 0; i < a.logits.length; i++) assert.ok(Math.abs(a.logits[i] - b.logits[i]) < 1e-4, `logit ${i}`);
});
