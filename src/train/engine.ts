/**
 * The training engine: holds parameters and optimizer state as ORT tensors, compiles and caches one session per
 * static input shape, and runs optimizer steps (forward + backward + update in ORT, no per-element JS).
 *
 * Per-step copying is kept to what ORT's node binding cannot avoid: inputs are fed as the very `ort.Tensor` objects
 * the previous step wrote, and updated values are written into pre-allocated spare tensors passed as fetches, which
 * then swap with the current ones (ping-pong). Nothing is updated in place, so a step whose loss or gradient norm is
 * not finite is discarded without touching the last good state.
 */
import { ConfigError, TrainingError } from '../errors.ts';
import type { Graph } from '../onnx/ir.ts';
import { modelFromGraph } from '../onnx/ir.ts';
import { Session, ort, type SessionOptions } from '../runtime/session.ts';
import type { ProfileSummary } from '../runtime/profile.ts';
import {
  accumName,
  bindingsFromDims,
  bufferInfos,
  type BufferInfo,
  buildOptimizerGraph,
  buildTrainingGraphs,
  evalGraph,
  gradName,
  LOSS_OUTPUT,
  paramsToInputs,
  resolveTrainable,
  withLoss,
  type DropoutSite,
  type GradientBuilder,
  type LossSpec,
  type ParamInfo,
  type ShapeOracle,
} from './graph.ts';
import {
  GRAD_NORM,
  GRAD_SCALE,
  learningRateAt,
  nextName,
  optimizerScalars,
  slotName,
  updateRule,
  type OptimizerConfig,
  type ScheduleConfig,
  type UpdateRule,
} from './optim/index.ts';
import { TrainRng, type RngState } from '../util/rng.ts';
import { buildGradientGraph } from '../autodiff/index.ts';
import { inferShapes, staticShape, valueType } from '../onnx/shapes/index.ts';

/** Static shapes from src/onnx/shapes, for sizing dropout noise. */
export const inferredShapes: ShapeOracle = (graph, bindings) => {
  const g = inferShapes(graph, { bindings, allowUnknown: true });
  return (value) => {
    const t = valueType(g, value);
    return t ? staticShape(value, t.shape) : undefined;
  };
};

/** A batch: input name -> tensor (inputs and labels). */
export type Batch = Record<string, ort.Tensor>;

export interface EngineOptions {
  loss: LossSpec;
  trainable: readonly string[] | ((name: string) => boolean);
  optimizer: OptimizerConfig;
  schedule?: ScheduleConfig;
  maxGradNorm?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccumulation?: number;
  noDecay?: (name: string) => boolean;
  /** 'fused' (default) or 'separate' optimizer graph. */
  mode?: 'fused' | 'separate';
  /** Model outputs returned by `evaluate` (default: all of the model's outputs). */
  evalOutputs?: readonly string[];
  /** Default: src/autodiff's buildGradientGraph. */
  gradients?: GradientBuilder;
  /** Default: src/onnx/shapes inference. */
  shapes?: ShapeOracle;
  session?: SessionOptions;
  /** Pre-allocate and reuse output tensors (default true). */
  preallocate?: boolean;
}

export interface StepResult {
  /** Mean loss over the micro-batches of the step (float32 value read back as a number). */
  loss: number;
  gradNorm: number;
  lr: number;
  step: number;
}

/** Everything needed to continue training: plain arrays, so a checkpoint can store them. */
export interface EngineState {
  step: number;
  params: Record<string, Float32Array>;
  slots: Record<string, Float32Array>;
  /** BatchNorm running statistics (absent in states written before they were carried: initial values are kept). */
  buffers?: Record<string, Float32Array>;
}

interface Compiled {
  key: string;
  /** The graphs behind the sessions (fused step or gradients), for inspection. */
  graphs: Graph[];
  step?: Session;
  grad?: Session;
  dropout: DropoutSite[];
  noise: Float32Array[];
  /** Second set of mask buffers, filled for the next step while ORT runs the current one. */
  nextNoise: Float32Array[];
}

