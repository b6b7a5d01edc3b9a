/**
 * `npm run bench [-- --json] [-- --cases mlp,encoder-full,encoder-lora] [-- --steps N] [-- --sections training,compress]
 * [-- --compress-args "..."] [-- --serve-args "..."] [-- --auto-args "..."] [-- --oos-args "..."] [-- --fewshot-args "..."] [-- --heads-args "..."] [-- --memory-args "..."]`: training-step time of Tailor (onnxruntime-node) vs PyTorch
 * (Debian python3-torch + OpenBLAS) on the same models, batch and thread count (2), in one run; plus achieved GFLOP/s
 * against a measured ORT MatMul peak. Then the compression section (bench/compress.ts, docs/compression.md) and, when asked for, the serving
 * section (bench/serve.ts, docs/serving-engine.md), the automatic search, out-of-scope and few-shot sections (bench/auto.ts, bench/oos.ts,
 * bench/fewshot.ts, docs/customize.md) and the training-memory section (bench/train-memory.ts). See docs/bench.md.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as readline from 'node:readline';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { modelFromGraph, type Graph } from '../src/onnx/ir.ts';
import { Session, ort, type SessionOptions } from '../src/runtime/session.ts';
import { TrainingEngine } from '../src/train/engine.ts';
import { TrainRng } from '../src/util/rng.ts';
import { buildEncoderClassifier, classificationLoss, type EncoderConfig } from './encoder.ts';
import { sayer, loadAverage } from './output.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';
const THREADS = 2;
const args = process.argv.slice(2);
const json = args.includes('--json');
const argOf = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const STEPS = Number(argOf('--steps') ?? 5);
const WARMUP = 2;
const say = sayer(json);

function ensureTorch(): string {
  const probe = spawnSync(PY, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status === 0) return probe.stdout.trim();
  say(`PyTorch is missing for ${PY}: installing Debian's python3-torch and libopenblas0-pthread with apt-get`);
  execFileSync(
    'sh',
    ['-c', 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-torch libopenblas0-pthread'],
    { stdio: json ? ['ignore', 'ignore', 'inherit'] : 'inherit' },
  );
  return spawnSync(PY, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const PROFILE = args.includes('--profile');
// No interOpThreads: ORT then runs nodes sequentially (the parallel executor only adds scheduling cost for a chain).
const session: SessionOptions = { intraOpThreads: THREADS };
const load = loadAverage;

/**
 * ORT's 1024³ MatMul throughput, sampled between training steps so that the peak a case is compared with was
 * measured under the same machine load as its steps.
 */
class PeakProbe {
  private constructor(
    private readonly s: Session,
    private readonly t: ort.Tensor,
  ) {}
  static async create(): Promise<PeakProbe> {
    const n = 1024;
    const b = new GraphBuilder('peak');
    b.output(b.matmul(b.input('a', 'float32', [n, n]), b.input('b', 'float32', [n, n])), 'float32', [n, n]);
    const s = await Session.create(modelFromGraph(b.graph), session);
    const p = new PeakProbe(
      s,
      new ort.Tensor(
        'float32',
        Float32Array.from({ length: n * n }, (_, i) => (i % 13) / 13),
        [n, n],
      ),
    );
    await p.sample();
    return p;
  }
  /** GFLOP/s of the faster of two back-to-back runs. */
  async sample(): Promise<number> {
    let best = Infinity;
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      await this.s.run({ a: this.t, b: this.t });
      best = Math.min(best, performance.now() - t0);
    }
    return (2 * 1024 ** 3) / (best / 1000) / 1e9;
  }
  release(): Promise<void> {
    return this.s.release();
  }
}

function mlp(): Graph {
  const rng = new TrainRng(0);
  const b = new GraphBuilder('mlp');
  let x = b.input('x', 'float32', ['batch', 784]);
  const dims = [784, 1024, 1024, 10];
  for (let l = 0; l < 3; l++) {
    const w = b.initializer(
      `fc${l}.weight`,
      'float32',
      Float32Array.from({ length: dims[l] * dims[l + 1] }, () => rng.normal() / Math.sqrt(dims[l])),
      [dims[l], dims[l + 1]],
    );
    const bias = b.initializer(`fc${l}.bias`, 'float32', new Float32Array(dims[l + 1]), [dims[l + 1]]);
    x =
      l < 2
        ? b.relu(b.add(b.matmul(x, w), bias))
        : b.node('Add', [b.matmul(x, w), bias], {}, { outputs: ['logits'] })[0];
  }
  b.output(x, 'float32', ['batch', 10]);
  return b.graph;
}

