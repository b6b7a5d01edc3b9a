import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FeedbackRow, PredictionRow } from '../../src/monitor/log.ts';
import { retrainingSet } from '../../src/monitor/retrain.ts';

function pred(id: string, text: string | null): PredictionRow {
  return {
    v: 1,
    time: '2026-11-29T12:00:00.000Z',
    request_id: id,
    index: 0,
    model: { ref: 'tickets@production', name: 'tickets', version: 3 },
    variant: 'production',
    shadow: false,
    input: text === null ? { sha256: 'ab' } : { text },
    label: 'billing',
    confidence: 0.5,
    scores: [0.5, 0.5],
    latency_ms: 1,
  };
}
const fb = (id: string, label: string): FeedbackRow => ({
  v: 1,
  time: '2026-11-29T12:05:00Z',
  request_id: id,
  index: 0,
  label,
});

test('retrainingSet: feedback rows added; duplicates of training, held-out leakage and hashed inputs left out', () => {
  const r = retrainingSet({
    training: [
      { text: 'pay my bill', label: 'billing' },
      { text: 'reset my password', label: 'account' },
    ],
    predictions: [
      pred('a', 'Pay my bill!'), // near-duplicate of a training row
      pred('b', 'my crypto wallet is empty'), // new intent
      pred('c', 'where is my parcel'), // also a held-out row: leakage
      pred('d', null), // text not logged
      pred('e', 'refund the duplicate charge'),
      pred('f', 'no label for this one'),
    ],
    feedback: [fb('a', 'billing'), fb('b', 'crypto'), fb('c', 'shipping'), fb('d', 'billing'), fb('e', 'billing')],
    heldOut: [{ text: 'Where is my parcel?', label: 'shipping' }],
    labels: ['billing', 'account'],
  });
  assert.deepEqual(
    r.examples.map((e) => [e.text, e.label, e.file]),
    [
      ['pay my bill', 'billing', 'training'],
      ['reset my password', 'account', 'training'],
      ['my crypto wallet is empty', 'crypto', 'feedback'],
      ['refund the duplicate charge', 'billing', 'feedback'],
    ],
  );
  assert.equal(r.added, 2);
  assert.deepEqual(r.removed, { 'near-duplicate': 1, leakage: 1 });
  assert.deepEqual(r.newLabels, ['crypto']);
  assert.match(r.fingerprint, /^sha256:[0-9a-f]{64}$/);
  // Same inputs, same fingerprint; one more labelled row changes it.
  const again = retrainingSet({
    training: [
      { text: 'pay my bill', label: 'billing' },
      { text: 'reset my password', label: 'account' },
    ],
    predictions: [pred('b', 'my crypto wallet is empty'), pred('e', 'refund the duplicate charge')],
    feedback: [fb('b', 'crypto'), fb('e', 'billing')],
    heldOut: [],
    labels: ['billing', 'account'],
  });
  assert.equal(again.fingerprint, r.fingerprint);
});
