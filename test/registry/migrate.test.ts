/**
 * `migrateRegistry` and `tailor registry migrate`: a local registry copied into PostgreSQL + S3 (real server,
 * s3rver on a loopback port), with every row, version number, alias and object hash checked in the target.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RegistryError } from '../../src/errors.ts';
import { migrateRegistry, openRegistry, type RegistryOptions } from '../../src/registry/index.ts';
import { randomHex } from '../../src/registry/util.ts';
import { S3_CREDENTIALS, dropSchemas, pgUrl, startS3, type TestS3 } from './harness.ts';

const bin = fileURLToPath(new URL('../../bin/tailor.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'tailor-migrate-'));
const tag = `tailor_test_${randomHex(4)}`;
const schemas: string[] = [];
let s3: TestS3;
let n = 0;
before(async () => {
  s3 = await startS3();
});
after(async () => {
  await dropSchemas(schemas);
  await s3.close();
  rmSync(root, { recursive: true, force: true });
});

/**
 * Runs the CLI without blocking this process: s3rver lives in this process's event loop, so a spawnSync would
 * deadlock the child's first S3 request.
 */
function tailor(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Options of a fresh, empty PostgreSQL + S3 registry. */
function remote(): RegistryOptions & { home: string; registryUrl: string; artifactsUrl: string } {
  const schema = `${tag}_${n++}`;
  schemas.push(schema);
  return {
    home: join(root, `remote-${n}`),
    registryUrl: pgUrl(schema),
    artifactsUrl: `s3://${s3.bucket}/${schema}`,
    s3Endpoint: s3.endpoint,
    s3: { credentials: S3_CREDENTIALS },
  };
}

function folder(files: Record<string, string>): string {
  const dir = join(root, `src-${n++}`);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

/**
 * A local registry with two finished runs and a failed one (params, tags, metrics, predictions, a file and a
 * folder artifact), two models with lineage, and two aliases.
 */
async function localRegistry(): Promise<{ home: string; runIds: string[] }> {
  const home = join(root, `local-${n++}`, '.tailor');
  const reg = await openRegistry({ home, registryUrl: join(home, 'registry.db'), artifactsUrl: home });
  const a = await reg.startRun({ name: 'head', params: { lr: 0.01, layers: [1, 2] }, tags: { strategy: 'head' } });
  await a.logMetrics({ loss: 0.9, acc: 0.5 }, { epoch: 0 });
  await a.logMetrics({ loss: 0.4, acc: 0.8 }, { epoch: 1 });
  await a.logPredictions('eval', ['x', 'y', 'x'], ['x', 'x', 'x']);
  await a.logArtifactBytes('{"acc":0.8}', 'eval/report.json', 'report');
  await a.logArtifact(folder({ 'model.onnx': 'W1', 'config.json': '{}' }), { path: 'model', kind: 'model' });
  await a.registerModel({ name: 'spam', source: { runId: a.id, artifactPath: 'model' }, aliases: ['production'] });
  await a.finish();
  const b = await reg.startRun({ name: 'lora', params: { rank: 8 } });
  await b.logMetric('loss', 0.3);
  await b.registerModel({
    name: 'spam',
    source: folder({ 'model.onnx': 'W2', 'config.json': '{}' }),
    aliases: ['staging'],
    parents: [{ relation: 'base', external: 'use-lite' }],
    description: 'rank 8',
    metadata: { accuracy: 0.81 },
  });
  await b.finish();
  await reg.registerModel({
    name: 'spam-int8',
    source: folder({ 'model.onnx': 'Q2' }),
    parents: [{ relation: 'quantized_from', model: 'spam@staging' }],
  });
  const c = await reg.startRun({ name: 'diverged' });
  await c.fail(new Error('loss is NaN'));
  await reg.close();
  return { home, runIds: [a.id, b.id, c.id] };
}

test('migrateRegistry copies runs, versions, aliases and objects, verifies them, and resumes idempotently', async () => {
  const src = await localRegistry();
  const from = await openRegistry({
    home: src.home,
    registryUrl: join(src.home, 'registry.db'),
    artifactsUrl: src.home,
  });
  const opts = remote();
  const to = await openRegistry(opts);
  const lines: string[] = [];
  const r = await migrateRegistry(from, to, { onProgress: (l) => lines.push(l) });
  assert.deepEqual(
    { ...r, from: undefined, to: undefined },
    {
      from: undefined,
      to: undefined,
      runs: { copied: 3, skipped: 0 },
      metrics: 5, // head: 2 keys x 2 steps; lora: 1
      artifacts: 2,
      predictions: 3,
      modelVersions: { copied: 3, skipped: 0 },
      aliases: 2,
      // report.json, the head model folder (also spam:1, so uploaded once), spam:2 and spam-int8:1.
      objects: { copied: 4, present: 1, bytes: 11 + 4 + 4 + 2 },
      verified: { runs: 3, modelVersions: 3, objects: 4 },
    },
  );
  assert.equal(r.from, src.home);
  assert.equal(r.to, opts.registryUrl);
  assert.ok(lines.some((l) => /^verified: 3 runs, 3 versions, 4 objects$/.test(l)));
  await to.close();

  // A new process's view of the target: everything reads back as it was written locally.
  const check = await openRegistry(opts);
  const head = await check.showRun(src.runIds[0]);
  assert.equal(head.name, 'head');
  assert.equal(head.status, 'finished');
  assert.deepEqual(head.params, { lr: 0.01, layers: [1, 2] });
  assert.deepEqual(head.tags, { strategy: 'head' });
  assert.deepEqual(head.latestMetrics, { acc: 0.8, loss: 0.4 });
  assert.deepEqual(head.models, [{ name: 'spam', version: 1 }]);
  assert.deepEqual(await check.metadata.getMetrics(head.id), await from.metadata.getMetrics(head.id));
  assert.deepEqual(await check.metadata.getPredictions(head.id, 'eval'), [
    { index: 0, label: 'x', prediction: 'x' },
    { index: 1, label: 'y', prediction: 'x' },
    { index: 2, label: 'x', prediction: 'x' },
  ]);
  const failed = await check.getRun(src.runIds[2]);
  assert.deepEqual([failed.status, failed.error], ['failed', 'loss is NaN']);
  assert.equal(new TextDecoder().decode(await check.artifacts.readBytes(sha('{"acc":0.8}'))), '{"acc":0.8}');
  assert.equal((await check.getModel('spam@production')).version, 1);
  const staging = await check.getModel('spam@staging');
  assert.deepEqual([staging.version, staging.description, staging.metadata], [2, 'rank 8', { accuracy: 0.81 }]);
  assert.deepEqual((await check.getModel('spam-int8:1')).parents, [
    { relation: 'quantized_from', model: { name: 'spam', version: 2 } },
  ]);
  const out = join(root, `export-${n++}`);
  await check.exportModel('spam@staging', out);
  assert.equal(readFileSync(join(out, 'model.onnx'), 'utf8'), 'W2');
  assert.deepEqual(await check.verify(), { ok: true, checkedObjects: 4, problems: [], unreferencedObjects: 0 });

  // Run again: nothing is copied twice.
  const again = await migrateRegistry(from, check);
  assert.deepEqual(
    [again.runs, again.modelVersions, again.objects],
    [
      { copied: 0, skipped: 3 },
      { copied: 0, skipped: 3 },
      { copied: 0, present: 0, bytes: 0 },
    ],
  );
  assert.deepEqual(again.verified, { runs: 3, modelVersions: 3, objects: 4 });
  assert.equal((await check.listModelVersions('spam')).length, 2);
  // An alias moved in the source since the last run follows on the next one.
  await from.setAlias('spam', 'production', 2);
  await migrateRegistry(from, check);
  assert.equal((await check.getModel('spam@production')).version, 2);
  await check.close();
  await from.close();
});

test('a target that already has other versions of a model is a conflict, named', async () => {
  const src = await localRegistry();
  const from = await openRegistry({
    home: src.home,
    registryUrl: join(src.home, 'registry.db'),
    artifactsUrl: src.home,
  });
  const to = await openRegistry(remote());
  await to.registerModel({ name: 'spam', source: folder({ 'model.onnx': 'OTHER' }) });
  const spam1 = await from.getModel('spam:1');
  // The folder hash of {model.onnx: OTHER} by the documented manifest format.
  const other = sha(`tailor-tree-v1\n${sha('OTHER')} 5 "model.onnx"\n`);
  await assert.rejects(migrateRegistry(from, to), (e: unknown) => {
    assert.ok(e instanceof RegistryError);
    assert.equal(
      e.message,
      `model version spam:1 already exists in ${to.location} with another artifact (${other}, not ${spam1.artifact.hash}); migrate into an empty registry`,
    );
    return true;
  });
  await to.close();
  await from.close();
});

test('a corrupt source object stops the migration before any row references it', async () => {
  const src = await localRegistry();
  const from = await openRegistry({
    home: src.home,
    registryUrl: join(src.home, 'registry.db'),
    artifactsUrl: src.home,
  });
  const report = sha('{"acc":0.8}');
  const p = join(src.home, 'objects', report);
  chmodSync(p, 0o644);
  writeFileSync(p, 'tampered');
  const to = await openRegistry(remote());
  await assert.rejects(
    migrateRegistry(from, to),
    new RegExp(`^RegistryError: object ${report} of ${src.home} re-hashes to ${sha('tampered')} \\(file\\)`),
  );
  assert.deepEqual(await to.metadata.listArtifacts(src.runIds[0]), []);
  assert.deepEqual(await to.metadata.listReservations(), []);
  assert.equal(await to.artifacts.has(report), false);
  await to.close();
  await from.close();
});

test('tailor registry migrate --from --to --artifacts --s3-endpoint prints the verified counts as JSON', async () => {
  const src = await localRegistry();
  const opts = remote();
  const r = await tailor(
    [
      'registry',
      'migrate',
      '--from',
      src.home,
      '--to',
      opts.registryUrl,
      '--artifacts',
      opts.artifactsUrl,
      '--s3-endpoint',
      s3.endpoint,
      '--home',
      opts.home,
      '--json',
    ],
    {
      AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { runs: unknown; verified: unknown; modelVersions: unknown };
  assert.deepEqual(out.runs, { copied: 3, skipped: 0 });
  assert.deepEqual(out.modelVersions, { copied: 3, skipped: 0 });
  assert.deepEqual(out.verified, { runs: 3, modelVersions: 3, objects: 4 });

  const missing = join(root, 'no-registry-here');
  const bad = await tailor(['registry', 'migrate', '--from', missing, '--to', opts.registryUrl]);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim(), `tailor: no registry at ${missing} (expected ${join(missing, 'registry.db')})`);
});
