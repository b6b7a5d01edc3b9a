/** Small process and id helpers shared by the registry backends. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { RegistryError } from '../errors.ts';
import type { AliasMove } from './types.ts';

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

/**
 * The versions an alias has pointed at that a rollback can return to, oldest first, replayed from its history:
 * a set pushes (unless it re-sets the current version), a rollback pops, a deletion clears.
 */
export function aliasStack(moves: readonly AliasMove[]): number[] {
  const stack: number[] = [];
  for (const m of moves) {
    if (m.action === 'delete') stack.length = 0;
    else if (m.action === 'rollback') stack.pop();
    else if (m.version !== null && stack[stack.length - 1] !== m.version) stack.push(m.version);
  }
  return stack;
}

/** The version a rollback of an alias currently at `current` moves it to; throws when there is none. */
export function rollbackTarget(
  name: string,
  alias: string,
  current: number | undefined,
  moves: readonly AliasMove[],
): number {
  if (current === undefined) {
    throw new RegistryError(`alias '${alias}' of model '${name}' points nowhere`, { value: `${name}@${alias}` });
  }
  const stack = aliasStack(moves);
  // A history that disagrees with the alias (e.g. rows copied by an older migrate) has no trustworthy "before".
  if (stack.length < 2 || stack[stack.length - 1] !== current) {
    throw new RegistryError(
      `alias '${alias}' of model '${name}' has no previous version to roll back to (it points at version ${current})`,
      { value: `${name}@${alias}` },
    );
  }
  return stack[stack.length - 2];
}
