/**
 * The serving benchmark of issue 13: USE-lite with 100 CLINC150 classifier adapters, loopback HTTP load, four
 * ways of serving them, each in its own server process (so each RSS is that case's alone):
 *   (a) one adapter through the mixed-adapter engine (src/serve/engine);
 *   (b) 100 adapters, Zipf-distributed traffic, mixed-adapter batches: the real `tailor serve` process over a registry
 *       holding each adapter as `tailor customize` saves it (model/ merged, adapter/ PEFT), requests on its
 *       `POST /v1/models/{name}/predict {texts: [text]}`, counts and RSS from its `/metrics`;
 *   (c) the same 100 adapters switched per call (`AdapterHost`: one session, adapter tensors fed per run);
 *   (d) a merged model (its own ORT session) per adapter.
 * Cases (a), (c) and (d) run behind a minimal node:http front kept in this file (`POST /predict {adapter, text}` ->
 * `{label, scores}`); the load generator is a closed loop of `--connections` keep-alive connections in this process,
 * one text per request, bounded by `--seconds` and `--requests`.
 *
 * Adapters (made once, written as PEFT folders the servers load from disk): LoRA r 8 on the query and value
 * projections of both layers with random-but-seeded A and small B (so they change the features a little), and
 * heads fitted by ridge regression (src/train/linear-probe.ts) on the frozen base's features of 15 training rows per
 * intent; adapter i classifies 10 consecutive intents starting at intent 17·i mod 150. The answers' accuracy on
 * CLINC150 test rows is printed as a check that every case serves the same adapters.
 *
 *   node --import tsx bench/serve.ts [--json] [--cases a,b,c,d] [--adapters 100] [--connections 32]
 *     [--seconds 10] [--requests 20000] [--threads 2] [--max-batch 32] [--delay-ms 2] [--zipf 1] [--runs 2]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { textFeatures, textFeeds } from '../src/models/text.ts';
import { fitLinearHead } from '../src/train/linear-probe.ts';
import { AdapterHost, mergeAdapter } from '../src/customize/adapters.ts';
import { baseHash, type Lineage } from '../src/customize/lineage.ts';
import { saveCustomizedModel } from '../src/customize/save.ts';
import { openRegistry } from '../src/registry/index.ts';
import type { LoraWeights } from '../src/customize/lora.ts';
import { loadAdapter, peftConfig, saveAdapter, type LoraAdapter } from '../src/customize/peft.ts';
import { linearSites } from '../src/customize/sites.ts';
import { toOnnxModel, type Model } from '../src/models/model.ts';
import { loadBase } from '../src/models/resolve.ts';
import { mulberry32 } from '../src/util/rng.ts';
import { Session } from '../src/runtime/session.ts';
import { MultiAdapterEngine } from '../src/serve/engine/engine.ts';
import type { Prediction } from '../src/serve/backend.ts';
import { firstPerIntent, readClinc } from './clinc150.ts';
import { loadAverage, sayer } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const opt = (k: string, d: string): string => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const num = (k: string, d: number): number => Number(opt(k, String(d)));
const N_ADAPTERS = num('--adapters', 100);
const THREADS = num('--threads', 2);
/** ORT runs in flight at once, in every case (the engine's `concurrency`; a semaphore around (c)'s and (d)'s runs). */
const RUNS = num('--runs', 2);
const MAX_LENGTH = 32;
const INTENTS_PER_ADAPTER = 10;
const TRAIN_PER_INTENT = 15;
const TARGETS = ['query', 'value'];
const say = sayer(json);

