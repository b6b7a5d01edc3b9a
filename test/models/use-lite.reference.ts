/**
 * The reference side of the USE-lite checks (test and bench): the original TF.js graph run with @tensorflow/tfjs,
 * fed exactly as the package's own pipeline (@energetic-ai/embeddings) feeds it.
 *
 * The package tokenizer is taken from @energetic-ai/embeddings' bundle without loading the bundle: requiring it
 * would load @energetic-ai/core, a second copy of TF.js that shares the global engine, re-registers every kernel
 * (a hundred warnings) and switches the backend as it loads.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export interface ReferenceTokenizer {
  encode(text: string): number[];
}

/** The package's tokenizer class (lib/stringToChars.ts, lib/trie.ts, lib/tokenizer.ts of @energetic-ai/embeddings). */
export function referenceTokenizer(vocab: unknown): ReferenceTokenizer {
  const require = createRequire(import.meta.url);
  const file = require.resolve('@energetic-ai/embeddings');
  const src = readFileSync(file, 'utf8');
  const m = /\/\/ lib\/stringToChars\.ts[\s\S]*?(?=\/\/ lib\/index\.ts)/.exec(src);
  if (!m)
    throw new Error(
      `${file}: cannot find the tokenizer sources (lib/stringToChars.ts .. lib/tokenizer.ts) in the bundle`,
    );
  const Tokenizer = new Function(`${m[0]}\nreturn Tokenizer;`)() as new (v: unknown) => ReferenceTokenizer;
  return new Tokenizer(vocab);
}

/** Selects the TF.js backend ('wasm' by default: the cpu backend needs ~80 s for 64 sentences here). */
export async function useTfBackend(name = 'wasm'): Promise<void> {
  await tf.ready();
  if (!(await tf.setBackend(name))) throw new Error(`TF.js backend '${name}' is not available`);
}

/** Loads model.json + shards from the package folder into a TF.js GraphModel. */
export async function loadTfModel(dir: string): Promise<tf.GraphModel> {
  const mj = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const specs = mj.weightsManifest.flatMap((g) => g.weights);
  const data = Buffer.concat(mj.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(path.join(dir, p)))));
  const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  return tf.loadGraphModel(tf.io.fromMemory({ modelTopology: mj.modelTopology, weightSpecs: specs, weightData: ab }));
}

/** Runs the TF graph as @energetic-ai/embeddings does: sparse [row, position] indices and token-id values. */
export async function tfEmbed(model: tf.GraphModel, encodings: number[][]): Promise<number[][]> {
  const indices: number[][] = [];
  encodings.forEach((e, i) => e.forEach((_, j) => indices.push([i, j])));
  const inputs = {
    indices: tf.tensor2d(indices, [indices.length, 2], 'int32'),
    values: tf.tensor1d(encodings.flat(), 'int32'),
  };
  try {
    const out = (await model.executeAsync(inputs)) as tf.Tensor;
    const rows = (await out.array()) as number[][];
    out.dispose();
    return rows;
  } finally {
    tf.dispose([inputs.indices, inputs.values]);
  }
}
