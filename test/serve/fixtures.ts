/** Fixtures for the server tests: tiny BERT classifiers registered in a temp registry, and a small HTTP client. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { predictTexts } from '../../src/models/text.ts';
import { loadArtifact, writeClassifier } from '../../src/models/artifact.ts';
import { paramTensor } from '../../src/models/model.ts';
import { bertConfig, buildBert } from '../../src/models/zoo/bert.ts';
import { openRegistry, type Registry } from '../../src/registry/index.ts';
import { softmax } from '../../src/serve/engine.ts';
import { clincIntents, firstPerIntent, readClinc } from '../clinc150.ts';
import { wordTokenizer } from '../customize/fixtures.ts';

/** Four CLINC150 intents and a few of their texts (vocabulary and request texts). */
export const LABELS: readonly string[] = [...clincIntents(4)].sort();
export const ROWS = firstPerIntent(readClinc('validation'), 5, new Set(LABELS));
export const TEXTS = ROWS.map((r) => r.text);

/** Writes a random tiny BERT classifier folder (different `seed` -> different answers). */
export async function tinyClassifier(dir: string, seed: number, labels: readonly string[] = LABELS): Promise<string> {
  const tok = wordTokenizer(TEXTS);
  const cfg = bertConfig({
    vocab_size: tok.vocabSize,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 64,
    num_labels: labels.length,
  });
  const model = { ...buildBert(cfg, { task: 'sequence-classification', seed }), tokenizer: tok };
  // A random head gives near-uniform probabilities whose argmax flips on rounding; a larger head gives clear answers.
  for (const [name] of model.params) {
    if (!name.includes('classifier')) continue;
    const t = paramTensor(model, name);
    const f = new Float32Array(t.data.slice().buffer);
    for (let i = 0; i < f.length; i++) f[i] *= 40;
    t.data = new Uint8Array(f.buffer);
  }
  await writeClassifier(model, dir, { labels: [...labels], maxLength: 32, strategy: 'head', base: 'tiny-bert' });
  return dir;
}

/** Probabilities of `texts` computed by running the model folder directly (the library, no server). */
export async function directScores(dir: string, texts: readonly string[]): Promise<number[][]> {
  const { model, info } = await loadArtifact(dir);
  const r = await predictTexts(model, texts, { maxLength: info.maxLength });
  return texts.map((_, i) => softmax(r.logits.subarray(i * r.classes, (i + 1) * r.classes)));
}

export interface TestRegistry {
  tmp: string;
  home: string;
  registry: Registry;
  /** Model folders by `name:version`. */
  dirs: Map<string, string>;
  cleanup(): Promise<void>;
}

/**
 * A temp registry with `tickets` v1 (production) and v2 (candidate), and `intents` v1 (production), each a tiny
 * classifier with its own seed.
 */
export async function testRegistry(tag: string): Promise<TestRegistry> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `tailor-serve-${tag}-`));
  const home = path.join(tmp, 'home');
  const registry = await openRegistry({ home });
  const dirs = new Map<string, string>();
  const add = async (name: string, seed: number, aliases: string[]): Promise<void> => {
    const dir = await tinyClassifier(path.join(tmp, `${name}-${seed}`), seed);
    const mv = await registry.registerModel({ name, source: dir, aliases });
    dirs.set(`${name}:${mv.version}`, dir);
  };
  await add('tickets', 1, ['production']);
  await add('tickets', 2, ['candidate']);
  await add('intents', 3, ['production']);
  return {
    tmp,
    home,
    registry,
    dirs,
    cleanup: async () => {
      await registry.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** One HTTP request with a JSON (or raw string) body; the reply's JSON parsed when it is JSON. */
export async function call<T = Record<string, unknown>>(
  url: string,
  init: { method?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.raw !== undefined) body = init.raw;
  else if (init.body !== undefined) body = JSON.stringify(init.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(url, { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

/** Prometheus text -> value of the series `name{labels}` (labels given as a subset), summed over matches. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const kv of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(kv[1], kv[2]);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) {
      sum += Number(m[4]);
      found = true;
    }
  }
  if (!found) throw new Error(`no series ${name}${JSON.stringify(labels)} in metrics`);
  return sum;
}
