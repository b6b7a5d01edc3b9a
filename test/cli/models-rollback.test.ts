/** `tailor models rollback`: the CLI moves `production` back to the version it pointed at before. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { json, tailor } from './fixtures.ts';
import { openRegistry } from '../../src/registry/index.ts';

test('models rollback moves production back one step, prints it, and refuses when there is no step', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tailor-rollback-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const home = path.join(dir, '.tailor');
  const reg = await openRegistry({ home });
  for (const w of ['one', 'two']) {
    const src = path.join(dir, w);
    mkdirSync(src);
    writeFileSync(path.join(src, 'model.onnx'), w);
    await reg.registerModel({ name: 'tickets', source: src, aliases: ['production'] });
  }
  await reg.close();

  const r = await tailor(['models', 'rollback', 'tickets', '--home', home]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'tickets@production -> tickets:1 (was tickets:2)');
  const shown = json<{ version: number }>(
    await tailor(['models', 'show', 'tickets@production', '--home', home, '--json']),
  );
  assert.equal(shown.version, 1);

  const again = await tailor(['models', 'rollback', 'tickets', '--alias', 'production', '--home', home, '--json']);
  assert.notEqual(again.status, 0);
  assert.match(
    again.stderr,
    /alias 'production' of model 'tickets' has no previous version to roll back to \(it points at version 1\)/,
  );
});
