/**
 * A/B analysis that stays valid under continuous monitoring: the mixture sequential probability ratio test
 * (mSPRT, Johari, Koomen, Pekelis & Walsh, "Always Valid Inference", 2017/2022) for a difference in proportions
 * with a normal mixture N(0, τ²) over the effect. With the difference estimate θ̂ = p̂_B − p̂_A and its variance
 * V = p̂_A(1−p̂_A)/n_A + p̂_B(1−p̂_B)/n_B, the mixture likelihood ratio is
 *   Λ = √(V/(V+τ²)) · exp(θ̂² τ² / (2V(V+τ²))),
 * the always-valid p-value is the running minimum of min(1, 1/Λ), and the (1−α) confidence sequence is
 *   θ̂ ± √( V(V+τ²)/τ² · (2 ln(1/α) + ln((V+τ²)/V)) ), intersected over looks.
 * Also the fixed-horizon sample size per arm for a two-proportion test (R's power.prop.test formula).
 */
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import { ConfigError } from '../errors.ts';
import { createRng } from '../util/rng.ts';

export interface ArmCounts {
  successes: number;
  trials: number;
}

export interface MsprtLook {
  difference: number;
  variance: number;
  /** Mixture likelihood ratio at this look. */
  lambda: number;
  /** min(1, 1/Λ) at this look alone (the sequential p-value is its running minimum). */
  pLook: number;
  /** Confidence interval at this look alone (the sequence is the running intersection). */
  interval: [number, number];
}

function checkArm(name: string, a: ArmCounts): void {
  if (
    !Number.isInteger(a.trials) ||
    a.trials < 0 ||
    !Number.isInteger(a.successes) ||
    a.successes < 0 ||
    a.successes > a.trials
  )
    throw new ConfigError(`${name} needs integer 0 <= successes <= trials, got ${a.successes}/${a.trials}`, {
      field: name,
      value: `${a.successes}/${a.trials}`,
    });
}

/** The mSPRT quantities at one look (cumulative counts per arm). */
export function msprtLook(a: ArmCounts, b: ArmCounts, tau2: number, alpha = 0.05): MsprtLook {
  checkArm('a', a);
  checkArm('b', b);
  if (!(tau2 > 0)) throw new ConfigError(`tau² must be positive, got ${tau2}`, { field: 'tau' });
  if (a.trials === 0 || b.trials === 0)
    return { difference: 0, variance: Infinity, lambda: 1, pLook: 1, interval: [-1, 1] };
  const pa = a.successes / a.trials;
  const pb = b.successes / b.trials;
  const d = pb - pa;
  const v = (pa * (1 - pa)) / a.trials + (pb * (1 - pb)) / b.trials;
  // Both arms all successes or all failures: no variance estimate yet, so no evidence either way.
  if (v === 0) return { difference: d, variance: 0, lambda: 1, pLook: 1, interval: [-1, 1] };
  const logLambda = 0.5 * Math.log(v / (v + tau2)) + (d * d * tau2) / (2 * v * (v + tau2));
  const lambda = Math.exp(logLambda);
  const half = Math.sqrt(((v * (v + tau2)) / tau2) * (2 * Math.log(1 / alpha) + Math.log((v + tau2) / v)));
  return {
    difference: d,
    variance: v,
    lambda,
    pLook: Math.min(1, Math.exp(-logLambda)),
    interval: [d - half, d + half],
  };
}

export interface MsprtResult {
  looks: number;
  difference: number;
  /** Always-valid p-value after the last look. */
  pValue: number;
  /** Confidence sequence after the last look. */
  interval: [number, number];
  significant: boolean;
}

/** Runs mSPRT over successive looks (cumulative counts per arm, in order). */
export function msprt(
  looks: Array<{ a: ArmCounts; b: ArmCounts }>,
  options: { tau?: number; alpha?: number } = {},
): MsprtResult {
  const tau = options.tau ?? 0.05;
  const alpha = options.alpha ?? 0.05;
  let p = 1;
  let lo = -Infinity;
  let hi = Infinity;
  let diff = 0;
  for (const l of looks) {
    const r = msprtLook(l.a, l.b, tau * tau, alpha);
    p = Math.min(p, r.pLook);
    lo = Math.max(lo, r.interval[0]);
    hi = Math.min(hi, r.interval[1]);
    diff = r.difference;
  }
  return { looks: looks.length, difference: diff, pValue: p, interval: [lo, hi], significant: p <= alpha };
}

/**
 * Sample size per arm for a two-sided two-proportion test at level α with power 1 − β
 * (R: power.prop.test(p1, p2, power), n = ((z_{α/2}√(2p̄q̄) + z_β√(p1q1 + p2q2)) / |p1 − p2|)²).
 */
export function fixedHorizonSampleSize(
  p1: number,
  p2: number,
  options: { alpha?: number; power?: number } = {},
): number {
  const alpha = options.alpha ?? 0.05;
  const power = options.power ?? 0.8;
  for (const [f, v] of [
    ['p1', p1],
    ['p2', p2],
  ] as const)
    if (!(v > 0 && v < 1)) throw new ConfigError(`${f} must be in (0, 1), got ${v}`, { field: f, value: String(v) });
  if (p1 === p2) throw new ConfigError('p1 and p2 must differ to size a test', { field: 'p2', value: String(p2) });
  const za = normalQuantile(1 - alpha / 2, 0, 1);
  const zb = normalQuantile(power, 0, 1);
  const pbar = (p1 + p2) / 2;
  const n = (za * Math.sqrt(2 * pbar * (1 - pbar)) + zb * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) / Math.abs(p1 - p2);
  return n * n;
}

