/**
 * `node --import tsx bench/use-lite.ts [--json] [--runs N] [--tfjs-cpu]`: USE-lite inference throughput on CPU for a
 * batch of 64 clinc150 sentences: Tailor (the converted ONNX graph on onnxruntime-node, 2 intra-op threads) vs the
 * original TF.js graph model (@tensorflow/tfjs, wasm backend; `--tfjs-cpu` adds the pure-JS cpu backend, ~80 s a
 * batch here), in the same process. Each side is timed end to end (tokenize + run) and model only.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadUseLite, locateUseLitePackage } from '../src/models/use/index.ts';
import { Session, ort } from '../src/runtime/session.ts';
import { readClinc } from './clinc150.ts';
import { loadTfModel, referenceTokenizer, useTfBackend } from '../test/models/use-lite.reference.ts';
import { sayer } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 5;
const BATCH = 64;
const THREADS = 2;
const say = sayer(json);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeIt(runs: number, fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up: ORT's first run allocates; TF.js compiles kernels
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

const sentences = readClinc('test')
  .slice(0, BATCH)
  .map((r) => r.text);

const loaded = await loadUseLite();
const session = await Session.create(loaded.onnx, { intraOpThreads: THREADS, interOpThreads: 1 });
const tailorRun = async (): Promise<void> => {
  const enc = loaded.tokenizer.encodeBatch(sentences);
  await session.run({
    input_ids: new ort.Tensor('int64', enc.inputIds, [enc.batch, enc.seq]),
    attention_mask: new ort.Tensor('int64', enc.attentionMask, [enc.batch, enc.seq]),
  });
};
const enc = loaded.tokenizer.encodeBatch(sentences);
const feeds = {
  input_ids: new ort.Tensor('int64', enc.inputIds, [enc.batch, enc.seq]),
  attention_mask: new ort.Tensor('int64', enc.attentionMask, [enc.batch, enc.seq]),
};
const tokens = enc.lengths.reduce((a, b) => a + b, 0);
say(`USE-lite, batch ${BATCH} clinc150 sentences (${tokens} tokens, padded to ${enc.seq}), ${RUNS} timed runs, median`);
const tailorE2E = await timeIt(RUNS, tailorRun);
const tailorModel = await timeIt(RUNS, async () => {
  await session.run(feeds);
});

const pkg = locateUseLitePackage();
const vocab = JSON.parse(readFileSync(path.join(pkg.dir, 'vocab.json'), 'utf8')) as unknown;
const refTok = referenceTokenizer(vocab);

interface Side {
  name: string;
  e2e_ms: number;
  model_ms: number;
  sentences_per_s: number;
}
const results: Side[] = [
  { name: 'tailor-ort', e2e_ms: tailorE2E, model_ms: tailorModel, sentences_per_s: (BATCH * 1000) / tailorE2E },
];

for (const backend of ['wasm', ...(args.includes('--tfjs-cpu') ? ['cpu'] : [])]) {
  await useTfBackend(backend);
  const gm = await loadTfModel(pkg.dir);
  const sparse = (encodings: number[][]): Record<string, tf.Tensor> => {
    const idx: number[][] = [];
    encodings.forEach((e, i) => e.forEach((_, j) => idx.push([i, j])));
    return { indices: tf.tensor2d(idx, [idx.length, 2], 'int32'), values: tf.tensor1d(encodings.flat(), 'int32') };
  };
  const exec = async (inputs: Record<string, tf.Tensor>): Promise<void> => {
    const out = (await gm.executeAsync(inputs)) as tf.Tensor;
    await out.data();
    out.dispose();
  };
  const runs = backend === 'cpu' ? 1 : RUNS;
  const e2e = await timeIt(runs, async () => {
    const inputs = sparse(sentences.map((s) => refTok.encode(s)));
    await exec(inputs);
    tf.dispose(Object.values(inputs));
  });
  const fixed = sparse(sentences.map((s) => refTok.encode(s)));
  const model = await timeIt(runs, () => exec(fixed));
  tf.dispose(Object.values(fixed));
  gm.dispose();
  results.push({ name: `tfjs-${backend}`, e2e_ms: e2e, model_ms: model, sentences_per_s: (BATCH * 1000) / e2e });
}
await session.release();

const base = results[0];
const table = results.map((r) => ({ ...r, speedup_of_tailor: r.e2e_ms / base.e2e_ms }));
if (json) {
  console.log(
    JSON.stringify({ batch: BATCH, tokens, seq: enc.seq, threads: THREADS, runs: RUNS, results: table }, null, 1),
  );
} else {
  for (const r of table) {
    console.log(
      `${r.name.padEnd(11)} end-to-end ${r.e2e_ms.toFixed(1).padStart(8)} ms  (${r.sentences_per_s.toFixed(0).padStart(5)} sentences/s)  model only ${r.model_ms.toFixed(1).padStart(8)} ms`,
    );
  }
  for (const r of table.slice(1))
    console.log(
      `Tailor/ORT is ${r.speedup_of_tailor.toFixed(1)}x faster than ${r.name} (end to end; model only ${(r.model_ms / base.model_ms).toFixed(1)}x)`,
    );
}
