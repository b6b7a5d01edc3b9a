/**
 * The registry backends every parametrised registry test runs against: SQLite + a local folder, and PostgreSQL +
 * S3. PostgreSQL is the real server at $TAILOR_TEST_PG (default postgres://postgres@127.0.0.1:5432/test; .ci/run
 * starts it); each fresh registry gets its own schema `tailor_test_<random>_<n>`, all dropped after the file's
 * tests, so parallel runs never collide. S3 is a real s3rver started in-process on a loopback ephemeral port, one
 * bucket per file and one key prefix per fresh registry. No client is mocked.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import S3rver from 's3rver';
import type { RegistryOptions } from '../../src/registry/index.ts';
import { randomHex } from '../../src/registry/util.ts';

// The SDK's notice that its 2027 releases need Node 22 is true but is noise in every test's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Base URL of the test database (trust auth, no password). */
export const TEST_PG_URL = process.env.TAILOR_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
/** s3rver's fixed credentials. */
export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** One backend combination. */
export interface Backend {
  name: string;
  /** Options that open a fresh, empty registry with `openRegistry` (each call a new one). */
  fresh(): RegistryOptions & { home: string };
  /** Environment for a child process that opens the registry of `opts` with plain `openRegistry({ home })`. */
  env(opts: RegistryOptions): Record<string, string>;
  /** How the registry of `opts` names itself in messages. */
  location(opts: RegistryOptions & { home: string }): string;
}

/** A schema-qualified URL of the test database. */
export function pgUrl(schema: string): string {
  const u = new URL(TEST_PG_URL);
  u.searchParams.set('schema', schema);
  return u.toString();
}

/** Drops the given schemas (best effort per schema, so one failure does not leave the rest behind). */
export async function dropSchemas(schemas: string[]): Promise<void> {
  if (schemas.length === 0) return;
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  await c.connect();
  try {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** A running s3rver with one bucket. */
export interface TestS3 {
  endpoint: string;
  bucket: string;
  client: S3Client;
  close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 with an ephemeral port, storing into a temp folder, and creates `bucket`. */
export async function startS3(bucket = 'tailor-test'): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), 'tailor-s3rver-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
  const addr = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: S3_CREDENTIALS,
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    endpoint,
    bucket,
    client,
    close: async () => {
      client.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Registers the file-level hooks (s3rver up, schemas dropped, temp folders removed) and returns the backends.
 * Call once at the top level of a test file, then use the backends inside tests only.
 */
export function useBackends(): Backend[] {
  const root = mkdtempSync(join(tmpdir(), 'tailor-backends-'));
  const runTag = `tailor_test_${randomHex(4)}`;
  const schemas: string[] = [];
  let s3: TestS3 | undefined;
  let n = 0;
  before(async () => {
    s3 = await startS3();
  });
  after(async () => {
    await dropSchemas(schemas);
    await s3?.close();
    rmSync(root, { recursive: true, force: true });
  });
  const home = (): string => {
    const h = join(root, `case-${n++}`);
    mkdirSync(h, { recursive: true });
    return join(h, '.tailor');
  };
  return [
    {
      name: 'sqlite+folder',
      fresh: () => ({ home: home() }),
      env: () => ({}),
      location: (o) => resolve(o.home),
    },
    {
      name: 'postgres+s3',
      fresh: () => {
        const schema = `${runTag}_${n}`;
        schemas.push(schema);
        return {
          home: home(),
          registryUrl: pgUrl(schema),
          artifactsUrl: `s3://${s3!.bucket}/${schema}`,
          s3Endpoint: s3!.endpoint,
          s3: { credentials: S3_CREDENTIALS },
        };
      },
      env: (o) => ({
        TAILOR_REGISTRY: o.registryUrl!,
        TAILOR_ARTIFACTS: o.artifactsUrl!,
        TAILOR_S3_ENDPOINT: o.s3Endpoint!,
        AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
        AWS_REGION: 'us-east-1',
      }),
      location: (o) => o.registryUrl!,
    },
  ];
}
