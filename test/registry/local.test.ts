/** The embedded default backend only: the registry folder, TAILOR_HOME, and SQLite's schema version. */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { after, describe, test } from 'node:test';
import { RegistryError } from '../../src/errors.ts';
import { SCHEMA_VERSION, openRegistry, resolveHome } from '../../src/registry/index.ts';

const root = mkdtempSync(join(tmpdir(), 'tailor-local-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(root, `case-${n++}`);

const isRegistryError = (msg: string) => (e: unknown) => {
  assert.ok(e instanceof RegistryError, `expected RegistryError, got ${String(e)}`);
  assert.equal(e.message, msg);
  return true;
};

describe('registry folder', () => {
  test('a registry folder that is not writable is a RegistryError naming it, and nothing is written', async () => {
    const file = join(root, `plain-file-${n++}`);
    writeFileSync(file, 'x');
    const home = join(file, '.tailor');
    await assert.rejects(openRegistry({ home }), (e: unknown) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(
        e.message,
        `registry folder ${home} cannot be created (ENOTDIR); choose another with --home DIR or TAILOR_HOME`,
      );
      return true;
    });
    if (process.getuid?.() !== 0) {
      // Root ignores mode bits, so this half only runs for ordinary users.
      const ro = join(root, `ro-${n++}`);
      mkdirSync(ro);
      chmodSync(ro, 0o555);
      await assert.rejects(
        openRegistry({ home: ro }),
        isRegistryError(
          `registry folder ${ro} is not writable (${ro}: EACCES); choose another with --home DIR or TAILOR_HOME`,
        ),
      );
      assert.deepEqual(readdirSync(ro), []);
      chmodSync(ro, 0o755);
    }
  });

  test('TAILOR_HOME selects the folder; data persists across opens; schema version is recorded', async () => {
    const home = fresh();
    const prev = process.env.TAILOR_HOME;
    process.env.TAILOR_HOME = home;
    try {
      assert.equal(resolveHome(), resolve(home));
      assert.equal(resolveHome(join(root, 'explicit')), join(root, 'explicit'));
      const reg = await openRegistry();
      const run = await reg.startRun({ params: { a: 1 } });
      await run.finish();
      await reg.close();
      const again = await openRegistry();
      assert.deepEqual((await again.getRun(run.id)).params, { a: 1 });
      await again.close();
    } finally {
      if (prev === undefined) delete process.env.TAILOR_HOME;
      else process.env.TAILOR_HOME = prev;
    }
    const db = new Database(join(home, 'registry.db'));
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await assert.rejects(
      openRegistry({ home }),
      new RegExp(
        `has schema version ${SCHEMA_VERSION + 1}, newer than this Tailor supports \\(${SCHEMA_VERSION}\\); upgrade Tailor`,
      ),
    );
  });

  test('upgrading a schema-1 registry seeds the alias history with the current targets, so rollback works after', async () => {
    const home = fresh();
    const src = join(root, `src-${n++}`);
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'model.onnx'), 'w');
    const reg = await openRegistry({ home });
    await reg.registerModel({ name: 'spam', source: src, aliases: ['production'] });
    await reg.registerModel({ name: 'spam', source: src });
    await reg.close();
    // Back to schema 1 as an older Tailor left it: no history table.
    const db = new Database(join(home, 'registry.db'));
    db.exec('DROP TABLE alias_history');
    db.pragma('user_version = 1');
    db.close();
    const again = await openRegistry({ home });
    assert.deepEqual(
      (await again.aliasHistory('spam', 'production')).map((m) => [m.action, m.version]),
      [['set', 1]],
    );
    await again.setAlias('spam', 'production', 2);
    assert.deepEqual(await again.rollbackAlias('spam'), { name: 'spam', alias: 'production', from: 2, to: 1 });
    await again.close();
  });
});
