/**
 * `--base` resolution: a local Hugging Face folder, a `.onnx` file, the name `use-lite` (the embedded default), or
 * a hub id (`owner/name`, optionally `@revision`) downloaded with `@huggingface/hub` into a cache. Downloads are
 * assembled into one folder per (id, revision) under the cache, written under a temporary name and renamed, so a
 * cached model is complete or absent; a cached model loads without network.
 */
import { mkdir, rename, rm, stat, symlink } from 'node:fs/promises';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { downloadFileToCacheDir, pathsInfo } from '@huggingface/hub';
import { ConfigError, ModelFileError, TailorError } from '../errors.ts';
import { readModel } from '../onnx/io.ts';
import type { ModelTask, Model } from './model.ts';
import { loadHfModel, type LoadHfOptions } from './hf/load.ts';
import { recoverParams } from './hf/names.ts';
import { readJson, TextTokenizer } from './hf/tokenizer.ts';

export type BaseKind = 'use-lite' | 'dir' | 'onnx-file' | 'hub';

export interface ResolvedBase {
  kind: BaseKind;
  /** Local path (dir / onnx-file), or the hub id. */
  target: string;
  revision?: string;
}

export interface ResolveOptions {
  /** Hub download cache (default `$TAILOR_CACHE/hub`, else `~/.cache/tailor/hub`). */
  cacheDir?: string;
  /** Injected fetch (tests, proxies). */
  fetch?: typeof fetch;
  /** Hub endpoint (default `$HF_ENDPOINT` or https://huggingface.co). */
  hubUrl?: string;
  accessToken?: string;
  /** Loader for `use-lite`; default: src/models/use's `loadUseLite`. */
  useLite?: () => Promise<Model>;
  /** Passed to the Hugging Face folder loader. */
  load?: LoadHfOptions;
}

/** The default `--base`. */
export const DEFAULT_BASE = 'use-lite';

const HUB_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?(@[\w./-]+)?$/;

async function statOrNull(p: string): Promise<{ isDir: boolean } | null> {
  try {
    const s = await stat(p);
    return { isDir: s.isDirectory() };
  } catch {
    return null;
  }
}

/** Classifies a `--base` string without touching the network. */
export async function classifyBase(spec: string): Promise<ResolvedBase> {
  const s = spec.trim();
  if (!s)
    throw new ConfigError('--base is empty: give a model folder, a .onnx file, a hub id (owner/name) or use-lite', {
      field: 'base',
    });
  if (s === 'use-lite') return { kind: 'use-lite', target: s };
  const local = await statOrNull(s);
  if (local)
    return local.isDir
      ? { kind: 'dir', target: resolve(s) }
      : s.endsWith('.onnx')
        ? { kind: 'onnx-file', target: resolve(s) }
        : badFile(s);
  if (s.endsWith('.onnx')) throw new ModelFileError(`${s}: file not found`, { file: s, field: 'base' });
  // A path-looking spec that does not exist is a typo, not a hub id.
  if (
    s.startsWith('.') ||
    s.startsWith('/') ||
    s.startsWith('~') ||
    s.includes('\\') ||
    s.split('/').length > 2 ||
    !HUB_ID.test(s)
  ) {
    throw new ModelFileError(`${s}: no such folder or file, and not a hub id (owner/name[@revision])`, {
      file: s,
      field: 'base',
    });
  }
  const at = s.indexOf('@');
  return at >= 0 ? { kind: 'hub', target: s.slice(0, at), revision: s.slice(at + 1) } : { kind: 'hub', target: s };
}

function badFile(s: string): never {
  throw new ModelFileError(`${s}: --base must be a model folder or a .onnx file`, { file: s, field: 'base' });
}

/** Hub cache root. */
export function hubCacheDir(): string {
  const root = process.env.TAILOR_CACHE ?? join(os.homedir(), '.cache', 'tailor');
  return join(root, 'hub');
}

/** Files a model folder may use, in the order they are looked for. */
const HUB_FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'model.safetensors',
  'onnx/model.onnx',
  'onnx/model.onnx_data',
];

function networkError(id: string, hubUrl: string, e: unknown): TailorError {
  const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
  return new ModelFileError(
    `cannot download '${id}' from ${hubUrl}: the hub is unreachable (${cause}). Without network, download the model folder ` +
      '(config.json, tokenizer.json, model.safetensors or onnx/model.onnx) elsewhere and pass its path to --base',
    { field: 'base', value: id },
    { cause: e },
  );
}

/**
 * Downloads the files a hub model needs (config, tokenizer, safetensors weights or else the ONNX export) and
 * returns a local folder laid out like the repository. A folder already in the cache is returned as is.
 */
