import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePolicy } from '../../src/monitor/policy.ts';
import { watchOnce, writeReports } from '../../src/monitor/run.ts';
import { makeDeployment, toyEmbed } from './fixture.ts';

test('watchOnce: embedding drift through the caller embedder fires; the cool-down holds the next tick', async () => {
  const d = makeDeployment();
  const policy = parsePolicy(
    [
      'version: 1',
      'model: tickets@production',
      'window: 1h',
      'lookback: 4h',
      'min_window_size: 100',
      'cooldown: 2h',
      'drift: { text: { enabled: false }, embeddings: { enabled: true, method: mmd } }',
      'trigger: { on: [embedding_drift], consecutive_windows: 2 }',
    ].join('\n'),
  );
  const now = new Date('2026-11-29T16:00:00Z');
  const tick = await watchOnce(d.home, policy, d.profile, now, { embed: toyEmbed });
  assert.deepEqual(
    tick.report.windows.map((w) => w.embeddings?.drift),
    [false, false, true, true],
  );
  assert.equal(tick.report.windows[0].text, undefined);
  assert.deepEqual(tick.decision, { fire: true, reasons: ['embedding drift'] });
  const state = JSON.parse(fs.readFileSync(path.join(d.home, 'monitor', 'watch-tickets.json'), 'utf8'));
  assert.deepEqual(state, { lastTriggered: '2026-11-29T16:00:00.000Z' });
  const next = await watchOnce(d.home, policy, d.profile, new Date('2026-11-29T17:00:00Z'), { embed: toyEmbed });
  // The lookback now ends an hour later: the last two full windows are still the shifted ones.
  assert.equal(next.decision.fire, false);
  assert.equal(next.decision.heldBy, 'cooldown');
  // Without an embedder the embedding test cannot run, so nothing fires.
  fs.rmSync(path.join(d.home, 'monitor'), { recursive: true });
  const blind = await watchOnce(d.home, policy, d.profile, now);
  assert.equal(blind.decision.fire, false);
  // A damaged state file is an error naming it.
  fs.mkdirSync(path.join(d.home, 'monitor'));
  fs.writeFileSync(path.join(d.home, 'monitor', 'watch-tickets.json'), '{');
  await assert.rejects(
    watchOnce(d.home, policy, d.profile, now, { embed: toyEmbed }),
    /watch state .*watch-tickets.json is unreadable/,
  );
  const files = await writeReports(tick.report, path.join(d.home, 'out'));
  assert.deepEqual(fs.readdirSync(path.join(d.home, 'out')).sort(), ['monitor-report.html', 'monitor-report.json']);
  assert.equal(path.basename(files.html), 'monitor-report.html');
});
