/**
 * `startServer`: a Fastify server over the registry's models. Each concern is a plugin (security, health and
 * metadata, prediction, repository, feedback, metrics, OpenAPI); they share one ServeContext.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import swagger from '@fastify/swagger';
import type https from 'node:https';
import Fastify, {
  type FastifyError,
  type FastifyHttpsOptions,
  type FastifyInstance,
  type FastifyServerOptions,
} from 'fastify';
import { JsonlAppender, type AppenderOptions } from './applog.ts';
import { KeyRing, type ApiKey } from './auth.ts';
import { AdapterEngines, type MixedAdapterOptions } from './adapters.ts';
import { ModelUnavailableError, ServerBusyError, type ServedModel } from './backend.ts';
import type { BatchingOptions } from './batcher.ts';
import { DEFAULT_LIMITS, type Limits, type LogInputs, type ServeContext } from './context.ts';
import { loadFolderModel } from './engine.ts';
import { HttpError } from './errors.ts';
import { ConfigError, openRegistry, VERSION, type ModelVersion, type Registry } from './library.ts';
import { ServeMetrics, type RejectReason } from './metrics.ts';
import { ModelManager, type ModelLoader } from './models.ts';
import { feedbackPlugin } from './plugins/feedback.ts';
import { healthPlugin } from './plugins/health.ts';
import { inferPlugin } from './plugins/infer.ts';
import { metricsPlugin } from './plugins/metrics.ts';
import { repositoryPlugin } from './plugins/repository.ts';
import { securityPlugin } from './plugins/security.ts';
import type { Route } from './routes.ts';

/** Everything `startServer` accepts; only a registry (or its folder) is needed. */
export interface ServeOptions {
  /** An open registry (left open on close), or its folder (opened and closed by the server). */
  registry?: Registry;
  home?: string;
  /** Model references to serve; default every registered model (`name@production` when that alias exists, else `name`). */
  models?: string[];
  /** A/B and shadow routes (variants' models are loaded too). */
  routes?: Route[];
  /** API keys; none = no authentication. */
  apiKeys?: ApiKey[];
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  limits?: Partial<Limits>;
  batching?: BatchingOptions;
  /** Alias polling interval (default 5000 ms; 0 = off). */
  pollIntervalMs?: number;
  /** Prediction log inputs (default `hash`); `logSampleRate` 0 turns the prediction log off. Default rate 1. */
  logInputs?: LogInputs;
  logSampleRate?: number;
  /** Appender settings for both logs (tests inject a slow writer). */
  logAppender?: Pick<AppenderOptions, 'write' | 'maxBufferedRows' | 'flushIntervalMs' | 'closeTimeoutMs'>;
  /** The engine; default the folder engine (one ORT session per version, dynamic batching). */
  loader?: ModelLoader;
  /**
   * LoRA adapters over one base served by one mixed-adapter engine (default on); `{ enabled: false }` serves each
   * adapter's merged model on its own. Ignored when `loader` is given.
   */
  mixedAdapters?: MixedAdapterOptions;
  /** Metrics to export; pass your own when your loader's engine reports into it (adapter cache events). */
  metrics?: ServeMetrics;
  intraOpThreads?: number;
  /** Fastify's logger (pino) settings; default off. */
  logger?: FastifyServerOptions['logger'];
  /** Random source for A/B picks and log sampling (tests pass a seeded one). */
  random?: () => number;
}

/** A running server. */
export interface ServeHandle {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly port: number;
  readonly manager: ModelManager;
  readonly metrics: ServeMetrics;
  readonly context: ServeContext;
  /** Stops accepting requests, lets in-flight ones finish, releases models and flushes the logs. */
  close(): Promise<void>;
}

const REASONS: Record<number, RejectReason> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'too_large',
  429: 'rate_limited',
  503: 'unavailable',
};

/** The default served references: `name@production` for models with that alias, else `name` (latest). */
export async function defaultRefs(registry: Registry): Promise<string[]> {
  return (await registry.listModels()).map((m) => ('production' in m.aliases ? `${m.name}@production` : m.name));
}

function requestId(header: unknown): string {
  return typeof header === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(header) ? header : randomUUID();
}

