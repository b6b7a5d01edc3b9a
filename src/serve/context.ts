/**
 * What the server's plugins share: the model manager, routes, keys, limits, logs and metrics, and the one code path
 * every prediction endpoint goes through (limits -> scope -> route/variant -> lease -> predict -> metrics -> logs).
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { JsonlAppender } from './applog.ts';
import { keyAllows, type ApiKey, type KeyRing } from './auth.ts';
import type { Prediction } from './backend.ts';
import { HttpError } from './errors.ts';
import { parseModelRef } from './library.ts';
import type { ServeMetrics } from './metrics.ts';
import type { ModelEntry, ModelManager } from './models.ts';
import { pickVariant, type Route, type Variant } from './routes.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key the request presented (null when keys are off or the route is public). */
    apiKey: ApiKey | null;
    /** performance.now() when the request arrived. */
    startedAt: number;
  }
  interface FastifyContextConfig {
    /** Health, metrics and docs routes: no API key, no rate limit. */
    public?: boolean;
  }
}

/** Request limits; each refusal names the limit and the flag that sets it. */
export interface Limits {
  /** Largest request body. Default 1 MiB. */
  maxBodyBytes: number;
  /** Most texts in one request. Default 64. */
  maxTexts: number;
  /** Longest text, in characters. Default 10000. */
  maxTextChars: number;
}

export const DEFAULT_LIMITS: Limits = { maxBodyBytes: 1024 * 1024, maxTexts: 64, maxTextChars: 10_000 };

/** What the prediction log keeps of each input text. */
export type LogInputs = 'full' | 'hash' | 'none';

/** State shared by the plugins of one server. */
export interface ServeContext {
  manager: ModelManager;
  routes: Map<string, Route>;
  metrics: ServeMetrics;
  keys: KeyRing;
  limits: Limits;
  predictionLog: JsonlAppender | undefined;
  feedbackLog: JsonlAppender;
  logInputs: LogInputs;
  /** Share of requests whose rows are logged (0..1). */
  logSampleRate: number;
  /** True once the models given at start have been tried. */
  started: boolean;
  random: () => number;
}

/** A prediction request's answer. */
export interface Answer {
  requestId: string;
  predictions: Prediction[];
  labels: readonly string[];
  model: { name: string; version: number };
  ref: string;
  variant: string;
}

/** 413 unless `texts` fits the limits. */
export function checkLimits(limits: Limits, texts: readonly string[], field = 'texts'): void {
  if (texts.length > limits.maxTexts)
    throw new HttpError(
      413,
      `${field} has ${texts.length} items; the limit is ${limits.maxTexts} texts per request (--max-texts)`,
      { field, value: String(texts.length) },
    );
  for (let i = 0; i < texts.length; i++) {
    if (texts[i].length > limits.maxTextChars)
      throw new HttpError(
        413,
        `${field}[${i}] is ${texts[i].length} characters; the limit is ${limits.maxTextChars} characters per text (--max-text-chars)`,
        { field: `${field}[${i}]`, value: String(texts[i].length) },
      );
  }
}

/** 403 unless the request's key may call `name` (no check when keys are off). */
export function authorize(ctx: ServeContext, req: FastifyRequest, name: string): void {
  if (!ctx.keys.enabled || !req.apiKey) return;
  if (!keyAllows(req.apiKey, name))
    throw new HttpError(
      403,
      `API key '${req.apiKey.id}' may not use model '${name}' (its scope: ${req.apiKey.models.join(', ')})`,
      { value: name },
    );
}

/** Everything served, for 404 messages. */
export function servedNames(ctx: ServeContext): string {
  const routes = [...ctx.routes.keys()];
  return `served models: ${ctx.manager.describe()}${routes.length ? `; routes: ${routes.join(', ')}` : ''}`;
}

function unknownModel(ctx: ServeContext, ref: string): HttpError {
  return new HttpError(404, `model '${ref}' is not served (${servedNames(ctx)})`, { value: ref });
}

/** The name a reference's scope is checked against. */
function scopeName(ctx: ServeContext, ref: string): string {
  if (ctx.routes.has(ref)) return ref;
  try {
    return parseModelRef(ref).name;
  } catch {
    throw unknownModel(ctx, ref);
  }
}

function inputField(mode: LogInputs, text: string): { text: string } | { sha256: string } | null {
  if (mode === 'full') return { text };
  if (mode === 'hash') return { sha256: createHash('sha256').update(text, 'utf8').digest('hex') };
  return null;
}

