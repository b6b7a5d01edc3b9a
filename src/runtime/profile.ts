/**
 * Summaries of ONNX Runtime's profiler trace (Chrome trace-event JSON): kernel time per op type and per node.
 */
import { RuntimeError } from '../errors.ts';

export interface OpTypeTime {
  opType: string;
  /** Kernel executions (nodes of this type x runs). */
  calls: number;
  totalUs: number;
  /** Fraction of all kernel time (0..1). */
  share: number;
}

export interface NodeTime {
  node: string;
  opType: string;
  /** Execution provider that ran the node (e.g. CPUExecutionProvider). */
  provider: string;
  calls: number;
  totalUs: number;
  meanUs: number;
}

export interface ProfileSummary {
  /** Number of `run()` calls recorded. */
  runs: number;
  /** Sum of all kernel times, microseconds. */
  kernelUs: number;
  /** Sum of the `model_run` spans (kernel time plus ORT's overhead), microseconds. */
  runUs: number;
  /** Session initialisation (graph optimisation, kernel creation), microseconds. */
  initUs: number;
  /** Sorted by total time, largest first. */
  byOpType: OpTypeTime[];
  /** Sorted by total time, largest first. */
  byNode: NodeTime[];
}

interface TraceEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; provider?: string };
}

const KERNEL_SUFFIX = '_kernel_time';

/** Summarises the JSON text of an ORT profile. `file` is named in errors. */
export function summarizeProfile(json: string, file = '<profile>'): ProfileSummary {
  let events: TraceEvent[];
  try {
    const parsed: unknown = JSON.parse(json);
    // ORT writes a bare array; the trace-event spec also allows {traceEvents: [...]}.
    events = (Array.isArray(parsed) ? parsed : (parsed as { traceEvents?: unknown }).traceEvents) as TraceEvent[];
    if (!Array.isArray(events)) throw new Error('no event array');
  } catch (e) {
    throw new RuntimeError(
      `cannot parse ONNX Runtime profile ${file}: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  const nodes = new Map<string, NodeTime>();
  let runs = 0,
    runUs = 0,
    initUs = 0;
  for (const ev of events) {
    const dur = typeof ev.dur === 'number' ? ev.dur : 0;
    if (ev.cat === 'Session') {
      if (ev.name === 'model_run') {
        runs++;
        runUs += dur;
      }
      if (ev.name === 'session_initialization') initUs += dur;
      continue;
    }
    if (ev.cat !== 'Node' || !ev.name?.endsWith(KERNEL_SUFFIX)) continue;
    const node = ev.name.slice(0, -KERNEL_SUFFIX.length);
    const opType = ev.args?.op_name ?? '?';
    const entry = nodes.get(node) ?? {
      node,
      opType,
      provider: ev.args?.provider ?? '?',
      calls: 0,
      totalUs: 0,
      meanUs: 0,
    };
    entry.calls++;
    entry.totalUs += dur;
    nodes.set(node, entry);
  }
  const byNode = [...nodes.values()]
    .map((n) => ({ ...n, meanUs: n.totalUs / n.calls }))
    .sort((a, b) => b.totalUs - a.totalUs);
  const kernelUs = byNode.reduce((s, n) => s + n.totalUs, 0);
  const ops = new Map<string, OpTypeTime>();
  for (const n of byNode) {
    const o = ops.get(n.opType) ?? { opType: n.opType, calls: 0, totalUs: 0, share: 0 };
    o.calls += n.calls;
    o.totalUs += n.totalUs;
    ops.set(n.opType, o);
  }
  const byOpType = [...ops.values()]
    .map((o) => ({ ...o, share: kernelUs ? o.totalUs / kernelUs : 0 }))
    .sort((a, b) => b.totalUs - a.totalUs);
  return { runs, kernelUs, runUs, initUs, byOpType, byNode };
}

/** A fixed-width text table of a summary's op types (for CLI output and logs). */
export function formatProfile(s: ProfileSummary, top = 15): string {
  const lines = [
    `${s.runs} run(s), kernel time ${(s.kernelUs / 1000).toFixed(2)} ms, run time ${(s.runUs / 1000).toFixed(2)} ms`,
    'op type                       calls    total ms   share',
  ];
  for (const o of s.byOpType.slice(0, top)) {
    lines.push(
      `${o.opType.padEnd(28)} ${String(o.calls).padStart(6)} ${(o.totalUs / 1000).toFixed(3).padStart(11)} ${(o.share * 100).toFixed(1).padStart(6)}%`,
    );
  }
  return lines.join('\n');
}
