/**
 * API keys with per-key model scopes. Keys are stored as sha256 hex digests only (a leaked key file gives away no
 * key); a request presents the key as `Authorization: Bearer <key>` or `x-api-key: <key>`.
 *
 *   { "keys": [ { "id": "support-app", "sha256": "<hex of sha256(key)>", "models": ["tickets"],
 *                 "rateLimit": { "max": 600, "timeWindowMs": 60000 } },
 *               { "id": "ops", "sha256": "...", "models": ["*"], "admin": true } ] }
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './library.ts';

/** One key: its id (in logs and rate limits), its hash, the models it may use and its own rate limit. */
export interface ApiKey {
  id: string;
  sha256: string;
  /** Model or route names this key may call; `*` for all. */
  models: string[];
  /** May load and unload models (`/v2/repository/...`). */
  admin: boolean;
  rateLimit?: { max: number; timeWindowMs: number };
}

const KeySchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-", at most 64'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'the lower-case hex sha256 of the key (64 characters)'),
  models: z.array(z.string().min(1)).min(1),
  admin: z.boolean().optional(),
  rateLimit: z
    .strictObject({ max: z.number().int().positive(), timeWindowMs: z.number().int().positive().optional() })
    .optional(),
});
const KeysSchema = z.strictObject({ keys: z.array(KeySchema) });

/** The sha256 hex digest under which a key is stored. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Parses a key file's JSON text; errors name the source and the field. */
export function parseApiKeys(text: string, source = 'api keys'): ApiKey[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${source}: not valid JSON (${(e as Error).message})`, { file: source }, { cause: e });
  }
  const r = KeysSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.path.join('.');
    throw new ConfigError(`${source}: field '${field}': ${i.message}`, { file: source, field });
  }
  const ids = new Set<string>();
  const hashes = new Set<string>();
  return r.data.keys.map((k, i) => {
    if (ids.has(k.id))
      throw new ConfigError(`${source}: keys.${i}.id '${k.id}' appears twice`, { file: source, field: `keys.${i}.id` });
    if (hashes.has(k.sha256))
      throw new ConfigError(`${source}: keys.${i}.sha256 repeats another key's hash`, {
        file: source,
        field: `keys.${i}.sha256`,
      });
    ids.add(k.id);
    hashes.add(k.sha256);
    return {
      id: k.id,
      sha256: k.sha256,
      models: k.models,
      admin: k.admin === true,
      ...(k.rateLimit ? { rateLimit: { max: k.rateLimit.max, timeWindowMs: k.rateLimit.timeWindowMs ?? 60_000 } } : {}),
    };
  });
}

/** Reads a key file. */
export function readApiKeys(file: string): ApiKey[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read API key file ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseApiKeys(text, file);
}

/** Looks keys up by hash. */
export class KeyRing {
  private readonly byHash = new Map<string, ApiKey>();
  constructor(readonly keys: readonly ApiKey[]) {
    for (const k of keys) this.byHash.set(k.sha256, k);
  }
  get enabled(): boolean {
    return this.keys.length > 0;
  }
  /** The key whose hash matches the presented key, if any. */
  find(presented: string): ApiKey | undefined {
    return this.byHash.get(hashApiKey(presented));
  }
}

/** Whether `key` may call model or route `name`. */
export function keyAllows(key: ApiKey, name: string): boolean {
  return key.models.includes('*') || key.models.includes(name);
}
