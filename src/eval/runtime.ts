/**
 * Latency of an ONNX model through src/runtime's Session: the adapter between `measureLatency`'s
 * `(batchSize) => Promise<void>` and a session run. Feeds are built once per batch size, outside the timed
 * region, so tokenisation or tensor construction never counts as model latency.
 */
import type { ModelProto } from '../onnx/ir.ts';
import { Session, type Feeds, type SessionOptions } from '../runtime/session.ts';
import { measureLatency, type BatchRunner, type LatencyOptions, type LatencyReport } from './latency.ts';

/** A BatchRunner over an open session; `feedsFor(batchSize)` is called once per distinct batch size. */
export function sessionRunner(
  session: Pick<Session, 'run'>,
  feedsFor: (batchSize: number) => Feeds,
  fetches?: readonly string[],
): BatchRunner {
  const cache = new Map<number, Feeds>();
  return async (batchSize) => {
    let feeds = cache.get(batchSize);
    if (!feeds) {
      feeds = feedsFor(batchSize);
      cache.set(batchSize, feeds);
    }
    await session.run(feeds, fetches);
  };
}

export interface SessionLatencyOptions extends LatencyOptions {
  /** Session options (providers, threads, label). */
  session?: SessionOptions;
  /** Outputs to fetch (default: all). */
  fetches?: readonly string[];
}

/** Opens a session on `model` (an ONNX model, its bytes or a path), measures its latency, and releases it. */
export async function measureSessionLatency(
  model: ModelProto | Uint8Array | string,
  feedsFor: (batchSize: number) => Feeds,
  opts: SessionLatencyOptions = {},
): Promise<LatencyReport> {
  const { session: sopts, fetches, ...latency } = opts;
  const session = await Session.create(model, sopts ?? {});
  try {
    return await measureLatency(sessionRunner(session, feedsFor, fetches), latency);
  } finally {
    await session.release();
  }
}
