import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.ts';

const bin = fileURLToPath(new URL('../../bin/tailor.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

test('tailor --version prints the package version', () => {
  const out = execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
  assert.equal(out.trim(), pkg.version);
});

test('tailor --help lists the program description', () => {
  const out = execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
  assert.match(out, /Usage: tailor/);
  assert.match(out, /tailored to your domain/);
});

test('an unknown command exits with the usage code 2', () => {
  const r = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command|error/i);
});

const COMMANDS = [
  'audit',
  'customize',
  'evaluate',
  'runs list',
  'runs show',
  'runs compare',
  'runs gc',
  'models list',
  'models show',
  'models alias',
  'models export',
  'registry migrate',
  'quantize',
  'distill',
  'mitigate',
  'monitor',
  'watch',
  'ab',
  'feedback import',
  'demo',
  'serve',
];

test('every command has --help with --json and --home; model-running commands have --device and --profile', () => {
  // In process (buildProgram), so the test costs milliseconds instead of a spawn per command.
  const program = buildProgram();
  for (const c of COMMANDS) {
    let cmd: Command | undefined = program;
    for (const part of c.split(' ')) cmd = cmd?.commands.find((x) => x.name() === part);
    assert.ok(cmd, c);
    const out = cmd.helpInformation();
    assert.match(out, new RegExp(`Usage: tailor ${c}`), c);
    assert.match(out, /--json/, c);
    assert.match(out, /--home <dir>/, c);
    if (['audit', 'customize', 'evaluate', 'quantize', 'distill', 'demo'].includes(c)) {
      assert.match(out, /--device <device>[\s\S]*\(choices:\s+"cpu",\s+"cuda",\s+"webgpu"/, c);
      assert.match(out, /--profile/, c);
    }
  }
});

test('top-level help lists every command and the exit codes', () => {
  const out = execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
  for (const c of [
    'audit',
    'customize',
    'evaluate',
    'runs',
    'models',
    'registry',
    'quantize',
    'distill',
    'mitigate',
    'demo',
    'serve',
  ])
    assert.match(out, new RegExp(`^  ${c}\\b`, 'm'), c);
  assert.match(out, /Exit codes: 0 ok, 1 error .*, 2 usage error\./);
});

test('read-only commands on a registry that does not exist: exit 1 naming the folder, nothing created', () => {
  const home = `/tmp/tailor-no-registry-${process.pid}`;
  const r = spawnSync(process.execPath, [bin, 'runs', 'list', '--home', home], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim(),
    `tailor: no registry at ${home} (run 'tailor customize' first, or point --home / TAILOR_HOME at one)`,
  );
  const e = spawnSync(process.execPath, [bin, 'models', 'list'], {
    encoding: 'utf8',
    env: { ...process.env, TAILOR_HOME: home },
  });
  assert.equal(e.status, 1);
  assert.match(e.stderr, new RegExp(`no registry at ${home}`));
  assert.equal(spawnSync('test', ['-e', home]).status, 1);
});

test("--strategy choices are auto, none and exactly the strategy table's rows", async () => {
  const { STRATEGIES } = await import('../../src/customize/strategies/index.ts');
  const { STRATEGY_CHOICES } = await import('../../src/workflow/strategies.ts');
  assert.deepEqual(STRATEGY_CHOICES, ['auto', 'none', ...STRATEGIES]);
});
