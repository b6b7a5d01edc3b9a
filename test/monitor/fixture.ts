/**
 * A small synthetic deployment for the report tests: a reference profile from 30 CLINC150 intents, and a
 * prediction log of four one-hour windows written as rotated JSONL files — two of in-domain traffic (test rows
 * of the same intents) and two shifted (intents the model never saw plus out-of-scope queries). The "model" is
 * simulated: in-domain it is right 90% of the time with high confidence, on shifted text it guesses with low
 * confidence; its confidences are calibrated so CBPE can see the drop. Feedback labels cover part of the traffic.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRng, seedFromString, type Rng } from '../../src/util/rng.ts';
import { buildProfile, type ReferenceProfile } from '../../src/monitor/profile.ts';
import { readClinc } from '../clinc150.ts';

export interface Deployment {
  home: string;
  profile: ReferenceProfile;
  start: Date;
}

function fakeScores(rng: Rng, labels: string[], truth: string, inDomain: boolean): { pred: string; scores: number[] } {
  const conf = inDomain ? 0.8 + 0.2 * rng.next() : 0.15 + 0.25 * rng.next();
  const right = inDomain && rng.next() < conf;
  const pred = right ? truth : labels[rng.int(labels.length)];
  const k = labels.indexOf(pred);
  const rest = (1 - conf) / (labels.length - 1);
  return { pred, scores: labels.map((_, j) => (j === k ? conf : rest)) };
}

/** A deterministic toy embedding: hashed bag of words in 128 dimensions, l2-normalised. */
export function toyEmbed(texts: string[]): Float32Array[] {
  return texts.map((t) => {
    const v = new Float32Array(128);
    for (const w of t.toLowerCase().split(/\s+/)) if (w) v[seedFromString(w) % 128] += 1;
    const n = Math.hypot(...v) || 1;
    return v.map((x) => x / n);
  });
}

export function makeDeployment(seed = 7): Deployment {
  const rng = createRng(seed);
  const intents = [...new Set(readClinc('train').map((r) => r.label))].sort();
  const known = intents.slice(0, 30);
  const knownSet = new Set(known);
  const train = readClinc('train').filter((r) => knownSet.has(r.label));
  // Reference and in-domain traffic are a random split of one pool: CLINC150's splits hold clusters of
  // paraphrases, so its validation and test files are told apart by a domain classifier (AUC ~0.68).
  const pool = rng.shuffle([...readClinc('validation'), ...readClinc('test')].filter((r) => knownSet.has(r.label)));
  const reference = pool.slice(0, 200);
  const inDomain = pool.slice(200);
  const val = reference.map((r) => fakeScores(rng, known, r.label, true));
  const profile = buildProfile({
    model: { name: 'tickets', version: 3, labels: known },
    trainTexts: train.map((r) => r.text),
    trainLabels: train.map((r) => r.label),
    referenceTexts: reference.map((r) => r.text),
    referenceEmbeddings: toyEmbed(reference.map((r) => r.text)),
    validation: { labels: reference.map((r) => r.label), probabilities: val.map((v) => v.scores) },
    now: new Date('2026-11-29T08:00:00Z'),
  });
  const unseen = new Set(intents.slice(100, 130));
  const shifted = rng.shuffle([...readClinc('test').filter((r) => unseen.has(r.label)), ...readClinc('oos_test')]);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-monitor-'));
  fs.mkdirSync(path.join(home, 'predictions'));
  fs.mkdirSync(path.join(home, 'feedback'));
  const start = new Date('2026-11-29T12:00:00Z');
  const windows = [inDomain.slice(0, 140), inDomain.slice(140, 280), shifted.slice(0, 140), shifted.slice(140, 280)];
  windows.forEach((rows, w) => {
    const lines: string[] = [];
    const fb: string[] = [];
    rows.forEach((r, i) => {
      const t = new Date(start.getTime() + w * 3600e3 + Math.floor((i * 3600e3) / rows.length)).toISOString();
      const s = fakeScores(rng, known, r.label, w < 2);
      const id = `req-${w}-${i}`;
      lines.push(
        JSON.stringify({
          v: 1,
          time: t,
          request_id: id,
          index: 0,
          model: { ref: 'tickets@production', name: 'tickets', version: 3 },
          variant: 'production',
          shadow: false,
          input: { text: r.text },
          label: s.pred,
          confidence: Math.max(...s.scores),
          scores: s.scores,
          latency_ms: 3 + rng.next(),
        }),
      );
      if (i % 3 === 0) fb.push(JSON.stringify({ v: 1, time: t, request_id: id, index: 0, label: r.label }));
    });
    fs.writeFileSync(path.join(home, 'predictions', `2026-11-29T${12 + w}.jsonl`), lines.join('\n') + '\n');
    fs.writeFileSync(path.join(home, 'feedback', `2026-11-29T${12 + w}.jsonl`), fb.join('\n') + '\n');
  });
  return { home, profile, start };
}
