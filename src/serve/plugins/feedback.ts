/** `POST /v1/feedback {request_id, index?, label}`: the true label of an answered text, appended to the feedback log. */
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../context.ts';

export async function feedbackPlugin(app: FastifyInstance, opts: { ctx: ServeContext }): Promise<void> {
  const { ctx } = opts;
  app.post<{ Body: { request_id: string; index?: number; label: string } }>(
    '/v1/feedback',
    {
      schema: {
        summary: 'Record the true label of a text a request classified',
        tags: ['feedback'],
        body: {
          type: 'object',
          required: ['request_id', 'label'],
          additionalProperties: false,
          properties: {
            request_id: { type: 'string', minLength: 1, maxLength: 256 },
            index: { type: 'integer', minimum: 0, default: 0 },
            label: { type: 'string', minLength: 1, maxLength: 1000 },
          },
        },
      },
    },
    async (req, reply) => {
      ctx.feedbackLog.append({
        v: 1,
        time: new Date().toISOString(),
        request_id: req.body.request_id,
        index: req.body.index ?? 0,
        label: req.body.label,
      });
      reply.code(202);
      return { accepted: true };
    },
  );
}
