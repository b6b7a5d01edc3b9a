/**
 * Prediction endpoints: the friendly `POST /v1/models/{ref}/predict {texts}` and KServe V2's
 * `POST /v2/models/{name}[/versions/{v}]/infer`. Both go through `answer` (limits, scope, A/B, logs, metrics).
 */
import type { FastifyInstance } from 'fastify';
import { answer, type ServeContext } from '../context.ts';
import { HttpError } from '../errors.ts';

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' } },
} as const;

const predictBody = {
  type: 'object',
  required: ['texts'],
  additionalProperties: false,
  properties: {
    texts: {
      type: 'array',
      minItems: 1,
      items: { type: 'string' },
      description: 'Texts to classify (at most --max-texts, each at most --max-text-chars characters)',
    },
  },
} as const;

const predictReply = {
  type: 'object',
  properties: {
    request_id: { type: 'string' },
    predictions: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          label: { type: 'string' },
          scores: { type: 'object', additionalProperties: { type: 'number' } },
        },
      },
    },
    model: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'integer' } } },
    variant: { type: 'string' },
  },
} as const;

const v2Input = {
  type: 'object',
  required: ['name', 'shape', 'datatype', 'data'],
  properties: {
    name: { type: 'string' },
    shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
    datatype: { type: 'string' },
    data: { type: 'array' },
    parameters: { type: 'object' },
  },
} as const;

const v2Body = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string', maxLength: 256 },
    parameters: { type: 'object' },
    inputs: { type: 'array', minItems: 1, items: v2Input },
    outputs: { type: 'array', items: { type: 'object' } },
  },
} as const;

const refParams = {
  type: 'object',
  required: ['ref'],
  properties: { ref: { type: 'string', minLength: 1, maxLength: 300 } },
} as const;

interface V2Input {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
}
interface V2Body {
  id?: string;
  inputs: V2Input[];
}

/** The texts of a V2 request: its one BYTES input (or the one named `text`), flattened, checked against the shape. */
export function v2Texts(body: V2Body): string[] {
  const input =
    body.inputs.length === 1 ? body.inputs[0] : (body.inputs.find((i) => i.name === 'text') ?? body.inputs[0]);
  if (input.datatype !== 'BYTES')
    throw new HttpError(
      400,
      `input '${input.name}' has datatype ${input.datatype}; this model reads text: use datatype BYTES`,
      { field: `inputs.${input.name}.datatype`, value: input.datatype },
    );
  const flat = (input.data as unknown[]).flat(Infinity);
  const bad = flat.findIndex((x) => typeof x !== 'string');
  if (bad >= 0)
    throw new HttpError(400, `input '${input.name}': data[${bad}] is ${JSON.stringify(flat[bad])}, expected a string`, {
      field: `inputs.${input.name}.data`,
    });
  const count = input.shape.reduce((a, b) => a * b, 1);
  if (count !== flat.length)
    throw new HttpError(
      400,
      `input '${input.name}': shape [${input.shape.join(', ')}] holds ${count} elements but data has ${flat.length}`,
      { field: `inputs.${input.name}.shape` },
    );
  return flat as string[];
}

export async function inferPlugin(app: FastifyInstance, opts: { ctx: ServeContext }): Promise<void> {
  const { ctx } = opts;
  app.post<{ Params: { ref: string }; Body: { texts: string[] } }>(
    '/v1/models/:ref/predict',
    {
      schema: {
        summary: 'Classify texts with a model (name, name:version, name@alias) or a route',
        tags: ['predict'],
        params: refParams,
        body: predictBody,
        response: { 200: predictReply, '4xx': errorSchema, '5xx': errorSchema },
      },
    },
    async (req, reply) => {
      const a = await answer(ctx, req, reply, req.params.ref, req.body.texts);
      return {
        request_id: a.requestId,
        predictions: a.predictions.map((p) => ({
          label: p.label,
          scores: Object.fromEntries(a.labels.map((l, i) => [l, p.scores[i]])),
        })),
        model: a.model,
        variant: a.variant,
      };
    },
  );

  const v2 = async (
    name: string,
    version: number | undefined,
    body: V2Body,
    req: import('fastify').FastifyRequest,
    reply: import('fastify').FastifyReply,
  ) => {
    const texts = v2Texts(body);
    const a = await answer(ctx, req, reply, name, texts, version);
    const k = a.labels.length;
    const probs = new Array<number>(texts.length * k);
    a.predictions.forEach((p, i) => p.scores.forEach((s, j) => (probs[i * k + j] = s)));
    return {
      model_name: a.model.name,
      model_version: String(a.model.version),
      id: body.id ?? a.requestId,
      parameters: { request_id: a.requestId, variant: a.variant, labels: a.labels },
      outputs: [
        { name: 'label', datatype: 'BYTES', shape: [texts.length], data: a.predictions.map((p) => p.label) },
        { name: 'probabilities', datatype: 'FP32', shape: [texts.length, k], data: probs },
      ],
    };
  };
  const nameParams = {
    type: 'object',
    required: ['name'],
    properties: { name: { type: 'string', minLength: 1, maxLength: 300 } },
  } as const;
  app.post<{ Params: { name: string }; Body: V2Body }>(
    '/v2/models/:name/infer',
    {
      schema: {
        summary: 'KServe V2 inference: one BYTES input of texts -> label and probabilities outputs',
        tags: ['predict'],
        params: nameParams,
        body: v2Body,
      },
    },
    async (req, reply) => v2(req.params.name, undefined, req.body, req, reply),
  );
  app.post<{ Params: { name: string; version: string }; Body: V2Body }>(
    '/v2/models/:name/versions/:version/infer',
    {
      schema: {
        summary: 'KServe V2 inference on one version',
        tags: ['predict'],
        params: {
          type: 'object',
          required: ['name', 'version'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 300 },
            version: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' },
          },
        },
        body: v2Body,
      },
    },
    async (req, reply) => v2(req.params.name, Number(req.params.version), req.body, req, reply),
  );
}
