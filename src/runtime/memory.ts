/** Memory measurement for reports: peak resident set size of the process while some work runs. */

/** Samples the process RSS until stopped; `peak` is the highest value seen. */
export class RssSampler {
  peak = process.memoryUsage.rss();
  private timer: NodeJS.Timeout | undefined;

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
    return this.peak;
  }
}
