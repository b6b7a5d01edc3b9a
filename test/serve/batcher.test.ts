import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServerBusyError } from '../../src/serve/backend.ts';
import { DynamicBatcher, type BatcherOptions, type ExecutionStats } from '../../src/serve/engine/batcher.ts';

interface Item {
  id: string;
  len: number;
}

/** A batcher whose execution records each batch and answers `id!`. */
function make(
  opts: Partial<BatcherOptions<Item, string>> = {},
  gate?: Promise<void>,
): { b: DynamicBatcher<Item, string>; batches: string[][]; stats: ExecutionStats[] } {
  const batches: string[][] = [];
  const stats: ExecutionStats[] = [];
  const b = new DynamicBatcher<Item, string>({
    maxBatchSize: 8,
    maxQueueDelayMs: 20,
    maxQueueRows: 16,
    execute: async (rows) => {
      batches.push(rows.map((r) => r.id));
      if (gate) await gate;
      return rows.map((r) => `${r.id}!`);
    },
    observer: { onExecution: (s) => stats.push(s) },
    ...opts,
  });
  return { b, batches, stats };
}

const items = (prefix: string, n: number, len = 5): Item[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, len }));
const submit = (b: DynamicBatcher<Item, string>, xs: Item[], signal?: AbortSignal): Promise<string[]> =>
  b.submit(
    xs,
    xs.map((x) => x.len),
    signal,
  );

test('concurrent requests run in one execution and each caller gets its own results, in order', async () => {
  const { b, batches, stats } = make();
  const [r1, r2, r3] = await Promise.all([
    submit(b, items('a', 2)),
    submit(b, items('b', 1)),
    submit(b, items('c', 3)),
  ]);
  assert.deepEqual(r1, ['a0!', 'a1!']);
  assert.deepEqual(r2, ['b0!']);
  assert.deepEqual(r3, ['c0!', 'c1!', 'c2!']);
  assert.deepEqual(batches, [['a0', 'a1', 'b0', 'c0', 'c1', 'c2']]);
  assert.equal(stats.length, 1);
  assert.equal(stats[0].batchSize, 6);
  assert.equal(stats[0].requests, 3);
  // The batch ran when the queue delay (20 ms) started by the first request expired: that request waited at least
  // the delay (a timer may fire late, never early); requests that joined later waited less.
  assert.ok(Math.max(...stats[0].queueMs) >= 19, `queue ${stats[0].queueMs.join(', ')} ms`);
  for (const q of stats[0].queueMs) assert.ok(q >= 0 && q < 1000, `queue ${q} ms`);
});

test('a batch starts as soon as maxBatchSize rows are queued, without waiting the delay', async () => {
  const { b, batches } = make({ maxBatchSize: 4, maxQueueDelayMs: 10_000 });
  const t0 = performance.now();
  const first = submit(b, items('x', 10));
  // 4 + 4 run at once; the last 2 would wait out the 10 s delay, until 2 more rows fill a batch.
  while (batches.length < 2) await new Promise((r) => setImmediate(r));
  assert.equal(b.depth, 2);
  const second = submit(b, items('y', 2));
  assert.equal((await first).length, 10);
  assert.deepEqual(await second, ['y0!', 'y1!']);
  assert.deepEqual(batches, [
    ['x0', 'x1', 'x2', 'x3'],
    ['x4', 'x5', 'x6', 'x7'],
    ['x8', 'x9', 'y0', 'y1'],
  ]);
  assert.ok(performance.now() - t0 < 5_000);
});

test('rows are bucketed by sequence length: short and long rows run in separate executions', async () => {
  const { b, batches } = make({ buckets: [16, 64] });
  const [s, l] = await Promise.all([
    submit(b, [...items('s', 2, 5), ...items('l', 2, 50)]),
    submit(b, items('t', 1, 16)),
  ]);
  assert.deepEqual(s, ['s0!', 's1!', 'l0!', 'l1!']);
  assert.deepEqual(l, ['t0!']);
  assert.deepEqual(
    batches.map((x) => x.sort()),
    [
      ['s0', 's1', 't0'],
      ['l0', 'l1'],
    ],
  );
});

test('a full queue refuses the whole request with ServerBusyError and queues none of it', async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const { b } = make({ maxBatchSize: 2, maxQueueRows: 4, maxQueueDelayMs: 0 }, gate);
  const first = submit(b, items('run', 2)); // starts at once and blocks on the gate
  await new Promise((r) => setImmediate(r));
  assert.equal(b.inFlight, 1);
  const waiting = submit(b, items('q', 3));
  assert.equal(b.depth, 3);
  await assert.rejects(submit(b, items('z', 2)), (e: unknown) => {
    assert.ok(e instanceof ServerBusyError);
    assert.equal(e.message, 'the queue is full (3 of 4 rows waiting; this request has 2); retry later');
    assert.equal(e.retryAfterSeconds, 1);
    return true;
  });
  assert.equal(b.depth, 3);
  const fits = submit(b, items('one', 1)); // 3 + 1 rows still fit in 4
  assert.equal(b.depth, 4);
  open();
  assert.deepEqual(await first, ['run0!', 'run1!']);
  assert.deepEqual(await waiting, ['q0!', 'q1!', 'q2!']);
  assert.deepEqual(await fits, ['one0!']);
});

test('an aborted request leaves the queue; an execution error rejects the requests of that batch only', async () => {
  const { b } = make({ maxQueueDelayMs: 50 });
  const ac = new AbortController();
  const p = submit(b, items('a', 3), ac.signal);
  const other = submit(b, items('o', 1));
  assert.equal(b.depth, 4);
  ac.abort(new Error('client went away'));
  await assert.rejects(p, { message: 'client went away' });
  assert.equal(b.depth, 1);
  assert.deepEqual(await other, ['o0!']);

  const failing = new DynamicBatcher<Item, string>({
    maxBatchSize: 2,
    maxQueueDelayMs: 0,
    maxQueueRows: 8,
    execute: async (rows) => {
      if (rows.some((r) => r.id.startsWith('bad'))) throw new Error('ORT failed');
      return rows.map((r) => r.id);
    },
  });
  const bad = failing.submit([{ id: 'bad', len: 1 }], [1]);
  const good = failing.submit([{ id: 'good', len: 1 }], [1]);
  await assert.rejects(bad, { message: 'ORT failed' });
  assert.deepEqual(await good, ['good']);
});

test('rows that select refuses wait, in order, until wake(); others run meanwhile', async () => {
  const ready = new Set(['b']);
  const { b, batches } = make({
    maxQueueDelayMs: 0,
    select: (rows, max) =>
      rows
        .map((r, i) => (ready.has(r.id[0]) ? i : -1))
        .filter((i) => i >= 0)
        .slice(0, max),
  });
  const pa = submit(b, items('a', 2));
  const pb = submit(b, items('b', 1));
  assert.deepEqual(await pb, ['b0!']);
  assert.equal(b.depth, 2);
  ready.add('a');
  b.wake();
  assert.deepEqual(await pa, ['a0!', 'a1!']);
  assert.deepEqual(batches, [['b0'], ['a0', 'a1']]);
});
