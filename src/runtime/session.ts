/**
 * A thin wrapper over onnxruntime-node: sessions from an in-memory Model, bytes or a file, with the execution
 * provider, threads, optimisation level and profiling chosen in one place, and ORT's errors turned into
 * RuntimeError (GraphError for a Model that fails validation before ORT sees it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ConfigError, ModelFileError, RuntimeError } from '../errors.ts';
import type { ModelProto, Tensor } from '../onnx/ir.ts';
import { encodeModel } from '../onnx/serialize.ts';
import { validateModel } from '../onnx/graph.ts';
import { assertProvidersAvailable, providerInitError, type ExecutionProvider } from './providers.ts';
import { summarizeProfile, type ProfileSummary } from './profile.ts';
import { toOrt } from './tensors.ts';

export type { ExecutionProvider } from './providers.ts';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/** A provider by name, or with options (the GPU to use). */
export type ProviderSpec = ExecutionProvider | { name: ExecutionProvider; deviceId?: number };

export interface SessionOptions {
  /**
   * Providers in order of preference; default ['cpu']. ORT runs each node on the first listed provider that
   * supports it and falls back to CPU. Asking for a provider this install lacks is a RuntimeError saying how to get it.
   */
  providers?: ProviderSpec[];
  /** Threads inside one op (default: ORT's choice, the number of physical cores). */
  intraOpThreads?: number;
  /** Threads across independent nodes (only used with parallel execution). */
  interOpThreads?: number;
  /** Default 'all'. */
  optimizationLevel?: GraphOptimizationLevel;
  /**
   * Let ORT's intra-op worker threads busy-wait between ops (ORT's default, true). Spinning lowers latency on an idle
   * machine but burns cores the rest of the process (or other jobs) need; turning it off measured 2.1 s vs 2.9 s per
   * LoRA training step on a loaded 2-core machine.
   */
  allowSpinning?: boolean;
  /**
   * ORT's memory pattern (default true): after the first run with a given input shape, ORT plans every
   * intermediate's offset in one block and allocates that block on later runs. The block comes on top of the chunks
   * the first run left in ORT's memory arena (which a session keeps until it is released), so a session holds its
   * activations twice (USE-lite: +100 MB for a LoRA training step at batch 32, +400 MB for evaluation at batch 256),
   * and one block is planned per input shape. Off, runs reuse the arena's chunks directly; training steps measured
   * no slower. (Turning the arena itself off frees activations after each run but made steps ~30% slower.)
   */
  memoryPattern?: boolean;
  /** Turn on ORT's profiler; read the summary with `Session.endProfiling()`. */
  profile?: boolean | { /** Also copy ORT's raw trace (Chrome trace JSON) here. */ traceFile?: string };
  /** Check a ModelProto's structure (known ops, defined inputs, no cycle) before handing it to ORT. Default true. */
  validate?: boolean;
  /** ORT log level: 0 verbose .. 4 fatal (default 3: errors only). */
  logSeverity?: 0 | 1 | 2 | 3 | 4;
  /** Named in error messages. */
  label?: string;
}

/** Feeds may be ORT tensors or Tailor Tensors (converted without copying when aligned). */
export type Feeds = Record<string, ort.Tensor | Tensor>;
export type Fetches = Record<string, ort.Tensor>;

function isOrtTensor(v: ort.Tensor | Tensor): v is ort.Tensor {
  return v instanceof ort.Tensor || ('type' in v && 'dims' in v && !('dtype' in v));
}

function providerName(p: ProviderSpec): string {
  return typeof p === 'string' ? p : p.name;
}

function checkThreads(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0))
    throw new ConfigError(`${name} must be a non-negative integer (0 = ORT's default), got ${v}`, {
      field: name,
      value: String(v),
    });
}

/** A loaded model ready to run. */
export class Session {
  private profileDir: string | undefined;
  private traceFile: string | undefined;

  private constructor(
    readonly inner: ort.InferenceSession,
    readonly label: string,
    profileDir?: string,
    traceFile?: string,
  ) {
    this.profileDir = profileDir;
    this.traceFile = traceFile;
  }

