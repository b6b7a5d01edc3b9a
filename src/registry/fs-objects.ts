/**
 * Local-file side of the artifact stores: hashing files and folders while copying them into a staging folder,
 * and the staging folder's housekeeping. The local store renames staged objects into place; the S3 store
 * uploads them. Both name staging folders `<host>-<pid>-<rand>` so that gc can tell a dead writer's leftovers.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join, relative, sep, dirname, posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../errors.ts';
import type { ObjectType, StoredObject } from './types.ts';
import { HOST, errCode, pidAlive, randomHex } from './util.ts';

const TREE_HEADER = 'tailor-tree-v1\n';

/** One file of a folder object. */
export interface ManifestEntry {
  path: string;
  size: number;
  hash: string;
}

/** Canonical folder hash from its file entries (order-independent). */
export function treeHash(entries: ManifestEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const h = createHash('sha256');
  h.update(TREE_HEADER);
  for (const e of sorted) h.update(`${e.hash} ${e.size} ${JSON.stringify(e.path)}\n`);
  return h.digest('hex');
}

/** Copies src to dest (when given) while computing sha256 and size of the bytes read. */
export async function copyHash(src: string, dest?: string): Promise<{ hash: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      size += chunk.length;
      cb(null, dest === undefined ? undefined : chunk);
    },
  });
  if (dest === undefined) {
    for await (const chunk of createReadStream(src)) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { hash: h.digest('hex'), size };
  } else {
    await pipeline(createReadStream(src), tap, createWriteStream(dest, { flags: 'wx' }));
  }
  return { hash: h.digest('hex'), size };
}

/** Files under `dir`, following symlinks, as POSIX-style relative paths. */
export async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string): Promise<void> => {
    const names = await fsp.readdir(abs);
    for (const name of names) {
      const p = join(abs, name);
      const st = await fsp.stat(p);
      if (st.isDirectory()) await visit(p);
      else if (st.isFile()) out.push(relative(dir, p).split(sep).join(posix.sep));
      // Sockets, fifos and devices are not artifacts; skipping them beats hanging on a fifo read.
    }
  };
  await visit(dir);
  return out;
}

/** Hashes a folder in place (no copy). */
export async function hashTree(
  dir: string,
): Promise<{ hash: string; size: number; files: number; entries: ManifestEntry[] }> {
  const files = await walkFiles(dir);
  const entries: ManifestEntry[] = [];
  for (const f of files) {
    const r = await copyHash(join(dir, ...f.split('/')));
    entries.push({ path: f, ...r });
  }
  return {
    hash: treeHash(entries),
    size: entries.reduce((s, e) => s + e.size, 0),
    files: entries.length,
    entries,
  };
}

/** Drops write permission from a file or every file of a folder (an object never changes under its name). */
export async function makeReadOnly(path: string, type: ObjectType): Promise<void> {
  if (type === 'file') {
    await fsp.chmod(path, 0o444);
    return;
  }
  for (const f of await walkFiles(path)) await fsp.chmod(join(path, ...f.split('/')), 0o444);
}

/** Restores write permission (an exported copy belongs to the user). */
export async function makeWritable(path: string): Promise<void> {
  const st = await fsp.stat(path);
  if (st.isFile()) {
    await fsp.chmod(path, 0o644);
    return;
  }
  for (const f of await walkFiles(path)) await fsp.chmod(join(path, ...f.split('/')), 0o644);
}

/** Whether a path exists (without following a final symlink). */
export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** A file or folder copied into a staging folder and hashed. */
export interface StagedCopy {
  /** The staging folder (removed on commit or abort). */
  temp: string;
  /** The copy: `<temp>/obj`. */
  objPath: string;
  obj: StoredObject;
  /** The files of a folder object, as hashed. */
  entries?: ManifestEntry[];
}

/** Creates a fresh staging folder `<tmpDir>/<host>-<pid>-<rand>`. */
export async function newTempDir(tmpDir: string): Promise<string> {
  const dir = join(tmpDir, `${HOST}-${process.pid}-${randomHex(6)}`);
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}

/** Copies a file or folder into a new staging folder while hashing it. */
export async function stageSource(tmpDir: string, sourcePath: string): Promise<StagedCopy> {
  let st;
  try {
    st = await fsp.stat(sourcePath);
  } catch (e) {
    throw new RegistryError(`artifact path does not exist: ${sourcePath}`, { file: sourcePath }, { cause: e });
  }
  const temp = await newTempDir(tmpDir);
  const objPath = join(temp, 'obj');
  try {
    if (st.isFile()) {
      const r = await copyHash(sourcePath, objPath);
      return { temp, objPath, obj: { hash: r.hash, type: 'file', size: r.size } };
    }
    if (!st.isDirectory())
      throw new RegistryError(`artifact path is neither a file nor a folder: ${sourcePath}`, { file: sourcePath });
    const files = await walkFiles(sourcePath);
    const entries: ManifestEntry[] = [];
    await fsp.mkdir(objPath);
    for (const f of files) {
      const parts = f.split('/');
      const dest = join(objPath, ...parts);
      await fsp.mkdir(dirname(dest), { recursive: true });
      const r = await copyHash(join(sourcePath, ...parts), dest);
      entries.push({ path: f, ...r });
    }
    const size = entries.reduce((s, e) => s + e.size, 0);
    return { temp, objPath, obj: { hash: treeHash(entries), type: 'dir', size }, entries };
  } catch (e) {
    await fsp.rm(temp, { recursive: true, force: true });
    throw e;
  }
}

/** Writes bytes into a new staging folder. */
export async function stageBytes(tmpDir: string, bytes: Uint8Array): Promise<StagedCopy> {
  const temp = await newTempDir(tmpDir);
  const objPath = join(temp, 'obj');
  await fsp.writeFile(objPath, bytes, { flag: 'wx' });
  const hash = createHash('sha256').update(bytes).digest('hex');
  return { temp, objPath, obj: { hash, type: 'file', size: bytes.length } };
}

/** Entries of a staging folder (sorted), or none when it does not exist. */
export async function listTempDir(tmpDir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(tmpDir)).sort();
  } catch (e) {
    if (errCode(e) === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Entries of `tmpDir` left by a dead writer: on this host when their pid is gone, otherwise when older than
 * `maxAgeMs`. `quarantined` marks a local store's gc quarantine (`q-...`), which must be restored, not deleted.
 */
export async function staleTempEntries(
  tmpDir: string,
  maxAgeMs: number,
): Promise<Array<{ name: string; path: string; quarantined: boolean }>> {
  const out: Array<{ name: string; path: string; quarantined: boolean }> = [];
  const now = Date.now();
  for (const name of await listTempDir(tmpDir)) {
    const p = join(tmpDir, name);
    const m = /^(?:q-)?(.+)-(\d+)-[0-9a-f]{12}(?:-[0-9a-f]{64})?$/.exec(name);
    let stale: boolean;
    if (m && m[1] === HOST) stale = Number(m[2]) !== process.pid && !pidAlive(Number(m[2]));
    else {
      const st = await fsp.lstat(p).catch(() => undefined);
      stale = st !== undefined && now - st.mtimeMs > maxAgeMs;
    }
    if (stale) out.push({ name, path: p, quarantined: name.startsWith('q-') });
  }
  return out;
}
