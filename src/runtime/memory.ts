/** Memory measurement for reports: peak resident set size of the process while some work runs. */
import * as fs from 'node:fs';

/**
 * The kernel's record of this process's peak RSS (`VmHWM` in /proc/self/status), bytes; undefined where there is
 * no such file (not Linux).
 */
export function rssHighWaterMark(): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Samples the process RSS until stopped; `peak` is the highest value seen. Where the kernel keeps a high-water mark
 * (Linux), `stop` also reads it: sampling on the JS thread misses what happens while that thread is blocked or
 * between samples (ORT creates sessions synchronously, and an inference run's activations can come and go within
 * 25 ms). A LoRA run sampled at 577 MB had a kernel peak of 905 MB. The mark covers the whole process lifetime, so
 * it is used only when it rose during the measurement (then the new record was set within it).
 */
export class RssSampler {
  peak = process.memoryUsage.rss();
  private timer: NodeJS.Timeout | undefined;
  private readonly markAtStart = rssHighWaterMark();

  start(every = 25): this {
    this.timer = setInterval(() => this.sample(), every);
    this.timer.unref();
    return this;
  }

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    const mark = rssHighWaterMark();
    if (mark !== undefined && this.markAtStart !== undefined && mark > this.markAtStart)
      this.peak = Math.max(this.peak, mark);
    return this.peak;
  }
}
