import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { DataError } from '../../src/errors.ts';
import { readTable, type RawRow } from '../../src/data/load.ts';
import { SplitLog } from '../../src/data/report.ts';
import { streamExamples } from '../../src/data/stream.ts';
import { collect, tempFiles } from './helpers.ts';

const cols = { textColumn: 'text', labelColumn: 'label' };

test('CSV rows carry the line they start on, including after quoted newlines', async () => {
  const t = await tempFiles({ 'a.csv': '\uFEFFtext,label\nhello,greet\n"two\nlines",x\n\n"say ""hi""",greet\n' });
  try {
    const rows = (await collect(readTable(t.path('a.csv')))) as RawRow[];
    assert.deepEqual(
      rows.map((r) => [r.line, r.values.text, r.values.label]),
      [
        [2, 'hello', 'greet'],
        [3, 'two\nlines', 'x'],
        [6, 'say "hi"', 'greet'],
      ],
    );
  } finally {
    await t.cleanup();
  }
});

test('TSV (no quoting) and JSONL', async () => {
  const t = await tempFiles({
    'a.tsv': 'text\tlabel\n"quoted" stays\tq\nplain\tp\n',
    'a.jsonl': '{"text":"hi","label":3}\n\n{"text":"yo","label":"b","extra":[1]}\n',
  });
  try {
    const tsv = (await collect(readTable(t.path('a.tsv')))) as RawRow[];
    assert.deepEqual(
      tsv.map((r) => r.values.text),
      ['"quoted" stays', 'plain'],
    );
    const jl = (await collect(readTable(t.path('a.jsonl')))) as RawRow[];
    assert.deepEqual(
      jl.map((r) => [r.line, r.values.text]),
      [
        [1, 'hi'],
        [3, 'yo'],
      ],
    );
    const ex = await collect(streamExamples(t.path('a.jsonl'), cols, new SplitLog()));
    assert.equal(ex[0].label, '3', 'numeric labels become identifiers');
  } finally {
    await t.cleanup();
  }
});

test('Parquet is read row group by row group with 1-based row numbers', async () => {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'text', data: ['alpha', 'beta', 'gamma', 'delta', 'epsilon'], type: 'STRING' },
      { name: 'label', data: ['x', 'y', 'x', 'y', 'x'], type: 'STRING' },
      { name: 'other', data: [1, 2, 3, 4, 5], type: 'INT32' },
    ],
    rowGroupSize: 2,
  });
  const t = await tempFiles({ 'a.parquet': new Uint8Array(buf) });
  try {
    const ex = await collect(streamExamples(t.path('a.parquet'), cols, new SplitLog()));
    assert.deepEqual(
      ex.map((e) => [e.line, e.text, e.label]),
      [
        [1, 'alpha', 'x'],
        [2, 'beta', 'y'],
        [3, 'gamma', 'x'],
        [4, 'delta', 'y'],
        [5, 'epsilon', 'x'],
      ],
    );
    await assert.rejects(
      collect(streamExamples(t.path('a.parquet'), { textColumn: 'text', labelColumn: 'intent' }, new SplitLog())),
      (e: unknown) => {
        assert.ok(e instanceof DataError);
        assert.equal(e.context.field, 'intent');
        assert.match(e.message, /missing column "intent" \(found: "text", "label", "other"\)/);
        return true;
      },
    );
  } finally {
    await t.cleanup();
  }
});

/** Asserts a DataError names the file, line and column. */
async function rejectsAt(
  p: Promise<unknown>,
  file: string,
  line: number,
  field: string | undefined,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DataError, String(e));
    assert.equal(e.context.file, file);
    assert.equal(e.context.line, line);
    assert.equal(e.context.field, field);
    assert.match(e.message, pattern);
    assert.ok(e.message.startsWith(`${file}:${line}`), e.message);
    return true;
  });
}