export interface PeekingSimulation {
  tests: number;
  samplesPerArm: number;
  /** Share of A/A tests that the mSPRT ever called significant. */
  msprtFalsePositiveRate: number;
  /** Share that a fixed-level z-test called significant at any look. */
  naiveFalsePositiveRate: number;
}

/**
 * A/A simulation with continuous peeking: both arms draw Bernoulli(p); after every pair from `minSamples` on,
 * both the mSPRT and a naive two-proportion z-test at level α are checked; a test "fires" the first time it is
 * significant. Seeded.
 */
export function simulatePeeking(options: {
  tests: number;
  samplesPerArm: number;
  p: number;
  tau?: number;
  alpha?: number;
  minSamples?: number;
  seed?: number | string;
}): PeekingSimulation {
  const { tests, samplesPerArm, p } = options;
  const alpha = options.alpha ?? 0.05;
  const tau2 = (options.tau ?? 0.05) ** 2;
  const minSamples = options.minSamples ?? 10;
  const rng = createRng(options.seed ?? 0);
  const zCrit = normalQuantile(1 - alpha / 2, 0, 1);
  const logCrit = Math.log(1 / alpha);
  let msprtHits = 0;
  let naiveHits = 0;
  for (let t = 0; t < tests; t++) {
    let sa = 0;
    let sb = 0;
    let mFired = false;
    let nFired = false;
    for (let n = 1; n <= samplesPerArm && !(mFired && nFired); n++) {
      if (rng.next() < p) sa++;
      if (rng.next() < p) sb++;
      if (n < minSamples) continue;
      const pa = sa / n;
      const pb = sb / n;
      const d = pb - pa;
      if (!mFired) {
        const v = (pa * (1 - pa) + pb * (1 - pb)) / n;
        if (v > 0 && 0.5 * Math.log(v / (v + tau2)) + (d * d * tau2) / (2 * v * (v + tau2)) >= logCrit) mFired = true;
      }
      if (!nFired) {
        const pool = (sa + sb) / (2 * n);
        const se = Math.sqrt((pool * (1 - pool) * 2) / n);
        if (se > 0 && Math.abs(d) / se > zCrit) nFired = true;
      }
    }
    if (mFired) msprtHits++;
    if (nFired) naiveHits++;
  }
  return {
    tests,
    samplesPerArm,
    msprtFalsePositiveRate: msprtHits / tests,
    naiveFalsePositiveRate: naiveHits / tests,
  };
}

/** Two-sided fixed-horizon z-test p-value for a difference in proportions (pooled variance), for comparison. */
export function twoProportionZ(a: ArmCounts, b: ArmCounts): number {
  const pool = (a.successes + b.successes) / (a.trials + b.trials);
  const se = Math.sqrt(pool * (1 - pool) * (1 / a.trials + 1 / b.trials));
  if (se === 0) return 1;
  const z = (b.successes / b.trials - a.successes / a.trials) / se;
  return 2 * (1 - normalCdf(Math.abs(z), 0, 1));
}

export interface AbReport {
  variants: [string, string];
  /** Labelled predictions and correct ones per variant. */
  a: ArmCounts & { accuracy: number };
  b: ArmCounts & { accuracy: number };
  msprt: MsprtResult;
  /** Fixed-horizon z-test p-value on the final counts (invalid if the data were peeked at; shown for contrast). */
  fixedHorizonP: number;
  /** Per-arm sample size a fixed-horizon test would need to detect `effect` from arm A's accuracy. */
  requiredPerArm: number;
  effect: number;
}

/**
 * A/B analysis from the prediction log: the metric is accuracy on rows with a feedback label; the mSPRT looks at
 * the running counts after every labelled row, in time order (continuous monitoring).
 */
export function abFromLog(
  predictions: Array<{
    time: string;
    request_id: string;
    index: number;
    variant: string;
    label: string;
    shadow: boolean;
  }>,
  feedback: Map<string, string>,
  variants: [string, string],
  options: { tau?: number; alpha?: number; effect?: number; power?: number } = {},
): AbReport {
  const [va, vb] = variants;
  const a = { successes: 0, trials: 0 };
  const b = { successes: 0, trials: 0 };
  const looks: Array<{ a: ArmCounts; b: ArmCounts }> = [];
  const rows = predictions
    .filter((r) => !r.shadow && (r.variant === va || r.variant === vb))
    .sort((x, y) => Date.parse(x.time) - Date.parse(y.time));
  for (const r of rows) {
    const truth = feedback.get(`${r.request_id}#${r.index}`);
    if (truth === undefined) continue;
    const arm = r.variant === va ? a : b;
    arm.trials++;
    if (truth === r.label) arm.successes++;
    if (a.trials && b.trials) looks.push({ a: { ...a }, b: { ...b } });
  }
  if (!a.trials || !b.trials)
    throw new ConfigError(`A/B needs labelled predictions from both variants; ${va}: ${a.trials}, ${vb}: ${b.trials}`, {
      field: 'variants',
      value: variants.join(','),
    });
  const effect = options.effect ?? 0.02;
  const pa = a.successes / a.trials;
  const base = Math.min(0.98, Math.max(0.02, pa));
  return {
    variants,
    a: { ...a, accuracy: pa },
    b: { ...b, accuracy: b.successes / b.trials },
    msprt: msprt(looks, options),
    fixedHorizonP: twoProportionZ(a, b),
    requiredPerArm: Math.ceil(
      fixedHorizonSampleSize(base, Math.min(0.999, base + effect), { alpha: options.alpha, power: options.power }),
    ),
    effect,
  };
}
