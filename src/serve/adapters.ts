/**
 * Serving LoRA adapters of one base through one `MultiAdapterEngine` (mixed-adapter batches), from the model
 * manager's loader seam. A registered model version is served as an adapter when its LoRA adapter can be found (an
 * `adapter/` folder beside `model/` in its artifact, or the `adapter` artifact of the run that registered it) and
 * the adapter's tailor.json names its base by hash; versions whose adapters name the same base hash share one
 * engine. Everything else (head-only, full fine-tuning, IA3, INT8, folders without an adapter, and LoRA adapters
 * with an MLP head, which the engine's stacked linear heads cannot hold) goes to the folder engine, which serves
 * the version's merged model/.
 *
 * The registry keeps no copy of the base, so the engine's base is rebuilt from the first adapter's merged model
 * (model/ = base + adapter, saved by `saveCustomizedModel`) by subtracting the same adapter delta. That recovers the
 * base's weights up to float32 rounding of one addition, not bit for bit, so its weight hash differs from the one
 * in the adapters' lineage: adapters are grouped (and checked) by their lineage hash, and each one handed to the
 * engine is re-stamped with the rebuilt base's hash.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ServedModel } from './backend.ts';
import type { BatchingOptions } from './batcher.ts';
import { MultiAdapterEngine, type EngineObserver } from './engine/engine.ts';
import type { BasePrecision } from './engine/precision.ts';
import {
  adapterScaling,
  ConfigError,
  loadAdapter,
  loadArtifact,
  mergeLora,
  readAbstainRule,
  readJson,
  savedHeadKind,
  type AbstainRule,
  type LoraAdapter,
  type LoraWeights,
  type Model,
  type ModelVersion,
  type Registry,
  type TargetSpec,
} from './library.ts';
import type { ServeMetrics } from './metrics.ts';
import type { ModelLoader } from './models.ts';

/** Settings of the mixed-adapter engines. */
export interface MixedAdapterOptions {
  /** Serve LoRA adapters through shared mixed-adapter engines (default true); false serves each merged model alone. */
  enabled?: boolean;
  /** Bytes of adapter slots per base (default 256 MiB). */
  cacheBytes?: number;
  /** Largest adapter rank an engine accepts (default the largest of the adapters it starts with, at least 8). */
  maxRank?: number;
  /** Most labels per adapter head (default the most of the adapters it starts with, at least 64). */
  maxLabels?: number;
  /**
   * Modules that get a LoRA branch in the engine's graph (a regular expression on module paths, or PEFT names);
   * default every linear module of the body, so any adapter of the base fits. Every branch costs compute on every
   * row, so naming the modules the adapters adapt is faster; an adapter adapting another module fails to load.
   */
  modules?: TargetSpec;
  /** ORT runs in flight at once per engine (default 1). */
  concurrency?: number;
  /** Precision of each engine's shared base weights (default 'fp32'; see EngineOptions.basePrecision). */
  basePrecision?: BasePrecision;
}

/** What the loader needs from the server. */
export interface AdapterLoaderOptions extends MixedAdapterOptions {
  registry: Registry;
  metrics: ServeMetrics;
  /** The loader for everything that is not a LoRA adapter. */
  fallback: ModelLoader;
  batching?: BatchingOptions;
  intraOpThreads?: number;
}

/** A LoRA adapter found for a model version, with the base hash its lineage names and the kind of its head. */
interface Found {
  dir: string;
  baseHash: string;
  /** From the safetensors header: an `mlp` head does not fit the engine's stacked linear heads. */
  headKind: 'linear' | 'mlp' | undefined;
}

const isFile = (p: string): boolean => fs.existsSync(p) && fs.statSync(p).isFile();

