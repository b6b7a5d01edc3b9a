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
import * as fsp from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { RegistryError } from '../errors.ts';
import {
  copyHash,
  exists,
  hashTree,
  listTempDir,
  makeReadOnly,
  makeWritable,
  newTempDir,
  stageBytes,
  stageSource,
  staleTempEntries,
  walkFiles,
  type StagedCopy,
} from './fs-objects.ts';
import type { ArtifactStore, ObjectCheck, StagedObject, StagingArea } from './store.ts';
import type { ObjectType, StoredObject } from './types.ts';
import { HASH_RE, HOST, errCode, randomHex } from './util.ts';

export { treeHash } from './fs-objects.ts';

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

  private wrap(c: StagedCopy): StagedObject {
    return this.staged(c.temp, c.objPath, c.obj);
  }

  async ingest(sourcePath: string): Promise<StagedObject> {
    return this.wrap(await stageSource(this.tmpDir, sourcePath));
  }

  async ingestBytes(bytes: Uint8Array): Promise<StagedObject> {
    return this.wrap(await stageBytes(this.tmpDir, bytes));
  }

  async createStaging(): Promise<StagingArea> {
    const temp = await newTempDir(this.tmpDir);
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
    for (const e of await staleTempEntries(this.tmpDir, maxAgeMs)) {
      // A gc that died between quarantine and its re-check: put the object back and let the next gc decide,
      // because it may be referenced.
      if (e.quarantined) await this.restore(e.name);
      else await fsp.rm(e.path, { recursive: true, force: true });
      removed.push(e.path);
    }
    return removed;
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }

  async listTemp(): Promise<string[]> {
    return listTempDir(this.tmpDir);
  }

  async materialize(hash: string): Promise<string> {
    const p = this.objectPath(hash);
    if (!(await exists(p))) throw new RegistryError(`artifact ${hash} is missing from ${this.objectsDir}`, { file: p });
    return p;
  }
}
