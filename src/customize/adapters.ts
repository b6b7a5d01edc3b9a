/**
 * Using adapters with a loaded base: apply one (a model with LoRA nodes), merge one into the weights (a standalone
 * ONNX model), or host many on one session and switch per call.
 *
 * Switching: the host graph carries the base weights as initializers and takes every adapter tensor (A, B, the
 * scaling and the classifier, an MLP head's hidden layer included) as graph inputs, so one ORT session serves every
 * adapter and switching is feeding other tensors; the base is loaded once. Modules an adapter does not adapt get
 * rank-1 zero tensors. The graph has one head subgraph, so a host's adapters share one head kind.
 */
import { ConfigError } from '../errors.ts';
import type { Model } from '../models/model.ts';
import { toOnnxModel } from '../models/model.ts';
import { cloneGraph } from '../onnx/ir.ts';
import { ort, Session, type Feeds, type Fetches, type SessionOptions } from '../runtime/session.ts';
import {
  attachHead,
  featureValue,
  featureWidth,
  HEAD_KINDS,
  LOGITS,
  MLP_DENSE_BIAS,
  MLP_DENSE_WEIGHT,
  type HeadKind,
} from '../models/head.ts';
import { baseHash } from './lineage.ts';
import { injectLora, loraAName, loraBName, mergeLora, type MergedModel } from './lora.ts';
import {
  adapterHeadKind,
  adapterHeadSpec,
  adapterScaling,
  checkAdapterBase,
  checkAdapterHead,
  type AdapterHead,
  type LoraAdapter,
} from './peft.ts';
import { linearSites } from './sites.ts';

function withAdapterHead(base: Model, adapter: LoraAdapter): Model {
  if (!adapter.head) return base;
  return attachHead(base, adapterHeadSpec(adapter.head));
}

function checkModules(base: Model, adapter: LoraAdapter): void {
  const sites = new Map(linearSites(base).map((s) => [s.module, s]));
  for (const [m, w] of adapter.weights) {
    const s = sites.get(m);
    if (!s) {
      throw new ConfigError(
        `adapter adapts module '${m}', which the base lacks; the base's linear modules are: ${[...sites.keys()].join(', ')}`,
        { field: m },
      );
    }
    if (s.inFeatures !== w.inFeatures || s.outFeatures !== w.outFeatures) {
      throw new ConfigError(
        `adapter tensors for '${m}' fit a [${w.inFeatures}, ${w.outFeatures}] weight (PyTorch [${w.outFeatures}, ${w.inFeatures}]) but the base's is [${s.inFeatures}, ${s.outFeatures}]`,
        { field: m },
      );
    }
  }
  const h = adapter.head;
  if (h) {
    const D = featureWidth(base, featureValue(base));
    if (D !== h.features)
      throw new ConfigError(`adapter's classifier reads ${h.features} features but the base yields ${D}`, {
        field: 'classifier.weight',
      });
    checkAdapterHead(h, D);
  }
}

/** The base with the adapter's head and LoRA nodes (adapter tensors as initializers). Checks hash and shapes. */
export function applyAdapter(base: Model, adapter: LoraAdapter): Model {
  checkAdapterBase(adapter, baseHash(base));
  checkModules(base, adapter);
  const headed = withAdapterHead(base, adapter);
  // Rank and scaling may differ per module (rank_pattern/alpha_pattern), so each module is injected on its own.
  let m = headed;
  for (const mod of adapter.weights.keys()) {
    const w = adapter.weights.get(mod)!;
    const sc = adapterScaling(adapter, mod);
    m = injectLora(m, { targets: [mod], r: w.r, alpha: sc * w.r, dropout: 0 }, adapter.weights).model;
  }
  return m;
}

/** Folds the adapter (and its head) into the base: a plain ONNX model, plus what `unmergeLora` needs. */
export function mergeAdapter(base: Model, adapter: LoraAdapter): MergedModel {
  checkAdapterBase(adapter, baseHash(base));
  checkModules(base, adapter);
  const headed = withAdapterHead(base, adapter);
  return mergeLora(headed, adapter.weights, (m) => adapterScaling(adapter, m));
}

interface HostFeeds {
  tensors: Record<string, ort.Tensor>;
}

/**
 * Refuses an adapter whose head kind differs from the host's: the host graph has one head subgraph, and a linear
 * head is no MLP head with some values (tanh sits between the layers), so it cannot take the other kind's feeds.
 */
function checkHeadKind(name: string, head: AdapterHead, kind: HeadKind): void {
  const k = adapterHeadKind(head);
  if (k !== kind)
    throw new ConfigError(
      `adapter '${name}' has a${k === 'mlp' ? 'n' : ''} ${k} head but this host's adapters have ${kind} heads, and one host runs one head graph; host it with adapters whose heads are ${k} too, or serve its merged model (mergeAdapter, or the model/ folder of its saved customization)`,
      { field: name, value: k },
    );
}

/** An adapter head's values as host feeds, under its head parameters' names (the host graph's inputs). */
function headFeeds(h: AdapterHead): Record<string, ort.Tensor> {
  const D = h.features;
  const C = h.labels.length;
  const { out } = HEAD_KINDS[adapterHeadKind(h)];
  const t: Record<string, ort.Tensor> = {
    [out.weight]: new ort.Tensor('float32', h.weight, [D, C]),
    [out.bias]: new ort.Tensor('float32', h.bias, [C]),
  };
  if (h.dense) {
    t[MLP_DENSE_WEIGHT] = new ort.Tensor('float32', h.dense.weight, [D, D]);
    t[MLP_DENSE_BIAS] = new ort.Tensor('float32', h.dense.bias, [D]);
  }
  return t;
}

