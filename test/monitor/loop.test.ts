/**
 * The loop end to end on a small slice, through the server: serve a customized model -> in-domain traffic (no
 * trigger) -> shifted traffic (two intents the model never saw, with their own vocabulary, 2.5 times the in-domain volume) -> the watch fires ->
 * feedback labels posted to /v1/feedback -> retraining -> the gate blesses the challenger -> `production` moves
 * -> the server answers with the new version -> rollback restores the old one. And the variant where the
 * feedback labels are corrupted (uniformly random): the challenger is worse and the gate refuses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { json, tailor, writeCsv, writeTinyBert, type Row } from '../cli/fixtures.ts';
import { firstPerIntent, readClinc } from '../clinc150.ts';
import { createRng } from '../../src/util/rng.ts';
import {
  loadProfile,
  policyFromObject,
  retrainAndPromote,
  type RetrainOutcome,
  tailorWithReference,
  watchOnce,
} from '../../src/monitor/index.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { startServer, type ServeHandle } from '../../src/serve/index.ts';

const KNOWN = ['accept_reservations', 'account_blocked', 'alarm', 'application_status'];
// Four intents of other domains: words the training data never had.
const NEW = ['tire_pressure', 'translate', 'w2', 'weather'];
const byIntent = (split: string, labels: string[], from: number, to: number): Row[] =>
  labels.flatMap((l) =>
    readClinc(split)
      .filter((r) => r.label === l)
      .slice(from, to),
  );
/** Every other training row of the known intents: even rows train the champion, odd rows are its live traffic. */
const knownRows = (parity: 0 | 1): Row[] => byIntent('train', KNOWN, 0, 40).filter((_, i) => i % 2 === parity);
/** Shifted traffic: every training and validation row of the new intents (100 in the slice). */
const shiftedRows = (): Row[] => [...byIntent('train', NEW, 0, 20), ...byIntent('validation', NEW, 0, 20)];
/** In-domain traffic: 10 unseen rows per known intent. */
const inDomainRows = (): Row[] => knownRows(1).filter((_, i) => i % 2 === 0);

interface Answer {
  request_id: string;
  predictions: Array<{ label: string }>;
  model: { name: string; version: number };
}

