/** What every bench script prints with: progress lines and the load average the figures were taken under. */
import os from 'node:os';

/** Prints a line: to stdout, or with `--json` to stderr (stdout then carries the one JSON result). */
export function sayer(json: boolean): (s: string) => void {
  return (s) => {
    if (json) process.stderr.write(`${s}\n`);
    else console.log(s);
  };
}

/** The 1, 5 and 15-minute load averages, one decimal each: `"1.2 2.0 1.7"`. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
}
