import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrainingError } from '../../src/errors.ts';
import { TrainingEngine, type EngineOptions } from '../../src/train/engine.ts';
import { learningRateAt, type OptimizerConfig, type ScheduleConfig } from '../../src/train/optim/index.ts';
import { TrainRng } from '../../src/util/rng.ts';
import { batchOf, IN, lcg, linearGradients, linearModel, mseLoss, OUT, refGrad, type RefParams } from './helpers.ts';

const N = 4;
const rand = lcg(7);
const W0 = Array.from({ length: IN * OUT }, () => rand());
const B0 = Array.from({ length: OUT }, () => rand());
const batches = Array.from({ length: 12 }, () => ({
  x: Array.from({ length: N * IN }, () => rand() * 2),
  t: Array.from({ length: N * OUT }, () => rand()),
}));

interface RefCfg {
  opt: OptimizerConfig;
  schedule?: ScheduleConfig;
  maxGradNorm?: number;
  accum?: number;
  noDecay?: string[];
}

/** Float64 replay of torch.optim.{AdamW,SGD} (+ clip_grad_norm_, accumulation by averaging) over `steps` steps. */
function reference(cfg: RefCfg, steps: number): RefParams {
  const p: Record<string, number[]> = { W: [...W0], B: [...B0] };
  const state: Record<string, Record<string, number[]>> = { W: {}, B: {} };
  const k = cfg.accum ?? 1;
  for (let step = 1; step <= steps; step++) {
    const g: Record<string, number[]> = { W: new Array(IN * OUT).fill(0), B: new Array(OUT).fill(0) };
    for (let m = 0; m < k; m++) {
      const bt = batches[((step - 1) * k + m) % batches.length];
      const r = refGrad({ W: p.W, B: p.B }, bt.x, bt.t, N);
      for (const n of ['W', 'B']) r[n as 'W'].forEach((v, i) => (g[n][i] += v / k));
    }
    if (cfg.maxGradNorm !== undefined) {
      const norm = Math.sqrt([...g.W, ...g.B].reduce((a, v) => a + v * v, 0));
      const coef = Math.min(1, cfg.maxGradNorm / (norm + 1e-6));
      for (const n of ['W', 'B']) g[n] = g[n].map((v) => v * coef);
    }
    const lr = learningRateAt(cfg.opt.lr, cfg.schedule, step);
    for (const n of ['W', 'B']) {
      const decayOn = !(cfg.noDecay ?? []).includes(n);
      const w = p[n];
      const s = state[n];
      if (cfg.opt.type === 'adamw') {
        const [b1, b2] = cfg.opt.betas ?? [0.9, 0.999];
        const eps = cfg.opt.eps ?? 1e-8;
        const wd = decayOn ? (cfg.opt.weightDecay ?? 0.01) : 0;
        s.m ??= new Array(w.length).fill(0);
        s.v ??= new Array(w.length).fill(0);
        const bc1 = 1 - b1 ** step;
        const bc2 = 1 - b2 ** step;
        for (let i = 0; i < w.length; i++) {
          s.m[i] = b1 * s.m[i] + (1 - b1) * g[n][i];
          s.v[i] = b2 * s.v[i] + (1 - b2) * g[n][i] ** 2;
          if ((cfg.opt.mode ?? 'torch') === 'torch') {
            w[i] *= 1 - lr * wd;
            w[i] -= ((lr / bc1) * s.m[i]) / (Math.sqrt(s.v[i]) / Math.sqrt(bc2) + eps);
          } else {
            w[i] -= (((lr * Math.sqrt(bc2)) / bc1) * s.m[i]) / (Math.sqrt(s.v[i]) + eps);
            w[i] -= lr * wd * w[i];
          }
        }
      } else {
        const mom = cfg.opt.momentum ?? 0;
        const damp = cfg.opt.dampening ?? 0;
        const wd = decayOn ? (cfg.opt.weightDecay ?? 0) : 0;
        for (let i = 0; i < w.length; i++) {
          let d = g[n][i] + wd * w[i];
          if (mom !== 0) {
            s.buf ??= [];
            s.buf[i] = step === 1 ? d : mom * s.buf[i] + (1 - damp) * d;
            d = cfg.opt.nesterov ? d + mom * s.buf[i] : s.buf[i];
          }
          w[i] -= lr * d;
        }
      }
    }
  }
  return { W: p.W, B: p.B };
}

async function runEngine(cfg: RefCfg, steps: number, extra: Partial<EngineOptions> = {}): Promise<RefParams> {
  const engine = new TrainingEngine(
    linearModel(W0, B0),
    {
      loss: mseLoss,
      trainable: ['W', 'B'],
      optimizer: cfg.opt,
      schedule: cfg.schedule,
      maxGradNorm: cfg.maxGradNorm,
      gradAccumulation: cfg.accum,
      noDecay: (n) => (cfg.noDecay ?? []).includes(n),
      gradients: linearGradients,
      session: { intraOpThreads: 1 },
      ...extra,
    },
    new TrainRng(1),
  );
  const k = cfg.accum ?? 1;
  let done = 0;
  for (let i = 0; done < steps; i++) {
    const bt = batches[i % batches.length];
    const r = await engine.trainBatch(batchOf(bt.x, bt.t, N));
    assert.equal(r === undefined, (i + 1) % k !== 0, `micro-batch ${i}`);
    if (r) done++;
  }
  const v = engine.paramValues();
  await engine.release();
  return { W: Array.from(v.get('W') as Float32Array), B: Array.from(v.get('B') as Float32Array) };
}