type CaseName = 'a' | 'b' | 'c' | 'd' | 'a8' | 'b8';
const CASE_TITLES: Record<CaseName, string> = {
  a: '(a) 1 adapter, engine',
  b: `(b) ${N_ADAPTERS} adapters, Zipf, mixed batches`,
  c: `(c) ${N_ADAPTERS} adapters, switched per call`,
  d: `(d) ${N_ADAPTERS} merged models`,
  a8: '(a8) = (a), int8 base',
  b8: `(b8) = (b), int8 base`,
};
/** Cases (a8) and (b8) are (a) and (b) with the engine's base weights in int8 (`--adapter-base-precision int8`). */
const isInt8 = (c: CaseName): boolean => c === 'a8' || c === 'b8';
const isTailorServe = (c: CaseName): boolean => c === 'b' || c === 'b8';

interface AdapterMeta {
  name: string;
  labels: string[];
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Intents of adapter i: 10 consecutive ones (cyclically) from 17·i mod 150. */
function adapterIntents(i: number, all: string[]): string[] {
  return Array.from({ length: INTENTS_PER_ADAPTER }, (_, j) => all[(17 * i + j) % all.length]);
}

/** Makes the adapters (see the header) and writes them under `dir`; returns their names and labels. */
async function makeAdapters(base: Model, dir: string, registryHome?: string): Promise<AdapterMeta[]> {
  const train = readClinc('train');
  const intents = [...new Set(train.map((r) => r.label))].sort();
  const rows = firstPerIntent(train, TRAIN_PER_INTENT, new Set(intents));
  const t0 = performance.now();
  const { features, width } = await textFeatures(
    base,
    rows.map((r) => r.text),
    { maxLength: MAX_LENGTH, batchSize: 64, intraOpThreads: THREADS },
  );
  say(`  frozen features of ${rows.length} training texts: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const sites = linearSites(base).filter((s) => TARGETS.some((t) => s.module.endsWith(`.${t}`)));
  const hash = baseHash(base);
  const metas: AdapterMeta[] = [];
  for (let i = 0; i < N_ADAPTERS; i++) {
    const labels = adapterIntents(i, intents);
    const idx = rows.flatMap((r, j) => (labels.includes(r.label) ? [j] : []));
    const X = new Float32Array(idx.length * width);
    idx.forEach((j, k) => X.set(features.subarray(j * width, (j + 1) * width), k * width));
    const head = await fitLinearHead(
      X,
      idx.map((j) => labels.indexOf(rows[j].label)),
      width,
      labels.length,
      { lambdas: [1e-2] },
    );
    const rnd = mulberry32(1000 + i);
    const weights = new Map<string, LoraWeights>();
    const r = 8;
    for (const s of sites) {
      const bound = 1 / Math.sqrt(s.inFeatures);
      weights.set(s.module, {
        r,
        inFeatures: s.inFeatures,
        outFeatures: s.outFeatures,
        A: Float32Array.from({ length: s.inFeatures * r }, () => (rnd() * 2 - 1) * bound),
        B: Float32Array.from({ length: r * s.outFeatures }, () => (rnd() * 2 - 1) * 0.01),
      });
    }
    const lineage: Lineage = {
      base: { id: 'use-lite', hash },
      strategy: 'lora',
      hyperparameters: { bench: 'serve', maxLength: MAX_LENGTH },
      data_fingerprint: 'clinc150',
      seed: i,
      tailor_version: '0',
      labels,
    };
    const adapter: LoraAdapter = {
      config: peftConfig({ r, lora_alpha: 16, target_modules: TARGETS, modules_to_save: ['classifier'] }),
      weights,
      head: { weight: head.weight, bias: head.bias, features: width, labels },
      lineage,
    };
    const name = `a${i}`;
    await saveAdapter(path.join(dir, name), adapter);
    if (registryHome)
      await saveCustomizedModel(path.join(dir, 'saved', name), { model: base, labels, lineage, adapter }, { base });
    metas.push({ name, labels });
  }
  if (registryHome) {
    // Registered as `tailor customize --register` leaves them: one model per adapter, its saved folder.
    const registry = await openRegistry({ home: registryHome });
    try {
      for (const m of metas) await registry.registerModel({ name: m.name, source: path.join(dir, 'saved', m.name) });
    } finally {
      await registry.close();
    }
    fs.rmSync(path.join(dir, 'saved'), { recursive: true, force: true });
  }
  return metas;
}

// ---------------------------------------------------------------- server (child process)

interface Backend {
  predict(adapter: string, text: string): Promise<Prediction>;
  stats(): Record<string, number>;
}

/** At most `n` calls of the returned function run at once; the others wait in arrival order. */
function semaphore(n: number): <T>(f: () => Promise<T>) => Promise<T> {
  let free = n;
  const waiting: (() => void)[] = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((r) => waiting.push(r));
    try {
      return await f();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

function softmaxRow(x: Float32Array): number[] {
  const m = Math.max(...x);
  const e = Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function toPrediction(logits: Float32Array, labels: string[]): Prediction {
  const scores = softmaxRow(logits);
  return { label: labels[scores.indexOf(Math.max(...scores))], scores };
}

async function backendFor(c: CaseName, base: Model, dir: string, metas: AdapterMeta[]): Promise<Backend> {
  // The same cores in every case: at most RUNS ORT runs at once, of THREADS / RUNS threads each.
  const session = { intraOpThreads: Math.max(1, Math.floor(THREADS / RUNS)) };
  const gate = semaphore(RUNS);
  const load = (name: string) => (): Promise<LoraAdapter> => loadAdapter(path.join(dir, name));
  if (c === 'a' || c === 'b' || c === 'a8' || c === 'b8') {
    const engine = await MultiAdapterEngine.create(base, {
      basePrecision: isInt8(c) ? 'int8' : 'fp32',
      concurrency: RUNS,
      modules: TARGETS,
      maxRank: 8,
      maxLabels: 16,
      maxBatchSize: num('--max-batch', 32),
      maxQueueDelayMs: num('--delay-ms', 2),
      maxQueueRows: 4096,
      maxLength: MAX_LENGTH,
      session,
    });
    const served = c === 'a' || c === 'a8' ? metas.slice(0, 1) : metas;
    const models = new Map(served.map((m) => [m.name, engine.model(m.name, 1, load(m.name), { labels: m.labels })]));
    // Steady state: every adapter hot before the load starts (cold loads are tested in test/serve/engine.test.ts).
    for (const m of models.values()) await m.ready();
    return {
      predict: async (a, t) => (await models.get(a)!.predict([t]))[0],
      stats: () => ({ ...engine.counts, adapters: engine.pool.resident, evictions: engine.pool.evicted }),
    };
  }
  const adapters: Record<string, LoraAdapter> = {};
  for (const m of metas) adapters[m.name] = await load(m.name)();
  if (c === 'c') {
    const host = await AdapterHost.create(base, adapters, session);
    let runs = 0;
    return {
      predict: async (a, t) => {
        const out = await gate(() => host.run(a, textFeeds(base, [t], { maxLength: MAX_LENGTH }), ['logits']));
        runs++;
        return toPrediction(out.logits.data as Float32Array, adapters[a].head!.labels);
      },
      stats: () => ({ inferences: runs, executions: runs, adapters: metas.length }),
    };
  }
  const sessions = new Map<string, Session>();
  for (const m of metas)
    sessions.set(
      m.name,
      await Session.create(toOnnxModel(mergeAdapter(base, adapters[m.name]).model), {
        ...session,
        label: `merged ${m.name}`,
      }),
    );
  let runs = 0;
  return {
    predict: async (a, t) => {
      const out = await gate(() => sessions.get(a)!.run(textFeeds(base, [t], { maxLength: MAX_LENGTH }), ['logits']));
      runs++;
      return toPrediction(out.logits.data as Float32Array, adapters[a].head!.labels);
    },
    stats: () => ({ inferences: runs, executions: runs, adapters: metas.length }),
  };
}

async function serve(c: CaseName, dir: string): Promise<void> {
  const base = await loadBase('use-lite');
  const metas = JSON.parse(fs.readFileSync(path.join(dir, 'adapters.json'), 'utf8')) as AdapterMeta[];
  const t0 = performance.now();
  const backend = await backendFor(c, base, dir, metas);
  const setupMs = performance.now() - t0;
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      const s = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
      res.end(s);
    };
    if (req.method === 'GET' && req.url === '/stats') {
      reply(200, { rss: process.memoryUsage().rss, setupMs, ...backend.stats() });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      let body: { adapter?: string; text?: string };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        reply(400, { error: 'malformed JSON' });
        return;
      }
      if (!body.adapter || !metas.some((m) => m.name === body.adapter) || typeof body.text !== 'string') {
        reply(404, { error: `unknown adapter ${body.adapter}` });
        return;
      }
      backend.predict(body.adapter, body.text).then(
        (p) => reply(200, p),
        (e: unknown) => reply(503, { error: (e as Error).message }),
      );
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address() as { port: number };
    console.log(JSON.stringify({ port: addr.port }));
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

// ---------------------------------------------------------------- load generator (parent)

interface Ask {
  adapter: string;
  text: string;
  label: string;
}

/** Zipf(s) over n ranks: P(k) ∝ 1/k^s; returns a sampler from a seeded uniform source. */
function zipf(n: number, s: number, rnd: () => number): () => number {
  const w = Array.from({ length: n }, (_, k) => 1 / (k + 1) ** s);
  const total = w.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  let acc = 0;
  for (const x of w) cdf.push((acc += x / total));
  return () => {
    const u = rnd();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function post(
  agent: http.Agent,
  port: number,
  urlPath: string,
  body: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  latencies: number[];
  correct: number;
}

/** Closed loop: `connections` workers each send one request, await it, and repeat until time or count run out. */
/** How one case is asked: its path and body, and the label in its answer. */
interface Protocol {
  request(a: Ask): { path: string; body: string };
  label(body: string): string;
}

const FRONT: Protocol = {
  request: (a) => ({ path: '/predict', body: JSON.stringify({ adapter: a.adapter, text: a.text }) }),
  label: (b) => (JSON.parse(b) as Prediction).label,
};

/** `tailor serve`'s friendly API, one text per request. */
const TAILOR_SERVE: Protocol = {
  request: (a) => ({ path: `/v1/models/${a.adapter}/predict`, body: JSON.stringify({ texts: [a.text] }) }),
  label: (b) => (JSON.parse(b) as { predictions: { label: string }[] }).predictions[0].label,
};

async function load(
  port: number,
  asks: () => Ask,
  connections: number,
  seconds: number,
  max: number,
  proto: Protocol = FRONT,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const lat: number[] = [];
  let sent = 0;
  let errors = 0;
  let correct = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end && sent < max) {
        sent++;
        const a = asks();
        const s = performance.now();
        try {
          const q = proto.request(a);
          const r = await post(agent, port, q.path, q.body);
          lat.push(performance.now() - s);
          if (r.status !== 200) errors++;
          else if (proto.label(r.body) === a.label) correct++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  return { requests: lat.length, errors, seconds: elapsed, latencies: lat, correct };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
}

async function startServer(c: CaseName, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', c, '--dir', dir, ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const rl = readline.createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    rl.once('line', (l) => resolve((JSON.parse(l) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`server for case ${c} exited (${code}) before listening`)));
  });
  return { child, port };
}

/** Case (b): the real `tailor serve` over the bench registry, with the same batching, threads and concurrent runs. */
async function startTailorServe(
  home: string,
  precision: 'fp32' | 'int8',
): Promise<{ child: ChildProcess; port: number; setupMs: number }> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      path.join(REPO, 'bin', 'tailor.js'),
      'serve',
      '--home',
      home,
      '--port',
      '0',
      '--json',
      '--threads',
      String(Math.max(1, Math.floor(THREADS / RUNS))),
      '--adapter-runs',
      String(RUNS),
      '--adapter-base-precision',
      precision,
      '--adapter-modules',
      `\\.(${TARGETS.join('|')})$`,
      '--max-batch-size',
      String(num('--max-batch', 32)),
      '--max-queue-delay-ms',
      String(num('--delay-ms', 2)),
      '--max-queue',
      '4096',
      '--log-sample-rate',
      '0',
      '--poll-interval',
      '0',
      '--quiet',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const rl = readline.createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    rl.once('line', (l) => {
      const r = JSON.parse(l) as { url: string; models: { ref: string; state: string; error?: string }[] };
      const bad = r.models.filter((m) => m.state !== 'ready');
      if (bad.length)
        reject(new Error(`tailor serve could not load ${bad.map((m) => `${m.ref}: ${m.error}`).join('; ')}`));
      else resolve(Number(new URL(r.url).port));
    });
    child.once('exit', (code) => reject(new Error(`tailor serve exited (${code}) before listening`)));
  });
  return { child, port, setupMs: performance.now() - t0 };
}

/** The bench's stats from `tailor serve`'s Prometheus text: RSS, and inference and execution counts of its engines. */
async function tailorStats(port: number): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      })
      .on('error', reject);
  });
  const sum = (name: string): number => {
    let v = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (m && m[1] === name) v += Number(m[3]);
    }
    return v;
  };
  return {
    rss: sum('process_resident_memory_bytes'),
    inferences: sum('tailor_inference_total'),
    executions: sum('tailor_execution_total'),
    adapters: sum('tailor_adapters_loaded'),
    evictions: sum('tailor_adapter_cache_evictions_total'),
  };
}

async function getStats(port: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/stats' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, number>));
      })
      .on('error', reject);
  });
}

async function main(): Promise<void> {
  const cases = opt('--cases', 'a,b,c,d,a8,b8').split(',') as CaseName[];
  for (const c of cases)
    if (!(c in CASE_TITLES)) throw new Error(`unknown case '${c}' (cases: ${Object.keys(CASE_TITLES).join(', ')})`);
  const connections = num('--connections', 32);
  const seconds = num('--seconds', 10);
  const maxRequests = num('--requests', 20000);
  const s = num('--zipf', 1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-bench-serve-'));
  try {
    say(
      `serving benchmark: USE-lite, ${N_ADAPTERS} CLINC150 adapters (LoRA r 8 on query/value + ridge heads), ${connections} connections, ` +
        `${seconds} s or ${maxRequests} requests per case, ${RUNS} ORT runs at once of ${Math.max(1, Math.floor(THREADS / RUNS))} thread(s), loopback HTTP; load average ${loadAverage()}`,
    );
    const base = await loadBase('use-lite');
    const home = path.join(dir, 'home');
    const metas = await makeAdapters(base, dir, cases.some(isTailorServe) ? home : undefined);
    fs.writeFileSync(path.join(dir, 'adapters.json'), JSON.stringify(metas));
    const test = readClinc('test');
    const byIntent = new Map<string, { text: string; label: string }[]>();
    for (const r of test) byIntent.set(r.label, [...(byIntent.get(r.label) ?? []), r]);
    const rows: Record<string, unknown>[] = [];
    for (const c of cases) {
      const rnd = mulberry32(7);
      const pick = zipf(c === 'a' || c === 'a8' ? 1 : N_ADAPTERS, s, rnd);
      const asks = (): Ask => {
        const m = metas[pick()];
        const intent = m.labels[Math.floor(rnd() * m.labels.length)];
        const pool = byIntent.get(intent)!;
        const r = pool[Math.floor(rnd() * pool.length)];
        return { adapter: m.name, text: r.text, label: r.label };
      };
      const real = isTailorServe(c);
      const proto = real ? TAILOR_SERVE : FRONT;
      const { child, port, setupMs } = real
        ? await startTailorServe(home, isInt8(c) ? 'int8' : 'fp32')
        : { ...(await startServer(c, dir)), setupMs: 0 };
      try {
        await load(port, asks, connections, 2, Math.min(400, maxRequests), proto); // warm-up
        const loadBefore = os.loadavg()[0];
        const r = await load(port, asks, connections, seconds, maxRequests, proto);
        const st = real ? { ...(await tailorStats(port)), setupMs } : await getStats(port);
        const row = {
          case: c,
          title: CASE_TITLES[c],
          rps: r.requests / r.seconds,
          p50: pct(r.latencies, 50),
          p95: pct(r.latencies, 95),
          p99: pct(r.latencies, 99),
          errors: r.errors,
          requests: r.requests,
          accuracy: r.correct / Math.max(1, r.requests - r.errors),
          rss_mib: st.rss / 2 ** 20,
          setup_s: st.setupMs / 1000,
          rows_per_execution: st.inferences / Math.max(1, st.executions),
          load_before: loadBefore,
          load_after: os.loadavg()[0],
        };
        rows.push(row);
        say(
          `${row.title.padEnd(40)} ${row.rps.toFixed(0).padStart(6)} req/s  p50 ${row.p50.toFixed(1)} p95 ${row.p95.toFixed(1)} p99 ${row.p99.toFixed(1)} ms  ` +
            `errors ${row.errors}  RSS ${row.rss_mib.toFixed(0)} MiB  acc ${(row.accuracy * 100).toFixed(1)}%  rows/run ${row.rows_per_execution.toFixed(1)}  ` +
            `setup ${row.setup_s.toFixed(1)} s  load ${loadBefore.toFixed(1)} -> ${row.load_after.toFixed(1)}`,
        );
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    const by = Object.fromEntries(rows.map((r) => [r.case as string, r])) as Record<string, Record<string, number>>;
    const ratios: Record<string, number> = {};
    if (by.a && by.b) ratios.b_over_a_rps = by.b.rps / by.a.rps;
    if (by.b && by.d) ratios.b_over_d_rss = by.b.rss_mib / by.d.rss_mib;
    if (by.b && by.c) ratios.b_over_c_rps = by.b.rps / by.c.rps;
    if (by.a8 && by.b8) ratios.b8_over_a8_rps = by.b8.rps / by.a8.rps;
    if (by.b8 && by.d) ratios.b8_over_d_rss = by.b8.rss_mib / by.d.rss_mib;
    if (by.b && by.b8) ratios.b8_over_b_rps = by.b8.rps / by.b.rps;
    if (ratios.b_over_a_rps !== undefined) say(`(b)/(a) throughput ${ratios.b_over_a_rps.toFixed(2)} (target >= 0.8)`);
    if (ratios.b_over_c_rps !== undefined) say(`(b)/(c) throughput ${ratios.b_over_c_rps.toFixed(2)}`);
    if (ratios.b_over_d_rss !== undefined) say(`RSS (b)/(d) ${ratios.b_over_d_rss.toFixed(2)} (target < 1)`);
    if (ratios.b8_over_a8_rps !== undefined)
      say(`(b8)/(a8) throughput ${ratios.b8_over_a8_rps.toFixed(2)} (target >= 0.8)`);
    if (ratios.b8_over_b_rps !== undefined) say(`(b8)/(b) throughput ${ratios.b8_over_b_rps.toFixed(2)}`);
    if (ratios.b8_over_d_rss !== undefined) say(`RSS (b8)/(d) ${ratios.b8_over_d_rss.toFixed(2)} (target < 1)`);
    for (const k of ['b', 'b8'] as const)
      if (by[k])
        say(
          `(${k}) targets: >= 1000 req/s ${by[k].rps >= 1000 ? 'PASS' : 'MISS'}, p99 < 50 ms ${by[k].p99 < 50 ? 'PASS' : 'MISS'}, zero errors ${by[k].errors === 0 ? 'PASS' : 'MISS'}`,
        );
    if (json)
      console.log(
        JSON.stringify({ connections, seconds, threads: THREADS, adapters: N_ADAPTERS, cases: rows, ratios }),
      );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (args.includes('--child')) await serve(opt('--child', 'a') as CaseName, opt('--dir', ''));
else await main();
