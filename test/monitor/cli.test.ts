/** `tailor monitor`, `tailor watch --once` and `tailor ab` on a synthetic deployment (profile given with --reference). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveProfile } from '../../src/monitor/profile.ts';
import { json, tailor } from '../cli/fixtures.ts';
import { makeDeployment } from './fixture.ts';

test('tailor monitor writes both reports and prints the window table; watch --once fires; ab reports mSPRT', async () => {
  const d = makeDeployment();
  const ref = path.join(d.home, 'ref');
  await saveProfile(ref, d.profile);
  const out = path.join(d.home, 'report');
  const common = ['--home', d.home, '--reference', ref];
  const r = await tailor([
    'monitor',
    '--model',
    'tickets@production',
    '--since',
    '2026-11-29T12:00:00Z',
    '--until',
    '2026-11-29T16:00:00Z',
    '--out',
    out,
    ...common,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /4\/4 windows tested, 2 drifted, 2 CBPE alerts/);
  assert.match(r.stdout, /latest window \(2026-11-29T15:00:00.000Z\) drifted/);
  assert.deepEqual(fs.readdirSync(out).sort(), ['monitor-report.html', 'monitor-report.json']);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'monitor-report.json'), 'utf8')) as {
    windows: Array<{ text?: { drift: boolean } }>;
  };
  assert.deepEqual(
    report.windows.map((w) => w.text?.drift),
    [false, false, true, true],
  );

  const policy = path.join(d.home, 'policy.yaml');
  fs.writeFileSync(policy, 'version: 1\nmodel: tickets@production\nlookback: 100d\nwindow: 1h\nmin_window_size: 100\n');
  // The synthetic deployment has a profile but no registered model to retrain: report only.
  const w = await tailor(['watch', '--policy', policy, '--once', '--no-retrain', '--json', ...common]);
  assert.equal(w.status, 0, w.stderr);
  const tick = json<{ decision: { fire: boolean; reasons: string[] } }>(w);
  assert.equal(tick.decision.fire, true);
  assert.ok(tick.decision.reasons.includes('text drift'), tick.decision.reasons.join('; '));
  assert.equal(
    fs
      .readFileSync(path.join(d.home, 'monitor', 'triggers.jsonl'), 'utf8')
      .trim()
      .split('\n').length,
    1,
  );
  // Within the cool-down the next tick holds the trigger.
  const w2 = await tailor(['watch', '--policy', policy, '--once', '--no-retrain', ...common]);
  assert.match(w2.stdout, /: ok - .*held: last trigger at .* is within the 6h cool-down/);

  const bad = await tailor(['watch', '--policy', policy, '--once', '--home', d.home]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /model 'tickets' is not registered in /);

  const csv = path.join(d.home, 'labels.csv');
  fs.writeFileSync(csv, 'request_id,label\nreq-0-1,x\n');
  const imp = await tailor(['feedback', 'import', csv, '--home', d.home]);
  assert.equal(imp.status, 0, imp.stderr);
  assert.match(imp.stdout, /^1 feedback label\(s\) imported into .*feedback\/import-.*\.jsonl\n$/);

  const ab = await tailor([
    'ab',
    '--model',
    'tickets',
    '--variants',
    'production,candidate',
    '--since',
    '100d',
    '--home',
    d.home,
  ]);
  assert.equal(ab.status, 1);
  assert.match(ab.stderr, /A\/B needs labelled predictions from both variants; production: 189, candidate: 0/);

  // A candidate that is always right on 60 labelled in-domain requests (production: the first window's traffic).
  const preds: string[] = [];
  const fb: string[] = [];
  for (let i = 0; i < 60; i++) {
    const t = new Date(Date.UTC(2026, 10, 29, 12, 0, 30 + i * 50)).toISOString();
    const row = {
      v: 1,
      time: t,
      request_id: `cand-${i}`,
      index: 0,
      model: { ref: 'tickets@candidate', name: 'tickets', version: 4 },
    };
    preds.push(
      JSON.stringify({
        ...row,
        variant: 'candidate',
        shadow: false,
        input: null,
        label: 'x',
        confidence: 0.9,
        scores: [],
        latency_ms: 5,
      }),
    );
    fb.push(JSON.stringify({ v: 1, time: t, request_id: `cand-${i}`, index: 0, label: 'x' }));
  }
  fs.writeFileSync(path.join(d.home, 'predictions', 'candidate.jsonl'), preds.join('\n'));
  fs.writeFileSync(path.join(d.home, 'feedback', 'candidate.jsonl'), fb.join('\n'));
  const ab2 = await tailor([
    'ab',
    '--model',
    'tickets',
    '--variants',
    'production,candidate',
    '--since',
    '100d',
    '--home',
    d.home,
    '--json',
  ]);
  assert.equal(ab2.status, 0, ab2.stderr);
  const res = json<{
    a: { trials: number };
    b: { trials: number; accuracy: number };
    msprt: { looks: number; pValue: number };
  }>(ab2);
  assert.equal(res.a.trials, 189);
  assert.equal(res.b.trials, 60);
  assert.equal(res.b.accuracy, 1);
  assert.ok(res.msprt.looks > 0 && res.msprt.pValue <= 1);
});