function assertClose(got: RefParams, want: RefParams, tol: number): void {
  for (const n of ['W', 'B'] as const) {
    got[n].forEach((v, i) => {
      assert.ok(
        Math.abs(v - want[n][i]) <= tol * (1 + Math.abs(want[n][i])),
        `${n}[${i}]: got ${v}, want ${want[n][i]}`,
      );
    });
  }
  // The parameters moved: a test where the update does nothing must not pass.
  assert.ok(Math.abs(got.W[0] - W0[0]) > 10 * tol, 'parameters did not move');
}

const STEPS = 6;
const cases: [string, RefCfg, Partial<EngineOptions>?][] = [
  ['AdamW torch mode', { opt: { type: 'adamw', lr: 0.05, weightDecay: 0.1 } }],
  [
    'AdamW torch mode, separate optimizer graph',
    { opt: { type: 'adamw', lr: 0.05, weightDecay: 0.1 } },
    { mode: 'separate' },
  ],
  [
    'AdamW without pre-allocated outputs',
    { opt: { type: 'adamw', lr: 0.05, weightDecay: 0.1 } },
    { preallocate: false },
  ],
  [
    'AdamW HF mode, betas and eps',
    { opt: { type: 'adamw', lr: 0.05, weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-3, mode: 'hf' } },
  ],
  [
    'AdamW, no decay on bias, cosine schedule with warmup',
    {
      opt: { type: 'adamw', lr: 0.1, weightDecay: 0.2 },
      noDecay: ['B'],
      schedule: { type: 'cosine', warmupSteps: 2, totalSteps: STEPS },
    },
  ],
  [
    'SGD plain, linear schedule',
    { opt: { type: 'sgd', lr: 0.1 }, schedule: { type: 'linear', warmupSteps: 1, totalSteps: 8 } },
  ],
  [
    'SGD momentum + dampening + weight decay',
    { opt: { type: 'sgd', lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.05 } },
  ],
  ['SGD Nesterov with clipping', { opt: { type: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true }, maxGradNorm: 0.05 }],
  [
    'AdamW with clipping and 3-step accumulation (fused)',
    { opt: { type: 'adamw', lr: 0.05 }, maxGradNorm: 0.1, accum: 3 },
  ],
  ['AdamW with 2-step accumulation (separate)', { opt: { type: 'adamw', lr: 0.05 }, accum: 2 }, { mode: 'separate' }],
];

for (const [name, cfg, extra] of cases) {
  test(`${name} matches a float64 reference of torch's update over ${STEPS} steps`, async () => {
    assertClose(await runEngine(cfg, STEPS, extra), reference(cfg, STEPS), 2e-5);
  });
}

test('schedules: warmup, linear and cosine decay values', () => {
  assert.equal(learningRateAt(1, { type: 'constant', warmupSteps: 4 }, 1), 0);
  assert.equal(learningRateAt(1, { type: 'constant', warmupSteps: 4 }, 3), 0.5);
  assert.equal(learningRateAt(1, { type: 'constant', warmupSteps: 4 }, 9), 1);
  assert.equal(learningRateAt(2, { type: 'linear', warmupSteps: 2, totalSteps: 10 }, 3), 2);
  assert.equal(learningRateAt(2, { type: 'linear', warmupSteps: 2, totalSteps: 10 }, 7), 1);
  assert.equal(learningRateAt(2, { type: 'linear', warmupSteps: 2, totalSteps: 10 }, 11), 0);
  assert.ok(Math.abs(learningRateAt(1, { type: 'cosine', totalSteps: 10 }, 6) - 0.5) < 1e-12);
  assert.throws(
    () => learningRateAt(1, { type: 'cosine', warmupSteps: 5, totalSteps: 5 }, 6),
    /totalSteps \(5\) must exceed warmupSteps \(5\)/,
  );
});

test('a non-finite loss stops with a TrainingError naming the step and keeps the last good state', async () => {
  const engine = new TrainingEngine(
    linearModel(W0, B0),
    { loss: mseLoss, trainable: ['W', 'B'], optimizer: { type: 'sgd', lr: 0.1 }, gradients: linearGradients },
    new TrainRng(1),
  );
  const bt = batches[0];
  await engine.trainBatch(batchOf(bt.x, bt.t, N));
  const before = Array.from(engine.paramValues().get('W') as Float32Array);
  const bad = [...bt.x];
  bad[0] = Number.POSITIVE_INFINITY;
  await assert.rejects(
    engine.trainBatch(batchOf(bad, bt.t, N)),
    (e: unknown) => e instanceof TrainingError && /^loss is (NaN|Infinity) at step 2: training stopped/.test(e.message),
  );
  assert.deepEqual(Array.from(engine.paramValues().get('W') as Float32Array), before);
  assert.equal(engine.step, 1);
  await engine.release();
});
