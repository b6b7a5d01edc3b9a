/**
 * Bad input: each case is a clear error naming the thing, a non-zero exit and nothing written (no out folder, no
 * registry folder or no new registry rows). Usage errors exit 2, library errors 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { clincRows, json, tailor, workspace, writeCsv, type Workspace } from './fixtures.ts';

let ws: Workspace;
const base = (): string[] => ['--base', ws.bert, '--label-column', 'intent', '--strategy', 'head', '--epochs', '1'];

test.before(async () => {
  ws = await workspace('bad');
});
test.after(() => rmSync(ws.dir, { recursive: true, force: true }));

/** The error line (progress lines come before it on stderr). */
function err(stderr: string): string {
  return stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('tailor: ') || l.startsWith('error: '))
    .join('\n');
}

function nothingWritten(out: string, home = ws.home): void {
  assert.equal(existsSync(out), false, `${out} was created`);
  assert.equal(existsSync(home), false, `${home} was created`);
  // No temp folders left beside the out folder either.
  assert.deepEqual(
    readdirSync(path.dirname(out)).filter((f) => f.startsWith(`${path.basename(out)}.tmp`)),
    [],
  );
}

test('a CSV missing the named column: exit 1, message names the file and the column', async () => {
  const out = path.join(ws.dir, 'o-missing-col');
  const r = await tailor([
    'customize',
    ...base(),
    '--train',
    ws.userTrain,
    '--text-column',
    'utterance',
    '--label-column',
    'intent',
    '--out',
    out,
    '--home',
    ws.home,
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^tailor: .*user-train\.csv.*missing column "intent" \(found: "utterance", "category"\)/m);
  nothingWritten(out);
});

test('an unreadable file (missing, or a folder): exit 1, message names the file', async () => {
  const out = path.join(ws.dir, 'o-unreadable');
  const missing = path.join(ws.dir, 'no-such.csv');
  let r = await tailor(['customize', ...base(), '--train', missing, '--out', out, '--home', ws.home]);
  assert.equal(r.status, 1);
  assert.equal(err(r.stderr), `tailor: cannot read train file ${missing}: no such file`);
  nothingWritten(out);
  const folder = path.join(ws.dir, 'a-folder.csv');
  mkdirSync(folder);
  r = await tailor(['customize', ...base(), '--train', ws.train, '--eval', folder, '--out', out, '--home', ws.home]);
  assert.equal(r.status, 1);
  assert.equal(err(r.stderr), `tailor: cannot read ${folder}: it is a folder, not a file`);
  nothingWritten(out);
});

test('a --base that does not exist: exit 1, message names it', async () => {
  const out = path.join(ws.dir, 'o-base');
  const r = await tailor([
    'customize',
    '--base',
    './models/nope',
    '--train',
    ws.train,
    '--label-column',
    'intent',
    '--out',
    out,
    '--home',
    ws.home,
  ]);
  assert.equal(r.status, 1);
  assert.equal(
    err(r.stderr),
    'tailor: ./models/nope: no such folder or file, and not a hub id (owner/name[@revision])',
  );
  nothingWritten(out);
  const a = await tailor(['audit', '--base', 'missing.onnx', '--train', ws.train, '--label-column', 'intent']);
  assert.equal(a.status, 1);
  assert.equal(err(a.stderr), 'tailor: missing.onnx: file not found');
});

test('a registry folder that is not writable: exit 1, message names the folder, no out folder', async () => {
  const out = path.join(ws.dir, 'o-registry');
  const file = path.join(ws.dir, 'plain-file');
  writeFileSync(file, 'not a folder');
  // A path below a regular file can never be created (root ignores permission bits, so chmod would not do).
  const home = path.join(file, '.tailor');
  const r = await tailor(['customize', ...base(), '--train', ws.train, '--out', out, '--home', home]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `^tailor: registry folder ${home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (is not writable|cannot be created \\(ENOTDIR\\)).*; choose another with --home DIR or TAILOR_HOME$`,
      'm',
    ),
  );
  nothingWritten(out, home);
});

test('an alias that points nowhere: exit 1, message names alias and model; no registry change', async () => {
  const out = path.join(ws.dir, 'o-alias-src');
  const ok = await tailor([
    'customize',
    ...base(),
    '--train',
    ws.train,
    '--eval',
    ws.eval,
    '--out',
    out,
    '--name',
    'm',
    '--home',
    ws.home,
    '--json',
  ]);
  assert.equal(ok.status, 0, ok.stderr);
  const before = json<unknown[]>(await tailor(['runs', 'list', '--home', ws.home, '--json']));
  const r = await tailor([
    'evaluate',
    '--model',
    'm@production',
    '--eval',
    ws.eval,
    '--label-column',
    'intent',
    '--home',
    ws.home,
  ]);
  assert.equal(r.status, 1);
  assert.equal(err(r.stderr), "tailor: alias 'production' of model 'm' points nowhere (known aliases: none)");
  const e = await tailor(['models', 'export', 'm@staging', path.join(ws.dir, 'exp'), '--home', ws.home]);
  assert.equal(e.status, 1);
  assert.match(e.stderr, /alias 'staging' of model 'm' points nowhere/);
  assert.equal(existsSync(path.join(ws.dir, 'exp')), false);
  const after = json<unknown[]>(await tailor(['runs', 'list', '--home', ws.home, '--json']));
  assert.equal(after.length, before.length);
  // An existing, non-empty --out is refused before any work.
  const again = await tailor(['customize', ...base(), '--train', ws.train, '--out', out, '--home', ws.home]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /--out .* already exists and is not an empty folder/);
});

test('usage errors exit 2: a missing required option, a malformed number, an unknown strategy', async () => {
  const out = path.join(ws.dir, 'o-usage');
  let r = await tailor(['customize', '--out', out]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /required option '--train <file>' not specified/);
  r = await tailor(['customize', '--train', ws.train, '--out', out, '--epochs', 'many']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /option '--epochs <n>' argument 'many' is invalid\. must be an integer >= 1/);
  r = await tailor(['customize', '--train', ws.train, '--out', out, '--strategy', 'magic']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Allowed choices are auto, none, head, lora, partial, full, scratch, bitfit/);
  nothingWritten(out, path.join(ws.dir, 'never'));
});

test('a label in eval that train never has: exit 1 naming file, line and label', async () => {
  const out = path.join(ws.dir, 'o-label');
  const evalFile = writeCsv(path.join(ws.dir, 'eval-unseen.csv'), [
    ...clincRows('test', 4, 2),
    { text: 'play some jazz please', label: 'play_music' },
  ]);
  const r = await tailor([
    'customize',
    ...base(),
    '--train',
    ws.train,
    '--eval',
    evalFile,
    '--out',
    out,
    '--home',
    ws.home,
  ]);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /^tailor: .*eval-unseen\.csv:10, column "intent": .*label "play_music" never appears in train/m,
  );
  assert.equal(existsSync(out), false);
});