/** One base, many adapters, one session. Every adapter's head must be of one kind (all linear, or all MLP). */
export class AdapterHost {
  private readonly feeds = new Map<string, HostFeeds>();

  private constructor(
    readonly base: Model,
    readonly modules: string[],
    readonly withHead: boolean,
    private readonly session: Session,
    private readonly hash: string,
    private readonly features: number,
    /** The kind of every adapter's head (undefined without heads). */
    readonly headKind: HeadKind | undefined,
  ) {}

  /**
   * Builds the host graph over the union of the adapters' modules and loads it once. With heads, the head's
   * parameters (an MLP head's hidden layer too) become graph inputs; a ConfigError names an adapter whose head kind
   * differs from the first adapter's.
   */
  static async create(
    base: Model,
    adapters: Record<string, LoraAdapter>,
    opts: SessionOptions = {},
  ): Promise<AdapterHost> {
    const list = Object.values(adapters);
    if (list.length === 0) throw new ConfigError('an adapter host needs at least one adapter', { field: 'adapters' });
    const heads = list.filter((a) => a.head).length;
    if (heads !== 0 && heads !== list.length)
      throw new ConfigError('either every adapter carries a classifier or none does', { field: 'adapters' });
    const hash = baseHash(base);
    const kind = heads > 0 ? adapterHeadKind(list[0].head!) : undefined;
    for (const [name, a] of Object.entries(adapters)) {
      checkAdapterBase(a, hash, `adapter '${name}'`);
      checkModules(base, a);
      if (kind) checkHeadKind(name, a.head!, kind);
    }
    const modules = [...new Set(list.flatMap((a) => [...a.weights.keys()]))];
    let m = base;
    let D = 0;
    if (kind) {
      D = list[0].head!.features;
      m = attachHead(base, { labels: list[0].head!.labels, kind });
      const layout = HEAD_KINDS[kind];
      const g = cloneGraph(m.graph);
      const params = new Map(m.params);
      for (const p of layout.params) {
        const info = m.params.get(p)!;
        g.initializers.delete(info.initializer);
        params.delete(p);
        // The output layer's label count varies per adapter; the hidden layer is [D, D] / [D] for all of them.
        const shape = p === layout.out.weight ? [D, 'labels'] : p === layout.out.bias ? ['labels'] : [...info.shape];
        g.inputs.push({ name: info.initializer, dtype: 'float32', shape });
      }
      g.outputs = g.outputs.map((o) => (o.name === LOGITS ? { ...o, shape: ['batch', 'labels'] } : o));
      m = { ...m, graph: g, params };
    }
    m = injectLora(m, { targets: modules, r: 1 }, undefined, 'inputs').model;
    const session = await Session.create(toOnnxModel(m), { label: 'adapter host', ...opts });
    const host = new AdapterHost(base, modules, kind !== undefined, session, hash, D, kind);
    for (const [name, a] of Object.entries(adapters)) host.add(name, a);
    return host;
  }

  /** Adds (or replaces) an adapter whose modules are among the host's and whose head is of the host's kind; no reload. */
  add(name: string, adapter: LoraAdapter): void {
    checkAdapterBase(adapter, this.hash, `adapter '${name}'`);
    const extra = [...adapter.weights.keys()].filter((m) => !this.modules.includes(m));
    if (extra.length)
      throw new ConfigError(
        `adapter '${name}' adapts [${extra.join(', ')}], which this host was not built for; create a host with it`,
        { field: name },
      );
    if (this.withHead !== Boolean(adapter.head))
      throw new ConfigError(
        `adapter '${name}' ${adapter.head ? 'has' : 'lacks'} a classifier, unlike this host's adapters`,
        { field: name },
      );
    if (adapter.head && adapter.head.features !== this.features)
      throw new ConfigError(
        `adapter '${name}' classifier reads ${adapter.head.features} features, the base yields ${this.features}`,
        { field: name },
      );
    if (adapter.head && this.headKind) {
      checkHeadKind(name, adapter.head, this.headKind);
      checkAdapterHead(adapter.head, this.features, `adapter '${name}'`);
    }
    const sites = new Map(linearSites(this.base).map((s) => [s.module, s]));
    const t: Record<string, ort.Tensor> = {};
    for (const m of this.modules) {
      const s = sites.get(m)!;
      const w = adapter.weights.get(m);
      t[loraAName(m)] = w
        ? new ort.Tensor('float32', w.A, [s.inFeatures, w.r])
        : new ort.Tensor('float32', new Float32Array(s.inFeatures), [s.inFeatures, 1]);
      t[loraBName(m)] = w
        ? new ort.Tensor('float32', w.B, [w.r, s.outFeatures])
        : new ort.Tensor('float32', new Float32Array(s.outFeatures), [1, s.outFeatures]);
      t[`${m}.lora_scaling`] = new ort.Tensor('float32', Float32Array.of(w ? adapterScaling(adapter, m) : 0), []);
    }
    if (adapter.head) Object.assign(t, headFeeds(adapter.head));
    this.feeds.set(name, { tensors: t });
  }

  get names(): string[] {
    return [...this.feeds.keys()];
  }

  /** Runs the base with adapter `name`. */
  async run(name: string, feeds: Feeds, fetches?: readonly string[]): Promise<Fetches> {
    const f = this.feeds.get(name);
    if (!f)
      throw new ConfigError(`no adapter named '${name}' (loaded: ${this.names.join(', ')})`, {
        field: 'adapter',
        value: name,
      });
    return this.session.run({ ...feeds, ...f.tensors }, fetches);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