/** Starts serving; resolves once listening and the models given have been tried. */
export async function startServer(options: ServeOptions = {}): Promise<ServeHandle> {
  const ownsRegistry = options.registry === undefined;
  const registry = options.registry ?? (await openRegistry(options.home !== undefined ? { home: options.home } : {}));
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  for (const [k, v] of Object.entries(limits))
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${k} must be a positive integer, got ${v}`, { field: k });
  const sampleRate = options.logSampleRate ?? 1;
  if (!(sampleRate >= 0 && sampleRate <= 1))
    throw new ConfigError(`log sample rate must be between 0 and 1, got ${sampleRate}`, { field: 'log-sample-rate' });
  const metrics = options.metrics ?? new ServeMetrics();
  const folderLoader = (mv: ModelVersion, dir: string): Promise<ServedModel> =>
    loadFolderModel(dir, {
      name: mv.name,
      version: mv.version,
      batching: options.batching,
      observer: metrics.batchObserver(mv.name, mv.version),
      intraOpThreads: options.intraOpThreads,
    });
  const adapterEngines = options.loader
    ? undefined
    : new AdapterEngines({
        ...options.mixedAdapters,
        registry,
        metrics,
        fallback: folderLoader,
        batching: options.batching,
        intraOpThreads: options.intraOpThreads,
      });
  const loader: ModelLoader = options.loader ?? adapterEngines!.loader;
  const manager = new ModelManager(registry, loader, {
    pollIntervalMs: options.pollIntervalMs,
    events: {
      onLoaded: () => metrics.modelsLoaded.inc(),
      onReleased: (m) => {
        metrics.modelsLoaded.dec();
        metrics.forgetVersion(m.name, m.version);
      },
      onLoadFailed: (e) => {
        metrics.modelLoadFailures.inc({ model: e.name });
        if (e.version !== undefined) metrics.forgetVersion(e.name, e.version);
      },
      onSwitched: (e) => metrics.modelSwitches.inc({ model: e.name }),
    },
  });
  const appender = (dir: string, prefix: 'predictions' | 'feedback'): JsonlAppender =>
    new JsonlAppender({
      dir: path.join(registry.home, dir),
      prefix,
      ...options.logAppender,
      onWritten: (n) => metrics.logRows.inc({ log: prefix }, n),
      onDropped: (n) => metrics.logDropped.inc({ log: prefix }, n),
    });
  const routes = new Map((options.routes ?? []).map((r) => [r.name, r]));
  const ctx: ServeContext = {
    manager,
    routes,
    metrics,
    keys: new KeyRing(options.apiKeys ?? []),
    limits,
    predictionLog: sampleRate > 0 ? appender('predictions', 'predictions') : undefined,
    feedbackLog: appender('feedback', 'feedback'),
    logInputs: options.logInputs ?? 'hash',
    logSampleRate: sampleRate,
    started: false,
    random: options.random ?? Math.random,
  };

  const common: FastifyServerOptions = {
    logger: options.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    // Strict validation: a number where a text belongs, or an unknown field, is a 400, not silently converted or dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    genReqId: (req) => requestId(req.headers['x-request-id']),
  };
  const app = (options.tls
    ? Fastify({
        ...(common as FastifyHttpsOptions<https.Server>),
        https: { cert: options.tls.cert, key: options.tls.key },
      })
    : Fastify(common)) as unknown as FastifyInstance;

  app.decorateRequest('startedAt', 0);
  app.addHook('onRequest', async (req, reply) => {
    req.startedAt = performance.now();
    reply.header('x-request-id', String(req.id));
  });
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    let status = 500;
    let message = err.message;
    const headers: Record<string, string> = err instanceof HttpError ? { ...err.headers } : {};
    if (err instanceof HttpError) status = err.statusCode;
    else if (err instanceof ServerBusyError) {
      status = 503;
      headers['retry-after'] = String(err.retryAfterSeconds);
    } else if (err instanceof ModelUnavailableError) status = 503;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      message = `request body is larger than the limit of ${limits.maxBodyBytes} bytes (--max-body-bytes)`;
    } else if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      status = 400;
      message = `malformed JSON body: ${err.message}`;
    } else if (err.validation) {
      status = 400;
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
    } else {
      req.log.error({ err }, 'request failed');
    }
    const reason = REASONS[status];
    if (reason) metrics.rejected.inc({ reason });
    reply.code(status).headers(headers).send({ error: message });
  });
  app.setNotFoundHandler((req, reply) => {
    metrics.rejected.inc({ reason: 'not_found' });
    reply
      .code(404)
      .send({ error: `no route ${req.method} ${req.url.split('?')[0]} (the API is described at /openapi.json)` });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Tailor serve',
        version: VERSION,
        description:
          'Classifiers from the Tailor registry over KServe V2 (Open Inference Protocol) and a friendly /v1 API. ' +
          'Send API keys as `Authorization: Bearer <key>` when the server has keys.',
      },
      tags: [
        { name: 'predict', description: 'Classify texts' },
        { name: 'models', description: 'Model metadata' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'repository', description: 'Load and unload models' },
        { name: 'feedback', description: 'True labels for answered texts' },
        { name: 'operations', description: 'Metrics and docs' },
      ],
    },
  });
  await app.register(securityPlugin, { ctx });
  await app.register(healthPlugin, { ctx });
  await app.register(inferPlugin, { ctx });
  await app.register(repositoryPlugin, { ctx });
  await app.register(feedbackPlugin, { ctx });
  await app.register(metricsPlugin, { ctx });
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  const close = async (): Promise<void> => {
    await app.close();
    await manager.close();
    await adapterEngines?.close();
    await Promise.all([ctx.predictionLog?.close(), ctx.feedbackLog.close()]);
    if (ownsRegistry) await registry.close();
  };
  try {
    const refs = options.models?.length ? options.models : await defaultRefs(registry);
    const variantRefs = [...routes.values()].flatMap((r) => r.variants.map((v) => v.model));
    for (const ref of [...new Set([...refs, ...variantRefs])]) await manager.load(ref);
    ctx.started = true;
    manager.startPolling();
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    app,
    url: `${options.tls ? 'https' : 'http'}://${host}:${addr.port}`,
    port: addr.port,
    manager,
    metrics,
    context: ctx,
    close,
  };
}
