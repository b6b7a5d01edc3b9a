/** Fixtures for the CLI tests: tiny CLINC150 slices, a user CSV with other column names, a tiny BERT folder, and a spawn helper. */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveHfModel } from '../../src/models/hf/load.ts';
import { wordPieceTokenizerConfig, wordPieceTokenizerJson } from '../../src/models/hf/tokenizer-json.ts';
import { TextTokenizer } from '../../src/models/hf/tokenizer.ts';
import { bertConfig, buildBert } from '../../src/models/zoo/bert.ts';
import { firstPerIntent, readClinc, type ClincRow } from '../clinc150.ts';

export const BIN = fileURLToPath(new URL('../../bin/tailor.js', import.meta.url));
export type Row = ClincRow;

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The first `per` rows of each of the first `intents` intents (sorted by name) of a CLINC150 split. */
export function clincRows(split: 'train' | 'validation' | 'test', intents: number, per: number): Row[] {
  const rows = firstPerIntent(readClinc(split), per, intents);
  // Grouped by intent, in name order (a stable sort keeps each intent's file order).
  return rows.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

export function writeCsv(file: string, rows: readonly Row[], textColumn = 'text', labelColumn = 'intent'): string {
  writeFileSync(
    file,
    [`${textColumn},${labelColumn}`, ...rows.map((r) => `${csvField(r.text)},${csvField(r.label)}`)].join('\n') + '\n',
  );
  return file;
}

/** A random tiny BERT (BertModel, mean-pooled sentence embedding) whose WordPiece vocabulary covers `texts`. */
export async function writeTinyBert(dir: string, texts: readonly string[]): Promise<string> {
  const words = [...new Set(texts.flatMap((t) => t.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? []))].sort();
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words];
  const model = buildBert(
    bertConfig({
      vocab_size: vocab.length,
      hidden_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 32,
      max_position_embeddings: 64,
    }),
    { task: 'sentence-embedding', seed: 3 },
  );
  const tokenizer = TextTokenizer.fromJSON(wordPieceTokenizerJson(vocab), wordPieceTokenizerConfig(32));
  await saveHfModel({ ...model, tokenizer }, dir, { overwrite: true });
  return dir;
}

export interface Workspace {
  dir: string;
  train: string;
  eval: string;
  /** The same kind of data with columns "utterance" and "category". */
  userTrain: string;
  userEval: string;
  bert: string;
  home: string;
}

/** A temp folder with CLINC150 slices (4 intents), a user CSV and a tiny BERT. */
export async function workspace(tag: string): Promise<Workspace> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `tailor-cli-${tag}-`));
  const train = clincRows('train', 4, 25);
  const test = clincRows('test', 4, 10);
  const user = clincRows('validation', 4, 20);
  const ws: Workspace = {
    dir,
    train: writeCsv(path.join(dir, 'train.csv'), train),
    eval: writeCsv(path.join(dir, 'eval.csv'), test),
    userTrain: writeCsv(path.join(dir, 'user-train.csv'), user, 'utterance', 'category'),
    userEval: writeCsv(path.join(dir, 'user-eval.csv'), test, 'utterance', 'category'),
    bert: await writeTinyBert(
      path.join(dir, 'tiny-bert'),
      [...train, ...test, ...user].map((r) => r.text),
    ),
    home: path.join(dir, '.tailor'),
  };
  return ws;
}

export interface Spawned {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/tailor.js with `args` (asynchronously, so two can run at once). */
export function tailor(
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Parses stdout as exactly one JSON value, with the output in the failure message. */
export function json<T = Record<string, unknown>>(r: Spawned): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (e) {
    throw new Error(
      `stdout is not one JSON value (${(e as Error).message}); status ${r.status}\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(-2000)}`,
      { cause: e },
    );
  }
}

/** The flags that point a command at a workspace's tiny BERT and its CLINC150 train/eval files (label column `intent`). */
export function clincArgs(w: Pick<Workspace, 'bert' | 'train' | 'eval'>): string[] {
  return ['--base', w.bert, '--train', w.train, '--eval', w.eval, '--label-column', 'intent'];
}
