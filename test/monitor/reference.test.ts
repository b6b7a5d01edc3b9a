/**
 * The monitoring reference stored at registration: `tailorWithReference` (what `tailor customize` runs) writes the
 * reference profile and the labelled reference rows into the registered version's folder; plain `tailorModel`
 * does not. The profile's validation probabilities are checked against the registered model itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { workspace } from '../cli/fixtures.ts';
import {
  loadProfile,
  profileEmbeddings,
  loadReferenceData,
  policyFromObject,
  PROFILE_FILE,
  REFERENCE_DATA_FILE,
  retrainAndPromote,
  tailorWithReference,
} from '../../src/monitor/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { loadBase } from '../../src/models/resolve.ts';
import { textFeatures } from '../../src/models/text.ts';
import { tailorModel } from '../../src/workflow/tailor.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { Classifier } from '../../src/models/classifier.ts';

test('the registered version carries its reference profile and reference rows; plain tailorModel does not', async (t) => {
  const ws = await workspace('reference');
  t.after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const common = {
    base: ws.bert,
    train: ws.train,
    eval: ws.eval,
    labelColumn: 'intent',
    strategy: 'head' as const,
    epochs: 2,
    home: ws.home,
    name: 'clinc',
  };
  const plain = await tailorModel({ ...common, out: path.join(ws.dir, 'plain') });
  assert.equal(plain.model.version, 1);
  const r = await tailorWithReference({ ...common, out: path.join(ws.dir, 'profiled'), aliases: ['production'] });
  assert.equal(r.model.version, 2);

  const reg = await openRegistry({ home: ws.home });
  const dir1 = await reg.modelPath('clinc:1');
  const dir2 = await reg.modelPath('clinc@production');
  await reg.close();
  assert.equal(existsSync(path.join(dir1, PROFILE_FILE)), false);
  assert.equal(existsSync(path.join(dir2, PROFILE_FILE)), true);

  const profile = await loadProfile(dir2);
  assert.deepEqual(profile.model, { name: 'clinc', version: 2, labels: r.data.labels });
  // The training file has 4 intents x 25 rows; the training split is what customize saw (validation held out).
  const rows = await loadReferenceData(dir2);
  const train = rows.filter((x) => x.split === 'train');
  const validation = rows.filter((x) => x.split === 'validation');
  assert.equal(train.length, r.data.train);
  assert.equal(validation.length, r.data.validation);
  assert.equal(rows.filter((x) => x.split === 'eval').length, 40);
  assert.equal(train.length + validation.length, 100);
  assert.deepEqual(
    Object.values(profile.trainLabelCounts).reduce((a, b) => a + b, 0),
    train.length,
  );
  // The stored validation probabilities are the registered model's own answers on those texts.
  assert.deepEqual(
    profile.validation!.labels,
    validation.map((x) => x.label),
  );
  const clf = await Classifier.load(dir2);
  const live = await clf.predict(validation.map((x) => x.text));
  await clf.release();
  assert.equal(live.length, profile.validation!.probabilities.length);
  live.forEach((p, i) =>
    p.probabilities.forEach((q, j) => assert.ok(Math.abs(q - profile.validation!.probabilities[i][j]) < 1e-5)),
  );
  // The profile file is in the version's immutable folder, not only in the out folder.
  assert.ok(readFileSync(path.join(r.out, 'model', REFERENCE_DATA_FILE), 'utf8').length > 0);
  // The base model's embeddings of the reference texts, recomputed here from the base folder.
  const stored = profileEmbeddings(profile)!;
  assert.equal(stored.length, profile.texts.length);
  const base = await loadBase(ws.bert);
  const { features, width } = await textFeatures(base, profile.texts, { maxLength: 64 });
  stored.forEach((row, i) => {
    assert.equal(row.length, width);
    row.forEach((v, j) => assert.ok(Math.abs(v - features[i * width + j]) < 1e-5, `embedding ${i}.${j}`));
  });

  // Without labelled feedback the loop does not retrain; it says why and records the skip as a run.
  const policy = policyFromObject({ version: 1, model: 'clinc@production' });
  const out = await retrainAndPromote({ home: ws.home, policy });
  assert.equal(out.status, 'skipped');
  assert.deepEqual(out.reasons, [
    '0 labelled feedback row(s) to train on (0 labelled, 0 held out for the gate); need 1',
  ]);
  assert.equal(out.production, 2);
  const reg2 = await openRegistry({ home: ws.home });
  assert.equal((await reg2.showRun(out.runId)).tags.decision, 'skipped');
  assert.equal((await reg2.getModel('clinc@production')).version, 2);
  await reg2.close();

  // A hook may only add files inside the model folder; the run fails and nothing is written or registered.
  const escape = path.join(ws.dir, 'escape');
  await assert.rejects(
    tailorModel({ ...common, out: escape, beforeRegister: async () => ({ '../evil.txt': 'x' }) }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === "beforeRegister returned the file name '../evil.txt', which leaves the model folder",
  );
  assert.equal(existsSync(escape), false);
  const reg3 = await openRegistry({ home: ws.home });
  assert.equal((await reg3.listModelVersions('clinc')).length, 2);
  await reg3.close();
});