/** The adapter folder if `dir` is a LoRA adapter with a lineage naming its base hash. */
function loraAdapterAt(dir: string): Found | undefined {
  if (!isFile(path.join(dir, 'adapter_config.json')) || !isFile(path.join(dir, 'tailor.json'))) return undefined;
  const t = readJson(path.join(dir, 'tailor.json')) as { kind?: unknown; lineage?: { base?: { hash?: unknown } } };
  const hash = t.lineage?.base?.hash;
  if (t.kind !== 'lora-adapter' || typeof hash !== 'string' || hash === '') return undefined;
  return { dir, baseHash: hash, headKind: savedHeadKind(dir) };
}

/** Where a model version's LoRA adapter lies: `<artifact>/adapter`, else its run's `adapter` artifact. */
export async function findAdapter(registry: Registry, mv: ModelVersion, dir: string): Promise<Found | undefined> {
  const beside = loraAdapterAt(path.join(dir, 'adapter'));
  if (beside) return beside;
  if (!mv.runId) return undefined;
  // The store's list, not showRun: that one sweeps stale runs, a write the server has no business doing.
  const arts = await registry.metadata.listArtifacts(mv.runId);
  const art = arts.find((a) => a.kind === 'adapter' || a.path === 'adapter');
  // In place on a local store; downloaded once, by content hash, from a remote one.
  return art ? loraAdapterAt(await registry.artifacts.materialize(art.hash)) : undefined;
}

/** The base under a merged LoRA model: the merged weights minus the same adapter delta (see the module comment). */
export function unmergedBase(merged: Model, adapter: LoraAdapter): Model {
  const negated = new Map<string, LoraWeights>();
  for (const [m, w] of adapter.weights) negated.set(m, { ...w, B: w.B.map((x) => -x) });
  return mergeLora(merged, negated, (m) => adapterScaling(adapter, m)).model;
}

/**
 * The labels of the classifier a version registered (its tailor.json), read without loading its merged ONNX model:
 * only the first adapter of a base needs the model itself.
 */
function registeredLabels(dir: string): string[] | undefined {
  for (const f of [path.join(dir, 'tailor.json'), path.join(dir, 'model', 'tailor.json')]) {
    if (!isFile(f)) continue;
    const labels = (readJson(f) as { labels?: unknown }).labels;
    return Array.isArray(labels) && labels.every((l) => typeof l === 'string') ? (labels as string[]) : undefined;
  }
  return undefined;
}

/** The abstain rule stored beside the version's tailor.json (abstain.json), if any. */
async function registeredAbstain(dir: string, labels: readonly string[] | undefined): Promise<AbstainRule | undefined> {
  if (!labels) return undefined;
  for (const d of [dir, path.join(dir, 'model')])
    if (isFile(path.join(d, 'tailor.json'))) return readAbstainRule(d, labels);
  return undefined;
}

interface Group {
  engine: MultiAdapterEngine;
  /** Short label for metrics: `lora:<first 12 hex of the lineage base hash>`. */
  label: string;
}

/** Loads model versions, sending LoRA adapters to one mixed-adapter engine per base. */
export class AdapterEngines {
  private readonly groups = new Map<string, Promise<Group>>();
  private readonly ready: Group[] = [];

  constructor(private readonly opts: AdapterLoaderOptions) {}

  /** The manager's loader. */
  readonly loader: ModelLoader = async (mv, dir) => {
    if (this.opts.enabled === false) return this.opts.fallback(mv, dir);
    const found = await findAdapter(this.opts.registry, mv, dir);
    // An MLP head would be refused by the engine (checkAdapterFits); its merged model/ serves it exactly.
    if (!found || found.headKind === 'mlp') return this.opts.fallback(mv, dir);
    return this.loadAdapterModel(mv, dir, found);
  };

  /** Engines started so far (one per base). */
  get engines(): MultiAdapterEngine[] {
    return this.ready.map((g) => g.engine);
  }