/** Masks drawn ahead from a copy of the run generator: valid while the generator still stands at `start`. */
interface Prefetched {
  key: string;
  start: RngState;
  end: RngState;
}

const sameState = (a: RngState, b: RngState): boolean => a.s.every((v, i) => v === b.s[i]);

function f32(dims: readonly number[], data?: Float32Array): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor('float32', data ?? new Float32Array(n), [...dims]);
}

function initValues(bytes: Uint8Array): Float32Array {
  const v = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(v.buffer).set(bytes);
  return v;
}

function scalar(v: number): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.of(v), []);
}

function shapeKey(batch: Batch): string {
  return Object.keys(batch)
    .sort()
    .map((k) => `${k}:${batch[k].dims.join('x')}`)
    .join(',');
}

export class TrainingEngine {
  readonly params: ParamInfo[];
  /** BatchNorm running statistics, updated by every training forward pass and used by `evaluate`. */
  readonly buffers: BufferInfo[];
  readonly rule: UpdateRule;
  /** Optimizer steps taken. */
  step = 0;
  private cur = new Map<string, ort.Tensor>();
  private spare = new Map<string, ort.Tensor>();
  private bufCur = new Map<string, ort.Tensor>();
  private bufSpare = new Map<string, ort.Tensor>();
  private accCur = new Map<string, ort.Tensor>();
  private accSpare = new Map<string, ort.Tensor>();
  private zeros = new Map<string, ort.Tensor>();
  private compiled = new Map<string, Compiled>();
  private evalSession?: Session;
  private optimizerSession?: Session;
  private microLosses: number[] = [];
  private prefetched?: Prefetched;
  private readonly accumSteps: number;
  private readonly mode: 'fused' | 'separate';

  constructor(
    readonly model: Graph,
    readonly opts: EngineOptions,
    private readonly rng: TrainRng,
  ) {
    this.accumSteps = opts.gradAccumulation ?? 1;
    if (!Number.isInteger(this.accumSteps) || this.accumSteps < 1)
      throw new ConfigError(`gradAccumulation must be a positive integer, got ${this.accumSteps}`, {
        field: 'gradAccumulation',
      });
    this.mode = opts.mode ?? 'fused';
    this.rule = updateRule(opts.optimizer);
    this.params = paramsToInputs(model, resolveTrainable(model, opts.trainable), opts.noDecay).params;
    for (const p of this.params) {
      this.cur.set(p.name, f32(p.shape, initValues(p.init.data)));
      for (const s of this.rule.slots) this.cur.set(slotName(s, p.name), f32(p.shape));
    }
    this.buffers = bufferInfos(model);
    for (const buf of this.buffers) this.bufCur.set(buf.name, f32(buf.shape, initValues(buf.init.data)));
  }

  /** Names of all state tensors: parameters and optimizer slots. */
  get stateNames(): string[] {
    return [...this.cur.keys()];
  }

  /**
   * ORT's memory pattern is off unless the caller's session options turn it on: with the arena on it made every
   * session hold its activations twice (see SessionOptions.memoryPattern), and steps measured no slower without it
   * (LoRA all-linear on USE-lite, batch 32 x 44 tokens, 30 interleaved steps: 1764 vs 1841 ms median, -100 MB).
   */
  private sessionOpts(label: string): SessionOptions {
    return { memoryPattern: false, ...this.opts.session, label };
  }

