import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RegistryError } from '../../src/errors.ts';
import { LocalArtifactStore } from '../../src/registry/index.ts';

const root = mkdtempSync(join(tmpdir(), 'tailor-art-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(root, `case-${n++}`);
const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

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

describe('LocalArtifactStore', () => {
  test('a file object is named by the sha256 of its bytes and stored read-only', async () => {
    const store = new LocalArtifactStore(fresh());
    await store.init();
    const src = join(root, `f-${n}.bin`);
    writeFileSync(src, 'hello artifact');
    const staged = await store.ingest(src);
    assert.equal(staged.hash, sha('hello artifact'));
    assert.equal(staged.size, 14);
    assert.equal(staged.type, 'file');
    assert.equal(await store.has(staged.hash), false, 'not visible before commit');
    await staged.commit();
    const p = store.localPath(staged.hash);
    assert.equal(readFileSync(p, 'utf8'), 'hello artifact');
    assert.equal(statSync(p).mode & 0o222, 0);
    assert.deepEqual(readdirSync(join(store.location, 'tmp')), [], 'temp folder cleaned after commit');
  });

  test('a folder object hashes its canonical manifest, independent of creation order', async () => {
    const store = new LocalArtifactStore(fresh());
    await store.init();
    const a = makeModelDir(join(root, `dirA-${n}`));
    const b = join(root, `dirB-${n}`);
    mkdirSync(join(b, 'tokenizer'), { recursive: true });
    writeFileSync(join(b, 'tokenizer', 'vocab.txt'), 'a\nb\n');
    writeFileSync(join(b, 'config.json'), '{"hidden":8}');
    writeFileSync(join(b, 'model.onnx'), 'WEIGHTS');
    const expected = expectedTreeHash({
      'model.onnx': 'WEIGHTS',
      'config.json': '{"hidden":8}',
      'tokenizer/vocab.txt': 'a\nb\n',
    });
    const sa = await store.ingest(a);
    const sb = await store.ingest(b);
    assert.equal(sa.hash, expected);
    assert.equal(sb.hash, expected);
    assert.equal(sa.size, 7 + 12 + 4);
    await sa.commit();
    await sb.commit(); // same content: dedup, no error
    assert.deepEqual(await store.list(), [expected]);
    const c = makeModelDir(join(root, `dirC-${n}`), 'WEIGHTs');
    assert.notEqual((await store.ingest(c)).hash, expected, 'one changed byte changes the hash');
  });

  test('check detects a tampered object; export gives a writable copy and refuses to overwrite', async () => {
    const store = new LocalArtifactStore(fresh());
    await store.init();
    const s = await store.ingest(makeModelDir(join(root, `dirT-${n}`)));
    await s.commit();
    assert.deepEqual(await store.check(s.hash, 'dir'), { hash: s.hash, ok: true });
    assert.equal((await store.check(s.hash, 'file')).problem, 'type mismatch: expected file, found dir');
    const out = join(root, `export-${n}`);
    await store.exportTo(s.hash, out);
    assert.equal(readFileSync(join(out, 'tokenizer', 'vocab.txt'), 'utf8'), 'a\nb\n');
    writeFileSync(join(out, 'model.onnx'), 'edited'); // writable
    await assert.rejects(
      store.exportTo(s.hash, out),
      (e: unknown) => e instanceof RegistryError && e.message === `export destination already exists: ${out}`,
    );
    const inObj = join(store.localPath(s.hash), 'model.onnx');
    chmodSync(inObj, 0o644);
    writeFileSync(inObj, 'tampered');
    const bad = await store.check(s.hash, 'dir');
    assert.equal(bad.ok, false);
    const tamperedHash = expectedTreeHash({
      'model.onnx': 'tampered',
      'config.json': '{"hidden":8}',
      'tokenizer/vocab.txt': 'a\nb\n',
    });
    assert.equal(bad.problem, `hash mismatch (content hashes to ${tamperedHash})`);
    assert.deepEqual(await store.check('0'.repeat(64)), { hash: '0'.repeat(64), ok: false, problem: 'missing' });
  });

  test('readBytes reads a file inside a folder object and rejects path escapes', async () => {
    const store = new LocalArtifactStore(fresh());
    await store.init();
    const s = await store.ingest(makeModelDir(join(root, `dirR-${n}`)));
    await s.commit();
    assert.equal(new TextDecoder().decode(await store.readBytes(s.hash, 'tokenizer/vocab.txt')), 'a\nb\n');
    await assert.rejects(store.readBytes(s.hash, '../x'), /may not contain '\.\.'/);
    await assert.rejects(store.readBytes('nothex'), /not an artifact hash: 'nothex'/);
  });
});
