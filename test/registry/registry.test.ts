/**
 * The registry's behaviour, run unchanged against every backend in ./harness.ts (SQLite + folder, PostgreSQL +
 * S3): runs, model versions and aliases, lineage, gc and verify, and the no-dangling-row invariant of artifacts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, RegistryError } from '../../src/errors.ts';
import { openRegistry, parseModelRef } from '../../src/registry/index.ts';
import { useBackends } from './harness.ts';

const root = mkdtempSync(join(tmpdir(), 'tailor-reg-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

function modelDir(tag: string): string {
  const dir = join(root, `model-${tag}-${n++}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), `weights ${tag}`);
  writeFileSync(join(dir, 'config.json'), '{}');
  return dir;
}

/** A model-version-like folder. */
function makeModelDir(dir: string, weights = 'WEIGHTS'): string {
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), weights);
  writeFileSync(join(dir, 'config.json'), '{"hidden":8}');
  writeFileSync(join(dir, 'tokenizer', 'vocab.txt'), 'a\nb\n');
  return dir;
}

/** The folder hash as documented, recomputed here from scratch. */
function expectedTreeHash(files: Record<string, string>): string {
  const lines = Object.keys(files)
    .sort()
    .map((p) => `${sha(files[p])} ${Buffer.byteLength(files[p])} ${JSON.stringify(p)}\n`);
  return sha(`tailor-tree-v1\n${lines.join('')}`);
}

const isRegistryError = (msg: string) => (e: unknown) => {
  assert.ok(e instanceof RegistryError, `expected RegistryError, got ${String(e)}`);
  assert.equal(e.message, msg);
  return true;
};

