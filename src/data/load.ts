/**
 * Row sources: CSV, TSV, JSONL and Parquet files read as streams of raw rows, each carrying the file and
 * line it came from so that every later error or removal can point at it. Images come from a
 * folder-per-class layout, decoded with sharp to raw RGB.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { extname, join, relative } from 'node:path';
import { parse as parseCsv } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { ConfigError, DataError } from '../errors.ts';

/** Supported tabular formats. TSV is read without quoting (IANA text/tab-separated-values). */
export type TableFormat = 'csv' | 'tsv' | 'jsonl' | 'parquet';

/** A parsed row with its origin. `line` is the 1-based line in the file (Parquet: 1-based row number). */
export interface RawRow {
  kind: 'row';
  file: string;
  line: number;
  values: Record<string, unknown>;
}

/** A row the parser could read but that does not fit the table (wrong field count, bad JSON). */
export interface MalformedRow {
  kind: 'malformed';
  file: string;
  line: number;
  message: string;
}

export type TableEvent = RawRow | MalformedRow;

export interface ReadTableOptions {
  /** Overrides detection from the extension. */
  format?: TableFormat;
  /** Columns that must exist; checked against the header/schema before any row is read. */
  requiredColumns?: string[];
}

/** Detects the format from the file extension (.csv, .tsv/.tab, .jsonl/.ndjson, .parquet). */
export function detectFormat(file: string): TableFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  throw new ConfigError(`cannot tell the format of ${file} from its extension "${ext}"; pass format explicitly`, {
    file,
    value: ext,
  });
}

function checkColumns(file: string, line: number | undefined, present: string[], required: string[] | undefined): void {
  for (const col of required ?? []) {
    if (!present.includes(col)) {
      throw new DataError(
        `${file}${line === undefined ? '' : `:${line}`}: missing column "${col}" (found: ${present.map((c) => `"${c}"`).join(', ') || 'none'})`,
        { file, line, field: col, details: { found: present } },
      );
    }
  }
}

/** Streams the rows of a table file; memory stays bounded by one parser chunk (Parquet: one row group). */
export async function* readTable(file: string, options: ReadTableOptions = {}): AsyncGenerator<TableEvent> {
  for await (const batch of readTableBatches(file, options)) yield* batch;
}

/**
 * Same as readTable, in batches (one parser chunk or row group each). Awaiting once per batch instead of once
 * per row is what makes gigabyte files practical.
 */
export async function* readTableBatches(file: string, options: ReadTableOptions = {}): AsyncGenerator<TableEvent[]> {
  const format = options.format ?? detectFormat(file);
  await assertDataFile(file);
  if (format === 'csv' || format === 'tsv') yield* readDelimited(file, format, options.requiredColumns);
  else if (format === 'jsonl') yield* readJsonl(file, options.requiredColumns);
  else yield* readParquet(file, options.requiredColumns);
}

/**
 * A DataError naming the path unless it is a readable regular file. Checked up front because fs read streams
 * report EISDIR/ENOENT as an 'error' event, and one piped into a parser has no listener: the process crashed.
 */
export async function assertDataFile(file: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(file)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new DataError(`cannot read ${file}: ${why}`, { file }, { cause: err });
  }
  if (isDir) throw new DataError(`cannot read ${file}: it is a folder, not a file`, { file });
}

/** A file read stream whose errors reach `into` (pipe() does not forward them), as a DataError naming the file. */
function fileStream<T extends NodeJS.WritableStream & { destroy(error?: Error): void }>(file: string, into: T): T {
  const src = createReadStream(file);
  src.on('error', (err) =>
    into.destroy(new DataError(`cannot read ${file}: ${err.message}`, { file }, { cause: err })),
  );
  return src.pipe(into);
}