/** Appends one row per text to the prediction log (schema v1, docs/serve.md). */
function logRows(
  ctx: ServeContext,
  requestId: string,
  texts: readonly string[],
  entry: ModelEntry,
  version: number,
  variant: string,
  shadow: boolean,
  preds: readonly Prediction[],
  latencyMs: number,
): void {
  const log = ctx.predictionLog;
  if (!log) return;
  const time = new Date().toISOString();
  preds.forEach((p, index) => {
    let confidence = 0;
    for (const s of p.scores) if (s > confidence) confidence = s;
    log.append({
      v: 1,
      time,
      request_id: requestId,
      index,
      model: { ref: entry.ref, name: entry.name, version },
      variant,
      shadow,
      input: inputField(ctx.logInputs, texts[index]),
      label: p.label,
      confidence,
      scores: p.scores,
      latency_ms: Math.round(latencyMs * 1000) / 1000,
    });
  });
}

function runShadows(
  ctx: ServeContext,
  route: Route,
  requestId: string,
  texts: readonly string[],
  sampled: boolean,
): void {
  for (const v of route.variants) {
    if (!v.shadow) continue;
    const entry = ctx.manager.lookup(v.model);
    if (!entry || entry.state !== 'ready') {
      ctx.metrics.shadowRequests.inc({ model: entry?.name ?? route.name, variant: v.name, outcome: 'failure' });
      continue;
    }
    const lease = ctx.manager.acquire(entry);
    const t0 = performance.now();
    lease.model
      .predict(texts)
      .then((preds) => {
        ctx.metrics.shadowRequests.inc({ model: entry.name, variant: v.name, outcome: 'success' });
        if (sampled)
          logRows(ctx, requestId, texts, entry, lease.model.version, v.name, true, preds, performance.now() - t0);
      })
      .catch(() => ctx.metrics.shadowRequests.inc({ model: entry.name, variant: v.name, outcome: 'failure' }))
      .finally(() => lease.release());
  }
}

/**
 * Answers `texts` with the model or route `ref` (`version` pins one version, V2's `/versions/{v}`). Applies the
 * limits, the key's scope, A/B routing and shadow copies; counts and logs the outcome.
 */
export async function answer(
  ctx: ServeContext,
  req: FastifyRequest,
  reply: FastifyReply,
  ref: string,
  texts: readonly string[],
  version?: number,
): Promise<Answer> {
  checkLimits(ctx.limits, texts);
  authorize(ctx, req, scopeName(ctx, ref));
  const route = version === undefined ? ctx.routes.get(ref) : undefined;
  let variant: Variant | undefined;
  if (route) {
    const key = req.headers['x-tailor-key'];
    variant = pickVariant(route, typeof key === 'string' && key !== '' ? key : undefined, ctx.random);
  }
  const target = variant ? variant.model : version !== undefined ? `${ref}:${version}` : ref;
  const entry = ctx.manager.lookup(target);
  if (!entry) throw unknownModel(ctx, version !== undefined ? `${ref}/versions/${version}` : target);
  const variantName = variant ? variant.name : entry.ref;
  const labels = { model: entry.name, variant: variantName };
  const requestId = String(req.id);
  let lease;
  try {
    lease = ctx.manager.acquire(entry);
  } catch (e) {
    ctx.metrics.requests.inc({ ...labels, outcome: 'failure' });
    throw e;
  }
  const ac = new AbortController();
  const onClose = (): void => {
    if (!reply.raw.writableFinished) ac.abort(new HttpError(499, 'client closed the connection'));
  };
  reply.raw.once('close', onClose);
  const t0 = performance.now();
  let preds: Prediction[];
  try {
    preds = await lease.model.predict(texts, { signal: ac.signal });
  } catch (e) {
    ctx.metrics.requests.inc({ ...labels, outcome: 'failure' });
    throw e;
  } finally {
    lease.release();
  }
  const latency = performance.now() - t0;
  ctx.metrics.requests.inc({ ...labels, outcome: 'success' });
  ctx.metrics.requestDuration.observe(labels, (performance.now() - req.startedAt) / 1000);
  const sampled = ctx.predictionLog !== undefined && ctx.random() < ctx.logSampleRate;
  if (sampled) logRows(ctx, requestId, texts, entry, lease.model.version, variantName, false, preds, latency);
  if (route) runShadows(ctx, route, requestId, texts, sampled);
  reply.header('x-tailor-variant', variantName);
  reply.header('x-tailor-model', `${entry.name}:${lease.model.version}`);
  return {
    requestId,
    predictions: preds,
    labels: lease.model.labels,
    model: { name: lease.model.name, version: lease.model.version },
    ref: entry.ref,
    variant: variantName,
  };
}
