/** Small process and id helpers shared by the registry backends. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** This machine's name, recorded with pids so that liveness is only judged for local processes. */
export const HOST = hostname();

/** Whether a local process exists. EPERM means it exists but belongs to someone else. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Random lowercase hex id of `bytes` bytes. */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** A sha256 in the registry's form: 64 lowercase hex digits. */
export const HASH_RE = /^[0-9a-f]{64}$/;

/** Node error code of an unknown thrown value, if any. */
export function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/**
 * A URL as it may appear in messages and logs: the password of `user:password@` and the value of any query
 * parameter named like a secret (`password`, `secret`, `token`, `key`) become `***`; the rest is left as written.
 */
export function maskUrl(url: string): string {
  return url
    .replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/:@?#]*):[^/@?#]*@/, '$1:***@')
    .replace(/([?&][^=&#]*(?:pass|secret|token|key)[^=&#]*)=[^&#]*/gi, '$1=***');
}