/** Everything a readable object stream has buffered, as arrays, until it ends; rethrows its error. */
async function* drain<T>(stream: NodeJS.ReadableStream & { read(): unknown; destroy(): void }): AsyncGenerator<T[]> {
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  stream.on('readable', notify);
  stream.on('end', () => {
    ended = true;
    notify();
  });
  stream.on('error', (err: unknown) => {
    failure = err;
    notify();
  });
  try {
    while (true) {
      const batch: T[] = [];
      let item: unknown;
      while ((item = stream.read()) !== null) batch.push(item as T);
      if (failure !== undefined) throw failure;
      if (batch.length > 0) yield batch;
      else if (ended) return;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    // Stop reading the file when the consumer leaves early.
    if (!ended) stream.destroy();
  }
}

interface CsvParseError extends Error {
  code?: string;
  lines?: number;
}

async function* readDelimited(file: string, format: 'csv' | 'tsv', required?: string[]): AsyncGenerator<TableEvent[]> {
  // Line numbers are counted here rather than with csv-parse's `info` option, which roughly triples parse
  // time: each record spans one line plus the newlines inside its quoted fields, and blank lines come
  // through (skip_empty_lines off) as a single empty field so they can be counted too.
  const parser = fileStream(
    file,
    parseCsv({
      delimiter: format === 'csv' ? ',' : '\t',
      quote: format === 'csv' ? '"' : false,
      bom: true,
      relax_column_count: true,
      skip_empty_lines: false,
    }),
  );
  let header: string[] | undefined;
  let nextLine = 1;
  try {
    for await (const records of drain<string[]>(parser)) {
      const out: TableEvent[] = [];
      for (const record of records) {
        const line = nextLine;
        nextLine++;
        for (const f of record) for (let i = f.indexOf('\n'); i !== -1; i = f.indexOf('\n', i + 1)) nextLine++;
        if (record.length === 1 && record[0] === '') continue;
        if (!header) {
          header = record.map((h) => h.trim());
          checkColumns(file, line, header, required);
          continue;
        }
        if (record.length !== header.length) {
          out.push({
            kind: 'malformed',
            file,
            line,
            message: `expected ${header.length} fields, found ${record.length}`,
          });
          continue;
        }
        const values: Record<string, unknown> = {};
        for (let i = 0; i < header.length; i++) values[header[i]] = record[i];
        out.push({ kind: 'row', file, line, values });
      }
      if (out.length > 0) yield out;
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    const e = err as CsvParseError;
    const line = e.lines ?? nextLine;
    throw new DataError(
      `${file}:${line}: cannot parse ${format.toUpperCase()}: ${e.message}`,
      { file, line },
      { cause: err },
    );
  }
  if (!header) throw new DataError(`${file}: empty file, no header row`, { file, line: 1 });
}

async function* readJsonl(file: string, required?: string[]): AsyncGenerator<TableEvent[]> {
  for await (const e of readJsonlRows(file, required)) yield [e];
}

async function* readJsonlRows(file: string, required?: string[]): AsyncGenerator<TableEvent> {
  const input = createReadStream(file);
  // readline does not forward the stream's errors; without a listener they would crash the process.
  let failure: Error | undefined;
  input.on('error', (err) => {
    failure = err;
    lines.close();
  });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  for await (const text of lines) {
    lineNo++;
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      yield { kind: 'malformed', file, line: lineNo, message: `invalid JSON: ${(err as Error).message}` };
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      yield { kind: 'malformed', file, line: lineNo, message: 'a JSONL line must be a JSON object' };
      continue;
    }
    // JSONL has no header; a missing key on a row is a per-row problem, reported by the validator.
    void required;
    yield { kind: 'row', file, line: lineNo, values: value as Record<string, unknown> };
  }
  if (failure) throw new DataError(`cannot read ${file}: ${failure.message}`, { file }, { cause: failure });
}

async function* readParquet(file: string, required?: string[]): AsyncGenerator<TableEvent[]> {
  let buffer;
  let metadata;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new DataError(`${file}: cannot read Parquet: ${(err as Error).message}`, { file }, { cause: err });
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  checkColumns(file, undefined, columns, required);
  let start = 0;
  // One row group at a time keeps memory at the size of a row group rather than the file.
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    const rows = await parquetReadObjects({
      file: buffer,
      metadata,
      columns: required && required.length > 0 ? required : undefined,
      rowStart: start,
      rowEnd: end,
    });
    yield rows.map((r, i): TableEvent => ({
      kind: 'row',
      file,
      line: start + i + 1,
      values: r as Record<string, unknown>,
    }));
    start = end;
  }
}

/** A decoded image: interleaved (HWC) 8-bit pixels. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

export interface ImageRow {
  file: string;
  label: string;
  image: RawImage;
}

export interface ImageFolderOptions {
  /** Resize every image to this size (fill, no aspect preservation) so batches have one shape. */
  size?: { width: number; height: number };
  /** File extensions treated as images. */
  extensions?: string[];
  /** 'error' (default) throws on an undecodable file; 'skip' returns it in `unreadable` for the report. */
  onUnreadable?: 'error' | 'skip';
}

export interface ImageFolderResult {
  rows: ImageRow[];
  unreadable: Array<{ file: string; message: string }>;
  /** Files present in class folders whose extension is not an image extension. */
  ignored: string[];
}

const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp'];

/**
 * Loads `root/<label>/<image>` as RGB. Files are visited in sorted order so that the result, and hence the
 * dataset fingerprint, doesn't depend on the file system's directory order.
 */
export async function loadImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolderResult> {
  const { default: sharp } = await import('sharp');
  const exts = (options.extensions ?? IMAGE_EXTENSIONS).map((e) => e.toLowerCase());
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new DataError(`cannot read image folder ${root}: ${(err as Error).message}`, { file: root }, { cause: err });
  }
  const classDirs = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (classDirs.length === 0) {
    throw new DataError(`${root}: no class folders found (expected ${root}/<label>/<image files>)`, { file: root });
  }
  const result: ImageFolderResult = { rows: [], unreadable: [], ignored: [] };
  for (const label of classDirs) {
    const files = (await readdir(join(root, label), { withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => e.name)
      .sort();
    for (const name of files) {
      const file = join(root, label, name);
      if (!exts.includes(extname(name).toLowerCase())) {
        result.ignored.push(relative(root, file));
        continue;
      }
      try {
        let pipeline = sharp(file).removeAlpha().toColourspace('srgb');
        if (options.size) pipeline = pipeline.resize(options.size.width, options.size.height, { fit: 'fill' });
        const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
        result.rows.push({
          file,
          label,
          image: {
            data: new Uint8Array(data.buffer, data.byteOffset, data.length),
            width: info.width,
            height: info.height,
            channels: info.channels,
          },
        });
      } catch (err) {
        if (options.onUnreadable === 'skip') {
          result.unreadable.push({ file, message: (err as Error).message });
          continue;
        }
        throw new DataError(
          `${file}: cannot decode image: ${(err as Error).message}`,
          { file, field: 'image' },
          { cause: err },
        );
      }
    }
  }
  return result;
}
