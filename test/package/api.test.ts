/**
 * The library is the product: this test imports nothing of Tailor but the package entry ('tailor', resolved by the
 * package's own `exports`; the test runner's `tailor-source` condition maps it to src/index.ts) and runs the loop
 * on the committed CLINC150 slice with the embedded USE-lite base: audit -> customize (LoRA) -> save -> load ->
 * predict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tailor from 'tailor';
import { INTENTS, writeSlice } from './slice.ts';

test('the package entry alone: audit -> customize (LoRA) -> save -> load -> predict on the CLINC150 slice', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = writeSlice(dir);

  const audit = await tailor.auditModel({ train: files.train, eval: files.eval, labelColumn: 'intent', maxLength: 32 });
  assert.deepEqual(audit.data.labels, [...INTENTS].sort());
  assert.equal(audit.data.eval, 50);
  // Five intents, chance is 20%: the frozen encoder with a ridge head must be far above it.
  assert.ok(audit.baseline.accuracy > 0.6, `baseline accuracy ${audit.baseline.accuracy}`);
  assert.ok([...tailor.STRATEGIES, 'none'].includes(audit.recommendation.strategy));

  const base = await tailor.models.loadBase('use-lite');
  const data = await tailor.audit.loadDomainData({ train: files.train, eval: files.eval, labelColumn: 'intent' });
  const result = await tailor.customizeModel(
    base,
    { train: data.train, validation: data.validation },
    { strategy: 'lora', epochs: 1, batchSize: 16, maxLength: 32, lora: { r: 4 }, seed: 1 },
  );
  assert.ok(result.adapter, 'a LoRA result carries its PEFT adapter');
  assert.deepEqual(result.labels, [...INTENTS].sort());

  const saved = await tailor.saveCustomizedModel(path.join(dir, 'model'), result, { base });
  assert.deepEqual(readdirSync(saved.dir).sort(), ['adapter', 'model']);

  const clf = await tailor.Classifier.load(saved.dir);
  try {
    const evalRows = data.eval ?? [];
    const preds = await clf.predict(evalRows.map((r) => r.text));
    const accuracy = preds.filter((p, i) => p.label === evalRows[i].label).length / evalRows.length;
    assert.ok(accuracy > 0.6, `customized accuracy ${accuracy}`);
    // The saved, merged model answers as the in-memory adapted model does.
    const merged = tailor.customize.mergedModel(result, base);
    const { logits, classes } = await tailor.models.predictTexts(
      result.model,
      evalRows.map((r) => r.text),
      { maxLength: 32 },
    );
    const labels = tailor.models.argmaxRows(logits, classes).map((i) => result.labels[i]);
    assert.deepEqual(
      preds.map((p) => p.label),
      labels,
    );
    assert.equal(merged.params.has('classifier.weight'), true);
    for (const p of preds) {
      assert.ok(Math.abs(p.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-9);
      assert.equal(p.confidence, Math.max(...p.probabilities));
    }
  } finally {
    await clf.release();
  }
});
