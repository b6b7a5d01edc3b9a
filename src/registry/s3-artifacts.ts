/**
 * Content-addressed artifact store on S3-compatible object storage (AWS S3, MinIO, Ceph, s3rver), through
 * `@aws-sdk/client-s3` with a configurable endpoint and path-style addressing. Layout under `s3://bucket/prefix/`:
 *
 *   objects/<sha256>                 marker: JSON {type, size, upload, files}; the object exists iff this key does
 *   data/<sha256>/<upload>           the bytes of a file object
 *   data/<sha256>/<upload>/<path>    the files of a folder object
 *   quarantine/q-<host>-<pid>-<rand>-<sha256>   a marker moved aside by gc, awaiting restore or purge
 *
 * Objects are staged and hashed locally first (in `<home>/tmp`, like the local store), then committed: data is
 * uploaded (multipart above `partSize`, via `@aws-sdk/lib-storage`), and only then is the marker written, so a
 * reader never sees a half-uploaded object. Data keys carry a per-upload id, so two writers of the same content
 * or a gc purging an old copy never touch each other's bytes. S3 has no rename; quarantine moves only the small
 * marker. Reads for local use (`materialize`) are cached under `<home>/cache/<sha256>`, verified while downloading.
 * Transient network errors are retried by the SDK (standard mode, exponential backoff, `maxAttempts`).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ConfigError, RegistryError } from '../errors.ts';
import {
  exists,
  hashTree,
  listTempDir,
  makeReadOnly,
  newTempDir,
  stageBytes,
  stageSource,
  staleTempEntries,
  treeHash,
  type ManifestEntry,
  type StagedCopy,
} from './fs-objects.ts';
import type { ArtifactStore, ObjectCheck, StagedObject, StagingArea } from './store.ts';
import type { ObjectType, StoredObject } from './types.ts';
import { HASH_RE, HOST, errCode, maskUrl, pidAlive, randomHex } from './util.ts';

/** Smallest part S3 accepts (except the last). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;

/** Options for the S3 artifact store. */
export interface S3StoreOptions {
  /** `s3://bucket` or `s3://bucket/prefix`. */
  url: string;
  /** Endpoint of an S3-compatible server (`http://127.0.0.1:9000`); default AWS. */
  endpoint?: string;
  /** Default `$AWS_REGION`, else `us-east-1`. */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which MinIO and most self-hosted servers need. Default true. */
  forcePathStyle?: boolean;
  /** Default: the SDK's chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Local folder for staging (`tmp/`) and the download cache (`cache/`). */
  localRoot: string;
  /** Files larger than this are uploaded in parts of this size (default 8 MiB, at least 5 MiB). */
  partSize?: number;
  /** Parts uploaded at once (default 4). */
  queueSize?: number;
  /** Attempts per request including the first, with exponential backoff (default 5). */
  maxAttempts?: number;
  /** Connection timeout in ms (default 5000), so an unreachable endpoint fails instead of hanging. */
  connectTimeoutMs?: number;
  /** Upload progress per key (`part` counts from 1; a multipart upload reports each part), e.g. for a job's progress. */
  onUploadProgress?: (e: { key: string; part?: number; loaded?: number; total?: number }) => void;
}

/** What `objects/<hash>` holds. */
interface Marker {
  format: 'tailor-object-v1';
  type: ObjectType;
  size: number;
  upload: string;
  files?: ManifestEntry[];
}