let nextRequest = 0;
async function predict(server: ServeHandle, texts: string[]): Promise<Answer> {
  const res = await fetch(`${server.url}/v1/models/tickets/predict`, {
    method: 'POST',
    // Fixed request ids: the gate's held-out share is drawn by a seeded hash of them, so every run is the same.
    headers: { 'content-type': 'application/json', 'x-request-id': `req-${nextRequest++}` },
    body: JSON.stringify({ texts }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Answer;
}

/** Sends `rows` in requests of 10 texts; returns, per row, the request id and index to give feedback on. */
async function traffic(server: ServeHandle, rows: Row[]): Promise<Array<{ request_id: string; index: number }>> {
  const keys: Array<{ request_id: string; index: number }> = [];
  for (let i = 0; i < rows.length; i += 10) {
    const a = await predict(
      server,
      rows.slice(i, i + 10).map((r) => r.text),
    );
    a.predictions.forEach((_, j) => keys.push({ request_id: a.request_id, index: j }));
  }
  await server.context.predictionLog?.flush();
  return keys;
}

async function feedback(
  server: ServeHandle,
  keys: Array<{ request_id: string; index: number }>,
  labels: string[],
): Promise<void> {
  for (let i = 0; i < keys.length; i++) {
    const res = await fetch(`${server.url}/v1/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...keys[i], label: labels[i] }),
    });
    assert.equal(res.status, 202);
  }
  await server.context.feedbackLog.flush();
}

/** Polls the server (bounded: 100 x 50 ms) until `tickets` answers with `version`. */
async function servedVersion(server: ServeHandle, version: number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    last = (await predict(server, ['hello'])).model.version;
    if (last === version) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  return last;
}

const policy = policyFromObject(
  {
    version: 1,
    model: 'tickets@production',
    window: '1h',
    lookback: '1h',
    min_window_size: 20,
    cooldown: '1s',
    trigger: { on: ['dataset_drift', 'text_drift'] },
  },
  'test-policy',
);

/** A served champion (tickets:1 @production) trained on 20 rows per known intent, with its reference. */
async function deployment(tag: string): Promise<{ dir: string; home: string; server: ServeHandle }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `tailor-loop-${tag}-`));
  nextRequest = 0;
  const train = knownRows(0);
  const evalRows = firstPerIntent(readClinc('test'), 10, new Set(KNOWN));
  const all = [...readClinc('train'), ...readClinc('test'), ...readClinc('validation')].filter(
    (r) => KNOWN.includes(r.label) || NEW.includes(r.label),
  );
  const bert = await writeTinyBert(
    path.join(dir, 'bert'),
    all.map((r) => r.text),
  );
  const home = path.join(dir, '.tailor');
  const r = await tailorWithReference({
    base: bert,
    train: writeCsv(path.join(dir, 'train.csv'), train),
    eval: writeCsv(path.join(dir, 'eval.csv'), evalRows),
    labelColumn: 'intent',
    strategy: 'head',
    epochs: 4,
    out: path.join(dir, 'v1'),
    name: 'tickets',
    home,
    aliases: ['production'],
  });
  assert.deepEqual([r.model.version, r.model.aliases], [1, ['production']]);
  const server = await startServer({ home, host: '127.0.0.1', port: 0, pollIntervalMs: 50, logInputs: 'full' });
  return { dir, home, server };
}

test('drift -> watch fires -> feedback -> retrain -> gate passes -> production moves -> rollback', async (t) => {
  const { dir, home, server } = await deployment('pass');
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const reg = await openRegistry({ home });
  t.after(() => reg.close());
  const profile = await loadProfile(await reg.modelPath('tickets@production'));
  assert.equal((await predict(server, ['set an alarm'])).model.version, 1);

  const inDomain = inDomainRows();
  const inKeys = await traffic(server, inDomain);
  const calm = await watchOnce(home, policy, profile);
  assert.equal(calm.decision.fire, false, calm.decision.reasons.join('; '));

  const shifted = shiftedRows();
  const shiftKeys = await traffic(server, shifted);
  const tick = await watchOnce(home, policy, profile);
  assert.equal(tick.decision.fire, true, tick.decision.reasons.join('; '));

  await feedback(
    server,
    [...inKeys, ...shiftKeys],
    [...inDomain, ...shifted].map((r) => r.label),
  );
  const out = await retrainAndPromote({ home, policy, tailor: { epochs: 4 } });
  assert.equal(out.status, 'promoted', out.reasons.join('; '));
  assert.deepEqual(out.challenger?.version, 2);
  assert.deepEqual(out.retraining?.newLabels, [...NEW].sort());
  assert.ok(out.gate!.challenger.accuracy > out.gate!.champion!.accuracy);
  // The held-out rows: the champion's 40 eval rows plus the seeded ~30% of the 140 labelled rows.
  assert.equal(out.heldOut!.rows, 40 + out.heldOut!.fromFeedback);
  assert.ok(out.heldOut!.fromFeedback > 30 && out.heldOut!.fromFeedback < 90);
  assert.equal((await reg.getModel('tickets@production')).version, 2);
  assert.equal((await reg.getModel('tickets@candidate')).version, 2);
  assert.deepEqual((await reg.getModel('tickets:2')).parents, [
    { relation: 'base', external: path.join(dir, 'bert') },
    { relation: 'retrained_from', model: { name: 'tickets', version: 1 } },
  ]);
  // The loop is a tracked run; the challenger's customize run is tagged with it.
  const loopRun = await reg.showRun(out.runId);
  assert.equal(loopRun.status, 'finished');
  assert.equal(loopRun.tags.decision, 'promoted');
  assert.equal((await reg.showRun(out.challenger!.runId)).tags.retrain_run, out.runId);
  assert.equal(await servedVersion(server, 2), 2);

  const t0 = performance.now();
  assert.deepEqual(await reg.rollbackAlias('tickets'), { name: 'tickets', alias: 'production', from: 2, to: 1 });
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(await servedVersion(server, 1), 1);
  const log = readFileSync(path.join(home, 'monitor', 'promotions.jsonl'), 'utf8')
    .trim()
    .split('\n');
  assert.equal(log.length, 1);
  assert.equal(JSON.parse(log[0]).status, 'promoted');
});

test('corrupted feedback labels: the challenger is worse and the gate refuses it; production stays', async (t) => {
  const { dir, home, server } = await deployment('refuse');
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const inDomain = inDomainRows();
  const shifted = shiftedRows();
  const keys = await traffic(server, [...inDomain, ...shifted]);
  const rng = createRng(5);
  await feedback(
    server,
    keys,
    keys.map(() => KNOWN[rng.int(KNOWN.length)]),
  );
  // Through the CLI this time: `tailor watch` fires on the shift and runs the loop with the champion's recipe.
  const policyFile = path.join(dir, 'policy.yaml');
  writeFileSync(
    policyFile,
    'version: 1\nmodel: tickets@production\nwindow: 1h\nlookback: 1h\nmin_window_size: 20\ntrigger:\n  on: [dataset_drift, text_drift]\n',
  );
  const w = await tailor(['watch', '--policy', policyFile, '--once', '--json', '--home', home]);
  assert.equal(w.status, 0, w.stderr);
  const tick = json<{ decision: { fire: boolean }; retrain: RetrainOutcome }>(w);
  assert.equal(tick.decision.fire, true);
  const out = tick.retrain;
  assert.equal(out.status, 'refused', JSON.stringify(out.gate?.checks));
  assert.equal(out.strategy, 'head');
  assert.equal(out.reasons.length, 1);
  assert.match(out.reasons[0], /^change -\d+\.\d\d pt vs champion < -0\.50 pt$/);
  const reg = await openRegistry({ home });
  t.after(() => reg.close());
  assert.equal((await reg.getModel('tickets@production')).version, 1);
  assert.deepEqual((await reg.getModel('tickets:2')).aliases, []);
  assert.equal((await reg.showRun(out.runId)).tags.decision, 'refused');
  assert.equal(await servedVersion(server, 1), 1);
});
