/**
 * `.onnx` files on disk: reading (with external data) and atomic writing (model + one external-data file).
 * In-memory (de)serialization lives in `serialize.ts`; this module adds paths, external data and atomicity.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ModelFileError, TailorError } from '../errors.ts';
import type { ExternalLocation, ModelProto, Tensor, Graph } from './ir.ts';
import { decodeModel, encodeModel } from './serialize.ts';
import { validateModel } from './graph.ts';

export interface ReadModelOptions {
  /**
   * Check the graph after reading (known ops at the model's opset, inputs defined, no duplicate outputs, no cycle).
   * Default true, so a bad file fails here with the file named rather than later inside ONNX Runtime.
   */
  validate?: boolean;
}

/** Reads an `.onnx` file, loading tensors stored as external data from files next to it. */
export async function readModel(file: string, opts: ReadModelOptions = {}): Promise<ModelProto> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    throw fileReadError(file, e);
  }
  return finishRead(bytes, file, opts);
}

/** Synchronous form of `readModel`. */
export function readModelSync(file: string, opts: ReadModelOptions = {}): ModelProto {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw fileReadError(file, e);
  }
  return finishRead(bytes, file, opts);
}

function fileReadError(file: string, e: unknown): ModelFileError {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
  return new ModelFileError(`cannot read model ${file}: ${why}`, { file }, { cause: e });
}

function finishRead(bytes: Uint8Array, file: string, opts: ReadModelOptions): ModelProto {
  const reader = new ExternalDataReader(path.dirname(path.resolve(file)), file);
  let model: ModelProto;
  try {
    model = decodeModel(bytes, { file, loadExternal: (name, loc) => reader.read(name, loc) });
  } finally {
    reader.close();
  }
  if (opts.validate ?? true) validateModel(model, { file });
  return model;
}

/**
 * Reads external tensors with one open file descriptor per data file (Hugging Face exports put hundreds of
 * tensors in one `model.onnx_data`; re-opening it per tensor would be a syscall storm).
 */
class ExternalDataReader {
  private readonly open = new Map<string, { fd: number; size: number; file: string }>();
  constructor(
    private readonly dir: string,
    private readonly modelFile: string,
  ) {}

  read(tensor: string, loc: ExternalLocation): Uint8Array {
    const f = this.fileFor(tensor, loc.location);
    if (loc.offset + loc.length > f.size) {
      throw new ModelFileError(
        `${this.modelFile}: tensor '${tensor}' needs bytes ${loc.offset}..${loc.offset + loc.length} of external data file ` +
          `'${loc.location}', but that file has only ${f.size} bytes (truncated or wrong file)`,
        { file: f.file, field: tensor, details: { offset: loc.offset, length: loc.length, fileSize: f.size } },
      );
    }
    // A fresh buffer (byteOffset 0) so typed-array views of the tensor need no aligning copy.
    const out = new Uint8Array(loc.length);
    let done = 0;
    while (done < loc.length) {
      const n = fs.readSync(f.fd, out, done, Math.min(loc.length - done, 1 << 30), loc.offset + done);
      if (n === 0) {
        throw new ModelFileError(
          `${this.modelFile}: external data file '${loc.location}' ended early while reading tensor '${tensor}'`,
          { file: f.file, field: tensor },
        );
      }
      done += n;
    }
    return out;
  }