interface Case {
  name: string;
  graph: () => Graph;
  trainable: (n: string) => boolean;
  batch: () => Record<string, ort.Tensor>;
  flops: number;
  torch: Record<string, unknown>;
}

const ENC: EncoderConfig = {
  vocab: 30522,
  hidden: 256,
  heads: 4,
  ffn: 1024,
  layers: 4,
  maxSeq: 128,
  classes: 2,
  dropout: 0.1,
  seed: 0,
};
const SEQ = 128;
const EB = 32;

function encoderFlops(lora: boolean): number {
  const tokens = EB * SEQ;
  const H = ENC.hidden;
  const perLayerLinear = 2 * tokens * (4 * H * H + 2 * H * ENC.ffn);
  const attn = 2 * 2 * EB * SEQ * SEQ * H;
  const fwd = ENC.layers * (perLayerLinear + attn);
  // Full fine-tuning: forward + input grads + weight grads (~3x). LoRA: frozen weights need input grads only (~2x).
  return lora ? 2 * fwd : 3 * fwd;
}

function encoderBatch(): Record<string, ort.Tensor> {
  const rng = new TrainRng(1);
  return {
    input_ids: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: EB * SEQ }, () => BigInt(rng.int(ENC.vocab))),
      [EB, SEQ],
    ),
    attention_mask: new ort.Tensor('float32', new Float32Array(EB * SEQ).fill(1), [EB, SEQ]),
    labels: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: EB }, () => BigInt(rng.int(ENC.classes))),
      [EB],
    ),
  };
}

const torchEnc = {
  model: 'encoder',
  vocab: ENC.vocab,
  hidden: ENC.hidden,
  heads: ENC.heads,
  ffn: ENC.ffn,
  layers: ENC.layers,
  seq: SEQ,
  classes: ENC.classes,
  dropout: ENC.dropout,
  batch: EB,
};
const CASES: Case[] = [
  {
    name: 'mlp-784-1024-1024-10-b256-adamw',
    graph: mlp,
    trainable: () => true,
    batch: () => {
      const rng = new TrainRng(2);
      return {
        x: new ort.Tensor(
          'float32',
          Float32Array.from({ length: 256 * 784 }, () => rng.normal()),
          [256, 784],
        ),
        labels: new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: 256 }, () => BigInt(rng.int(10))),
          [256],
        ),
      };
    },
    flops: 3 * 2 * 256 * (784 * 1024 + 1024 * 1024 + 1024 * 10),
    torch: { model: 'mlp', batch: 256 },
  },
  {
    name: 'encoder-4x256-seq128-b32-full-adamw',
    graph: () => buildEncoderClassifier(ENC),
    trainable: (n) => /\.(weight|bias)$/.test(n),
    batch: encoderBatch,
    flops: encoderFlops(false),
    torch: torchEnc,
  },
  {
    name: 'encoder-4x256-seq128-b32-lora8-adamw',
    graph: () => buildEncoderClassifier({ ...ENC, lora: { rank: 8, alpha: 16 } }),
    trainable: (n) => n.includes('lora_') || n.startsWith('classifier.'),
    batch: encoderBatch,
    flops: encoderFlops(true),
    torch: { ...torchEnc, lora_rank: 8, lora_alpha: 16 },
  },
];

/** A PyTorch process that runs one training step per request, so steps interleave with Tailor's. */
class TorchWorker {
  private readonly proc;
  private readonly lines: AsyncIterableIterator<string>;
  private constructor(cfg: Record<string, unknown>) {
    this.proc = spawn(PY, [path.join(HERE, 'torch_bench.py'), JSON.stringify({ ...cfg, serve: true })], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }
  static async start(cfg: Record<string, unknown>): Promise<TorchWorker> {
    const w = new TorchWorker(cfg);
    await w.next();
    return w;
  }
  private async next(): Promise<Record<string, number>> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the PyTorch worker exited early (see its stderr above)');
    return JSON.parse(r.value) as Record<string, number>;
  }
  async step(): Promise<number> {
    this.proc.stdin.write('step\n');
    return (await this.next()).ms;
  }
  stop(): void {
    this.proc.stdin.end('quit\n');
  }
}

interface CaseResult {
  tailorMs: number;
  torchMs: number;
  peak: number;
  compileMs: number;
  nodes: number;
  loadBefore: string;
  loadAfter: string;
  profile?: string;
}

