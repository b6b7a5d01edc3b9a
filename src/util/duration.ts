/** Durations written the way people type them on a command line: `90s`, `10m`, `1h`, `1.5h`, or bare seconds. */
import { ConfigError } from '../errors.ts';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/**
 * Seconds in `text`: a positive number followed by `s`, `m` or `h` (or nothing: seconds), e.g. `90s`, `10m`, `1h`.
 * Anything else (no number, another unit, zero or negative) is a ConfigError naming `field` and the text.
 */
export function parseDuration(text: string, field = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([smh]?)\s*$/i.exec(text);
  const seconds = m ? Number(m[1]) * UNIT_SECONDS[(m[2] || 's').toLowerCase()] : NaN;
  if (!(seconds > 0) || !Number.isFinite(seconds))
    throw new ConfigError(`${field} must be a positive duration such as 90s, 10m or 1h, got '${text}'`, {
      field,
      value: text,
    });
  return seconds;
}

/** `seconds` as the shortest of `90s`, `10m`, `1.5h` that is exact to a second (for messages and tables). */
export function formatDuration(seconds: number): string {
  if (seconds >= 3600 && Number.isInteger((seconds / 3600) * 10)) return `${seconds / 3600}h`;
  if (seconds >= 60 && Number.isInteger(seconds / 60)) return `${seconds / 60}m`;
  return `${Math.round(seconds)}s`;
}