  /** Creates a session from a ModelProto, serialized bytes, or a path to an `.onnx` file (external data next to it). */
  static async create(source: ModelProto | Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const label = opts.label ?? (typeof source === 'string' ? source : 'in-memory model');
    const providers = opts.providers ?? ['cpu'];
    assertProvidersAvailable(providers.map(providerName));
    checkThreads('intraOpThreads', opts.intraOpThreads);
    checkThreads('interOpThreads', opts.interOpThreads);
    if (typeof source === 'string' && !fs.existsSync(source)) {
      throw new ModelFileError(`cannot load model ${source}: no such file`, { file: source });
    }
    let bytes: Uint8Array | undefined;
    if (typeof source !== 'string' && !(source instanceof Uint8Array)) {
      if (opts.validate ?? true) validateModel(source, { file: label });
      bytes = encodeModel(source);
    } else if (source instanceof Uint8Array) {
      bytes = source;
    }
    const profileDir = opts.profile ? fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-ort-profile-')) : undefined;
    const ortOpts: ort.InferenceSession.SessionOptions = {
      executionProviders: providers.map((p) =>
        typeof p === 'string' ? p : { ...p },
      ) as ort.InferenceSession.ExecutionProviderConfig[],
      graphOptimizationLevel: opts.optimizationLevel ?? 'all',
      logSeverityLevel: opts.logSeverity ?? 3,
      ...(opts.intraOpThreads !== undefined ? { intraOpNumThreads: opts.intraOpThreads } : {}),
      ...(opts.interOpThreads !== undefined
        ? { interOpNumThreads: opts.interOpThreads, executionMode: 'parallel' as const }
        : {}),
      // ORT names the trace `<prefix>_<timestamp>.json` in the current directory unless the prefix has a folder.
      ...(profileDir ? { enableProfiling: true, profileFilePrefix: path.join(profileDir, 'ort') } : {}),
      ...(opts.allowSpinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
      ...(opts.memoryPattern === false ? { enableMemPattern: false } : {}),
    };
    try {
      const inner = bytes
        ? await ort.InferenceSession.create(bytes, ortOpts)
        : await ort.InferenceSession.create(source as string, ortOpts);
      const traceFile = typeof opts.profile === 'object' ? opts.profile.traceFile : undefined;
      return new Session(inner, label, profileDir, traceFile);
    } catch (e) {
      if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
      const msg = (e as Error).message ?? String(e);
      const gpu = providers.map(providerName).find((p) => p !== 'cpu');
      if (gpu && /provider|adapter|shared library|cuda|webgpu|dawn|vulkan|device/i.test(msg))
        throw providerInitError(gpu, label, e);
      throw new RuntimeError(
        `ONNX Runtime could not load ${label}: ${msg}`,
        typeof source === 'string' ? { file: source } : {},
        { cause: e },
      );
    }
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Runs the model; `fetches` limits which outputs are computed. */
  async run(feeds: Feeds, fetches?: readonly string[]): Promise<Fetches> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    try {
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = isOrtTensor(v) ? v : toOrt(v);
    } catch (e) {
      throw new RuntimeError(`${this.label}: cannot convert feeds: ${(e as Error).message}`, {}, { cause: e });
    }
    try {
      return fetches ? await this.inner.run(ortFeeds, fetches) : await this.inner.run(ortFeeds);
    } catch (e) {
      throw new RuntimeError(`ONNX Runtime failed running ${this.label}: ${(e as Error).message}`, {}, { cause: e });
    }
  }

  /** The temporary folder ORT writes its trace into while profiling (removed by endProfiling/release). */
  get profileDirectory(): string | undefined {
    return this.profileDir;
  }

  /** Whether the session was created with profiling on and `endProfiling` has not been called yet. */
  get profiling(): boolean {
    return this.profileDir !== undefined;
  }

  /**
   * Stops ORT's profiler and summarises what it recorded since the session was created: kernel time per op type and
   * per node. The trace file is deleted (or copied to `profile.traceFile` first).
   */
  async endProfiling(): Promise<ProfileSummary> {
    const dir = this.profileDir;
    if (!dir)
      throw new RuntimeError(
        `${this.label}: profiling is not on (create the session with { profile: true }) or has already ended`,
      );
    this.profileDir = undefined;
    try {
      this.inner.endProfiling();
      const traces = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
      if (traces.length !== 1)
        throw new RuntimeError(`${this.label}: expected one ONNX Runtime profile in ${dir}, found ${traces.length}`);
      const file = path.join(dir, traces[0]);
      const json = fs.readFileSync(file, 'utf8');
      if (this.traceFile) fs.copyFileSync(file, this.traceFile);
      return summarizeProfile(json, file);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Frees ORT's native resources (and an unread profile). */
  async release(): Promise<void> {
    if (this.profileDir) {
      try {
        this.inner.endProfiling();
      } catch {
        /* the trace is discarded anyway */
      }
      fs.rmSync(this.profileDir, { recursive: true, force: true });
      this.profileDir = undefined;
    }
    await this.inner.release();
  }
}

export { ort };