/** Builds the engine, then alternates Tailor and PyTorch steps (order flipped each round); medians of each. */
async function runCase(c: Case, mode: 'fused' | 'separate', probe: PeakProbe): Promise<CaseResult> {
  const loadBefore = load();
  const torch = await TorchWorker.start(c.torch);
  await torch.step(); // matches Tailor's first (compiling) step, which is not timed either
  // The model (random init of 7.8M embedding values in JS) is built outside the timed compile: compile_ms is
  // Tailor's training-graph construction, ORT session creation and the first step.
  const model = c.graph();
  const t0 = performance.now();
  const engine = new TrainingEngine(
    model,
    {
      loss: classificationLoss,
      trainable: c.trainable,
      optimizer: { type: 'adamw', lr: 1e-4 },
      mode,
      session: { ...session, profile: PROFILE },
    },
    new TrainRng(0),
  );
  const batch = c.batch();
  await engine.trainBatch(batch);
  const compileMs = performance.now() - t0;
  const tailor: number[] = [];
  const torchT: number[] = [];
  const tailorStep = async (): Promise<number> => {
    const s = performance.now();
    await engine.trainBatch(batch);
    return performance.now() - s;
  };
  const peaks: number[] = [];
  for (let i = 0; i < WARMUP - 1 + STEPS; i++) {
    const [a, b] =
      i % 2 === 0 ? [await tailorStep(), await torch.step()] : [await torch.step(), await tailorStep()].reverse();
    if (i >= WARMUP - 1) {
      tailor.push(a);
      torchT.push(b);
      peaks.push(await probe.sample());
    }
  }
  torch.stop();
  const nodes = engine.trainingGraphs().reduce((n, g) => n + g.nodes.length, 0);
  let profile: string | undefined;
  if (PROFILE) {
    const p = (await engine.endProfiling())[0];
    profile = p.byOpType
      .slice(0, 12)
      .map((o) => `${o.opType} ${(o.calls / p.runs).toFixed(0)}x ${(o.totalUs / 1e3 / p.runs).toFixed(1)}ms`)
      .join(', ');
  }
  await engine.release();
  return {
    tailorMs: median(tailor),
    torchMs: median(torchT),
    peak: median(peaks),
    compileMs,
    nodes,
    loadBefore,
    loadAfter: load(),
    profile,
  };
}
/**
 * Sections that run in their own process (each prints its table; with --json its result lands under its name). Only
 * `memory` is in the default list (the training-memory figure the customization issue asks `npm run bench` to keep);
 * the others take many minutes to hours. `--<name>-args "..."` passes options to the script.
 */
const PROCESS_SECTIONS: { name: string; script: string; title: string }[] = [
  // USE-lite with 100 CLINC150 adapters over loopback HTTP: one adapter, mixed-adapter batches through the real
  // `tailor serve` process (fp32 and int8 base), per-call switching, merged models; one server process per case.
  { name: 'serve', script: 'serve.ts', title: 'serving' },
  // `--strategy auto --budget 10m` on full CLINC150: the trial table and the winner's test accuracy.
  { name: 'auto', script: 'auto.ts', title: 'automatic search' },
  // Full CLINC150 with its out-of-scope queries: no abstention vs MSP and energy thresholds vs an explicit oos class.
  { name: 'oos', script: 'oos.ts', title: 'out-of-scope detection' },
  // The linear head against the MLP head on frozen USE-lite features, full CLINC150 (docs/customize.md, Head type).
  { name: 'heads', script: 'heads.ts', title: 'head types' },
  // head, lora and setfit on full CLINC150 with 5, 10 and 20 examples per intent, 3 seeds each (hours on 2 cores).
  { name: 'fewshot', script: 'fewshot.ts', title: 'few-shot' },
  // LoRA all-linear on USE-lite at maxLength 64: peak RSS and step time against weights + trainable state + saved
  // activations, the step with ORT's memory pattern on, and a whole customize run (docs/customize.md, Training memory).
  { name: 'memory', script: 'train-memory.ts', title: 'training memory' },
];
const SECTIONS = (argOf('--sections') ?? 'training,compress,memory').split(',');
for (const s of SECTIONS)
  if (!['training', 'compress', ...PROCESS_SECTIONS.map((p) => p.name)].includes(s))
    throw new Error(
      `unknown bench section '${s}' (sections: training, compress, ${PROCESS_SECTIONS.map((p) => p.name).join(', ')})`,
    );