  private fileFor(tensor: string, location: string): { fd: number; size: number; file: string } {
    const cached = this.open.get(location);
    if (cached) return cached;
    // Like ONNX Runtime, refuse locations that leave the model's folder: a model file must not read arbitrary files.
    const normalized = path.normalize(location);
    if (path.isAbsolute(location) || normalized.startsWith('..')) {
      throw new ModelFileError(
        `${this.modelFile}: tensor '${tensor}' has external data location '${location}' outside the model's folder`,
        { file: this.modelFile, field: tensor, value: location },
      );
    }
    const file = path.join(this.dir, normalized);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ModelFileError(
        `${this.modelFile}: tensor '${tensor}' is stored in external data file '${location}', which ${code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code})`} ` +
          `(looked for ${file}; copy it next to the model)`,
        { file, field: tensor },
        { cause: e },
      );
    }
    const entry = { fd, size: fs.fstatSync(fd).size, file };
    this.open.set(location, entry);
    return entry;
  }

  close(): void {
    for (const f of this.open.values()) fs.closeSync(f.fd);
    this.open.clear();
  }
}

export interface ExternalDataOptions {
  /** Initializers of at least this many bytes go to the data file; smaller ones stay inline (default 1024, as onnx's `size_threshold`). */
  threshold?: number;
  /** Data file name relative to the model's folder (default `<model file name>_data`, e.g. `model.onnx_data`). */
  location?: string;
  /** Offset alignment for every tensor (default 16). */
  align?: number;
  /** Tensors of at least this many bytes start on a 4096-byte page, so ONNX Runtime can mmap them (default 65536). */
  pageAlignThreshold?: number;
}

export interface WriteModelOptions {
  /**
   * Store initializers in an external data file. Default: only when the inline model would pass protobuf's
   * 2 GiB limit.
   */
  externalData?: boolean | ExternalDataOptions;
}

export interface WriteModelResult {
  /** Absolute path of the model file written. */
  modelFile: string;
  /** Absolute path of the external data file, when one was written. */
  dataFile?: string;
  modelBytes: number;
  dataBytes: number;
}

/** Fault injection for tests of the rollback path; not for production use. */
export const writeHooks: { beforeModelRename?: () => void } = {};

/** Protobuf messages cannot exceed 2 GiB; leave headroom for the graph itself. */
const INLINE_LIMIT = 1.8 * 1024 ** 3;
const PAGE = 4096;

/**
 * Writes a model to `file` atomically: the model (and its external data file, if any) are written to temporary
 * names in the target folder and renamed into place only when complete, so a failure never leaves a half-written
 * model, and an existing data file is restored if the model cannot be renamed.
 */
export async function writeModel(
  model: ModelProto,
  file: string,
  opts: WriteModelOptions = {},
): Promise<WriteModelResult> {
  const modelFile = path.resolve(file);
  const dir = path.dirname(modelFile);
  const ext = resolveExternal(model, modelFile, opts.externalData);

  const placed: { tensor: Tensor; offset: number }[] = [];
  let dataSize = 0;
  let bytes: Uint8Array;
  try {
    bytes = encodeModel(model, {
      externalize: ext
        ? (t) => {
            if (t.dtype === 'string' || t.data.byteLength < ext.threshold) return undefined;
            const align = t.data.byteLength >= ext.pageAlignThreshold ? Math.max(PAGE, ext.align) : ext.align;
            const offset = Math.ceil(dataSize / align) * align;
            placed.push({ tensor: t, offset });
            dataSize = offset + t.data.byteLength;
            return { location: ext.location, offset, length: t.data.byteLength };
          }
        : undefined,
    });
  } catch (e) {
    if (e instanceof TailorError) throw e;
    throw new ModelFileError(
      `cannot encode model for ${modelFile}: ${(e as Error).message}`,
      { file: modelFile },
      { cause: e },
    );
  }

  const dataFile = ext ? path.join(dir, ext.location) : undefined;
  for (const target of [modelFile, dataFile]) {
    if (target && fs.existsSync(target) && !fs.statSync(target).isFile()) {
      throw new ModelFileError(`cannot write model ${modelFile}: ${target} exists and is not a regular file`, {
        file: target,
      });
    }
  }
  const tmpModel = tempName(modelFile);
  const tmpData = dataFile ? tempName(dataFile) : undefined;
  const cleanup = async (): Promise<void> => {
    for (const f of [tmpModel, tmpData]) if (f) await fsp.rm(f, { force: true }).catch(() => undefined);
  };
  try {
    if (tmpData) await writeTensorsAt(tmpData, placed, dataSize);
    await writeFileSynced(tmpModel, bytes);
  } catch (e) {
    await cleanup();
    throw new ModelFileError(
      `cannot write model ${modelFile}: ${(e as Error).message}`,
      { file: modelFile },
      { cause: e },
    );
  }
  await commitRenames(modelFile, tmpModel, dataFile, tmpData, cleanup);
  return { modelFile, ...(dataFile ? { dataFile } : {}), modelBytes: bytes.byteLength, dataBytes: dataSize };
}

/** Renames the data file, then the model; if the model rename fails, puts the previous data file back. */
async function commitRenames(
  modelFile: string,
  tmpModel: string,
  dataFile: string | undefined,
  tmpData: string | undefined,
  cleanup: () => Promise<void>,
): Promise<void> {
  let backup: string | undefined;
  let dataMoved = false;
  try {
    if (dataFile && tmpData) {
      if (fs.existsSync(dataFile)) {
        backup = tempName(dataFile, 'bak');
        await fsp.rename(dataFile, backup);
      }
      await fsp.rename(tmpData, dataFile);
      dataMoved = true;
    }
    writeHooks.beforeModelRename?.();
    await fsp.rename(tmpModel, modelFile);
  } catch (e) {
    if (dataFile && dataMoved) await fsp.rm(dataFile, { force: true }).catch(() => undefined);
    if (dataFile && backup) await fsp.rename(backup, dataFile).catch(() => undefined);
    backup = undefined;
    await cleanup();
    throw new ModelFileError(
      `cannot write model ${modelFile}: ${(e as Error).message}`,
      { file: modelFile },
      { cause: e },
    );
  } finally {
    if (backup) await fsp.rm(backup, { force: true }).catch(() => undefined);
  }
  await fsyncDir(path.dirname(modelFile));
}

function resolveExternal(
  model: ModelProto,
  modelFile: string,
  opt: WriteModelOptions['externalData'],
): Required<ExternalDataOptions> | undefined {
  let use = opt;
  if (use === undefined) use = initializerBytes(model.graph) > INLINE_LIMIT;
  if (use === false) {
    const total = initializerBytes(model.graph);
    if (total > INLINE_LIMIT) {
      throw new ModelFileError(
        `${modelFile}: ${(total / 1024 ** 3).toFixed(2)} GiB of initializers cannot be stored inline (protobuf's 2 GiB limit); write with externalData`,
        { file: modelFile },
      );
    }
    return undefined;
  }
  const o: ExternalDataOptions = use === true ? {} : use;
  const location = o.location ?? `${path.basename(modelFile)}_data`;
  if (path.isAbsolute(location) || path.normalize(location).startsWith('..') || path.normalize(location) !== location) {
    throw new ModelFileError(
      `external data location '${location}' must be a plain file name relative to the model's folder`,
      { file: modelFile, value: location },
    );
  }
  if (location === path.basename(modelFile)) {
    throw new ModelFileError(`external data location '${location}' is the model file itself`, {
      file: modelFile,
      value: location,
    });
  }
  const align = o.align ?? 16;
  if (!Number.isInteger(align) || align < 1)
    throw new ModelFileError(`external data alignment must be a positive integer, got ${align}`, { file: modelFile });
  return { threshold: o.threshold ?? 1024, location, align, pageAlignThreshold: o.pageAlignThreshold ?? 65536 };
}

