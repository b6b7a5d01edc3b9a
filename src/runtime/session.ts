/**
 * A thin wrapper over onnxruntime-node: sessions from an in-memory Model, bytes or a file, with the execution
 * provider, threads and optimisation level chosen in one place, and ORT's errors turned into RuntimeError.
 */
import * as ort from 'onnxruntime-node';
import { RuntimeError } from '../errors.ts';
import type { Model } from '../onnx/ir.ts';
import { encodeModel } from '../onnx/serialize.ts';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu' | 'dml' | 'coreml';
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Providers to try in order; default ['cpu']. */
  providers?: ExecutionProvider[];
  /** Threads inside one op (default: ORT's choice, the number of physical cores). */
  intraOpThreads?: number;
  interOpThreads?: number;
  optimizationLevel?: GraphOptimizationLevel;
  /** Turn on ORT's profiler; read the summary with `Session.endProfiling()`. */
  profile?: boolean;
  /** Named in error messages. */
  label?: string;
}

export type Feeds = Record<string, ort.Tensor>;
export type Fetches = Record<string, ort.Tensor>;

/** A loaded model ready to run. */
export class Session {
  private constructor(readonly inner: ort.InferenceSession, readonly label: string) {}

  /** Creates a session from a Model, serialized bytes, or a path to an `.onnx` file. */
  static async create(source: Model | Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const label = opts.label ?? (typeof source === 'string' ? source : 'in-memory model');
    const ortOpts: ort.InferenceSession.SessionOptions = {
      executionProviders: (opts.providers ?? ['cpu']).map((p) => p),
      graphOptimizationLevel: opts.optimizationLevel ?? 'all',
      ...(opts.intraOpThreads !== undefined ? { intraOpNumThreads: opts.intraOpThreads } : {}),
      ...(opts.interOpThreads !== undefined ? { interOpNumThreads: opts.interOpThreads } : {}),
      ...(opts.profile ? { enableProfiling: true } : {}),
    };
    try {
      const inner = typeof source === 'string'
        ? await ort.InferenceSession.create(source, ortOpts)
        : await ort.InferenceSession.create(source instanceof Uint8Array ? source : encodeModel(source), ortOpts);
      return new Session(inner, label);
    } catch (e) {
      throw new RuntimeError(`ONNX Runtime could not load ${label}: ${(e as Error).message}`, { file: typeof source === 'string' ? source : undefined }, { cause: e });
    }
  }

  get inputNames(): readonly string[] { return this.inner.inputNames; }
  get outputNames(): readonly string[] { return this.inner.outputNames; }

  async run(feeds: Feeds, fetches?: readonly string[]): Promise<Fetches> {
    try {
      return fetches ? await this.inner.run(feeds, fetches) : await this.inner.run(feeds);
    } catch (e) {
      throw new RuntimeError(`ONNX Runtime failed running ${this.label}: ${(e as Error).message}`, {}, { cause: e });
    }
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

export { ort };