  private async loadAdapterModel(mv: ModelVersion, dir: string, found: Found): Promise<ServedModel> {
    const labels = registeredLabels(dir);
    const abstain = await registeredAbstain(dir, labels);
    const group = await this.group(found, dir);
    const rebuilt = group.engine.graph.baseHash;
    const load = async (): Promise<LoraAdapter> => {
      const a = await loadAdapter(found.dir);
      const lineage = a.lineage;
      if (!lineage || lineage.base.hash !== found.baseHash)
        throw new ConfigError(
          `adapter of ${mv.name}:${mv.version} in ${found.dir} no longer names base ${found.baseHash} in its tailor.json`,
          { file: path.join(found.dir, 'tailor.json'), field: 'lineage.base.hash' },
        );
      return { ...a, lineage: { ...lineage, base: { ...lineage.base, hash: rebuilt } } };
    };
    const model = group.engine.model(mv.name, mv.version, load, { labels, ...(abstain ? { abstain } : {}) });
    // Loaded now, so a broken adapter fails this version's load (503 for it alone) instead of its first request.
    try {
      await model.ready();
    } catch (e) {
      await model.release(); // forget the registration, so a later load of this version starts afresh
      throw e;
    }
    return model;
  }

  private group(found: Found, dir: string): Promise<Group> {
    let g = this.groups.get(found.baseHash);
    if (!g) {
      g = this.createGroup(found, dir);
      this.groups.set(found.baseHash, g);
      // A base that failed to build is tried again with the next adapter of it.
      g.catch(() => this.groups.delete(found.baseHash));
    }
    return g;
  }

  private async createGroup(found: Found, dir: string): Promise<Group> {
    const { model: merged, info } = await loadArtifact(dir);
    const adapter = await loadAdapter(found.dir);
    const base = unmergedBase(merged, adapter);
    const rank = Math.max(...[...adapter.weights.values()].map((w) => w.r));
    const label = `lora:${found.baseHash.replace(/^sha256:/, '').slice(0, 12)}`;
    const b = this.opts.batching ?? {};
    const metrics = this.opts.metrics;
    // The observer is built before the engine it observes; it reads the engine through this box.
    const box: { engine?: MultiAdapterEngine } = {};
    const resident = (): void => metrics.adaptersLoaded.set(this.ready.reduce((s, g) => s + g.engine.pool.resident, 0));
    const labels = { model: label, version: 'mixed' };
    const observer: EngineObserver = {
      onExecution: (s) => {
        metrics.executions.inc(labels);
        metrics.inferences.inc(labels, s.batchSize);
        metrics.batchSize.observe(labels, s.batchSize);
        metrics.computeDuration.observe(labels, s.computeMs / 1000);
        for (const q of s.queueMs) metrics.queueDuration.observe(labels, q / 1000);
        if (box.engine) metrics.queueDepth.set(labels, box.engine.queueDepth);
        resident();
      },
      onCache: (event) => {
        if (event === 'hit') metrics.adapterCacheHits.inc();
        else if (event === 'miss') metrics.adapterCacheMisses.inc();
        else metrics.adapterCacheEvictions.inc();
      },
      onLoad: () => resident(),
    };
    const engine = await MultiAdapterEngine.create(base, {
      maxRank: this.opts.maxRank ?? Math.max(8, rank),
      maxLabels: this.opts.maxLabels ?? Math.max(64, info.labels.length),
      cacheBytes: this.opts.cacheBytes,
      maxBatchSize: b.maxBatchSize,
      maxQueueDelayMs: b.maxQueueDelayMs,
      maxQueueRows: b.maxQueueSize,
      concurrency: this.opts.concurrency,
      modules: this.opts.modules,
      basePrecision: this.opts.basePrecision,
      // One sequence length for all its adapters: the first one's (each was trained with the customize default).
      maxLength: info.maxLength,
      session: { intraOpThreads: this.opts.intraOpThreads },
      observer,
    });
    box.engine = engine;
    const group = { engine, label };
    this.ready.push(group);
    return group;
  }

  /** Closes every engine (after the manager has released their adapters). */
  async close(): Promise<void> {
    const groups = await Promise.allSettled([...this.groups.values()]);
    this.groups.clear();
    for (const g of groups) if (g.status === 'fulfilled') await g.value.engine.close();
  }
}
