/**
 * An abstain rule stored with a model (abstain.json) is applied wherever the model answers: `Classifier.load` and
 * both server engines (the folder engine for ordinary classifiers, the mixed-adapter engine for LoRA adapters)
 * answer `__out_of_scope__` for the same texts, and those are exactly the texts whose log top probability is below
 * the stored MSP threshold. A broken abstain.json fails the load, naming the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeLineage } from '../../src/customize/lineage.ts';
import { saveCustomizedModel } from '../../src/customize/save.ts';
import { ModelFileError } from '../../src/errors.ts';
import { OUT_OF_SCOPE } from '../../src/eval/abstain.ts';
import { ABSTAIN_FILE } from '../../src/models/abstain.ts';
import { Classifier, storeAbstainRule } from '../../src/models/classifier.ts';
import { openRegistry, type Registry } from '../../src/registry/index.ts';
import { loadFolderModel } from '../../src/serve/engine.ts';
import { startServer, type ServeHandle } from '../../src/serve/server.ts';
import { clincSlice, tinyBert } from '../customize/fixtures.ts';
import { randomAdapter } from '../customize/random-adapters.ts';
import { call, directScores, LABELS, ROWS, TEXTS, tinyClassifier } from './fixtures.ts';

let tmp: string;
let plainDir: string;
let loraDir: string;
let registry: Registry;
let server: ServeHandle;

const data = clincSlice(3, 5, 2);
const base = tinyBert(data);
const LORA_TEXTS = data.train.map((r) => r.text);
const LORA_LABELS = ['c1', 'c2', 'c3', 'c4'];

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'tailor-serve-abstain-'));
  plainDir = await tinyClassifier(path.join(tmp, 'plain'), 7);
  // Half of the texts' MSPs fall below the threshold: r = ⌊0.5 · 20⌋ = 10 of them.
  await storeAbstainRule(plainDir, { texts: TEXTS, labels: ROWS.map((r) => r.label), targetFrr: 0.5 });
  const lineage = makeLineage(base, 'lora', { maxLength: 32 }, 'fp-abstain', 13, LORA_LABELS);
  const adapter = {
    ...randomAdapter(base, {
      modules: ['encoder.layer.1.attention.self.value'],
      r: 2,
      alpha: 4,
      labels: LORA_LABELS,
      seed: 13,
      features: 32,
    }),
    lineage,
  };
  const saved = await saveCustomizedModel(
    path.join(tmp, 'lora'),
    { model: base, labels: LORA_LABELS, lineage, adapter },
    { base },
  );
  loraDir = saved.dir;
  // The rule's labels only need to be the model's; the texts' labels are checked against them.
  await storeAbstainRule(loraDir, {
    texts: LORA_TEXTS,
    labels: LORA_TEXTS.map(() => 'c1'),
    score: 'energy',
    targetFrr: 0.4,
  });
  registry = await openRegistry({ home: path.join(tmp, 'home') });
  await registry.registerModel({ name: 'plain', source: plainDir });
  await registry.registerModel({ name: 'lora', source: loraDir });
  server = await startServer({ registry, port: 0, pollIntervalMs: 0, logSampleRate: 0, intraOpThreads: 1 });
});

after(async () => {
  await server?.close();
  await registry?.close();
  rmSync(tmp, { recursive: true, force: true });
});

type V1 = { predictions: { label: string; scores: Record<string, number> }[] };

test('Classifier.load applies the stored MSP rule: below the threshold is __out_of_scope__, probabilities kept', async () => {
  const stored = JSON.parse(readFileSync(path.join(plainDir, ABSTAIN_FILE), 'utf8')) as {
    threshold: number;
    score: string;
    validation: { falseRejectionRate: number };
  };
  assert.equal(stored.score, 'msp');
  assert.equal(stored.validation.falseRejectionRate, 0.5);
  const probs = await directScores(plainDir, TEXTS);
  const clf = await Classifier.load(plainDir, { intraOpThreads: 1 });
  try {
    assert.ok(clf.abstain);
    const preds = await clf.predict(TEXTS);
    preds.forEach((p, i) => {
      const top = Math.max(...probs[i]);
      // The msp score is the log of the top probability.
      const want = Math.log(top) < stored.threshold ? OUT_OF_SCOPE : LABELS[probs[i].indexOf(top)];
      assert.equal(p.label, want, `text ${i}`);
      assert.ok(Math.abs(p.confidence - top) < 1e-6);
      assert.equal(p.probabilities.length, LABELS.length);
    });
    assert.equal(preds.filter((p) => p.label === OUT_OF_SCOPE).length, 10);
  } finally {
    await clf.release();
  }
});

test('the folder engine and the server answer as Classifier.load does, for a plain model and a LoRA adapter', async () => {
  for (const [name, dir, texts] of [
    ['plain', plainDir, TEXTS],
    ['lora', loraDir, LORA_TEXTS],
  ] as const) {
    const clf = await Classifier.load(dir, { intraOpThreads: 1 });
    const want = (await clf.predict(texts)).map((p) => p.label);
    await clf.release();
    const rejected = want.filter((l) => l === OUT_OF_SCOPE).length;
    assert.ok(rejected > 0 && rejected < texts.length, `${name}: ${rejected} of ${texts.length} rejected`);
    const served = await loadFolderModel(dir, { name, version: 1, intraOpThreads: 1 });
    try {
      assert.deepEqual(
        (await served.predict(texts)).map((p) => p.label),
        want,
        `${name}: folder engine`,
      );
    } finally {
      await served.release();
    }
    const r = await call<V1>(`${server.url}/v1/models/${name}/predict`, { body: { texts } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      r.body.predictions.map((p) => p.label),
      want,
      `${name}: server`,
    );
  }
  // The LoRA model went through the mixed-adapter engine, not the folder engine.
  const metrics = (await call(`${server.url}/metrics`)).text;
  assert.match(metrics, /tailor_execution_total\{model="lora:[0-9a-f]{12}",version="mixed"\}/);
});

test('a broken or mismatched abstain.json fails the load with a ModelFileError naming the file', async () => {
  const dir = await tinyClassifier(path.join(tmp, 'broken'), 8);
  const file = path.join(dir, ABSTAIN_FILE);
  writeFileSync(file, '{ not json');
  await assert.rejects(
    Classifier.load(dir),
    (e: unknown) => e instanceof ModelFileError && e.message.includes(file) && /not JSON/.test(e.message),
  );
  const good = JSON.parse(readFileSync(path.join(plainDir, ABSTAIN_FILE), 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...good, labels: ['x', 'y'] }));
  await assert.rejects(
    loadFolderModel(dir, { name: 'broken', version: 1 }),
    (e: unknown) => e instanceof ModelFileError && e.context.field === 'labels' && e.message.includes(file),
  );
  writeFileSync(file, JSON.stringify({ ...good, score: 'entropy' }));
  await assert.rejects(
    Classifier.load(dir),
    (e: unknown) => e instanceof ModelFileError && e.context.field === 'score',
  );
});
