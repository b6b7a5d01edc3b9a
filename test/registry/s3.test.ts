/**
 * What only the S3 artifact store has to prove, against a real s3rver on a loopback port: the key layout with
 * the marker written last, multipart upload of a large file, gc's quarantine racing a writer of the same content,
 * cleanup of orphaned uploads, the verified download cache, backend selection by URL, and clear errors for an
 * unreachable endpoint or a missing bucket.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ConfigError, RegistryError } from '../../src/errors.ts';
import { LocalArtifactStore, openRegistry, SqliteMetadataStore } from '../../src/registry/index.ts';
import { MIN_PART_SIZE, S3ArtifactStore, parseS3Url, type S3StoreOptions } from '../../src/registry/s3-artifacts.ts';
import { S3_CREDENTIALS, startS3, type TestS3 } from './harness.ts';

const root = mkdtempSync(join(tmpdir(), 'tailor-s3-'));
let s3: TestS3;
let n = 0;
before(async () => {
  s3 = await startS3();
});
after(async () => {
  await s3.close();
  rmSync(root, { recursive: true, force: true });
});

const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

function options(extra: Partial<S3StoreOptions> = {}): S3StoreOptions {
  return {
    url: `s3://${s3.bucket}/t${n}`,
    endpoint: s3.endpoint,
    credentials: S3_CREDENTIALS,
    localRoot: join(root, `home-${n++}`),
    ...extra,
  };
}

async function keys(prefix: string): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

function modelDir(weights: string): string {
  const dir = join(root, `src-${n++}`);
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), weights);
  writeFileSync(join(dir, 'tokenizer', 'vocab.txt'), 'a\nb\n');
  return dir;
}

test('parseS3Url splits bucket and prefix; anything else is a ConfigError', () => {
  assert.deepEqual(parseS3Url('s3://models'), { bucket: 'models', prefix: '' });
  assert.deepEqual(parseS3Url('s3://models/team/a/'), { bucket: 'models', prefix: 'team/a/' });
  assert.throws(
    () => parseS3Url('https://models'),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === "invalid artifact store URL 'https://models': expected s3://bucket or s3://bucket/prefix",
  );
});

test('a folder object: data uploaded under its own upload id, marker written last, staging removed', async () => {
  const opts = options();
  const store = await S3ArtifactStore.open(opts);
  const staged = await store.ingest(modelDir('W'));
  assert.equal(await store.has(staged.hash), false, 'invisible before commit');
  await staged.commit();
  const prefix = parseS3Url(opts.url).prefix;
  const marker = JSON.parse(
    await (
      await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}objects/${staged.hash}` }))
    ).Body!.transformToString(),
  ) as { type: string; size: number; upload: string; files: Array<{ path: string; size: number; hash: string }> };
  assert.equal(marker.type, 'dir');
  assert.equal(marker.size, 1 + 4);
  assert.deepEqual(marker.files.map((f) => [f.path, f.size, f.hash]).sort(), [
    ['model.onnx', 1, sha('W')],
    ['tokenizer/vocab.txt', 4, sha('a\nb\n')],
  ]);
  assert.deepEqual(await keys(prefix), [
    `${prefix}data/${staged.hash}/${marker.upload}/model.onnx`,
    `${prefix}data/${staged.hash}/${marker.upload}/tokenizer/vocab.txt`,
    `${prefix}objects/${staged.hash}`,
  ]);
  assert.deepEqual(await store.listTemp(), []);
  assert.deepEqual(await store.stat(staged.hash), { hash: staged.hash, type: 'dir', size: 5 });
  assert.equal(new TextDecoder().decode(await store.readBytes(staged.hash, 'tokenizer/vocab.txt')), 'a\nb\n');
  assert.deepEqual(await store.check(staged.hash, 'dir'), { hash: staged.hash, ok: true });

  // The verified download cache: a read-only local copy under <home>/cache/<hash>, reused on the next call.
  const local = await store.materialize(staged.hash);
  assert.equal(local, join(opts.localRoot, 'cache', staged.hash));
  assert.equal(readFileSync(join(local, 'model.onnx'), 'utf8'), 'W');
  assert.equal(statSync(join(local, 'model.onnx')).mode & 0o222, 0);
  assert.equal(await store.materialize(staged.hash), local);
  await store.close();
});

test('a file above the part size goes up in parts and reads back byte for byte', async () => {
  const parts = new Set<number>();
  const store = await S3ArtifactStore.open(
    options({ partSize: MIN_PART_SIZE, onUploadProgress: (e) => e.part !== undefined && parts.add(e.part) }),
  );
  const big = Buffer.alloc(2 * MIN_PART_SIZE + 12345);
  for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  const file = join(root, `big-${n++}.bin`);
  writeFileSync(file, big);
  const staged = await store.ingest(file);
  assert.equal(staged.hash, sha(big));
  await staged.commit();
  assert.deepEqual([...parts].sort(), [1, 2, 3]);
  const back = await store.readBytes(staged.hash);
  assert.equal(back.length, big.length);
  assert.equal(sha(Buffer.from(back)), sha(big));
  assert.deepEqual(await store.check(staged.hash, 'file'), { hash: staged.hash, ok: true });
  await store.close();
});

test('quarantine racing a writer of the same content: restore keeps the new upload and drops the old data', async () => {
  const opts = options();
  const prefix = parseS3Url(opts.url).prefix;
  const store = await S3ArtifactStore.open(opts);
  const first = await store.ingestBytes(new TextEncoder().encode('same bytes'));
  await first.commit();
  const token = (await store.quarantine(first.hash))!;
  assert.equal(await store.has(first.hash), false);
  const second = await store.ingestBytes(new TextEncoder().encode('same bytes'));
  await second.commit(); // the writer does not see the quarantined copy and uploads again
  const uploads = async () => (await keys(`${prefix}data/${first.hash}/`)).length;
  assert.equal(await uploads(), 2);
  await store.restore(token);
  assert.equal(await uploads(), 1);
  assert.equal(new TextDecoder().decode(await store.readBytes(first.hash)), 'same bytes');
  assert.deepEqual(await keys(`${prefix}quarantine/`), []);

  // purge removes the data of exactly the quarantined upload.
  const t2 = (await store.quarantine(first.hash))!;
  await store.purge(t2);
  assert.deepEqual(await keys(prefix), []);
  await store.close();
});

test('cleanTemp removes orphaned upload data and restores a dead gc quarantine, never a live object', async () => {
  const opts = options();
  const prefix = parseS3Url(opts.url).prefix;
  const store = await S3ArtifactStore.open(opts);
  const live = await store.ingestBytes(new TextEncoder().encode('live'));
  await live.commit();
  const orphan = `${prefix}data/${sha('never committed')}/0123456789abcdef`;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: orphan, Body: 'never committed' }));
  const q = await store.ingestBytes(new TextEncoder().encode('quarantined by a dead gc'));
  await q.commit();
  const token = (await store.quarantine(q.hash))!;
  // Hand the quarantined marker to a gc process that is gone (pid above Linux's pid_max), as if it died between
  // quarantine and its re-check.
  const deadToken = token.replace(`-${process.pid}-`, '-4194311-');
  const qKey = (t: string) => `${prefix}quarantine/${t}`;
  const body = await (
    await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: qKey(token) }))
  ).Body!.transformToString();
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: qKey(deadToken), Body: body }));
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: qKey(token) }));
  assert.equal(await store.has(q.hash), false);
  await new Promise((r) => setTimeout(r, 20));
  const removed = await store.cleanTemp(10);
  assert.deepEqual(
    removed.sort(),
    [`s3://${s3.bucket}/${prefix}quarantine/${deadToken}`, `s3://${s3.bucket}/${orphan}`].sort(),
  );
  assert.equal(await store.has(live.hash), true);
  assert.deepEqual(await store.check(live.hash), { hash: live.hash, ok: true });
  // The dead gc's object is back (the next gc decides about it with fresh references), with its data intact.
  assert.deepEqual(await store.check(q.hash), { hash: q.hash, ok: true });
  assert.deepEqual(await keys(`${prefix}quarantine/`), []);
  await store.close();
});

test('an unreachable endpoint and a missing bucket are RegistryErrors naming the URL and endpoint', async () => {
  await assert.rejects(
    S3ArtifactStore.open(
      options({ url: 's3://models/team', endpoint: 'http://key:secret@127.0.0.1:1', maxAttempts: 2 }),
    ),
    (e: unknown) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(
        e.message,
        'cannot open artifact store s3://models/team/ (endpoint http://key:***@127.0.0.1:1): unreachable: ECONNREFUSED',
      );
      return true;
    },
  );
  await assert.rejects(S3ArtifactStore.open(options({ url: 's3://no-such-bucket/x' })), (e: unknown) => {
    assert.ok(e instanceof RegistryError);
    assert.equal(
      e.message,
      `cannot open artifact store s3://no-such-bucket/x/ (endpoint ${s3.endpoint}): bucket 'no-such-bucket' does not exist`,
    );
    return true;
  });
});

test('openRegistry picks the backends by URL from options or environment; bad schemes are ConfigErrors', async () => {
  const home = join(root, `sel-${n++}`);
  const local = await openRegistry({ home });
  assert.ok(local.metadata instanceof SqliteMetadataStore);
  assert.ok(local.artifacts instanceof LocalArtifactStore);
  assert.equal(local.metadata.location, join(home, 'registry.db'));
  await local.close();

  const saved = { ...process.env };
  const envPrefix = `env-${n++}`;
  Object.assign(process.env, {
    TAILOR_ARTIFACTS: `s3://${s3.bucket}/${envPrefix}`,
    TAILOR_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
  });
  try {
    const reg = await openRegistry({ home: join(root, `sel-${n++}`) });
    assert.ok(reg.artifacts instanceof S3ArtifactStore);
    assert.equal(reg.artifacts.location, `s3://${s3.bucket}/${envPrefix}/`);
    const mv = await reg.registerModel({ name: 'm', source: modelDir('E') });
    assert.equal(readFileSync(join(await reg.modelPath('m:1'), 'model.onnx'), 'utf8'), 'E');
    assert.equal(mv.version, 1);
    await reg.close();

    process.env.TAILOR_REGISTRY = 'mysql://u:pw@db/x';
    await assert.rejects(
      openRegistry({ home: join(root, `sel-${n++}`) }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message ===
          "unsupported registry URL 'mysql://u:***@db/x' (TAILOR_REGISTRY): use postgres://..., sqlite:PATH or a file path",
    );
    delete process.env.TAILOR_REGISTRY;
    process.env.TAILOR_ARTIFACTS = 'gs://bucket/x';
    await assert.rejects(
      openRegistry({ home: join(root, `sel-${n++}`) }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message ===
          "unsupported artifact store URL 'gs://bucket/x' (TAILOR_ARTIFACTS): use s3://bucket/prefix, file:PATH or a folder",
    );
  } finally {
    for (const k of [
      'TAILOR_REGISTRY',
      'TAILOR_ARTIFACTS',
      'TAILOR_S3_ENDPOINT',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
    ])
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
  }
});