  private async compile(batch: Batch): Promise<Compiled> {
    const key = shapeKey(batch);
    const hit = this.compiled.get(key);
    if (hit) return hit;
    const dims: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(batch)) dims[k] = [...t.dims];
    const base = {
      loss: this.opts.loss,
      trainable: this.opts.trainable,
      optimizer: this.opts.optimizer,
      maxGradNorm: this.opts.maxGradNorm,
      noDecay: this.opts.noDecay,
      gradients: this.opts.gradients ?? buildGradientGraph,
      shapes: this.opts.shapes ?? inferredShapes,
    };
    // Bindings come from the batch dims of the inputs the model itself declares; label inputs the loss adds are static.
    const bindings = bindingsFromDims(this.model, dims);
    const accumulate = this.accumSteps > 1;
    const c: Compiled = { key, graphs: [], dropout: [], noise: [], nextNoise: [] };
    if (this.mode === 'fused') {
      const g = buildTrainingGraphs(this.model, { ...base, bindings, mode: 'fused', accumulate });
      c.graphs.push(g.train);
      c.step = await Session.create(modelFromGraph(g.train), this.sessionOpts(`training step ${key}`));
      c.dropout = g.dropout;
    }
    if (this.mode === 'separate' || accumulate) {
      const g = buildTrainingGraphs(this.model, { ...base, bindings, mode: 'separate', accumulate });
      c.graphs.push(g.train);
      c.grad = await Session.create(modelFromGraph(g.train), this.sessionOpts(`gradients ${key}`));
      c.dropout = g.dropout;
    }
    c.noise = c.dropout.map((d) => new Float32Array(d.shape.reduce((a, b) => a * b, 1)));
    c.nextNoise = c.dropout.map((d) => new Float32Array(d.shape.reduce((a, b) => a * b, 1)));
    this.compiled.set(key, c);
    return c;
  }

  private spareFor(name: string, like: ort.Tensor, pool: Map<string, ort.Tensor>): ort.Tensor | null {
    if (this.opts.preallocate === false) return null;
    let t = pool.get(name);
    if (!t) {
      t = f32(like.dims);
      pool.set(name, t);
    }
    return t;
  }

  private noiseFeeds(c: Compiled): Batch {
    const feeds: Batch = {};
    const pre = this.prefetched;
    this.prefetched = undefined;
    if (pre && pre.key === c.key && sameState(this.rng.getState(), pre.start)) {
      // The masks drawn during the previous run are exactly what drawing now would give: use them.
      [c.noise, c.nextNoise] = [c.nextNoise, c.noise];
      this.rng.setState(pre.end);
    } else {
      c.dropout.forEach((d, i) => this.rng.fillDropoutMask(c.noise[i], d.ratio));
    }
    c.dropout.forEach((d, i) => {
      feeds[d.input] = f32(d.shape, c.noise[i]);
    });
    return feeds;
  }

  /**
   * Draws the next step's dropout masks while ORT runs this step (its `run` is asynchronous), from a copy of the run
   * generator: the generator itself, and so checkpoints and resume, see no difference; `noiseFeeds` uses the masks
   * only if nothing else drew from the generator in between and the batch shape is the same.
   */
  private prefetchMasks(c: Compiled): void {
    if (c.dropout.length === 0) return;
    const start = this.rng.getState();
    const ahead = new TrainRng(start);
    c.dropout.forEach((d, i) => ahead.fillDropoutMask(c.nextNoise[i], d.ratio));
    this.prefetched = { key: c.key, start, end: ahead.getState() };
  }

  /** Starts a run, draws the next masks while it executes, then waits for it. */
  private async runAndPrefetch(
    c: Compiled,
    session: Session,
    feeds: Batch,
    fetches: Record<string, ort.Tensor | null>,
  ): Promise<Record<string, ort.Tensor>> {
    const pending = session.inner.run(feeds, fetches);
    try {
      this.prefetchMasks(c);
    } finally {
      // a failing run must still be awaited, so its rejection is not left unhandled
      await pending.catch(() => undefined);
    }
    return pending;
  }

  private checkFinite(what: string, v: number): void {
    if (!Number.isFinite(v)) {
      throw new TrainingError(
        `${what} is ${v} at step ${this.step + 1}: training stopped (the last good state is kept)`,
        { details: { step: this.step + 1, [what]: v } },
      );
    }
  }

  /** Learning rate of the next optimizer step. */
  get nextLr(): number {
    return learningRateAt(this.opts.optimizer.lr, this.opts.schedule, this.step + 1);
  }

  private updateFetches(): Record<string, ort.Tensor | null> {
    const fetches: Record<string, ort.Tensor | null> = { [GRAD_NORM]: null };
    for (const [name, t] of this.cur) fetches[nextName(name)] = this.spareFor(name, t, this.spare);
    return fetches;
  }

  private commitUpdate(out: Record<string, ort.Tensor>): void {
    const next = new Map<string, ort.Tensor>();
    for (const name of this.cur.keys()) next.set(name, out[nextName(name)]);
    if (this.opts.preallocate !== false) this.spare = this.cur;
    this.cur = next;
  }

  /** Per-step optimizer scalars; `optim::grad_scale` only for graphs that have it (accumulation, separate optimizer). */
  private scalarFeeds(withScale: boolean): Batch {
    const feeds: Batch = {};
    for (const [k, v] of Object.entries(optimizerScalars(this.rule, this.step + 1, this.nextLr, 1 / this.accumSteps))) {
      if (k !== GRAD_SCALE || withScale) feeds[k] = scalar(v);
    }
    return feeds;
  }

  private paramFeeds(): Batch {
    const feeds: Batch = {};
    for (const p of this.params) feeds[p.name] = this.cur.get(p.name) as ort.Tensor;
    return feeds;
  }

  private accumFeeds(): Batch {
    const feeds: Batch = {};
    for (const p of this.params) {
      let z = this.accCur.get(p.name);
      if (!z) {
        z = this.zeros.get(p.name) ?? f32(p.shape);
        this.zeros.set(p.name, z);
      }
      feeds[accumName(p.name)] = z;
    }
    return feeds;
  }

  /**
   * Feeds one micro-batch. Returns the step result when this micro-batch completed an optimizer step, otherwise
   * undefined (gradient accumulation). Throws TrainingError on a non-finite loss or gradient norm.
   */
  async trainBatch(batch: Batch): Promise<StepResult | undefined> {
    const c = await this.compile(batch);
    const last = this.microLosses.length + 1 === this.accumSteps;
    const accumulate = this.accumSteps > 1;
    const feeds: Batch = { ...batch, ...this.paramFeeds(), ...this.bufferFeeds(), ...this.noiseFeeds(c) };
    if (accumulate) Object.assign(feeds, this.accumFeeds());
    if (last && this.mode === 'fused') {
      Object.assign(feeds, this.scalarFeeds(accumulate));
      for (const [name, t] of this.cur) if (!(name in feeds)) feeds[name] = t;
      const fetches: Record<string, ort.Tensor | null> = {
        [LOSS_OUTPUT]: null,
        ...this.updateFetches(),
        ...this.bufferFetches(),
      };
      const out = await this.runAndPrefetch(c, c.step as Session, feeds, fetches);
      const loss = this.finishLoss(Number(out[LOSS_OUTPUT].data[0]));
      const gradNorm = Number(out[GRAD_NORM].data[0]);
      this.checkFinite('gradient norm', gradNorm);
      const lr = this.nextLr;
      this.commitUpdate(out);
      this.commitBuffers(out);
      this.accCur.clear();
      this.step++;
      return { loss, gradNorm, lr, step: this.step };
    }
    const fetches: Record<string, ort.Tensor | null> = { [LOSS_OUTPUT]: null, ...this.bufferFetches() };
    for (const p of this.params)
      fetches[gradName(p.name)] = this.spareFor(p.name, this.cur.get(p.name) as ort.Tensor, this.accSpare);
    const out = await this.runAndPrefetch(c, c.grad as Session, feeds, fetches);
    const microLoss = Number(out[LOSS_OUTPUT].data[0]);
    if (!last) {
      this.checkFinite('loss', microLoss);
      this.microLosses.push(microLoss);
      this.swapAccum(out);
      this.commitBuffers(out);
      return undefined;
    }
    const loss = this.finishLoss(microLoss);
    const r = await this.applySeparate(out, loss);
    this.commitBuffers(out);
    return r;
  }

  private bufferFeeds(): Batch {
    return Object.fromEntries(this.bufCur);
  }

  private bufferFetches(): Record<string, ort.Tensor | null> {
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const [name, t] of this.bufCur) fetches[nextName(name)] = this.spareFor(name, t, this.bufSpare);
    return fetches;
  }

  /** Running statistics move forward only with a step that succeeded (same ping-pong as parameters). */
  private commitBuffers(out: Record<string, ort.Tensor>): void {
    if (this.bufCur.size === 0) return;
    const next = new Map<string, ort.Tensor>();
    for (const name of this.bufCur.keys()) next.set(name, out[nextName(name)]);
    if (this.opts.preallocate !== false) this.bufSpare = this.bufCur;
    this.bufCur = next;
  }

  private swapAccum(out: Record<string, ort.Tensor>): void {
    const next = new Map<string, ort.Tensor>();
    for (const p of this.params) next.set(p.name, out[gradName(p.name)]);
    if (this.opts.preallocate !== false) {
      // The zero tensors fed at the first micro-batch are not spares; keep them out of the pool.
      const old = this.accCur;
      this.accSpare = old.size ? old : new Map();
    }
    this.accCur = next;
  }

  private finishLoss(last: number): number {
    this.checkFinite('loss', last);
    const all = [...this.microLosses, last];
    this.microLosses = [];
    return all.reduce((a, b) => a + b, 0) / all.length;
  }

  private async applySeparate(gradOut: Record<string, ort.Tensor>, loss: number): Promise<StepResult> {
    if (!this.optimizerSession) {
      this.optimizerSession = await Session.create(
        modelFromGraph(buildOptimizerGraph(this.params, this.opts.optimizer, this.opts.maxGradNorm)),
        this.sessionOpts('optimizer'),
      );
    }
    const feeds: Batch = { ...this.scalarFeeds(true) };
    for (const [name, t] of this.cur) feeds[name] = t;
    for (const p of this.params) feeds[gradName(p.name)] = gradOut[gradName(p.name)];
    const out = await this.optimizerSession.inner.run(feeds, this.updateFetches());
    const gradNorm = Number(out[GRAD_NORM].data[0]);
    this.checkFinite('gradient norm', gradNorm);
    const lr = this.nextLr;
    this.commitUpdate(out);
    if (this.accumSteps > 1) this.swapAccum(gradOut);
    this.accCur.clear();
    this.step++;
    return { loss, gradNorm, lr, step: this.step };
  }

  /**
   * Runs the eval graph (Dropout off) on a batch; returns the model outputs and `loss`. One session serves every
   * batch shape: the eval graph keeps the model's symbolic dims (nothing in it needs static shapes, unlike the
   * training graph's dropout noise). A session per shape held one ORT arena per shape: validating 3,000 rows at
   * batch 256 made two, the full batches' and the 184-row remainder's, +300 MB on USE-lite.
   */
  async evaluate(batch: Batch): Promise<Record<string, ort.Tensor>> {
    if (!this.evalSession) {
      let g = this.model;
      const keep = this.opts.evalOutputs ?? g.outputs.map((o) => o.name);
      g = withLoss(evalGraph(g), this.opts.loss, keep).graph;
      g = paramsToInputs(g, [...this.params.map((p) => p.name), ...this.buffers.map((buf) => buf.name)]).graph;
      this.evalSession = await Session.create(modelFromGraph(g), this.sessionOpts('eval'));
    }
    return this.evalSession.run({ ...batch, ...this.paramFeeds(), ...this.bufferFeeds() });
  }

  /**
   * Current parameter values and BatchNorm running statistics (views of the live tensors: copy before keeping them
   * across steps).
   */
  paramValues(): Map<string, Float32Array> {
    const out = new Map(this.params.map((p) => [p.name, (this.cur.get(p.name) as ort.Tensor).data as Float32Array]));
    for (const [name, t] of this.bufCur) out.set(name, t.data as Float32Array);
    return out;
  }

  /** A copy of the state, for checkpoints. */
  getState(): EngineState {
    const params: Record<string, Float32Array> = {};
    const slots: Record<string, Float32Array> = {};
    const names = new Set(this.params.map((p) => p.name));
    for (const [k, t] of this.cur) (names.has(k) ? params : slots)[k] = Float32Array.from(t.data as Float32Array);
    const buffers: Record<string, Float32Array> = {};
    for (const [k, t] of this.bufCur) buffers[k] = Float32Array.from(t.data as Float32Array);
    return { step: this.step, params, slots, ...(this.bufCur.size ? { buffers } : {}) };
  }

  /** Restores a state from `getState` (or a checkpoint). Missing slots are zero (e.g. weights-only restore). */
  setState(state: EngineState): void {
    for (const [k, t] of this.cur) {
      const v = state.params[k] ?? state.slots[k];
      if (!v) {
        if (k in state.params || this.params.some((p) => p.name === k))
          throw new ConfigError(`state has no value for parameter '${k}'`, { field: k });
        (t.data as Float32Array).fill(0);
        continue;
      }
      if (v.length !== t.size)
        throw new ConfigError(`state value '${k}' has ${v.length} elements, expected ${t.size}`, { field: k });
      this.cur.set(k, f32(t.dims, Float32Array.from(v)));
    }
    for (const buf of this.buffers) {
      const v = state.buffers?.[buf.name] ?? initValues(buf.init.data);
      const n = buf.shape.reduce((a, b) => a * b, 1);
      if (v.length !== n)
        throw new ConfigError(`state value '${buf.name}' has ${v.length} elements, expected ${n}`, { field: buf.name });
      this.bufCur.set(buf.name, f32(buf.shape, Float32Array.from(v)));
    }
    this.bufSpare.clear();
    this.step = state.step;
    this.accCur.clear();
    this.microLosses = [];
  }

  /**
   * The model graph with trained parameters (and BatchNorm running statistics, where `values` has them) written back
   * as initializers (a new graph; the input is unchanged).
   */
  exportGraph(values: Map<string, Float32Array> = this.paramValues()): Graph {
    const g = { ...this.model, initializers: new Map(this.model.initializers) };
    for (const p of [...this.params, ...this.buffers]) {
      const cur = values.get(p.name);
      if (!cur) continue;
      const v = Float32Array.from(cur);
      g.initializers.set(p.name, {
        name: p.name,
        dtype: 'float32',
        dims: [...p.shape],
        data: new Uint8Array(v.buffer),
      });
    }
    return g;
  }

  /**
   * Labels of the ORT sessions the engine holds: one training session per batch shape (two with gradient
   * accumulation), one eval session for every shape, the separate optimizer's. Each keeps its own memory arena
   * until `release`.
   */
  sessionLabels(): string[] {
    const sessions = [...this.compiled.values()].flatMap((c) => [c.step, c.grad]);
    return [...sessions, this.evalSession, this.optimizerSession].flatMap((s) => (s ? [s.label] : []));
  }

  /** The training graphs compiled so far (one per batch shape; two with accumulation), e.g. to count nodes. */
  trainingGraphs(): Graph[] {
    return [...this.compiled.values()].flatMap((c) => c.graphs);
  }

  /**
   * Ends ORT's profiler on every training session (the engine must have been created with `session.profile`) and
   * returns one summary per session: kernel time per op type and per node.
   */
  async endProfiling(): Promise<ProfileSummary[]> {
    const out: ProfileSummary[] = [];
    for (const c of this.compiled.values()) {
      for (const s of [c.step, c.grad]) if (s?.profiling) out.push(await s.endProfiling());
    }
    if (this.optimizerSession?.profiling) out.push(await this.optimizerSession.endProfiling());
    return out;
  }

  async release(): Promise<void> {
    for (const c of this.compiled.values()) {
      await c.step?.release();
      await c.grad?.release();
    }
    await this.evalSession?.release();
    await this.optimizerSession?.release();
    this.compiled.clear();
    this.evalSession = undefined;
    this.optimizerSession = undefined;
  }
}
