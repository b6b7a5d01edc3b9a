/**
 * Activation-range calibration for static INT8: run the float model on a sample of domain data, observe the
 * tensors that will be quantized, and pick a range [lo, hi] per tensor by one of three methods:
 * - 'minmax': the observed extremes (no clipping; one outlier stretches the scale for everything else).
 * - 'percentile': clip |x| at a percentile (default 99.99) of the observed magnitudes.
 * - 'entropy': TensorRT's KL-divergence threshold search over a 2048-bin |x| histogram, quantized to 128 levels
 *   (the method ORT's calibrator calls Entropy).
 */
import { ConfigError } from '../../errors.ts';
import type { ModelProto } from '../../onnx/ir.ts';
import { Session, type Feeds } from '../../runtime/session.ts';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export interface CalibrationOptions {
  method?: CalibrationMethod;
  /** For 'percentile' (default 99.99). */
  percentile?: number;
  /** Histogram bins for 'percentile' and 'entropy' (default 2048). */
  bins?: number;
}

export interface TensorRange {
  lo: number;
  hi: number;
  /** Observed extremes, for the report. */
  min: number;
  max: number;
}

/** Accumulates per-tensor statistics; feed it batches, then ask for ranges. */
export class RangeObserver {
  private readonly minmax = new Map<string, { min: number; max: number }>();
  private readonly hists = new Map<string, { hist: Float64Array; width: number }>();

  constructor(private readonly bins = 2048) {}

  /** First pass: extremes. */
  observeMinMax(name: string, data: Float32Array): void {
    let mn = Infinity,
      mx = -Infinity;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    const cur = this.minmax.get(name);
    this.minmax.set(name, cur ? { min: Math.min(cur.min, mn), max: Math.max(cur.max, mx) } : { min: mn, max: mx });
  }

  /** Second pass: |x| histogram over [0, max|x|] (the extremes must have been observed). */
  observeHistogram(name: string, data: Float32Array): void {
    let h = this.hists.get(name);
    if (!h) {
      const mm = this.minmax.get(name);
      if (!mm) throw new ConfigError(`calibration: no min/max pass for tensor '${name}'`, { field: name });
      const amax = Math.max(Math.abs(mm.min), Math.abs(mm.max));
      h = { hist: new Float64Array(this.bins), width: amax > 0 ? amax / this.bins : 1 };
      this.hists.set(name, h);
    }
    const { hist, width } = h;
    const last = this.bins - 1;
    for (let i = 0; i < data.length; i++) {
      const b = Math.floor(Math.abs(data[i]) / width);
      hist[b > last ? last : b]++;
    }
  }

  get names(): string[] {
    return [...this.minmax.keys()];
  }

  /** The range chosen for a tensor by a method. Ranges always contain 0 (uint8 zero points need it). */
  range(name: string, opts: CalibrationOptions = {}): TensorRange {
    const mm = this.minmax.get(name);
    if (!mm) throw new ConfigError(`calibration saw no values for tensor '${name}'`, { field: name });
    const min = Math.min(0, mm.min),
      max = Math.max(0, mm.max);
    const method = opts.method ?? 'minmax';
    if (method === 'minmax') return { lo: min, hi: max, min: mm.min, max: mm.max };
    const h = this.hists.get(name);
    if (!h)
      throw new ConfigError(`calibration method '${method}' needs a histogram pass for tensor '${name}'`, {
        field: name,
      });
    const t =
      method === 'percentile'
        ? percentileThreshold(h.hist, h.width, opts.percentile ?? 99.99)
        : entropyThreshold(h.hist, h.width);
    return { lo: Math.max(min, -t), hi: Math.min(max, t), min: mm.min, max: mm.max };
  }
}

/** |x| below which `pct` percent of the histogram's mass lies (upper edge of that bin). */
export function percentileThreshold(hist: Float64Array, width: number, pct: number): number {
  if (!(pct > 0 && pct <= 100))
    throw new ConfigError(`percentile must be in (0, 100], got ${pct}`, { field: 'percentile', value: String(pct) });
  let total = 0;
  for (const c of hist) total += c;
  const target = (total * pct) / 100;
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i];
    if (acc >= target) return (i + 1) * width;
  }
  return hist.length * width;
}

