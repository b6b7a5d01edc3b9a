/**
 * `tailor serve`: an HTTP server (KServe V2 + /v1) over registered models, until SIGTERM/SIGINT, which drain
 * in-flight requests before the process exits. docs/serve.md describes the API, the files and the metrics.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError } from '../../errors.ts';
import { BASE_PRECISIONS, type BasePrecision } from '../../serve/engine/precision.ts';
import { num, withGlobals, type GlobalOptions } from '../common.ts';

/** Environment variable holding the API key file's JSON when no --api-keys file is given. */
export const API_KEYS_ENV = 'TAILOR_API_KEYS';

interface ServeCliOptions extends GlobalOptions {
  models?: string;
  port: number;
  host: string;
  routes?: string;
  apiKeys?: string;
  logInputs: 'full' | 'hash' | 'none';
  logSampleRate: number;
  pollInterval: number;
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueue: number;
  maxBodyBytes: number;
  maxTexts: number;
  maxTextChars: number;
  tlsCert?: string;
  tlsKey?: string;
  threads?: number;
  logLevel: string;
  mixedAdapters: boolean;
  adapterCacheMb: number;
  adapterRuns: number;
  adapterBasePrecision: BasePrecision;
  adapterModules?: string;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(`cannot read the TLS ${what} ${file}: ${(e as Error).message}`, {
      file,
      field: `tls-${what}`,
    });
  }
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description(
      'serve registered models over HTTP (KServe V2 and /v1/models/{ref}/predict) with dynamic batching, A/B routes, API keys, metrics and a prediction log',
    )
    .option(
      '--models <refs>',
      'comma-separated model references (name, name:3, name@alias); default: every registered model',
    )
    .option('--port <n>', 'port (0 = any free port)', num({ min: 0, max: 65535, int: true }), 8080)
    .option('--host <host>', 'interface to bind (0.0.0.0 to accept remote clients)', '127.0.0.1')
    .option('--routes <file>', 'A/B and shadow route file (JSON)')
    .option(
      '--api-keys <file>',
      `API key file (JSON, sha256 hashes); default $${API_KEYS_ENV} (the same JSON), else no keys`,
    )
    .addOption(
      new Option('--log-inputs <mode>', 'what the prediction log keeps of each text')
        .choices(['full', 'hash', 'none'])
        .default('hash'),
    )
    .option(
      '--log-sample-rate <r>',
      'share of requests written to the prediction log (0 = off)',
      num({ min: 0, max: 1 }),
      1,
    )
    .option(
      '--poll-interval <ms>',
      'how often aliases are re-resolved in the registry (0 = never)',
      num({ min: 0, int: true }),
      5000,
    )
    .option('--max-batch-size <n>', 'most texts per model execution', num({ min: 1, int: true }), 32)
    .option('--max-queue-delay-ms <ms>', 'longest a text waits for a batch to fill', num({ min: 0 }), 2)
    .option('--max-queue <n>', 'most texts waiting per model before 503', num({ min: 1, int: true }), 1024)
    .option('--max-body-bytes <n>', 'largest request body', num({ min: 1, int: true }), 1024 * 1024)
    .option('--max-texts <n>', 'most texts per request', num({ min: 1, int: true }), 64)
    .option('--max-text-chars <n>', 'longest text in characters', num({ min: 1, int: true }), 10_000)
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key')
    .option('--threads <n>', 'ONNX Runtime threads per execution (default: ORT)', num({ min: 1, int: true }))
    .option(
      '--no-mixed-adapters',
      'serve each LoRA adapter as its own merged model instead of one mixed-adapter engine per base',
    )
    .option('--adapter-cache-mb <n>', 'MiB of adapter slots per base (hot adapters)', num({ min: 1 }), 256)
    .option(
      '--adapter-modules <regex>',
      'modules with a LoRA branch in mixed-adapter engines (default: every linear module of the base)',
    )
    .option('--adapter-runs <n>', 'ORT runs in flight at once per mixed-adapter base', num({ min: 1, int: true }), 1)
    .addOption(
      new Option(
        '--adapter-base-precision <p>',
        "weights of the shared base in mixed-adapter engines: int8 is ~3x faster on CPUs with AVX-512 VNNI, answers close to fp32's",
      )
        .choices([...BASE_PRECISIONS])
        .default('fp32'),
    )
    .addOption(
      new Option('--log-level <level>', 'server log level (JSON lines on stdout)')
        .choices(['fatal', 'error', 'warn', 'info', 'debug'])
        .default('warn'),
    );
  withGlobals(cmd);
  cmd.action(async (o: ServeCliOptions) => {
    const [{ startServer, readRoutes, readApiKeys, parseApiKeys }, { openExistingRegistry }] = await Promise.all([
      import('../../serve/index.ts'),
      import('../../workflow/sources.ts'),
    ]);
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined))
      throw new ConfigError('--tls-cert and --tls-key go together: give both or neither', { field: 'tls-cert' });
    const envKeys = process.env[API_KEYS_ENV];
    const apiKeys =
      o.apiKeys !== undefined
        ? readApiKeys(o.apiKeys)
        : envKeys !== undefined && envKeys !== ''
          ? parseApiKeys(envKeys, `$${API_KEYS_ENV}`)
          : [];
    const routes = o.routes !== undefined ? readRoutes(o.routes) : [];
    const models = o.models
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const registry = await openExistingRegistry(o.home);
    let server;
    try {
      server = await startServer({
        registry,
        models,
        routes,
        apiKeys,
        host: o.host,
        port: o.port,
        ...(o.tlsCert !== undefined && o.tlsKey !== undefined
          ? { tls: { cert: readPem(o.tlsCert, 'cert'), key: readPem(o.tlsKey, 'key') } }
          : {}),
        limits: { maxBodyBytes: o.maxBodyBytes, maxTexts: o.maxTexts, maxTextChars: o.maxTextChars },
        batching: { maxBatchSize: o.maxBatchSize, maxQueueDelayMs: o.maxQueueDelayMs, maxQueueSize: o.maxQueue },
        pollIntervalMs: o.pollInterval,
        logInputs: o.logInputs,
        logSampleRate: o.logSampleRate,
        intraOpThreads: o.threads,
        mixedAdapters: {
          enabled: o.mixedAdapters,
          cacheBytes: Math.floor(o.adapterCacheMb * 2 ** 20),
          concurrency: o.adapterRuns,
          basePrecision: o.adapterBasePrecision,
          ...(o.adapterModules !== undefined ? { modules: o.adapterModules } : {}),
        },
        logger: { level: o.logLevel },
      });
    } catch (e) {
      await registry.close();
      throw e;
    }
    const entries = server.manager
      .list()
      .map((e) => ({ ref: e.ref, version: e.version, state: e.state, error: e.error }));
    if (o.json)
      process.stdout.write(
        `${JSON.stringify({ url: server.url, models: entries, routes: routes.map((r) => r.name) })}\n`,
      );
    else {
      process.stdout.write(`tailor serve: listening on ${server.url}\n`);
      for (const e of entries)
        process.stdout.write(`  ${e.ref} -> version ${e.version ?? '?'} ${e.state}${e.error ? ` (${e.error})` : ''}\n`);
      for (const r of routes)
        process.stdout.write(
          `  route ${r.name}: ${r.variants.map((v) => `${v.name}=${v.model}${v.shadow ? ' (shadow)' : ` ${v.weight}`}`).join(', ')}\n`,
        );
    }
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    if (!o.quiet) process.stderr.write(`tailor serve: ${signal}: draining in-flight requests\n`);
    // A second signal while draining stops at once.
    const force = (): void => process.exit(130);
    process.once('SIGTERM', force);
    process.once('SIGINT', force);
    try {
      await server.close();
    } finally {
      await registry.close();
    }
    if (!o.quiet) process.stderr.write('tailor serve: stopped\n');
  });
  return cmd;
}
