/**
 * API keys and per-key rate limits for every route except the public ones (health, metrics, docs). Registered
 * with fastify-plugin so its hook covers the routes of the sibling plugins.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ServeContext } from '../context.ts';
import { HttpError } from '../errors.ts';

/** Rate limit for keys without their own: requests per minute. */
export const DEFAULT_RATE_LIMIT = { max: 6000, timeWindowMs: 60_000 };

function presentedKey(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = req.headers['x-api-key'];
  return typeof x === 'string' && x !== '' ? x : undefined;
}

async function security(app: FastifyInstance, opts: { ctx: ServeContext }): Promise<void> {
  const { ctx } = opts;
  app.decorateRequest('apiKey', null);
  app.addHook('onRequest', async (req) => {
    if (!ctx.keys.enabled || req.routeOptions.config.public === true) return;
    const presented = presentedKey(req);
    if (presented === undefined)
      throw new HttpError(401, "missing API key: send 'Authorization: Bearer <key>' or an 'x-api-key' header", {
        field: 'authorization',
      });
    const key = ctx.keys.find(presented);
    if (!key) throw new HttpError(401, 'unknown API key', { field: 'authorization' });
    req.apiKey = key;
  });
  if (!ctx.keys.enabled) return;
  const byId = new Map(ctx.keys.keys.map((k) => [k.id, k]));
  await app.register(rateLimit, {
    global: true,
    // After the key check (onRequest) and before the body is read.
    hook: 'preParsing',
    keyGenerator: (req) => (req.apiKey ? `key:${req.apiKey.id}` : `ip:${req.ip}`),
    max: (_req, key) => byId.get(key.slice(4))?.rateLimit?.max ?? DEFAULT_RATE_LIMIT.max,
    timeWindow: (_req, key) => byId.get(key.slice(4))?.rateLimit?.timeWindowMs ?? DEFAULT_RATE_LIMIT.timeWindowMs,
    allowList: (req) => req.routeOptions.config.public === true,
    errorResponseBuilder: (req, c) =>
      new HttpError(
        429,
        `rate limit exceeded for API key '${req.apiKey?.id ?? req.ip}': ${c.max} requests per ${c.after}; retry in ${Math.ceil(c.ttl / 1000)} s`,
        { value: req.apiKey?.id ?? req.ip },
        { 'retry-after': String(Math.ceil(c.ttl / 1000)) },
      ),
  });
}

export const securityPlugin = fp(security, { name: 'tailor-security' });
