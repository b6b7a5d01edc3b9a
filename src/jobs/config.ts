/**
 * Where the job queue lives: a Redis URL (`--redis`, else $TAILOR_REDIS, else redis://127.0.0.1:6379), a key
 * prefix (`--prefix`, else $TAILOR_QUEUE_PREFIX, else `tailor`) and a queue name. Tests use a unique prefix and
 * delete its keys afterwards. Before anything else a command pings Redis once with a short timeout, so an
 * unreachable server is an error naming the URL (password masked), never a hang; once running, BullMQ's client
 * reconnects with backoff on its own.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ConfigError, QueueError } from '../errors.ts';

export const TAILOR_REDIS_ENV = 'TAILOR_REDIS';
export const TAILOR_QUEUE_PREFIX_ENV = 'TAILOR_QUEUE_PREFIX';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_PREFIX = 'tailor';
export const DEFAULT_QUEUE = 'jobs';

export interface QueueConfig {
  /** redis:// or rediss:// URL, credentials included (never printed: see `maskUrl`). */
  url: string;
  /** Key prefix of every BullMQ key (`<prefix>:<queue>:...`). */
  prefix: string;
  queue: string;
}

/** The queue configuration from explicit options, then the environment, then the defaults. */
export function queueConfig(o: { redis?: string; prefix?: string; queue?: string } = {}): QueueConfig {
  const env = (k: string): string | undefined =>
    process.env[k] !== undefined && process.env[k] !== '' ? process.env[k] : undefined;
  const url = o.redis ?? env(TAILOR_REDIS_ENV) ?? DEFAULT_REDIS_URL;
  const prefix = o.prefix ?? env(TAILOR_QUEUE_PREFIX_ENV) ?? DEFAULT_PREFIX;
  const queue = o.queue ?? DEFAULT_QUEUE;
  redisOptions(url);
  for (const [field, v] of [
    ['prefix', prefix],
    ['queue', queue],
  ] as const) {
    if (!/^[A-Za-z0-9._-]+$/.test(v))
      throw new ConfigError(`queue ${field} '${v}' must be letters, digits, '.', '_' or '-'`, { field, value: v });
  }
  return { url, prefix, queue };
}

/** The URL with its password (and user name, when there is a password) replaced by `***`. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) {
      u.password = '***';
      if (u.username) u.username = '***';
    } else if (u.username) u.username = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** ioredis options for a redis:// or rediss:// URL (host, port, user, password, database number, TLS). */
export function redisOptions(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`Redis URL '${maskUrl(url)}' is not a URL (expected redis://host:6379)`, {
      field: 'redis',
      value: maskUrl(url),
    });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new ConfigError(`Redis URL '${maskUrl(url)}' must start with redis:// or rediss://`, {
      field: 'redis',
      value: maskUrl(url),
    });
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db))
    throw new ConfigError(`Redis URL '${maskUrl(url)}': the path must be a database number, got '${db}'`, {
      field: 'redis',
      value: maskUrl(url),
    });
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== '' ? { db: Number(db) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** Connection options for BullMQ: blocking commands must wait indefinitely, so no per-request retry limit. */
export function bullConnection(cfg: QueueConfig): RedisOptions {
  return { ...redisOptions(cfg.url), maxRetriesPerRequest: null };
}

/** Pings Redis once; an unreachable or refusing server is a QueueError naming the (masked) URL. */
export async function checkRedis(cfg: QueueConfig, timeoutMs = 5000): Promise<void> {
  const client = new Redis({
    ...redisOptions(cfg.url),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis emits the cause (ECONNREFUSED, ENOTFOUND, WRONGPASS) as an event and rejects with a generic message.
  let cause: Error | undefined;
  client.on('error', (e: Error) => (cause ??= e));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.ping();
      })(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    throw new QueueError(
      `cannot reach Redis at ${maskUrl(cfg.url)}: ${(cause ?? (e as Error)).message} (set --redis or ${TAILOR_REDIS_ENV})`,
      { field: 'redis', value: maskUrl(cfg.url) },
      { cause: e },
    );
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