/**
 * TensorRT's entropy calibration: for each candidate threshold bin i, P = hist[0..i) with the clipped tail folded
 * into its last bin, Q = P merged into `levels` bins and spread back over P's non-empty bins; pick the i with the
 * least KL(P || Q). Returns the threshold |x|.
 */
export function entropyThreshold(hist: Float64Array, width: number, levels = 128): number {
  const n = hist.length;
  if (n <= levels) return n * width;
  let best = n,
    bestKl = Infinity;
  let tail = 0;
  for (let i = levels; i < n; i++) tail += hist[i];
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  // At most ~512 candidate thresholds: the KL curve is smooth, and 2048 candidates x 2048 bins per tensor is slow.
  const stride = Math.max(1, Math.floor((n - levels) / 512));
  for (let i = levels; i <= n; i++) {
    // tail = mass of hist[i..n)
    if ((i - levels) % stride !== 0 && i !== n) {
      if (i < n) tail -= hist[i];
      continue;
    }
    p.set(hist.subarray(0, i));
    p[i - 1] += tail;
    const per = i / levels;
    q.fill(0, 0, i);
    // Q: the unclipped bins merged into `levels` and spread evenly over the bins that held mass.
    for (let j = 0; j < levels; j++) {
      const a = Math.floor(j * per),
        b = j === levels - 1 ? i : Math.floor((j + 1) * per);
      let sum = 0,
        nonzero = 0;
      for (let t = a; t < b; t++) {
        sum += hist[t];
        if (hist[t] > 0) nonzero++;
      }
      if (nonzero === 0) continue;
      for (let t = a; t < b; t++) if (hist[t] > 0) q[t] = sum / nonzero;
    }
    let ps = 0,
      qs = 0;
    for (let t = 0; t < i; t++) {
      ps += p[t];
      qs += q[t];
    }
    let kl = 0;
    if (ps > 0 && qs > 0) {
      for (let t = 0; t < i; t++) {
        if (p[t] <= 0) continue;
        const pp = p[t] / ps,
          qq = q[t] / qs;
        kl += qq > 0 ? pp * Math.log(pp / qq) : pp * 30; // an empty Q bin under P mass: a large, finite penalty
      }
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
    if (i < n) tail -= hist[i];
  }
  return best * width;
}

/**
 * Runs the float model on `batches` and returns the chosen range of each tensor in `tensors` (values inside the
 * graph are exposed as extra outputs of a copy; the caller's model is not changed).
 */
export async function calibrate(
  model: ModelProto,
  tensors: readonly string[],
  batches: readonly Feeds[],
  opts: CalibrationOptions = {},
): Promise<Map<string, TensorRange>> {
  if (batches.length === 0)
    throw new ConfigError('calibration needs at least one batch of domain data', { field: 'calibration' });
  const method = opts.method ?? 'minmax';
  if (!['minmax', 'percentile', 'entropy'].includes(method)) {
    throw new ConfigError(`unknown calibration method '${String(method)}' (methods: minmax, percentile, entropy)`, {
      field: 'method',
      value: String(method),
    });
  }
  const outs = new Set(model.graph.outputs.map((o) => o.name));
  const probe: ModelProto = {
    ...model,
    graph: {
      ...model.graph,
      outputs: [
        ...model.graph.outputs,
        ...tensors.filter((t) => !outs.has(t)).map((name) => ({ name, dtype: 'float32' as const })),
      ],
    },
  };
  const session = await Session.create(probe, { label: 'calibration probe' });
  const obs = new RangeObserver(opts.bins ?? 2048);
  try {
    const passes = method === 'minmax' ? 1 : 2;
    for (let pass = 0; pass < passes; pass++) {
      for (const feeds of batches) {
        const res = await session.run(feeds, tensors);
        for (const t of tensors) {
          const d = res[t].data as Float32Array;
          if (pass === 0) obs.observeMinMax(t, d);
          else obs.observeHistogram(t, d);
        }
      }
    }
  } finally {
    await session.release();
  }
  return new Map(tensors.map((t) => [t, obs.range(t, opts)]));
}
