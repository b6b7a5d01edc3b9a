import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, ModelFileError } from '../../src/errors.ts';
import { classifyBase, downloadHubModel, loadBase } from '../../src/models/resolve.ts';
import type { Model } from '../../src/models/model.ts';
import { buildBert } from '../../src/models/zoo/bert.ts';
import { feeds, maxAbsDiff, runModel, tempDir, tinyConfig, wordPiece, writeHfFixture } from './fixtures.ts';

const HUB = 'https://hub.test';

/** A fake hub serving a local folder: the paths-info API, ranged probes and full downloads, as @huggingface/hub calls them. */
function fakeHub(repo: string, dir: string, log: string[]): typeof fetch {
  const files = new Map<string, Uint8Array>();
  const walk = (d: string, pre: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p, `${pre}${f}/`);
      else files.set(`${pre}${f}`, readFileSync(p));
    }
  };
  walk(dir, '');
  const commit = 'a'.repeat(40);
  return (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input instanceof Request ? input.url : input);
    const method = init?.method ?? 'GET';
    log.push(`${method} ${url.replace(HUB, '')}`);
    if (url === `${HUB}/api/models/${repo}/paths-info/main` && method === 'POST') {
      const { paths } = JSON.parse(String(init?.body)) as { paths: string[] };
      const out = paths
        .filter((p) => files.has(p))
        .map((p) => ({
          path: p,
          type: 'file',
          size: files.get(p)?.byteLength,
          oid: createHash('sha1')
            .update(files.get(p) as Uint8Array)
            .digest('hex'),
          lastCommit: { id: commit, title: 'init', date: '2024-01-01T00:00:00Z' },
        }));
      return Response.json(out);
    }
    const prefix = `${HUB}/${repo}/resolve/main/`;
    if (url.startsWith(prefix)) {
      const body = files.get(url.slice(prefix.length));
      if (!body) return new Response('missing', { status: 404, headers: { 'X-Error-Code': 'EntryNotFound' } });
      const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
      const range = new Headers(init?.headers).get('Range');
      if (range === 'bytes=0-0')
        return new Response(body.slice(0, 1), {
          status: 206,
          headers: { 'Content-Range': `bytes 0-0/${body.byteLength}`, ETag: etag },
        });
      return new Response(body, { status: 200, headers: { ETag: etag } });
    }
    return new Response('not found', { status: 404 });
  }) as typeof fetch;
}

test('classifyBase tells folders, .onnx files, use-lite and hub ids apart, without network', async () => {
  const dir = await tempDir('classify');
  assert.deepEqual(await classifyBase('use-lite'), { kind: 'use-lite', target: 'use-lite' });
  assert.deepEqual(await classifyBase(dir), { kind: 'dir', target: dir });
  assert.deepEqual(await classifyBase('prajjwal1/bert-tiny'), { kind: 'hub', target: 'prajjwal1/bert-tiny' });
  assert.deepEqual(await classifyBase('bert-base-uncased@v1.0'), {
    kind: 'hub',
    target: 'bert-base-uncased',
    revision: 'v1.0',
  });
  await assert.rejects(
    classifyBase(join(dir, 'nope.onnx')),
    (e: unknown) => e instanceof ModelFileError && /nope\.onnx: file not found/.test(e.message),
  );
  await assert.rejects(classifyBase('./missing/folder'), /no such folder or file, and not a hub id/);
  await assert.rejects(classifyBase(' '), ConfigError);
});

test('use-lite resolves through the injected loader hook', async () => {
  const fake = { architecture: 'use-lite' } as Model;
  assert.equal(await loadBase('use-lite', { useLite: async () => fake }), fake);
});

test('a hub id downloads through @huggingface/hub into the cache, loads, and is served from the cache afterwards', async () => {
  const src = await tempDir('hubsrc');
  const zoo = { ...buildBert(tinyConfig(), { task: 'sequence-classification', seed: 4 }), tokenizer: wordPiece() };
  await writeHfFixture(zoo, join(src, 'm'), { onnx: false });
  const cacheDir = await tempDir('hubcache');
  const log: string[] = [];
  const fetch = fakeHub('acme/tiny-bert', join(src, 'm'), log);
  const m = await loadBase('acme/tiny-bert', { fetch, hubUrl: HUB, cacheDir });
  assert.equal(m.source.hubId, 'acme/tiny-bert');
  assert.equal(m.source.kind, 'safetensors');
  assert.ok(
    log.some((l) => l.startsWith('POST /api/models/acme/tiny-bert/paths-info')),
    log.join('\n'),
  );
  assert.ok(
    log.some((l) => l === 'GET /acme/tiny-bert/resolve/main/model.safetensors'),
    log.join('\n'),
  );
  const enc = wordPiece().encodeBatch(['the cat sat', 'hello world!']);
  const a = await runModel(zoo, feeds(enc));
  const b = await runModel(m, feeds(enc));
  assert.equal(maxAbsDiff(a.logits.data as Float32Array, b.logits.data as Float32Array), 0);
  // Second resolution: no request at all.
  const before = log.length;
  const failing = (async () => {
    throw new TypeError('fetch failed');
  }) as typeof fetch;
  await loadBase('acme/tiny-bert', { fetch: failing, hubUrl: HUB, cacheDir });
  assert.equal(log.length, before);
});

test('without network the hub error says so and what to do instead', async () => {
  const cacheDir = await tempDir('offline');
  const offline = (async () => {
    throw new TypeError('fetch failed', {
      cause: Object.assign(new Error('getaddrinfo ENOTFOUND hub.test'), { code: 'ENOTFOUND' }),
    });
  }) as typeof fetch;
  await assert.rejects(
    downloadHubModel('acme/tiny-bert', 'main', { fetch: offline, hubUrl: HUB, cacheDir }),
    (e: unknown) => {
      assert.ok(e instanceof ModelFileError);
      assert.match(
        e.message,
        /cannot download 'acme\/tiny-bert' from https:\/\/hub\.test: the hub is unreachable \(ENOTFOUND\)/,
      );
      assert.match(e.message, /pass its path to --base/);
      return true;
    },
  );
});

test('a hub repository without weights or unknown to the hub is a clear error', async () => {
  const src = await tempDir('hubnoweights');
  const cacheDir = await tempDir('hubcache2');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(src, 'config.json'), JSON.stringify({ model_type: 'bert' }));
  const fetch = fakeHub('acme/empty', src, []);
  await assert.rejects(
    loadBase('acme/empty', { fetch, hubUrl: HUB, cacheDir }),
    /hub model 'acme\/empty' has neither model.safetensors nor onnx\/model.onnx/,
  );
  await assert.rejects(
    loadBase('acme/other', { fetch, hubUrl: HUB, cacheDir }),
    /hub model 'acme\/other' was not found/,
  );
});
