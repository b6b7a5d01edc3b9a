/**
 * A JSON Lines appender that never makes a request wait: `append` only pushes onto a bounded in-memory buffer, and a
 * timer writes the buffer out in the background. When the writer falls behind (slow disk) the buffer fills and new
 * rows are dropped; when a write fails (full disk) its rows are dropped; both are counted, never thrown.
 *
 * Files rotate by size and by UTC day, and carry the host and process id in their name, so replicas sharing one
 * folder never write to the same file: `<prefix>-<YYYYMMDD>-<host>-<pid>-<seq>.jsonl`.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Options of an appender. */
export interface AppenderOptions {
  /** Folder of the files (created on the first write). */
  dir: string;
  /** File name prefix (`predictions`, `feedback`). */
  prefix: string;
  /** A new file after this many bytes. Default 64 MiB. */
  maxFileBytes?: number;
  /** Rows held in memory at most; more are dropped. Default 10000. */
  maxBufferedRows?: number;
  /** How often the buffer is written. Default 200 ms. */
  flushIntervalMs?: number;
  /** How long `close` waits for the last write. Default 5000 ms. */
  closeTimeoutMs?: number;
  /** Writes text at the end of a file (default fs appendFile); tests inject a slow or failing one. */
  write?: (file: string, text: string) => Promise<void>;
  onWritten?: (rows: number) => void;
  onDropped?: (rows: number, error?: Error) => void;
}

const HOST = os.hostname().replace(/[^A-Za-z0-9.-]/g, '-');

function day(d: Date): string {
  return d.toISOString().slice(0, 10).replace(/-/g, '');
}

/** Buffered, rotating, lossy-under-pressure JSON Lines appender. */
export class JsonlAppender {
  private buffer: unknown[] = [];
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private file: string | undefined;
  private fileDay = '';
  private fileBytes = 0;
  private seq = 0;
  private madeDir = false;
  private closed = false;
  private readonly opts: Required<Omit<AppenderOptions, 'onWritten' | 'onDropped'>> &
    Pick<AppenderOptions, 'onWritten' | 'onDropped'>;

  constructor(options: AppenderOptions) {
    this.opts = {
      maxFileBytes: 64 * 1024 * 1024,
      maxBufferedRows: 10_000,
      flushIntervalMs: 200,
      closeTimeoutMs: 5000,
      write: (f, t) => appendFile(f, t, 'utf8'),
      ...options,
    };
  }

  /** Queues one row (serialised later, off the request path). Never throws and never waits. */
  append(row: unknown): void {
    if (this.closed || this.buffer.length >= this.opts.maxBufferedRows) {
      this.opts.onDropped?.(1);
      return;
    }
    this.buffer.push(row);
    if (!this.timer && !this.writing) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.opts.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Rows waiting in memory. */
  get pending(): number {
    return this.buffer.length;
  }

  /** Writes what is buffered now (waits for a write in progress first). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    this.writing = this.writeRows(rows).finally(() => {
      this.writing = undefined;
      if (this.buffer.length > 0 && !this.timer && !this.closed) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          void this.flush();
        }, this.opts.flushIntervalMs);
        this.timer.unref();
      }
    });
    await this.writing;
  }

  private target(bytes: number): string {
    const now = new Date();
    const d = day(now);
    if (
      this.file === undefined ||
      d !== this.fileDay ||
      (this.fileBytes > 0 && this.fileBytes + bytes > this.opts.maxFileBytes)
    ) {
      if (d !== this.fileDay) this.seq = 0;
      this.seq++;
      this.fileDay = d;
      this.fileBytes = 0;
      this.file = path.join(this.opts.dir, `${this.opts.prefix}-${d}-${HOST}-${process.pid}-${this.seq}.jsonl`);
    }
    return this.file;
  }

  private async writeRows(rows: unknown[]): Promise<void> {
    let text = '';
    let n = 0;
    for (const r of rows) {
      try {
        text += `${JSON.stringify(r)}\n`;
        n++;
      } catch {
        this.opts.onDropped?.(1);
      }
    }
    if (n === 0) return;
    const bytes = Buffer.byteLength(text);
    try {
      if (!this.madeDir) {
        await mkdir(this.opts.dir, { recursive: true });
        this.madeDir = true;
      }
      const file = this.target(bytes);
      await this.opts.write(file, text);
      this.fileBytes += bytes;
      this.opts.onWritten?.(n);
    } catch (e) {
      this.opts.onDropped?.(n, e as Error);
    }
  }

  /**
   * Writes what is left and stops; gives up after `timeoutMs` (a stuck disk must not hold up shutdown), counting
   * what could not be written as dropped.
   */
  async close(timeoutMs = this.opts.closeTimeoutMs): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let timeout: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<boolean>((r) => {
      // Not unref'd: shutdown does wait this long for a slow disk, and no longer.
      timeout = setTimeout(() => r(true), timeoutMs);
    });
    const done = await Promise.race([this.flush().then(() => false), gaveUp]);
    clearTimeout(timeout);
    this.closed = true;
    if (done && this.buffer.length > 0) {
      this.opts.onDropped?.(this.buffer.length);
      this.buffer = [];
    }
  }
}
