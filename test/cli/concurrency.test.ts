/** Two `tailor customize` processes writing to one registry at the same time leave it consistent. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { json, tailor, workspace, clincArgs } from './fixtures.ts';

test('two concurrent customize runs: 4 finished runs, versions 1 and 2, every artifact on disk, nothing for gc', async (t) => {
  const ws = await workspace('concurrent');
  t.after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const args = (out: string, seed: string): string[] => [
    'customize',
    ...clincArgs(ws),
    '--strategy',
    'head',
    '--epochs',
    '1',
    '--seed',
    seed,
    '--out',
    out,
    '--name',
    'shared',
    '--home',
    ws.home,
    '--json',
    '-q',
  ];
  const [a, b] = await Promise.all([
    tailor(args(path.join(ws.dir, 'a'), '1')),
    tailor(args(path.join(ws.dir, 'b'), '2')),
  ]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  const ja = json<{ run_id: string; baseline_run_id: string; model: { version: number } }>(a);
  const jb = json<{ run_id: string; baseline_run_id: string; model: { version: number } }>(b);
  assert.deepEqual([ja.model.version, jb.model.version].sort(), [1, 2]);

  const runs = json<Array<{ id: string; status: string }>>(await tailor(['runs', 'list', '--home', ws.home, '--json']));
  assert.equal(runs.length, 4);
  assert.ok(
    runs.every((r) => r.status === 'finished'),
    JSON.stringify(runs),
  );
  assert.deepEqual(
    new Set(runs.map((r) => r.id)),
    new Set([ja.run_id, ja.baseline_run_id, jb.run_id, jb.baseline_run_id]),
  );

  const versions = json<Array<{ version: number; runId: string; artifact: { hash: string } }>>(
    await tailor(['models', 'show', 'shared', '--all', '--home', ws.home, '--json']),
  );
  assert.deepEqual(versions.map((v) => v.version).sort(), [1, 2]);
  const byRun = new Map(versions.map((v) => [v.runId, v.version]));
  assert.equal(byRun.get(ja.run_id), ja.model.version);
  assert.equal(byRun.get(jb.run_id), jb.model.version);
  for (const v of versions) assert.ok(existsSync(path.join(ws.home, 'objects', v.artifact.hash)), v.artifact.hash);

  const gc = json<{
    gc: { removedObjects: unknown[] };
    verify: { ok: boolean; problems: unknown[]; unreferencedObjects: number };
  }>(await tailor(['runs', 'gc', '--dry-run', '--home', ws.home, '--json']));
  assert.deepEqual(gc.gc.removedObjects, []);
  assert.equal(gc.verify.unreferencedObjects, 0);
  assert.equal(gc.verify.ok, true, JSON.stringify(gc.verify));
});