let training: { torch: string; cases: Record<string, unknown>[] } | undefined;
if (SECTIONS.includes('training')) {
  const torchVersion = ensureTorch();
  const wanted = argOf('--cases')?.split(',');
  const modes = (argOf('--mode') ?? 'fused').split(',') as ('fused' | 'separate')[];
  const probe = await PeakProbe.create();
  say(
    `PyTorch ${torchVersion} (${PY}); ${THREADS} threads; ${STEPS} timed steps after ${WARMUP} warm-up, Tailor and PyTorch interleaved; ` +
      `peak = median ORT 1024^3 MatMul GFLOP/s sampled between the steps`,
  );
  const results: Record<string, unknown>[] = [];
  for (const c of CASES) {
    if (wanted && !wanted.some((w) => c.name.startsWith(w))) continue;
    for (const mode of modes) {
      const t = await runCase(c, mode, probe);
      const peak = t.peak;
      const torchMs = t.torchMs;
      const row = {
        name: modes.length > 1 ? `${c.name}-${mode}` : c.name,
        tailor_ms: Number(t.tailorMs.toFixed(1)),
        torch_ms: Number(torchMs.toFixed(1)),
        ratio: Number((t.tailorMs / torchMs).toFixed(3)),
        tailor_gflops: Number((c.flops / (t.tailorMs / 1000) / 1e9).toFixed(1)),
        torch_gflops: Number((c.flops / (torchMs / 1000) / 1e9).toFixed(1)),
        tailor_peak_fraction: Number((c.flops / (t.tailorMs / 1000) / 1e9 / peak).toFixed(3)),
        matmul_peak_gflops: Number(peak.toFixed(1)),
        compile_ms: Number(t.compileMs.toFixed(0)),
        optimizer_mode: mode,
        gflop_per_step: Number((c.flops / 1e9).toFixed(2)),
        graph_nodes: t.nodes,
        load_before: t.loadBefore,
        load_after: t.loadAfter,
      };
      results.push(row);
      say(
        `${row.name.padEnd(44)} tailor ${row.tailor_ms.toFixed(1).padStart(8)} ms  torch ${row.torch_ms.toFixed(1).padStart(8)} ms  ratio ${row.ratio.toFixed(2)}  ` +
          `${row.tailor_gflops} vs ${row.torch_gflops} GFLOP/s (${(row.tailor_peak_fraction * 100).toFixed(0)}% of peak ${row.matmul_peak_gflops})  first step ${row.compile_ms} ms  ${row.graph_nodes} nodes  load ${t.loadBefore} -> ${t.loadAfter}`,
      );
      if (t.profile) say(`  ORT kernel time per step: ${t.profile}`);
    }
  }
  await probe.release();
  training = { torch: torchVersion, cases: results };
}

/**
 * The compression section (bench/compress.ts: USE-lite on CLINC150, FP32 vs INT8/INT4 vs a distilled student) runs
 * in its own process, after the training cases, so its sessions and memory never overlap theirs.
 * `--compress-args "--epochs 2 ..."` passes options through.
 */
let compress: unknown;
if (SECTIONS.includes('compress')) {
  say('\ncompression (bench/compress.ts):');
  const extra = (argOf('--compress-args') ?? '').split(/\s+/).filter(Boolean);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, 'compress.ts'), ...(json ? ['--json'] : []), ...extra],
    {
      stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'],
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (r.status !== 0) throw new Error(`bench/compress.ts failed (exit ${r.status ?? r.signal})`);
  if (json) compress = JSON.parse(r.stdout) as unknown;
}

const sub: Record<string, unknown> = {};
for (const sec of PROCESS_SECTIONS) {
  if (!SECTIONS.includes(sec.name)) continue;
  say(`\n${sec.title} (bench/${sec.script}):`);
  const extra = (argOf(`--${sec.name}-args`) ?? '').split(/\s+/).filter(Boolean);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, sec.script), ...(json ? ['--json'] : []), ...extra],
    {
      stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'],
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (r.status !== 0) throw new Error(`bench/${sec.script} failed (exit ${r.status ?? r.signal})`);
  if (json) sub[sec.name] = JSON.parse(r.stdout) as unknown;
}
if (json)
  console.log(
    JSON.stringify({
      threads: THREADS,
      ...(training ? { torch: training.torch, steps: STEPS, cases: training.cases } : {}),
      ...(compress ? { compress } : {}),
      ...sub,
    }),
  );
