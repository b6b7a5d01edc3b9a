/**
 * The architecture, checked on every `npm test`: the import graph of src/ has no cycles, and folders import only
 * from the layers below them (docs/architecture.md). Imports are read with a regular expression over the sources:
 * every relative `import ... from '...'`, `export ... from '...'` and `import('...')`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '../../src');

/**
 * Layers, lowest first. A folder may import its own files and any folder of a LOWER layer; folders in the same layer
 * do not import each other. `index.ts` (the package entry) and the root files are checked separately.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['util'],
  ['onnx'],
  ['autodiff', 'runtime', 'data'],
  ['eval'],
  ['train'],
  ['models'],
  ['customize', 'compress'],
  ['audit'],
  ['registry'],
  ['workflow'],
  ['serve', 'monitor', 'jobs'],
  ['cli'],
];
/** Root files every layer may use (they import nothing from src/ but each other). */
const ROOT_FILES = new Set(['errors.ts', 'version.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

function importGraph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) deps.push(path.resolve(path.dirname(file), m[1] ?? m[2]));
    g.set(file, deps);
  }
  return g;
}

const rel = (p: string): string => path.relative(SRC, p);
const folderOf = (p: string): string => (rel(p).includes(path.sep) ? rel(p).split(path.sep)[0] : rel(p));

/** Strongly connected components with more than one file (or a self-import): the import cycles. */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(rel(w));
      } while (w !== v);
      if (comp.length > 1 || (g.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test('every relative import in src/ resolves to a file', () => {
  const g = importGraph();
  const missing = [...g].flatMap(([f, deps]) => deps.filter((d) => !g.has(d)).map((d) => `${rel(f)} -> ${rel(d)}`));
  assert.deepEqual(missing, []);
});

test('the import graph of src/ has no cycles', () => {
  assert.deepEqual(cycles(importGraph()), []);
});

test('folders import only from lower layers (util < onnx < ... < cli)', () => {
  const layer = new Map(LAYERS.flatMap((fs, i) => fs.map((f) => [f, i] as const)));
  const g = importGraph();
  const folders = new Set([...g.keys()].map(folderOf).filter((f) => !f.endsWith('.ts')));
  assert.deepEqual(
    [...folders].filter((f) => !layer.has(f)),
    [],
    'every folder of src/ has a layer',
  );
  const bad: string[] = [];
  for (const [file, deps] of g) {
    const from = folderOf(file);
    for (const d of deps) {
      const to = folderOf(d);
      if (from === to || ROOT_FILES.has(to)) continue;
      if (from.endsWith('.ts')) {
        // Root files: the package entry may import anything; the others only each other.
        if (from !== 'index.ts') bad.push(`${rel(file)} -> ${rel(d)}`);
        continue;
      }
      if (to.endsWith('.ts') || !(layer.get(to)! < layer.get(from)!)) bad.push(`${rel(file)} -> ${rel(d)}`);
    }
  }
  assert.deepEqual(bad, []);
});
