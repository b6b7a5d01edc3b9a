/**
 * Content-addressed artifact store on a local folder:
 *
 *   <root>/objects/<sha256>         a file object, or a folder object (model version, checkpoint)
 *   <root>/tmp/<host>-<pid>-<rand>  staging; renamed into objects/ once hashed
 *   <root>/tmp/q-<host>-<pid>-<rand>-<sha256>  an object quarantined by gc, awaiting restore or purge
 *
 * A file's hash is the sha256 of its bytes (so `sha256sum` agrees); a folder's hash is the sha256 of a canonical
 * manifest of its files (relative path, size, sha256), so equal trees share one object. Files are copied while
 * being hashed, so the stored bytes are exactly the hashed bytes even if the source changes meanwhile, and
 * they are made read-only because an object must never change under its name.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join, relative, sep, dirname, posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../errors.ts';
import type { ArtifactStore, ObjectCheck, StagedObject, StagingArea } from './store.ts';
import type { ObjectType, StoredObject } from './types.ts';
import { HASH_RE, HOST, errCode, pidAlive, randomHex } from './util.ts';

const TREE_HEADER = 'tailor-tree-v1\n';

interface ManifestEntry {
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
async function copyHash(src: string, dest?: string): Promise<{ hash: string; size: number }> {
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
async function walkFiles(dir: string): Promise<string[]> {
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
async function hashTree(dir: string): Promise<{ hash: string; size: number; files: number }> {
  const files = await walkFiles(dir);
  const entries: ManifestEntry[] = [];
  for (const f of files) {
    const r = await copyHash(join(dir, ...f.split('/')));
    entries.push({ path: f, ...r });
  }
  return { hash: treeHash(entries), size: entries.reduce((s, e) => s + e.size, 0), files: entries.length };
}

async function makeReadOnly(path: string, type: ObjectType): Promise<void> {
  if (type === 'file') {
    await fsp.chmod(path, 0o444);
    return;
  }
  for (const f of await walkFiles(path)) await fsp.chmod(join(path, ...f.split('/')), 0o444);
}

async function makeWritable(path: string): Promise<void> {
  const st = await fsp.stat(path);
  if (st.isFile()) {
    await fsp.chmod(path, 0o644);
    return;
  }
  for (const f of await walkFiles(path)) await fsp.chmod(join(path, ...f.split('/')), 0o644);
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** Content-addressed objects in a local folder; see the module comment for the layout. */
export class LocalArtifactStore implements ArtifactStore {
  readonly location: string;
  private readonly objectsDir: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    this.location = root;
    this.objectsDir = join(root, 'objects');
    this.tmpDir = join(root, 'tmp');
  }

  /** Creates the folder layout (the caller has already checked that the root is writable). */
  async init(): Promise<void> {
    await fsp.mkdir(this.objectsDir, { recursive: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
  }

  private objectPath(hash: string): string {
    if (!HASH_RE.test(hash)) throw new RegistryError(`not an artifact hash: '${hash}'`, { value: hash });
    return join(this.objectsDir, hash);
  }

  private async newTemp(): Promise<string> {
    const dir = join(this.tmpDir, `${HOST}-${process.pid}-${randomHex(6)}`);
    await fsp.mkdir(dir, { recursive: true });
    return dir;
  }

  private staged(tempRoot: string, objPath: string, obj: StoredObject): StagedObject {
    const target = this.objectPath(obj.hash);
    return {
      ...obj,
      commit: async () => {
        if (!(await exists(objPath))) {
          // Already committed by an earlier call.
          if (await exists(target)) return;
          throw new RegistryError(`staged artifact ${obj.hash} vanished before commit`, { file: objPath });
        }
        if (!(await exists(target))) {
          await makeReadOnly(objPath, obj.type);
          try {
            await fsp.rename(objPath, target);
          } catch (e) {
            // A concurrent writer committed the same content first: a folder rename then fails because the
            // target is not empty. Same hash, same bytes, so theirs is as good as ours.
            const code = errCode(e);
            if (
              !(code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EISDIR' || code === 'ENOTDIR') ||
              !(await exists(target))
            )
              throw e;
          }
        }
        await fsp.rm(tempRoot, { recursive: true, force: true });
      },
      abort: async () => {
        await fsp.rm(tempRoot, { recursive: true, force: true });
      },
    };
  }

  async ingest(sourcePath: string): Promise<StagedObject> {
    let st;
    try {
      st = await fsp.stat(sourcePath);
    } catch (e) {
      throw new RegistryError(`artifact path does not exist: ${sourcePath}`, { file: sourcePath }, { cause: e });
    }
    const temp = await this.newTemp();
    const objPath = join(temp, 'obj');
    try {
      if (st.isFile()) {
        const r = await copyHash(sourcePath, objPath);
        return this.staged(temp, objPath, { hash: r.hash, type: 'file', size: r.size });
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
      return this.staged(temp, objPath, { hash: treeHash(entries), type: 'dir', size });
    } catch (e) {
      await fsp.rm(temp, { recursive: true, force: true });
      throw e;
    }
  }

  async ingestBytes(bytes: Uint8Array): Promise<StagedObject> {
    const temp = await this.newTemp();
    const objPath = join(temp, 'obj');
    await fsp.writeFile(objPath, bytes, { flag: 'wx' });
    const hash = createHash('sha256').update(bytes).digest('hex');
    return this.staged(temp, objPath, { hash, type: 'file', size: bytes.length });
  }

  async createStaging(): Promise<StagingArea> {
    const temp = await this.newTemp();
    const objPath = join(temp, 'obj');
    await fsp.mkdir(objPath);
    return {
      path: objPath,
      seal: async () => {
        const r = await hashTree(objPath);
        return this.staged(temp, objPath, { hash: r.hash, type: 'dir', size: r.size });
      },
      abort: async () => {
        await fsp.rm(temp, { recursive: true, force: true });
      },
    };
  }

  async has(hash: string): Promise<boolean> {
    return exists(this.objectPath(hash));
  }

  async stat(hash: string): Promise<StoredObject | undefined> {
    const p = this.objectPath(hash);
    let st;
    try {
      st = await fsp.stat(p);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined;
      throw e;
    }
    if (st.isFile()) return { hash, type: 'file', size: st.size };
    let size = 0;
    for (const f of await walkFiles(p)) size += (await fsp.stat(join(p, ...f.split('/')))).size;
    return { hash, type: 'dir', size };
  }

  async readBytes(hash: string, innerPath?: string): Promise<Uint8Array> {
    const base = this.objectPath(hash);
    let p = base;
    if (innerPath !== undefined) {
      const parts = innerPath.split('/').filter((s) => s !== '' && s !== '.');
      if (parts.includes('..'))
        throw new RegistryError(`artifact inner path may not contain '..': ${innerPath}`, { value: innerPath });
      p = join(base, ...parts);
    }
    try {
      return new Uint8Array(await fsp.readFile(p));
    } catch (e) {
      throw new RegistryError(
        `cannot read artifact ${hash}${innerPath ? ` file '${innerPath}'` : ''}: ${(e as Error).message}`,
        { file: p },
        { cause: e },
      );
    }
  }

  async exportTo(hash: string, destPath: string): Promise<void> {
    const src = this.objectPath(hash);
    if (!(await exists(src)))
      throw new RegistryError(`artifact ${hash} is missing from ${this.objectsDir}`, { file: src });
    if (await exists(destPath))
      throw new RegistryError(`export destination already exists: ${destPath}`, { file: destPath });
    const tmp = `${destPath}.tmp-${process.pid}-${randomHex(4)}`;
    try {
      await fsp.mkdir(dirname(destPath), { recursive: true });
      await fsp.cp(src, tmp, { recursive: true });
      await makeWritable(tmp);
      await fsp.rename(tmp, destPath);
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(
        `cannot export artifact ${hash} to ${destPath}: ${(e as Error).message}`,
        { file: destPath },
        { cause: e },
      );
    }
  }

  localPath(hash: string): string {
    return this.objectPath(hash);
  }

  async list(): Promise<string[]> {
    return (await fsp.readdir(this.objectsDir)).filter((n) => HASH_RE.test(n)).sort();
  }

  async check(hash: string, type?: ObjectType): Promise<ObjectCheck> {
    const p = this.objectPath(hash);
    let st;
    try {
      st = await fsp.stat(p);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return { hash, ok: false, problem: 'missing' };
      throw e;
    }
    const found: ObjectType = st.isDirectory() ? 'dir' : 'file';
    if (type !== undefined && type !== found)
      return { hash, ok: false, problem: `type mismatch: expected ${type}, found ${found}` };
    const actual = found === 'file' ? (await copyHash(p)).hash : (await hashTree(p)).hash;
    return actual === hash
      ? { hash, ok: true }
      : { hash, ok: false, problem: `hash mismatch (content hashes to ${actual})` };
  }

  async quarantine(hash: string): Promise<string | undefined> {
    const src = this.objectPath(hash);
    const token = `q-${HOST}-${process.pid}-${randomHex(6)}-${hash}`;
    try {
      await fsp.rename(src, join(this.tmpDir, token));
      return token;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async restore(token: string): Promise<void> {
    const hash = token.slice(-64);
    const q = join(this.tmpDir, token);
    const target = this.objectPath(hash);
    if (await exists(target)) {
      // A writer re-created the object meanwhile; the quarantined copy is redundant.
      await fsp.rm(q, { recursive: true, force: true });
      return;
    }
    try {
      await fsp.rename(q, target);
    } catch (e) {
      if (!(await exists(target))) throw e;
      await fsp.rm(q, { recursive: true, force: true });
    }
  }

  async purge(token: string): Promise<void> {
    await fsp.rm(join(this.tmpDir, token), { recursive: true, force: true });
  }

  async cleanTemp(maxAgeMs: number): Promise<string[]> {
    const removed: string[] = [];
    let names: string[];
    try {
      names = await fsp.readdir(this.tmpDir);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return removed;
      throw e;
    }
    const now = Date.now();
    for (const name of names) {
      const p = join(this.tmpDir, name);
      const quarantined = name.startsWith('q-');
      const m = /^(?:q-)?(.+)-(\d+)-[0-9a-f]{12}(?:-[0-9a-f]{64})?$/.exec(name);
      let stale: boolean;
      if (m && m[1] === HOST) stale = Number(m[2]) !== process.pid && !pidAlive(Number(m[2]));
      else {
        const st = await fsp.lstat(p).catch(() => undefined);
        stale = st !== undefined && now - st.mtimeMs > maxAgeMs;
      }
      if (!stale) continue;
      if (quarantined) {
        // A gc died between quarantine and its re-check: put the object back and let the next gc decide,
        // because it may be referenced.
        await this.restore(name);
      } else {
        await fsp.rm(p, { recursive: true, force: true });
      }
      removed.push(p);
    }
    return removed;
  }
}
