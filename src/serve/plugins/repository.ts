/**
 * KServe V2's model repository extension: `GET /v2/repository/index`, `POST /v2/repository/models/{ref}/load` and
 * `.../unload`. With API keys on, only keys marked `admin` may call these.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServeContext } from '../context.ts';
import { HttpError } from '../errors.ts';
import { canonicalRef } from '../models.ts';
import { ConfigError, RegistryError } from '../library.ts';

function requireAdmin(ctx: ServeContext, req: FastifyRequest): void {
  if (ctx.keys.enabled && req.apiKey && !req.apiKey.admin)
    throw new HttpError(403, `API key '${req.apiKey.id}' may not load or unload models (it is not an admin key)`);
}

const refParams = {
  type: 'object',
  required: ['ref'],
  properties: { ref: { type: 'string', minLength: 1, maxLength: 300 } },
} as const;

export async function repositoryPlugin(app: FastifyInstance, opts: { ctx: ServeContext }): Promise<void> {
  const { ctx } = opts;
  app.post(
    '/v2/repository/index',
    { schema: { summary: 'Served models and their state', tags: ['repository'] } },
    async (req) => {
      requireAdmin(ctx, req);
      return ctx.manager.list().map((e) => ({
        name: e.ref,
        version: e.version !== undefined ? String(e.version) : undefined,
        state: e.state.toUpperCase(),
        ...(e.error !== undefined ? { reason: e.error } : {}),
      }));
    },
  );
  app.post<{ Params: { ref: string } }>(
    '/v2/repository/models/:ref/load',
    {
      schema: {
        summary: 'Load a registered model (name, name:version, name@alias)',
        tags: ['repository'],
        params: refParams,
      },
    },
    async (req, reply) => {
      requireAdmin(ctx, req);
      let entry;
      try {
        entry = await ctx.manager.load(req.params.ref);
      } catch (e) {
        if (e instanceof RegistryError || e instanceof ConfigError)
          throw new HttpError(404, `cannot load '${req.params.ref}': ${e.message}`, { value: req.params.ref });
        throw e;
      }
      if (entry.state !== 'ready') {
        reply.code(503);
        return { name: entry.ref, version: entry.version, state: entry.state, error: entry.error };
      }
      return { name: entry.ref, version: entry.version, state: entry.state };
    },
  );
  app.post<{ Params: { ref: string } }>(
    '/v2/repository/models/:ref/unload',
    {
      schema: {
        summary: 'Stop serving a model (in-flight requests finish first)',
        tags: ['repository'],
        params: refParams,
      },
    },
    async (req) => {
      requireAdmin(ctx, req);
      let ref: string;
      try {
        ref = canonicalRef(req.params.ref);
      } catch (e) {
        throw new HttpError(404, (e as Error).message, { value: req.params.ref });
      }
      if (!(await ctx.manager.unload(ref)))
        throw new HttpError(404, `model '${ref}' is not loaded (served models: ${ctx.manager.describe()})`, {
          value: ref,
        });
      return { name: ref, state: 'unloaded' };
    },
  );
}