/** Bucket and key prefix (`''` or ending in `/`) of an `s3://` URL. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/?#]+)(?:\/([^?#]*))?$/.exec(url);
  if (!m) {
    throw new ConfigError(`invalid artifact store URL '${maskUrl(url)}': expected s3://bucket or s3://bucket/prefix`, {
      value: maskUrl(url),
    });
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: m[1], prefix: prefix === '' ? '' : `${prefix}/` };
}

function isNotFound(e: unknown): boolean {
  const x = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return x?.name === 'NotFound' || x?.name === 'NoSuchKey' || x?.$metadata?.httpStatusCode === 404;
}

/** Short reason for an SDK error: the node error code, the S3 error name and HTTP status, or the message. */
function reason(e: unknown): string {
  const code = errCode(e);
  if (code !== undefined && /^E[A-Z]+$/.test(code)) return code;
  const x = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = x?.$metadata?.httpStatusCode;
  const name = x?.name && x.name !== 'Error' ? x.name : undefined;
  if (name !== undefined && status !== undefined) return `${name} (HTTP ${status})`;
  return name ?? x?.message ?? String(e);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Content-addressed objects in an S3 bucket; see the module comment for the layout. */
export class S3ArtifactStore implements ArtifactStore {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string | undefined;
  private readonly client: S3Client;
  private readonly tmpDir: string;
  private readonly cacheDir: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly onUploadProgress: S3StoreOptions['onUploadProgress'];

  private constructor(options: S3StoreOptions) {
    const { bucket, prefix } = parseS3Url(options.url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.location = `s3://${bucket}/${prefix}`;
    this.endpoint = options.endpoint;
    this.tmpDir = join(options.localRoot, 'tmp');
    this.cacheDir = join(options.localRoot, 'cache');
    this.partSize = options.partSize ?? 8 * 1024 * 1024;
    if (this.partSize < MIN_PART_SIZE) {
      throw new ConfigError(`S3 part size ${this.partSize} is below the minimum of ${MIN_PART_SIZE} bytes`, {
        field: 'partSize',
        value: String(this.partSize),
      });
    }
    this.queueSize = options.queueSize ?? 4;
    this.onUploadProgress = options.onUploadProgress;
    this.client = new S3Client({
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? true,
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts ?? 5,
      retryMode: 'standard',
      requestHandler: { connectionTimeout: options.connectTimeoutMs ?? 5000 },
    });
  }

  /** Where the store is, for messages: the URL and, when set, the endpoint (credentials masked). */
  get description(): string {
    return this.endpoint === undefined ? this.location : `${this.location} (endpoint ${maskUrl(this.endpoint)})`;
  }

  /**
   * Creates the store and checks that the bucket is reachable. An unreachable endpoint, a missing bucket or
   * refused credentials is a RegistryError naming the URL and endpoint; nothing falls back to local storage.
   */
  static async open(options: S3StoreOptions): Promise<S3ArtifactStore> {
    const store = new S3ArtifactStore(options);
    try {
      await store.client.send(new HeadBucketCommand({ Bucket: store.bucket }));
    } catch (e) {
      store.client.destroy();
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const why =
        status === 404
          ? `bucket '${store.bucket}' does not exist`
          : status === 403 || status === 401
            ? `access denied to bucket '${store.bucket}' (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)`
            : `unreachable: ${reason(e)}`;
      throw new RegistryError(
        `cannot open artifact store ${store.description}: ${why}`,
        { value: store.location },
        { cause: e },
      );
    }
    await fsp.mkdir(store.tmpDir, { recursive: true });
    return store;
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join('/');
  }

  private markerKey(hash: string): string {
    if (!HASH_RE.test(hash)) throw new RegistryError(`not an artifact hash: '${hash}'`, { value: hash });
    return this.key('objects', hash);
  }

  /** Wraps an SDK failure in a RegistryError naming the store and what was being done. */
  private fail(what: string, e: unknown): never {
    if (e instanceof RegistryError || e instanceof ConfigError) throw e;
    throw new RegistryError(
      `artifact store ${this.description}: ${what} failed: ${reason(e)}`,
      {
        value: this.location,
      },
      { cause: e },
    );
  }

  private async getText(key: string): Promise<string | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await res.Body!.transformToString();
    } catch (e) {
      if (isNotFound(e)) return undefined;
      return this.fail(`reading ${key}`, e);
    }
  }

  private async readMarker(hash: string): Promise<Marker | undefined> {
    const text = await this.getText(this.markerKey(hash));
    return text === undefined ? undefined : this.parseMarker(hash, text);
  }

  private parseMarker(hash: string, text: string): Marker {
    try {
      const m = JSON.parse(text) as Marker;
      if (m.format !== 'tailor-object-v1' || (m.type !== 'file' && m.type !== 'dir') || typeof m.upload !== 'string')
        throw new Error('unknown format');
      return m;
    } catch (e) {
      throw new RegistryError(
        `artifact ${hash} in ${this.location} has an unreadable marker: ${(e as Error).message}`,
        {
          value: hash,
        },
      );
    }
  }

  private async putText(key: string, text: string): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: text, ContentType: 'application/json' }),
      );
    } catch (e) {
      this.fail(`writing ${key}`, e);
    }
  }

  private async uploadFile(key: string, path: string): Promise<void> {
    try {
      const up = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: createReadStream(path) },
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
      });
      const report = this.onUploadProgress;
      if (report) up.on('httpUploadProgress', (p) => report({ key, part: p.part, loaded: p.loaded, total: p.total }));
      await up.done();
    } catch (e) {
      this.fail(`uploading ${key}`, e);
    }
  }

  /** Every key under `prefix` (relative to the bucket) with its modification time. */
  private async *listKeys(prefix: string): AsyncGenerator<{ key: string; modified: number; size: number }> {
    let token: string | undefined;
    do {
      let res;
      try {
        res = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        );
      } catch (e) {
        return this.fail(`listing ${prefix}`, e);
      }
      for (const o of res.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, modified: o.LastModified?.getTime() ?? 0, size: o.Size ?? 0 };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        if (res.Errors && res.Errors.length > 0) {
          throw new RegistryError(
            `artifact store ${this.description}: deleting ${res.Errors[0].Key} failed: ${res.Errors[0].Code ?? 'unknown'}`,
            { value: this.location },
          );
        }
      } catch (e) {
        this.fail(`deleting ${batch.length} keys`, e);
      }
    }
  }

  private async deletePrefix(prefix: string): Promise<void> {
    const keys: string[] = [];
    for await (const o of this.listKeys(prefix)) keys.push(o.key);
    await this.deleteKeys(keys);
  }

  /** Key prefix of one upload's data: the file itself, or the folder under which a folder's files live. */
  private dataKey(hash: string, upload: string): string {
    return this.key('data', hash, upload);
  }

  private staged(c: StagedCopy): StagedObject {
    let done = false;
    return {
      ...c.obj,
      commit: async () => {
        if (done) return;
        if (!(await this.has(c.obj.hash))) {
          const upload = randomHex(8);
          const base = this.dataKey(c.obj.hash, upload);
          const marker: Marker = { format: 'tailor-object-v1', type: c.obj.type, size: c.obj.size, upload };
          try {
            if (c.obj.type === 'file') await this.uploadFile(base, c.objPath);
            else {
              const entries = c.entries ?? (await hashTree(c.objPath)).entries;
              await mapLimit(entries, this.queueSize, (f) =>
                this.uploadFile(`${base}/${f.path}`, join(c.objPath, ...f.path.split('/'))),
              );
              marker.files = entries;
            }
            // The marker goes last: until it exists the object is invisible, so nobody reads partial data.
            await this.putText(this.markerKey(c.obj.hash), JSON.stringify(marker));
          } catch (e) {
            await this.deletePrefix(base).catch(() => undefined);
            throw e;
          }
        }
        done = true;
        await fsp.rm(c.temp, { recursive: true, force: true });
      },
      abort: async () => {
        await fsp.rm(c.temp, { recursive: true, force: true });
      },
    };
  }

  async ingest(sourcePath: string): Promise<StagedObject> {
    return this.staged(await stageSource(this.tmpDir, sourcePath));
  }

  async ingestBytes(bytes: Uint8Array): Promise<StagedObject> {
    return this.staged(await stageBytes(this.tmpDir, bytes));
  }

  async createStaging(): Promise<StagingArea> {
    const temp = await newTempDir(this.tmpDir);
    const objPath = join(temp, 'obj');
    await fsp.mkdir(objPath);
    return {
      path: objPath,
      seal: async () => {
        const r = await hashTree(objPath);
        return this.staged({ temp, objPath, obj: { hash: r.hash, type: 'dir', size: r.size }, entries: r.entries });
      },
      abort: async () => {
        await fsp.rm(temp, { recursive: true, force: true });
      },
    };
  }

  async has(hash: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.markerKey(hash) }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      return this.fail(`checking ${hash}`, e);
    }
  }

  async stat(hash: string): Promise<StoredObject | undefined> {
    const m = await this.readMarker(hash);
    return m === undefined ? undefined : { hash, type: m.type, size: m.size };
  }

  private async requireMarker(hash: string): Promise<Marker> {
    const m = await this.readMarker(hash);
    if (m === undefined) throw new RegistryError(`artifact ${hash} is missing from ${this.location}`, { value: hash });
    return m;
  }

  /** Streams one data key to `dest` (created exclusively), returning the sha256 and size of what was written. */
  private async download(key: string, dest: string | undefined): Promise<{ hash: string; size: number }> {
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (isNotFound(e))
        throw new RegistryError(`artifact data ${key} is missing from ${this.location}`, { value: key });
      return this.fail(`reading ${key}`, e);
    }
    const h = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        size += chunk.length;
        cb(null, dest === undefined ? undefined : chunk);
      },
    });
    const body = res.Body as Readable;
    if (dest === undefined) {
      for await (const chunk of body) {
        h.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } else {
      await fsp.mkdir(dirname(dest), { recursive: true });
      await pipeline(body, tap, createWriteStream(dest, { flags: 'wx' }));
    }
    return { hash: h.digest('hex'), size };
  }

  async readBytes(hash: string, innerPath?: string): Promise<Uint8Array> {
    const m = await this.requireMarker(hash);
    let key = this.dataKey(hash, m.upload);
    if (innerPath !== undefined) {
      const parts = innerPath.split('/').filter((s) => s !== '' && s !== '.');
      if (parts.includes('..'))
        throw new RegistryError(`artifact inner path may not contain '..': ${innerPath}`, { value: innerPath });
      const rel = parts.join('/');
      if (m.type !== 'dir' || !(m.files ?? []).some((f) => f.path === rel)) {
        throw new RegistryError(`cannot read artifact ${hash} file '${innerPath}': no such file in the object`, {
          value: innerPath,
        });
      }
      key = `${key}/${rel}`;
    }
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await res.Body!.transformToByteArray();
    } catch (e) {
      return this.fail(`reading ${key}`, e);
    }
  }

  /** Downloads an object into `dest` (which must not exist), checking every file against its recorded hash. */
  private async downloadObject(hash: string, dest: string): Promise<Marker> {
    const m = await this.requireMarker(hash);
    const base = this.dataKey(hash, m.upload);
    if (m.type === 'file') {
      const r = await this.download(base, dest);
      if (r.hash !== hash) throw new RegistryError(`artifact ${hash} downloaded with hash ${r.hash}`, { value: hash });
      return m;
    }
    await fsp.mkdir(dest);
    await mapLimit(m.files ?? [], this.queueSize, async (f) => {
      const r = await this.download(`${base}/${f.path}`, join(dest, ...f.path.split('/')));
      if (r.hash !== f.hash || r.size !== f.size) {
        throw new RegistryError(
          `artifact ${hash} file '${f.path}' downloaded with hash ${r.hash}, expected ${f.hash}`,
          {
            value: hash,
          },
        );
      }
    });
    return m;
  }

  async exportTo(hash: string, destPath: string): Promise<void> {
    if (await exists(destPath))
      throw new RegistryError(`export destination already exists: ${destPath}`, { file: destPath });
    await fsp.mkdir(dirname(destPath), { recursive: true });
    const tmp = `${destPath}.tmp-${process.pid}-${randomHex(4)}`;
    try {
      await this.downloadObject(hash, tmp);
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

  localPath(): undefined {
    return undefined;
  }

  async materialize(hash: string): Promise<string> {
    const target = join(this.cacheDir, hash);
    if (!HASH_RE.test(hash)) throw new RegistryError(`not an artifact hash: '${hash}'`, { value: hash });
    if (await exists(target)) return target;
    await fsp.mkdir(this.cacheDir, { recursive: true });
    const temp = await newTempDir(this.tmpDir);
    const obj = join(temp, 'obj');
    try {
      const m = await this.downloadObject(hash, obj);
      await makeReadOnly(obj, m.type);
      try {
        await fsp.rename(obj, target);
      } catch (e) {
        // Another process cached the same object first; same hash, same bytes.
        if (!(await exists(target))) throw e;
      }
    } finally {
      await fsp.rm(temp, { recursive: true, force: true });
    }
    return target;
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    const base = this.key('objects', '');
    for await (const o of this.listKeys(base)) {
      const name = o.key.slice(base.length);
      if (HASH_RE.test(name)) out.push(name);
    }
    return out.sort();
  }

  async check(hash: string, type?: ObjectType): Promise<ObjectCheck> {
    const m = await this.readMarker(hash);
    if (m === undefined) return { hash, ok: false, problem: 'missing' };
    if (type !== undefined && type !== m.type)
      return { hash, ok: false, problem: `type mismatch: expected ${type}, found ${m.type}` };
    const base = this.dataKey(hash, m.upload);
    let actual: string;
    try {
      if (m.type === 'file') actual = (await this.download(base, undefined)).hash;
      else {
        // Hash what is actually stored under the data prefix, not what the marker claims.
        const entries: ManifestEntry[] = [];
        for await (const o of this.listKeys(`${base}/`)) {
          const r = await this.download(o.key, undefined);
          entries.push({ path: o.key.slice(base.length + 1), ...r });
        }
        actual = treeHash(entries);
      }
    } catch (e) {
      if (e instanceof RegistryError && /is missing from/.test(e.message))
        return { hash, ok: false, problem: 'missing' };
      throw e;
    }
    return actual === hash
      ? { hash, ok: true }
      : { hash, ok: false, problem: `hash mismatch (content hashes to ${actual})` };
  }

  async quarantine(hash: string): Promise<string | undefined> {
    const text = await this.getText(this.markerKey(hash));
    if (text === undefined) return undefined;
    const token = `q-${HOST}-${process.pid}-${randomHex(6)}-${hash}`;
    await this.putText(this.key('quarantine', token), text);
    await this.deleteKeys([this.markerKey(hash)]);
    return token;
  }

  async restore(token: string): Promise<void> {
    const hash = token.slice(-64);
    const qKey = this.key('quarantine', token);
    const text = await this.getText(qKey);
    if (text === undefined) return;
    const q = this.parseMarker(hash, text);
    const current = await this.readMarker(hash);
    if (current === undefined) await this.putText(this.markerKey(hash), text);
    else if (current.upload !== q.upload) {
      // A writer re-created the object meanwhile under its own upload; the quarantined copy is redundant.
      await this.deletePrefix(this.dataKey(hash, q.upload));
    }
    await this.deleteKeys([qKey]);
  }

  async purge(token: string): Promise<void> {
    const hash = token.slice(-64);
    const qKey = this.key('quarantine', token);
    const text = await this.getText(qKey);
    if (text === undefined) return;
    const q = this.parseMarker(hash, text);
    const base = this.dataKey(hash, q.upload);
    await this.deleteKeys(q.type === 'file' ? [base] : []);
    if (q.type === 'dir') await this.deletePrefix(`${base}/`);
    await this.deleteKeys([qKey]);
  }

  async cleanTemp(maxAgeMs: number): Promise<string[]> {
    const removed: string[] = [];
    const now = Date.now();
    for (const e of await staleTempEntries(this.tmpDir, maxAgeMs)) {
      await fsp.rm(e.path, { recursive: true, force: true });
      removed.push(e.path);
    }
    // Markers a dead gc left in quarantine go back: the next gc decides about them with fresh references.
    const qBase = this.key('quarantine', '');
    const liveUploads = new Set<string>();
    for await (const o of this.listKeys(qBase)) {
      const token = o.key.slice(qBase.length);
      const m = /^q-(.+)-(\d+)-[0-9a-f]{12}-([0-9a-f]{64})$/.exec(token);
      const stale =
        m !== null && m[1] === HOST
          ? Number(m[2]) !== process.pid && !pidAlive(Number(m[2]))
          : now - o.modified > maxAgeMs;
      if (stale) {
        await this.restore(token);
        removed.push(`s3://${this.bucket}/${o.key}`);
      } else if (m !== null) {
        const text = await this.getText(o.key);
        if (text !== undefined) liveUploads.add(`${m[3]}/${this.parseMarker(m[3], text).upload}`);
      }
    }
    // Data of uploads that never got (or lost) their marker: a writer that died mid-upload, or the loser of two
    // writers of the same content. Only old ones, so an upload in progress is never touched.
    const dBase = this.key('data', '');
    const groups = new Map<string, { keys: string[]; newest: number }>();
    for await (const o of this.listKeys(dBase)) {
      const rel = o.key.slice(dBase.length).split('/');
      if (rel.length < 2) continue;
      const g = `${rel[0]}/${rel[1]}`;
      const e = groups.get(g) ?? { keys: [], newest: 0 };
      e.keys.push(o.key);
      e.newest = Math.max(e.newest, o.modified);
      groups.set(g, e);
    }
    const markers = new Map<string, Marker | undefined>();
    for (const [g, e] of groups) {
      if (now - e.newest <= maxAgeMs || liveUploads.has(g)) continue;
      const [hash, upload] = g.split('/');
      if (!HASH_RE.test(hash)) continue;
      if (!markers.has(hash)) markers.set(hash, await this.readMarker(hash));
      if (markers.get(hash)?.upload === upload) continue;
      await this.deleteKeys(e.keys);
      removed.push(`s3://${this.bucket}/${dBase}${g}`);
    }
    // Multipart uploads abandoned by a crashed writer keep their parts (and their cost) until aborted.
    try {
      const res = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: dBase }));
      for (const u of res.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined) continue;
        if (now - (u.Initiated?.getTime() ?? now) <= maxAgeMs) continue;
        await this.client.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }),
        );
        removed.push(`s3://${this.bucket}/${u.Key} (multipart ${u.UploadId})`);
      }
    } catch (e) {
      // Some small S3-compatible servers (s3rver) do not list multipart uploads; they have none to abort then.
      if ((e as { name?: string }).name !== 'NotImplemented') this.fail('listing multipart uploads', e);
    }
    return removed;
  }

  async listTemp(): Promise<string[]> {
    return listTempDir(this.tmpDir);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
