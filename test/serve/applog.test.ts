/** The JSONL appender: rotation by size, close flushes, a stuck writer neither blocks append nor close forever. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { JsonlAppender } from '../../src/serve/index.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tailor-applog-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('rows are written as JSON lines in order; a file rotates once it would pass maxFileBytes', async () => {
  const dir = path.join(tmp, 'rotate');
  let written = 0;
  const log = new JsonlAppender({ dir, prefix: 'predictions', maxFileBytes: 100, onWritten: (n) => (written += n) });
  // Each row is 40 bytes with its newline ({"i":0,"pad":"x...x"} with 23 x): a 100-byte file holds two.
  for (let i = 0; i < 6; i++) {
    log.append({ i, pad: 'x'.repeat(23) });
    if (i % 2 === 1) await log.flush();
  }
  await log.close();
  assert.equal(written, 6);
  const files = readdirSync(dir).sort(
    (a, b) => Number(a.split('-').pop()!.split('.')[0]) - Number(b.split('-').pop()!.split('.')[0]),
  );
  assert.equal(files.length, 3);
  for (const f of files) assert.match(f, new RegExp(`^predictions-\\d{8}-.+-${process.pid}-\\d+\\.jsonl$`));
  const rows = files.flatMap((f) =>
    readFileSync(path.join(dir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { i: number }).i),
  );
  assert.deepEqual(rows, [0, 1, 2, 3, 4, 5]);
  assert.equal(readFileSync(path.join(dir, files[0]), 'utf8').length, 80);
});

test('a stuck writer: append never waits, the buffer bound drops rows, close gives up after its timeout', async () => {
  let dropped = 0;
  const log = new JsonlAppender({
    dir: path.join(tmp, 'stuck'),
    prefix: 'predictions',
    maxBufferedRows: 4,
    write: () => new Promise<void>(() => undefined),
    onDropped: (n) => (dropped += n),
  });
  for (let i = 0; i < 4; i++) log.append({ i });
  void log.flush(); // takes the 4 rows into a write that never ends
  await new Promise((r) => setTimeout(r, 10));
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) log.append({ i }); // 4 fit in the buffer, 6 are dropped
  assert.ok(performance.now() - t0 < 50);
  assert.equal(dropped, 6);
  assert.equal(log.pending, 4);
  const c0 = performance.now();
  await log.close(100);
  assert.ok(performance.now() - c0 < 1000);
  assert.equal(dropped, 10, 'the 4 still buffered are counted as dropped at close');
  log.append({ late: true });
  assert.equal(dropped, 11, 'rows after close are dropped');
});
