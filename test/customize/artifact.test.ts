import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { predictTexts } from '../../src/models/text.ts';
import { mergeAdapter } from '../../src/customize/adapters.ts';
import { loadArtifact, saveCustomizedModel } from '../../src/customize/artifact.ts';
import { customize } from '../../src/customize/customize.ts';
import { ConfigError } from '../../src/errors.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(3, 20, 5);
const base = tinyBert(data);
const tmp = mkdtempSync(path.join(tmpdir(), 'tailor-save-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('saveCustomizedModel: a LoRA result is merged and written as a classifier folder that loads back with the same logits', async () => {
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
  const out = await saveCustomizedModel(dir, r, { base, metrics: { accuracy: r.report.accuracy } });
  assert.equal(out, dir);
  assert.deepEqual(readdirSync(dir).sort(), ['model.onnx', 'tailor.json', 'tokenizer.json', 'tokenizer_config.json']);
  const info = JSON.parse(readFileSync(path.join(dir, 'tailor.json'), 'utf8')) as Record<string, unknown>;
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
  // A non-empty folder is refused and left as it was.
  await assert.rejects(
    saveCustomizedModel(dir, r, { base }),
    (e: unknown) => e instanceof ConfigError && e.message.includes('already exists'),
  );
  assert.equal(readdirSync(dir).length, 4);
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
  assert.equal(JSON.parse(readFileSync(path.join(empty, 'tailor.json'), 'utf8')).strategy, 'head');
  writeFileSync(path.join(tmp, 'file'), 'x');
  await assert.rejects(saveCustomizedModel(path.join(tmp, 'file'), r), ConfigError);
});