test('bad input is a clear error naming file, line and column', async () => {
  const t = await tempFiles({
    'missing.csv': 'text,intent\nhi,a\n',
    'malformed.csv': 'text,label\nok,a\nbad,row,extra\n',
    'empty.csv': 'text,label\nok,a\n  \u200B ,b\n',
    'nolabel.csv': 'text,label\nok,a\nfine,\n',
    'quote.csv': 'text,label\nok,a\n"never closed,b\n',
    'nontext.jsonl': '{"text":"ok","label":"a"}\n{"text":42,"label":"a"}\n',
    'nokey.jsonl': '{"text":"ok","label":"a"}\n{"label":"a"}\n',
    'badjson.jsonl': '{"text":"ok","label":"a"}\n{"text": oops}\n',
  });
  try {
    const run = (f: string): Promise<unknown> => collect(streamExamples(t.path(f), cols, new SplitLog()));
    await rejectsAt(run('missing.csv'), t.path('missing.csv'), 1, 'label', /missing column "label"/);
    await rejectsAt(
      run('malformed.csv'),
      t.path('malformed.csv'),
      3,
      undefined,
      /malformed-row: expected 2 fields, found 3/,
    );
    await rejectsAt(run('empty.csv'), t.path('empty.csv'), 3, 'text', /empty-text/);
    await rejectsAt(run('nolabel.csv'), t.path('nolabel.csv'), 3, 'label', /empty-label/);
    await rejectsAt(
      run('nontext.jsonl'),
      t.path('nontext.jsonl'),
      2,
      'text',
      /non-text-value: column "text" must be text, found number/,
    );
    await rejectsAt(run('nokey.jsonl'), t.path('nokey.jsonl'), 2, 'text', /missing-value/);
    await rejectsAt(run('badjson.jsonl'), t.path('badjson.jsonl'), 2, undefined, /invalid JSON/);
    await assert.rejects(
      run('quote.csv'),
      (e: unknown) => e instanceof DataError && /quote\.csv:\d+: cannot parse CSV: Quote Not Closed/.test(e.message),
    );
  } finally {
    await t.cleanup();
  }
});

test("invalidRows: 'drop' counts every removed row by reason, with samples", async () => {
  const t = await tempFiles({ 'mix.csv': 'text,label\nok,a\nbad,row,extra\n ,b\nfine,\nalso ok,b\n' });
  try {
    const log = new SplitLog();
    const ex = await collect(streamExamples(t.path('mix.csv'), { ...cols, invalidRows: 'drop' }, log));
    assert.deepEqual(
      ex.map((e) => e.text),
      ['ok', 'also ok'],
    );
    assert.equal(log.report.rowsRead, 5);
    assert.deepEqual(log.report.removed, { 'malformed-row': 1, 'empty-text': 1, 'empty-label': 1 });
    assert.equal(log.report.samples['malformed-row']![0].line, 3);
    assert.equal(log.report.rowsRead, log.report.rowsKept + log.removedCount);
  } finally {
    await t.cleanup();
  }
});

test('a folder or a missing path given as a data file is a DataError naming it (not an unhandled stream error)', async () => {
  const t = await tempFiles({ 'ok.csv': 'text,label\na,b\n' });
  try {
    const { mkdir } = await import('node:fs/promises');
    for (const ext of ['csv', 'tsv', 'jsonl', 'parquet']) {
      const dir = t.path(`folder.${ext}`);
      await mkdir(dir);
      await assert.rejects(
        collect(readTable(dir)),
        (e: unknown) =>
          e instanceof DataError &&
          e.message === `cannot read ${dir}: it is a folder, not a file` &&
          e.context.file === dir,
      );
      const missing = t.path(`missing.${ext}`);
      await assert.rejects(
        collect(readTable(missing)),
        (e: unknown) => e instanceof DataError && e.message === `cannot read ${missing}: no such file`,
      );
    }
    const dir = t.path('folder.csv');
    const log = new SplitLog();
    await assert.rejects(
      collect(streamExamples([t.path('ok.csv'), dir], cols, log)),
      (e: unknown) => e instanceof DataError && e.message.includes(dir),
    );
  } finally {
    await t.cleanup();
  }
});
