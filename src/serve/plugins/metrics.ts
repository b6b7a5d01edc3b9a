/** `GET /metrics`: Prometheus text exposition (public: scrapers carry no API key). */
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../context.ts';

export async function metricsPlugin(app: FastifyInstance, opts: { ctx: ServeContext }): Promise<void> {
  app.get(
    '/metrics',
    {
      config: { public: true },
      schema: { summary: 'Prometheus metrics', tags: ['operations'], produces: ['text/plain'] },
    },
    async (_req, reply) => {
      reply.type(opts.ctx.metrics.registry.contentType);
      return opts.ctx.metrics.text();
    },
  );
}