for (const backend of useBackends()) {
  const fresh = () => backend.fresh();
  describe(backend.name, () => {
    describe('runs', () => {
      test('params, metric series, status, timings, tags and code version are recorded', async () => {
        const reg = await openRegistry(fresh());
        const t0 = Date.now();
        const run = await reg.startRun({
          name: 'lora-r8',
          params: { lr: 1e-3, rank: 8, targets: ['query', 'value'] },
          tags: { strategy: 'lora' },
          baseModel: 'use-lite',
        });
        await run.logMetrics({ loss: 0.9, acc: 0.5 }, { epoch: 0 });
        await run.logMetrics({ loss: 0.4, acc: 0.8 }, { epoch: 1 });
        await run.logMetric('loss', 0.3);
        await run.logMetric('lr', 0.5, { step: 10 });
        await run.setDatasetFingerprint('sha256:abc');
        assert.equal(await run.finish(), true);
        assert.equal(await run.finish(), false, 'a second end does not overwrite');
        const d = await reg.showRun(run.id);
        assert.equal(d.status, 'finished');
        assert.equal(d.name, 'lora-r8');
        assert.deepEqual(d.params, { lr: 1e-3, rank: 8, targets: ['query', 'value'] });
        assert.deepEqual(d.tags, { strategy: 'lora' });
        assert.equal(d.baseModel, 'use-lite');
        assert.equal(d.datasetFingerprint, 'sha256:abc');
        assert.ok(d.startedAt >= t0 && d.endedAt! >= d.startedAt && d.durationMs === d.endedAt! - d.startedAt);
        const pkg = JSON.parse(readFileSync(resolve('package.json'), 'utf8')) as { name: string; version: string };
        assert.equal(d.codeVersion?.package, `${pkg.name}@${pkg.version}`);
        assert.match(d.codeVersion?.git ?? '', /^[0-9a-f]{40}$/);
        assert.deepEqual(d.latestMetrics, { acc: 0.8, loss: 0.3, lr: 0.5 });
        const loss = await reg.getMetrics(run.id, 'loss');
        assert.deepEqual(
          loss.map((p) => [p.step, p.epoch, p.value]),
          [
            [0, 0, 0.9],
            [1, 1, 0.4],
            [2, null, 0.3],
          ],
        );
        await assert.rejects(run.logMetric('loss', 1), isRegistryError(`run ${run.id} has already ended`));
        await reg.close();
      });

      test('non-finite metrics are rejected', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        await assert.rejects(
          run.logMetric('loss', Number.NaN),
          (e: unknown) =>
            e instanceof ConfigError && e.message === `metric 'loss' of run ${run.id} must be a finite number, got NaN`,
        );
        assert.deepEqual(await reg.getMetrics(run.id), []);
        await reg.close();
      });

      test('unknown and ambiguous run ids are clear errors; unique prefixes resolve', async () => {
        const opts = fresh();
        const reg = await openRegistry(opts);
        await assert.rejects(
          reg.getRun('deadbeef'),
          isRegistryError(`run 'deadbeef' does not exist in registry ${backend.location(opts)}`),
        );
        const run = await reg.startRun();
        assert.equal((await reg.getRun(run.id.slice(0, 6))).id, run.id);
        await reg.metadata.createRun({ id: `${run.id.slice(0, 6)}ffffffffff`, startedAt: Date.now() });
        await assert.rejects(reg.getRun(run.id.slice(0, 6)), /is ambiguous: matches/);
        await reg.close();
      });

      test('list filters by status and tag, newest first', async () => {
        const reg = await openRegistry(fresh());
        const a = await reg.startRun({ tags: { strategy: 'head' } });
        const b = await reg.startRun({ tags: { strategy: 'lora' } });
        await a.finish();
        await b.fail(new Error('diverged'));
        assert.deepEqual(
          (await reg.listRuns({ status: 'failed' })).map((r) => [r.id, r.error]),
          [[b.id, 'diverged']],
        );
        assert.deepEqual(
          (await reg.listRuns({ tag: { strategy: 'head' } })).map((r) => r.id),
          [a.id],
        );
        assert.equal((await reg.listRuns()).length, 2);
        await reg.close();
      });

      test('a run whose process is gone is marked failed on open/list; remote runs by heartbeat age', async () => {
        const reg = await openRegistry({ ...fresh(), staleAfterMs: 60_000 });
        // pid 2^22+7 is above Linux's default pid_max, so no live process has it.
        await reg.metadata.createRun({ id: 'local0dead0run00', startedAt: Date.now(), pid: 4194311, host: hostname() });
        await reg.metadata.createRun({
          id: 'remote0old0run00',
          startedAt: Date.now() - 3_600_000,
          pid: 1,
          host: 'other-host',
        });
        await reg.metadata.createRun({ id: 'remote0new0run00', startedAt: Date.now(), pid: 1, host: 'other-host' });
        const runs = await reg.listRuns();
        const byId = new Map(runs.map((r) => [r.id, r]));
        assert.equal(byId.get('local0dead0run00')?.status, 'failed');
        assert.equal(
          byId.get('local0dead0run00')?.error,
          `process 4194311 on ${hostname()} exited without ending the run`,
        );
        assert.equal(byId.get('remote0old0run00')?.status, 'failed');
        assert.match(byId.get('remote0old0run00')?.error ?? '', /^no heartbeat from other-host since /);
        assert.equal(byId.get('remote0new0run00')?.status, 'running');
        await reg.close();
      });

      test('deleting a run that produced a model version is refused', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        await run.registerModel({ name: 'm', source: modelDir('x') });
        await run.finish();
        await assert.rejects(
          reg.deleteRun(run.id),
          isRegistryError(`run ${run.id} cannot be deleted: model version m:1 was produced by it`),
        );
        await reg.close();
      });
    });

    describe('model versions', () => {
      test('versions auto-increment; aliases move atomically; lineage links runs and parents', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun({ baseModel: 'use-lite' });
        const v1 = await run.registerModel({
          name: 'spam',
          source: modelDir('1'),
          aliases: ['production'],
          parents: [{ relation: 'base', external: 'use-lite' }],
        });
        const v2 = await run.registerModel({ name: 'spam', source: modelDir('2'), aliases: ['staging'] });
        const q = await reg.registerModel({
          name: 'spam-int8',
          source: modelDir('q'),
          parents: [
            { relation: 'quantized_from', model: 'spam@staging' },
            { relation: 'teacher', model: 'spam:1' },
          ],
        });
        assert.deepEqual([v1.version, v2.version, q.version], [1, 2, 1]);
        assert.equal(v1.runId, run.id);
        assert.deepEqual(v1.parents, [{ relation: 'base', external: 'use-lite' }]);
        assert.deepEqual(q.parents, [
          { relation: 'quantized_from', model: { name: 'spam', version: 2 } },
          { relation: 'teacher', model: { name: 'spam', version: 1 } },
        ]);
        assert.equal((await reg.getModel('spam@production')).version, 1);
        await reg.setAlias('spam', 'production', 2);
        assert.deepEqual((await reg.getModel('spam:2')).aliases, ['production', 'staging']);
        assert.deepEqual((await reg.getModel('spam:1')).aliases, []);
        assert.equal((await reg.getModel('spam')).version, 2);
        assert.equal((await reg.getModel('spam@latest')).version, 2);
        assert.deepEqual(
          await reg.listModels().then((ms) => ms.map((m) => [m.name, m.latestVersion, m.versions, m.aliases])),
          [
            ['spam', 2, 2, { production: 2, staging: 2 }],
            ['spam-int8', 1, 1, {}],
          ],
        );
        const out = join(root, `export-${n++}`);
        await reg.exportModel('spam@production', out);
        assert.equal(readFileSync(join(out, 'model.onnx'), 'utf8'), 'weights 2');
        assert.equal(readFileSync(join(await reg.modelPath('spam:1'), 'model.onnx'), 'utf8'), 'weights 1');
        assert.deepEqual((await reg.showRun(run.id)).models, [
          { name: 'spam', version: 1 },
          { name: 'spam', version: 2 },
        ]);
        await reg.close();
      });

      test('an alias that points nowhere, a missing version and a missing model are clear errors', async () => {
        const opts = fresh();
        const reg = await openRegistry(opts);
        await reg.registerModel({ name: 'spam', source: modelDir('a'), aliases: ['staging'] });
        await assert.rejects(
          reg.getModel('spam@production'),
          isRegistryError(`alias 'production' of model 'spam' points nowhere (known aliases: staging)`),
        );
        await assert.rejects(
          reg.getModel('spam:7'),
          isRegistryError('model version spam:7 does not exist (latest is 1)'),
        );
        await assert.rejects(
          reg.getModel('ham@production'),
          isRegistryError(`model 'ham' is not registered in ${backend.location(opts)}`),
        );
        await assert.rejects(
          reg.setAlias('spam', 'production', 3),
          isRegistryError('model version spam:3 does not exist (latest is 1)'),
        );
        await assert.rejects(
          reg.deleteAlias('spam', 'production'),
          isRegistryError(`alias 'production' of model 'spam' points nowhere`),
        );
        await assert.rejects(
          reg.setAlias('spam', 'latest', 1),
          (e: unknown) => e instanceof ConfigError && /reserved/.test(e.message),
        );
        assert.throws(() => parseModelRef('spam:0'), /invalid model version '0' in 'spam:0'/);
        assert.deepEqual(parseModelRef('org/spam-v2@prod'), { name: 'org/spam-v2', alias: 'prod' });
        await reg.close();
      });

      test('rollback walks an alias back through its history, atomically and with clear errors', async () => {
        const reg = await openRegistry(fresh());
        await reg.registerModel({ name: 'spam', source: modelDir('r1'), aliases: ['production'] });
        await reg.registerModel({ name: 'spam', source: modelDir('r2') });
        await reg.registerModel({ name: 'spam', source: modelDir('r3') });
        await assert.rejects(
          reg.rollbackAlias('spam'),
          isRegistryError(
            `alias 'production' of model 'spam' has no previous version to roll back to (it points at version 1)`,
          ),
        );
        await reg.setAlias('spam', 'production', 2);
        await reg.setAlias('spam', 'production', 2); // re-pointing at the same version is not a new step
        await reg.setAlias('spam', 'production', 3);
        assert.deepEqual(await reg.rollbackAlias('spam'), { name: 'spam', alias: 'production', from: 3, to: 2 });
        assert.equal((await reg.getModel('spam@production')).version, 2);
        assert.deepEqual(await reg.rollbackAlias('spam', 'production'), {
          name: 'spam',
          alias: 'production',
          from: 2,
          to: 1,
        });
        assert.equal((await reg.getModel('spam@production')).version, 1);
        await assert.rejects(
          reg.rollbackAlias('spam'),
          /has no previous version to roll back to \(it points at version 1\)/,
        );
        assert.deepEqual(
          (await reg.aliasHistory('spam', 'production')).map((m) => [m.action, m.version]),
          [
            ['set', 1],
            ['set', 2],
            ['set', 2],
            ['set', 3],
            ['rollback', 2],
            ['rollback', 1],
          ],
        );
        // A deletion forgets the history: a fresh alias has nothing to roll back to.
        await reg.deleteAlias('spam', 'production');
        await reg.setAlias('spam', 'production', 3);
        await assert.rejects(
          reg.rollbackAlias('spam'),
          /no previous version to roll back to \(it points at version 3\)/,
        );
        await assert.rejects(
          reg.rollbackAlias('spam', 'staging'),
          isRegistryError(`alias 'staging' of model 'spam' points nowhere`),
        );
        await assert.rejects(reg.rollbackAlias('ham'), /model 'ham' is not registered/);
        await reg.close();
      });

      test('a bad lineage parent aborts the registration without consuming a version', async () => {
        const reg = await openRegistry(fresh());
        await reg.registerModel({ name: 'spam', source: modelDir('a') });
        await assert.rejects(
          reg.registerModel({
            name: 'spam',
            source: modelDir('b'),
            parents: [{ relation: 'teacher', model: 'teacher:1' }],
          }),
          /model 'teacher' is not registered/,
        );
        await assert.rejects(
          reg.registerModel({ name: 'spam', source: modelDir('c'), runId: 'nope1234' }),
          /run 'nope1234' does not exist/,
        );
        assert.equal((await reg.registerModel({ name: 'spam', source: modelDir('d') })).version, 2);
        await reg.close();
      });
    });

    describe('gc and verify', () => {
      test('gc removes unreferenced objects and stale temp folders, keeps referenced and reserved ones', async () => {
        const reg = await openRegistry(fresh());
        const keep = await reg.startRun();
        const keptRef = await keep.logArtifact(modelDir('keep'), { path: 'model' });
        const mv = await reg.registerModel({ name: 'm', source: modelDir('registered') });
        const drop = await reg.startRun();
        const dropRef = await drop.logArtifact(modelDir('drop'), { path: 'model' });
        await drop.finish();
        await reg.deleteRun(drop.id);
        // An object being written by a live process (reserved, row not yet committed) must survive gc.
        const pending = await reg.artifacts.ingestBytes(new TextEncoder().encode('in flight'));
        await reg.metadata.reserveObject({
          token: 't1',
          hash: pending.hash,
          pid: process.pid,
          host: hostname(),
          createdAt: Date.now(),
        });
        await pending.commit();
        // Leftovers of a dead writer: a temp folder and a reservation.
        const deadTmp = join(reg.home, 'tmp', `${hostname()}-4194311-0123456789ab`);
        mkdirSync(deadTmp);
        const orphan = await reg.artifacts.ingestBytes(new TextEncoder().encode('orphan'));
        await reg.metadata.reserveObject({
          token: 't2',
          hash: orphan.hash,
          pid: 4194311,
          host: hostname(),
          createdAt: Date.now(),
        });
        await orphan.commit();

        const dry = await reg.gc({ dryRun: true });
        assert.deepEqual(dry.removedObjects.map((o) => o.hash).sort(), [dropRef.hash, orphan.hash].sort());
        assert.equal((await reg.artifacts.list()).length, 5, 'dry run removes nothing');

        const report = await reg.gc();
        assert.deepEqual(report.removedObjects.map((o) => o.hash).sort(), [dropRef.hash, orphan.hash].sort());
        assert.equal(report.bytesFreed, dropRef.size + 6);
        assert.deepEqual(report.removedTemp, [deadTmp]);
        assert.equal(report.staleReservations, 1);
        assert.deepEqual((await reg.artifacts.list()).sort(), [keptRef.hash, mv.artifact.hash, pending.hash].sort());
        const v = await reg.verify();
        assert.deepEqual(v, { ok: true, checkedObjects: 2, problems: [], unreferencedObjects: 1 });
        await reg.close();
      });

      test('gc restores an object that became referenced while quarantined', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        const staged = await reg.artifacts.ingestBytes(new TextEncoder().encode('racy'));
        await staged.commit();
        // Interleave a writer between gc's first read and its re-check by hooking quarantine.
        const quarantine = reg.artifacts.quarantine.bind(reg.artifacts);
        reg.artifacts.quarantine = async (h: string) => {
          const token = await quarantine(h);
          await reg.metadata.addArtifacts(run.id, [
            { path: 'late', kind: 'other', hash: staged.hash, type: 'file', size: 4, createdAt: Date.now() },
          ]);
          return token;
        };
        const r = await reg.gc();
        assert.deepEqual(r.removedObjects, []);
        assert.equal(await reg.artifacts.has(staged.hash), true);
        assert.equal((await reg.verify()).ok, true);
        await reg.close();
      });

      test('verify reports a missing object with the rows that reference it', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        const ref = await run.logArtifactBytes('abc', 'notes.txt');
        // Lose the object behind the registry's back (a bucket lifecycle rule, a deleted file).
        await reg.artifacts.purge((await reg.artifacts.quarantine(ref.hash))!);
        assert.deepEqual(await reg.verify(), {
          ok: false,
          checkedObjects: 1,
          problems: [{ hash: ref.hash, problem: 'missing', referencedBy: [`run ${run.id} artifact notes.txt`] }],
          unreferencedObjects: 0,
        });
        await reg.close();
      });
    });

    describe('registry artifacts', () => {
      test('an artifact path that does not exist is a RegistryError naming it, and nothing is recorded', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        const missing = join(root, 'no-such-folder');
        await assert.rejects(
          run.logArtifact(missing),
          (e: unknown) => e instanceof RegistryError && e.message === `artifact path does not exist: ${missing}`,
        );
        assert.deepEqual(await reg.metadata.listArtifacts(run.id), []);
        assert.deepEqual(await reg.artifacts.list(), []);
        assert.deepEqual(await reg.artifacts.listTemp(), []);
        await reg.close();
      });

      test('no row points at a missing object when the object commit fails', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        const original = reg.artifacts.ingest.bind(reg.artifacts);
        // Simulate a failure (disk full, crash) between hashing and the rename into objects/.
        reg.artifacts.ingest = async (p: string) => {
          const s = await original(p);
          return { ...s, commit: async () => Promise.reject(new Error('ENOSPC: simulated')) };
        };
        await assert.rejects(run.logArtifact(makeModelDir(join(root, `dirF-${n}`))), /ENOSPC: simulated/);
        await assert.rejects(
          reg.registerModel({ name: 'm', source: makeModelDir(join(root, `dirG-${n}`)) }),
          /ENOSPC: simulated/,
        );
        assert.deepEqual(await reg.metadata.listArtifacts(run.id), []);
        assert.deepEqual(await reg.listModels(), []);
        assert.deepEqual(await reg.metadata.listReservations(), [], 'reservation released');
        assert.deepEqual(await reg.artifacts.listTemp(), [], 'temp copy removed');
        assert.equal((await reg.verify()).ok, true);
        await reg.close();
      });

      test('staged artifact folders are written in place and committed under their hash', async () => {
        const reg = await openRegistry(fresh());
        const run = await reg.startRun();
        const st = await run.stageArtifact();
        writeFileSync(join(st.path, 'model.onnx'), 'W');
        writeFileSync(join(st.path, 'tailor.json'), '{}');
        const ref = await st.commit('model', 'model');
        assert.equal(ref.hash, expectedTreeHash({ 'model.onnx': 'W', 'tailor.json': '{}' }));
        assert.equal(new TextDecoder().decode(await reg.artifacts.readBytes(ref.hash, 'tailor.json')), '{}');
        assert.equal(existsSync(st.path), false);
        const bytes = await run.logArtifactBytes('{"acc":1}', 'eval/report.json', 'report');
        assert.equal(bytes.hash, sha('{"acc":1}'));
        assert.deepEqual(
          (await reg.metadata.listArtifacts(run.id)).map((a) => [a.path, a.kind, a.type]),
          [
            ['eval/report.json', 'report', 'file'],
            ['model', 'model', 'dir'],
          ],
        );
        await reg.close();
      });
    });
  });
}