export async function downloadHubModel(id: string, revision = 'main', opts: ResolveOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const hubUrl = opts.hubUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co';
  const folder = join(cacheDir, 'tailor-models', `${id.replace('/', '--')}@${revision.replace(/[^\w.-]/g, '_')}`);
  if ((await statOrNull(join(folder, 'config.json'))) !== null) return folder;
  const common = {
    repo: { type: 'model' as const, name: id },
    revision,
    hubUrl,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(opts.accessToken ? { accessToken: opts.accessToken } : {}),
  };
  let present: Set<string>;
  try {
    const info = await pathsInfo({ ...common, paths: HUB_FILES });
    present = new Set(info.filter((i) => i.type === 'file').map((i) => i.path));
  } catch (e) {
    if (
      e instanceof TypeError ||
      ((e as { cause?: unknown }).cause !== undefined && !(e as { statusCode?: number }).statusCode)
    )
      throw networkError(id, hubUrl, e);
    const status = (e as { statusCode?: number }).statusCode;
    if (status === 401 || status === 404) {
      throw new ModelFileError(
        `hub model '${id}' was not found at ${hubUrl} (or is private: set an access token)`,
        { field: 'base', value: id },
        { cause: e },
      );
    }
    throw new ModelFileError(
      `hub request for '${id}' failed: ${(e as Error).message}`,
      { field: 'base', value: id },
      { cause: e },
    );
  }
  if (!present.has('config.json'))
    throw new ModelFileError(`hub model '${id}' has no config.json`, {
      file: `${id}/config.json`,
      field: 'config.json',
    });
  const wanted = ['config.json', 'tokenizer.json', 'tokenizer_config.json'].filter((f) => present.has(f));
  if (present.has('model.safetensors')) wanted.push('model.safetensors');
  else if (present.has('onnx/model.onnx'))
    wanted.push(...['onnx/model.onnx', 'onnx/model.onnx_data'].filter((f) => present.has(f)));
  else
    throw new ModelFileError(`hub model '${id}' has neither model.safetensors nor onnx/model.onnx`, {
      file: id,
      field: 'model.safetensors',
    });

  const tmp = join(dirname(folder), `.${basename(folder)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });
  try {
    for (const f of wanted) {
      let file: string;
      try {
        file = await downloadFileToCacheDir({ ...common, path: f, cacheDir });
      } catch (e) {
        if (e instanceof TypeError) throw networkError(id, hubUrl, e);
        throw new ModelFileError(
          `downloading ${id}/${f} failed: ${(e as Error).message}`,
          { file: `${id}/${f}` },
          { cause: e },
        );
      }
      await mkdir(dirname(join(tmp, f)), { recursive: true });
      await symlink(resolve(file), join(tmp, f));
    }
    await mkdir(dirname(folder), { recursive: true });
    await rename(tmp, folder);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    // A concurrent download may have finished first; its folder is as good as ours.
    if ((await statOrNull(join(folder, 'config.json'))) !== null) return folder;
    throw e;
  }
  return folder;
}

/** Loads a bare `.onnx` file: config.json and tokenizer.json are picked up from its folder (or the parent of `onnx/`). */
export async function loadOnnxFile(file: string, opts: LoadHfOptions = {}): Promise<Model> {
  const dir = dirname(file);
  const root = basename(dir) === 'onnx' ? dirname(dir) : dir;
  if ((await statOrNull(join(root, 'config.json'))) !== null && basename(file) === 'model.onnx') {
    return loadHfModel(root, { ...opts, prefer: 'onnx' });
  }
  const onnx = await readModel(file);
  const outputs = onnx.graph.outputs.map((o) => o.name);
  const logits = onnx.graph.outputs.find((o) => o.name === 'logits');
  const task: ModelTask = logits
    ? logits.shape?.length === 3
      ? 'token-classification'
      : 'sequence-classification'
    : outputs.includes('sentence_embedding')
      ? 'sentence-embedding'
      : 'feature-extraction';
  let tokenizer: TextTokenizer | undefined;
  if ((await statOrNull(join(root, 'tokenizer.json'))) !== null) tokenizer = await TextTokenizer.fromDir(root);
  const config =
    (await statOrNull(join(root, 'config.json'))) !== null
      ? ((await readJson(join(root, 'config.json'))) as Record<string, unknown>)
      : {};
  return {
    architecture: typeof config.model_type === 'string' ? config.model_type : 'onnx',
    task,
    graph: onnx.graph,
    params: recoverParams(onnx.graph),
    config,
    source: { kind: 'onnx', path: file },
    opsets: onnx.opsetImports,
    ...(tokenizer ? { tokenizer } : {}),
  };
}

async function defaultUseLite(): Promise<Model> {
  const { loadUseLite } = await import('./use/index.ts');
  return (await loadUseLite()).model;
}

/** Resolves and loads a `--base` model. */
export async function loadBase(spec: string = DEFAULT_BASE, opts: ResolveOptions = {}): Promise<Model> {
  const r = await classifyBase(spec);
  switch (r.kind) {
    case 'use-lite':
      return (opts.useLite ?? defaultUseLite)();
    case 'dir':
      return loadHfModel(r.target, opts.load);
    case 'onnx-file':
      return loadOnnxFile(r.target, opts.load);
    case 'hub': {
      const dir = await downloadHubModel(r.target, r.revision, opts);
      const m = await loadHfModel(dir, opts.load);
      return { ...m, source: { ...m.source, hubId: r.target } };
    }
  }
}
