import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  feedbackLabels,
  importFeedbackCsv,
  parseDuration,
  readFeedback,
  readPredictions,
} from '../../src/monitor/log.ts';

function row(time: string, id: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    v: 1,
    time,
    request_id: id,
    index: 0,
    model: { ref: 'tickets@production', name: 'tickets', version: 3 },
    variant: 'production',
    shadow: false,
    input: { text: `text ${id}` },
    label: 'billing',
    confidence: 0.9,
    scores: [0.9, 0.1],
    latency_ms: 4.2,
    ...extra,
  });
}

test('readPredictions: all rotated files in time order, corrupt lines skipped and counted, filters', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-log-'));
  fs.mkdirSync(path.join(home, 'predictions'));
  fs.writeFileSync(
    path.join(home, 'predictions', '2026-11-29T17.jsonl'),
    [
      row('2026-11-29T17:30:00.000Z', 'c'),
      '{"v":1,"time":"2026-11-29T17:31:00Z"', // cut short by a crash
      row('2026-11-29T17:10:00.000Z', 'a'),
      row('2026-11-29T17:40:00.000Z', 'other', { model: { ref: 'x@1', name: 'other', version: 1 } }),
      row('2026-11-29T17:45:00.000Z', 'shadow', { shadow: true }),
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(home, 'predictions', '2026-11-29T16.jsonl'),
    [row('2026-11-29T16:59:00.000Z', 'z'), row('2026-11-29T17:20:00.000Z', 'b', { confidence: 'high' })].join('\n'),
  );
  fs.writeFileSync(path.join(home, 'predictions', 'notes.txt'), 'ignored');
  const all = await readPredictions(home, { model: 'tickets' });
  assert.deepEqual(
    all.rows.map((r) => r.request_id),
    ['z', 'a', 'c'],
  );
  assert.equal(all.skippedCount, 2);
  assert.deepEqual(
    all.skipped.map((s) => [path.basename(s.file), s.line, s.reason]),
    [
      ['2026-11-29T16.jsonl', 2, 'confidence is not a number'],
      ['2026-11-29T17.jsonl', 2, 'not valid JSON'],
    ],
  );
  const window = await readPredictions(home, {
    model: 'tickets',
    since: new Date('2026-11-29T17:00:00Z'),
    until: new Date('2026-11-29T17:30:00Z'),
  });
  assert.deepEqual(
    window.rows.map((r) => r.request_id),
    ['a'],
  );
  const withShadow = await readPredictions(home, { model: 'tickets', includeShadow: true });
  assert.equal(withShadow.rows.length, 4);
  assert.deepEqual((await readPredictions(path.join(home, 'missing'))).rows, []);
});

test('readFeedback: the latest label per (request_id, index) wins', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-fb-'));
  fs.mkdirSync(path.join(home, 'feedback'));
  const fb = (time: string, id: string, label: string): string =>
    JSON.stringify({ v: 1, time, request_id: id, index: 0, label });
  fs.writeFileSync(
    path.join(home, 'feedback', 'a.jsonl'),
    [fb('2026-11-29T17:05:00Z', 'r1', 'refund'), 'garbage', fb('2026-11-29T17:01:00Z', 'r1', 'billing')].join('\n'),
  );
  const res = await readFeedback(home);
  assert.equal(res.skippedCount, 1);
  assert.deepEqual([...feedbackLabels(res.rows)], [['r1#0', 'refund']]);
});

test('parseDuration', () => {
  assert.equal(parseDuration('24h'), 86400000);
  assert.equal(parseDuration('30m'), 1800000);
  assert.equal(parseDuration('1.5d'), 129600000);
  assert.throws(() => parseDuration('soon', 'window'), /window "soon" is not a duration like 90s, 30m, 24h or 7d/);
});

test('importFeedbackCsv: rows become feedback the reader sees; a bad row names file and line, nothing written', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-fbcsv-'));
  const csv = path.join(home, 'labels.csv');
  fs.writeFileSync(csv, 'request_id,index,label,time\nr1,0,billing,2026-11-29T17:00:00Z\nr2,,refund,\n');
  const now = new Date('2026-11-29T18:00:00Z');
  const r = await importFeedbackCsv(home, csv, now);
  assert.equal(r.rows, 2);
  const fb = await readFeedback(home);
  assert.deepEqual(
    fb.rows.map((x) => [x.request_id, x.index, x.label, x.time]),
    [
      ['r1', 0, 'billing', '2026-11-29T17:00:00.000Z'],
      ['r2', 0, 'refund', '2026-11-29T18:00:00.000Z'],
    ],
  );
  const bad = path.join(home, 'bad.csv');
  fs.writeFileSync(bad, 'request_id,label,index\nr3,billing,0\nr4,,1\n');
  await assert.rejects(importFeedbackCsv(home, bad, now), new RegExp(`${bad}:3: column "label" is missing or empty`));
  fs.writeFileSync(bad, 'request_id,label,index\nr3,billing,-1\n');
  await assert.rejects(importFeedbackCsv(home, bad, now), /bad.csv:2: index "-1" is not a non-negative integer/);
  assert.equal(fs.readdirSync(path.join(home, 'feedback')).length, 1);
});
