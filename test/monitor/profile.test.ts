import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProfile, loadProfile, profileEmbeddings, saveProfile, textColumns } from '../../src/monitor/profile.ts';

test('textColumns: characters, whitespace tokens, out-of-vocabulary share (case-insensitive)', () => {
  const cols = textColumns(['Refund my card', '  ', 'crypto wallet refund'], new Set(['refund', 'my', 'card']));
  assert.deepEqual(cols.text_length, [14, 2, 20]);
  assert.deepEqual(cols.token_count, [3, 0, 3]);
  assert.deepEqual(cols.oov_rate, [0, 0, 2 / 3]);
});

test('buildProfile: held-out reference sample, prediction columns from validation, JSON round trip', async () => {
  const trainTexts = ['pay my bill', 'refund please', 'reset password', 'login fails', 'bill is wrong', 'card lost'];
  const trainLabels = ['billing', 'billing', 'account', 'account', 'billing', 'account'];
  const profile = buildProfile({
    model: { name: 'tickets', version: 3, labels: ['billing', 'account'] },
    trainTexts,
    trainLabels,
    referenceTexts: ['my bill again', 'new phone'],
    referenceEmbeddings: [new Float32Array([0.5, -1]), new Float32Array([0.25, 2])],
    validation: {
      labels: ['billing', 'account', 'account'],
      probabilities: [
        [0.9, 0.1],
        [0.3, 0.7],
        [0.6, 0.4],
      ],
    },
    now: new Date('2026-11-29T17:00:00Z'),
  });
  assert.deepEqual(profile.columns.oov_rate, [1 / 3, 1]);
  assert.deepEqual(profile.columns.predicted_label, ['billing', 'account', 'billing']);
  assert.deepEqual(profile.columns.confidence, [0.9, 0.7, 0.6]);
  assert.deepEqual(profile.trainLabelCounts, { billing: 3, account: 3 });
  assert.equal(profile.summaries.token_count.mean, 2.5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-profile-'));
  const file = await saveProfile(dir, profile);
  assert.equal(path.basename(file), 'reference-profile.json');
  assert.deepEqual(fs.readdirSync(dir), ['reference-profile.json']); // no temp file left
  const back = await loadProfile(dir);
  assert.deepEqual(back, profile);
  assert.deepEqual(
    profileEmbeddings(back)?.map((r) => Array.from(r)),
    [
      [0.5, -1],
      [0.25, 2],
    ],
  );
});

test('buildProfile without reference texts holds its sample out of the vocabulary', () => {
  const texts = Array.from({ length: 40 }, (_, i) => `word${i} common`);
  const p = buildProfile({
    model: { name: 'm', version: 1, labels: ['a'] },
    trainTexts: texts,
    trainLabels: texts.map(() => 'a'),
    sampleSize: 10,
  });
  assert.equal(p.texts.length, 10);
  // Each held-out text's own word is unseen, "common" is known: OOV 1/2.
  assert.deepEqual(p.columns.oov_rate, new Array(10).fill(0.5));
});

test('profile errors name the field', async () => {
  assert.throws(
    () =>
      buildProfile({
        model: { name: 'm', version: 1, labels: ['a', 'b'] },
        trainTexts: ['x'],
        trainLabels: ['a'],
        referenceTexts: ['y'],
        validation: { labels: ['a'], probabilities: [[1]] },
      }),
    /validation.probabilities\[0\] has 1 entries, expected 2 \(one per label\)/,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-profile-'));
  await assert.rejects(loadProfile(dir), /no reference profile at/);
  fs.writeFileSync(path.join(dir, 'reference-profile.json'), JSON.stringify({ v: 1, model: { name: 'm' } }));
  await assert.rejects(loadProfile(dir), /field "model" is missing or malformed/);
});