function initializerBytes(g: Graph): number {
  let total = 0;
  for (const t of g.initializers.values()) total += t.data.byteLength;
  return total;
}

/** A sibling temp name: same folder, so the final rename is atomic (same filesystem). */
export function tempName(file: string, tag = 'tmp'): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

async function writeTensorsAt(file: string, placed: { tensor: Tensor; offset: number }[], size: number): Promise<void> {
  const h = await fsp.open(file, 'wx');
  try {
    // Positioned writes leave the alignment gaps as zeros (holes) without building one big buffer.
    for (const p of placed) {
      let done = 0;
      const d = p.tensor.data;
      while (done < d.byteLength) {
        const { bytesWritten } = await h.write(d, done, d.byteLength - done, p.offset + done);
        done += bytesWritten;
      }
    }
    await h.truncate(size);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Writes bytes to a new file and flushes it to disk (used before an atomic rename). */
export async function writeFileSynced(file: string, bytes: Uint8Array): Promise<void> {
  const h = await fsp.open(file, 'wx');
  try {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await h.write(bytes, done, bytes.byteLength - done);
      done += bytesWritten;
    }
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes `bytes` to `file` atomically (temp file in the same folder, fsync, rename). Errors are ModelFileErrors
 * naming the file; the temp file is removed on failure.
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  const target = path.resolve(file);
  const tmp = tempName(target);
  try {
    await writeFileSynced(tmp, bytes);
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw new ModelFileError(`cannot write ${target}: ${(e as Error).message}`, { file: target }, { cause: e });
  }
  await fsyncDir(path.dirname(target));
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; not supported on every platform/filesystem, so best effort.
  try {
    const h = await fsp.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* best effort */
  }
}
