/**
 * Publishable: the package `npm pack` would publish (built with tsc, no tsx at run time) installs into an empty
 * folder and runs the high-level entry from a plain `.mjs` file with plain `node`.
 *
 * Built into a temporary folder, not the checkout's dist/, so that the rest of the suite keeps running the sources.
 * The dependencies are installed from npm's cache or registry with their install scripts off; the one native addon
 * the run needs (better-sqlite3) is copied from this checkout's node_modules, where `npm ci` built it for this very
 * Node version — building it again would only test node-gyp.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSlice } from './slice.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });

test('npm pack -> install into an empty folder -> a plain .mjs runs tailorModel and loadClassifier', async (t) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tailor-pack-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const pkg = path.join(tmp, 'pkg');
  const app = path.join(tmp, 'app');
  mkdirSync(pkg);
  mkdirSync(app);
  execFileSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      path.join(pkg, 'dist'),
    ],
    {
      cwd: ROOT,
      stdio: 'pipe',
    },
  );
  for (const f of ['package.json', 'README.md', 'LICENSE', 'bin'])
    cpSync(path.join(ROOT, f), path.join(pkg, f), { recursive: true });
  npm(['pack', '--ignore-scripts', '--silent'], pkg);
  const tarball = readdirSync(pkg).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote a tarball');
  const listing = execFileSync('tar', ['-tzf', path.join(pkg, tarball)], { encoding: 'utf8' });
  assert.match(listing, /^package\/dist\/index\.js$/m);
  assert.match(listing, /^package\/dist\/index\.d\.ts$/m, 'type declarations ship');
  assert.doesNotMatch(listing, /^package\/src\//m, 'no TypeScript sources ship');

  writeFileSync(
    path.join(app, 'package.json'),
    '{ "name": "app", "version": "1.0.0", "type": "module", "private": true }\n',
  );
  cpSync(path.join(ROOT, '.npmrc'), path.join(app, '.npmrc'));
  npm(['install', path.join(pkg, tarball), '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], app);
  assert.ok(!existsSync(path.join(app, 'node_modules/tsx')), 'tsx is not a run-time dependency');
  cpSync(
    path.join(ROOT, 'node_modules/better-sqlite3/build/Release'),
    path.join(app, 'node_modules/better-sqlite3/build/Release'),
    { recursive: true },
  );
  writeSlice(app);
  writeFileSync(
    path.join(app, 'main.mjs'),
    `import { tailorModel, loadClassifier, VERSION } from 'tailor';
const r = await tailorModel({ train: 'train.csv', eval: 'eval.csv', labelColumn: 'intent', strategy: 'head',
  epochs: 2, maxLength: 32, out: 'tickets-model', home: '.tailor' });
const clf = await loadClassifier(r.model.ref, { home: '.tailor' });
const [p] = await clf.predict(['what is my account balance']);
await clf.release();
console.log(JSON.stringify({ version: VERSION, ref: r.model.ref, accuracy: r.customized.accuracy, label: p.label }));
`,
  );
  const out = execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', timeout: 300_000 });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    version: string;
    ref: string;
    accuracy: number;
    label: string;
  };
  assert.equal(
    r.version,
    (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
  );
  assert.equal(r.ref, 'tickets-model:1');
  assert.ok(r.accuracy > 0.6, `accuracy ${r.accuracy}`);
  assert.equal(r.label, 'balance');
  assert.ok(existsSync(path.join(app, 'tickets-model', 'model', 'model.onnx')));
});
