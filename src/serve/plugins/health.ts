/**
 * KServe V2 health and metadata: `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}[/versions/{v}]/ready`,
 * `GET /v2/models/{name}[/versions/{v}]`, and `GET /v2` (server metadata).
 */
import type { FastifyInstance } from 'fastify';
import { authorize, servedNames, type ServeContext } from '../context.ts';
import { HttpError } from '../errors.ts';
import { VERSION } from '../library.ts';
import type { ModelEntry } from '../models.ts';

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 300 } },
} as const;
const versionParams = {
  type: 'object',
  required: ['name', 'version'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 300 },
    version: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' },
  },
} as const;

/** Server readiness: the start-up loads are done and at least one model answers. */
export function serverReady(ctx: ServeContext): boolean {
  const entries = ctx.manager.list();
  return ctx.started && entries.some((e) => e.state === 'ready') && !entries.some((e) => e.state === 'loading');
}

function find(ctx: ServeContext, name: string, version?: number): ModelEntry {
  const route = version === undefined ? ctx.routes.get(name) : undefined;
  const primary = route?.variants.filter((v) => !v.shadow).sort((a, b) => b.weight - a.weight)[0];
  const ref = primary ? primary.model : version !== undefined ? `${name}:${version}` : name;
  const entry = ctx.manager.lookup(ref);
  if (!entry)
    throw new HttpError(
      404,
      `model '${version !== undefined ? `${name}/versions/${version}` : name}' is not served (${servedNames(ctx)})`,
      { value: name },
    );
  return entry;
}

export async function healthPlugin(app: FastifyInstance, opts: { ctx: ServeContext }): Promise<void> {
  const { ctx } = opts;
  const pub = { public: true };
  app.get('/v2', { config: pub, schema: { summary: 'Server metadata', tags: ['health'] } }, async () => ({
    name: 'tailor',
    version: VERSION,
    extensions: ['model_repository'],
  }));
  app.get('/v2/health/live', { config: pub, schema: { summary: 'Liveness', tags: ['health'] } }, async () => ({
    live: true,
  }));
  app.get(
    '/v2/health/ready',
    { config: pub, schema: { summary: 'Readiness: start-up loads done and a model answers', tags: ['health'] } },
    async (_req, reply) => {
      const ready = serverReady(ctx);
      reply.code(ready ? 200 : 503);
      return { ready };
    },
  );
  const ready = async (name: string, version: number | undefined, reply: import('fastify').FastifyReply) => {
    const e = find(ctx, name, version);
    const ok = e.state === 'ready';
    reply.code(ok ? 200 : 503);
    return { name, ready: ok, ...(e.error !== undefined ? { error: e.error } : {}) };
  };
  app.get<{ Params: { name: string } }>(
    '/v2/models/:name/ready',
    { config: pub, schema: { summary: 'Model readiness', tags: ['health'], params: nameParams } },
    async (req, reply) => ready(req.params.name, undefined, reply),
  );
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version/ready',
    { config: pub, schema: { summary: 'Model version readiness', tags: ['health'], params: versionParams } },
    async (req, reply) => ready(req.params.name, Number(req.params.version), reply),
  );
  const metadata = (name: string, version: number | undefined, req: import('fastify').FastifyRequest) => {
    authorize(ctx, req, ctx.routes.has(name) ? name : find(ctx, name, version).name);
    const e = find(ctx, name, version);
    const labels = e.current?.model.labels ?? [];
    const route = ctx.routes.get(name);
    return {
      name,
      versions: e.version !== undefined ? [String(e.version)] : [],
      platform: 'onnxruntime',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1] }],
      outputs: [
        { name: 'label', datatype: 'BYTES', shape: [-1] },
        { name: 'probabilities', datatype: 'FP32', shape: [-1, labels.length] },
      ],
      parameters: {
        ref: e.ref,
        state: e.state,
        labels,
        ...(route ? { variants: route.variants } : {}),
        ...(e.error !== undefined ? { error: e.error } : {}),
      },
    };
  };
  app.get<{ Params: { name: string } }>(
    '/v2/models/:name',
    { schema: { summary: 'Model metadata (inputs, outputs, labels)', tags: ['models'], params: nameParams } },
    async (req) => metadata(req.params.name, undefined, req),
  );
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version',
    { schema: { summary: 'Model version metadata', tags: ['models'], params: versionParams } },
    async (req) => metadata(req.params.name, Number(req.params.version), req),
  );
}
