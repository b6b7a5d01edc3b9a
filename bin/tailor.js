#!/usr/bin/env node
// An installed package (no src/ beside bin/) runs the built CLI in dist/; a checkout runs the TypeScript sources
// through tsx's loader, so that a fresh `npm ci` needs no build step and a stale dist/ is never used.
import { existsSync } from 'node:fs';

if (existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
} else {
  await import('../dist/cli/main.js');
}
