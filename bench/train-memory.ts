/**
 * Training memory (docs/customize.md, "Training memory"): peak RSS and step time of LoRA on every linear layer of
 * USE-lite (150-class CLINC150 head, batch 32), against a reference of what the step has to hold.
 *
 *   node --import tsx bench/train-memory.ts [--json] [--steps 10] [--train-per-intent 20] [--val-per-intent 20] [--full]
 *
 * Each case runs in its own child process, so each peak (the kernel's high-water mark at the end, which also sees
 * what sampling on the JS thread misses) belongs to that case alone:
 *  - `step`: the TrainingEngine alone at 32 x 64 tokens (CLINC150 texts padded to maxLength 64), `--steps` timed
 *    steps after 2 warm-ups; the engine's memory (peak minus the RSS before the engine existed) is compared with a
 *    reference: ORT's copy of the weights + the trainable parameters with their gradient, Adam moments and next
 *    values + the forward activations the backward pass reads (summed over the training graph at these shapes).
 *  - `step-pattern`: the same with ORT's memory pattern on (ORT's default; the engine turns it off).
 *  - `customize`: `customize(base, data, { strategy: 'lora', lora: { targets: all-linear }, maxLength: 64, epochs:
 *    1 })` on a CLINC150 slice (150 intents x `--train-per-intent` / `--val-per-intent`; `--full`: all 15,000 /
 *    3,000) plus one row longer than 64 tokens (CLINC150's longest utterance has 44), so that it trains at 64
 *    tokens; the report's peakRssBytes and time per epoch.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { buildGradientGraph } from '../src/autodiff/index.ts';
import { customize } from '../src/customize/customize.ts';
import { strategyDef } from '../src/customize/strategies/index.ts';
import { attachHead, LOGITS } from '../src/models/head.ts';
import { encodeTextBatch } from '../src/models/text.ts';
import { loadUseLite } from '../src/models/use/index.ts';
import type { GraphBuilder } from '../src/onnx/builder.ts';
import { bytesPerElement } from '../src/onnx/dtype.ts';
import type { Graph } from '../src/onnx/ir.ts';
import { inferShapes, valueType } from '../src/onnx/shapes/index.ts';
import { rssHighWaterMark } from '../src/runtime/memory.ts';
import { ort } from '../src/runtime/session.ts';
import { inferredShapes, TrainingEngine } from '../src/train/engine.ts';
import { buildTrainingGraphs, LOSS_OUTPUT } from '../src/train/graph.ts';
import { tensorData } from '../src/train/trainer.ts';
import { TrainRng } from '../src/util/rng.ts';
import { firstPerIntent, readClinc } from './clinc150.ts';
import { sayer, loadAverage } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const argOf = (k: string, d: number): number => {
  const i = args.indexOf(k);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const STEPS = argOf('--steps', 10);
const WARMUP = 2;
const BATCH = 32;
const MAX_LENGTH = 64;
const THREADS = 2;
const MB = 2 ** 20;
const say = sayer(json);
const load = loadAverage;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ce = (b: GraphBuilder): string =>
  b.op('SoftmaxCrossEntropyLoss', [LOGITS, b.input('labels', 'int64', ['batch'])], { reduction: 'mean' });

/**
 * Bytes of the forward values the backward part of a training graph reads: what has to stay alive from the end of
 * the forward pass until its gradient is computed (forward = the nodes the loss depends on).
 */
export function savedActivationBytes(train: Graph, bindings: Record<string, number>): number {
  const shaped = inferShapes(train, { bindings, allowUnknown: true });
  const producer = new Map<string, number>();
  train.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const forward = new Set<number>();
  const stack = [LOSS_OUTPUT];
  while (stack.length) {
    const p = producer.get(stack.pop()!);
    if (p === undefined || forward.has(p)) continue;
    forward.add(p);
    stack.push(...train.nodes[p].inputs.filter(Boolean));
  }
  const saved = new Set<string>();
  train.nodes.forEach((n, i) => {
    if (forward.has(i)) return;
    for (const v of n.inputs) if (forward.has(producer.get(v) ?? -1)) saved.add(v);
  });
  let bytes = 0;
  for (const v of saved) {
    const t = valueType(shaped, v);
    if (!t?.shape || t.shape.some((d) => typeof d !== 'number'))
      throw new Error(`no static shape for saved value '${v}'`);
    bytes += (t.shape as number[]).reduce((a, d) => a * d, 1) * bytesPerElement(t.dtype);
  }
  return bytes;
}

interface StepCase {
  case: 'step' | 'step-pattern';
  seq: number;
  stepMs: number;
  rssBeforeBytes: number;
  peakRssBytes: number;
  engineBytes: number;
  reference: { weightsBytes: number; trainableStateBytes: number; savedActivationBytes: number; totalBytes: number };
  load: string;
}

async function stepCase(pattern: boolean): Promise<StepCase> {
  const rowsAll = firstPerIntent(readClinc('train'), Math.ceil((BATCH * (STEPS + WARMUP)) / 150));
  const labels = [...new Set(rowsAll.map((r) => r.label))].sort();
  const { model: base } = await loadUseLite();
  const headed = attachHead(base, { labels, seed: 1 });
  const options = { strategy: 'lora', lora: { targets: { kind: 'all-linear' as const } } };
  const model = strategyDef('lora').prepare(headed, { seed: 1, options }).model;
  const rows = rowsAll.slice(0, BATCH * (STEPS + WARMUP));
  const enc = encodeTextBatch(
    model,
    rows.map((r) => r.text),
    { maxLength: MAX_LENGTH, padTo: MAX_LENGTH },
  );
  const y = BigInt64Array.from(rows, (r) => BigInt(labels.indexOf(r.label)));
  const data = tensorData({ ...enc.feeds, labels: new ort.Tensor('int64', y, [y.length]) });
  const trainable = [...model.params.values()].filter((p) => p.trainable).map((p) => p.initializer);
  const optimizer = { type: 'adamw' as const, lr: 1e-3, weightDecay: 0.01 };
  const bindings = { batch: BATCH, seq: enc.seq };
  const { train } = buildTrainingGraphs(model.graph, {
    loss: ce,
    trainable,
    optimizer,
    gradients: buildGradientGraph,
    shapes: inferredShapes,
    bindings,
  });
  const weightsBytes = [...model.graph.initializers.values()].reduce((a, t) => a + t.data.byteLength, 0);
  const trainableBytes = trainable.reduce((a, n) => a + model.graph.initializers.get(n)!.data.byteLength, 0);
  // value, gradient, Adam's two moments, and the next value/moments the step writes before they swap in
  const trainableStateBytes = 7 * trainableBytes;
  const saved = savedActivationBytes(train, bindings);
  const rssBeforeBytes = process.memoryUsage.rss();
  const engine = new TrainingEngine(
    model.graph,
    {
      loss: ce,
      trainable,
      optimizer,
      session: { intraOpThreads: THREADS, ...(pattern ? { memoryPattern: true } : {}) },
    },
    new TrainRng(1),
  );
  const ms: number[] = [];
  for (let s = 0; s < STEPS + WARMUP; s++) {
    const t0 = performance.now();
    await engine.trainBatch(data.batch(Array.from({ length: BATCH }, (_, k) => s * BATCH + k)));
    if (s >= WARMUP) ms.push(performance.now() - t0);
  }
  await engine.release();
  const peakRssBytes = rssHighWaterMark() ?? 0;
  return {
    case: pattern ? 'step-pattern' : 'step',
    seq: enc.seq,
    stepMs: median(ms),
    rssBeforeBytes,
    peakRssBytes,
    engineBytes: peakRssBytes - rssBeforeBytes,
    reference: {
      weightsBytes,
      trainableStateBytes,
      savedActivationBytes: saved,
      totalBytes: weightsBytes + trainableStateBytes + saved,
    },
    load: load(),
  };
}

interface CustomizeCase {
  case: 'customize';
  train: number;
  validation: number;
  seq: number;
  peakRssBytes: number;
  processPeakRssBytes: number;
  epochSeconds: number;
  totalSeconds: number;
  accuracy: number;
  load: string;
}

async function customizeCase(): Promise<CustomizeCase> {
  const full = args.includes('--full');
  const data = {
    train: firstPerIntent(readClinc('train'), full ? 100 : argOf('--train-per-intent', 20)),
    validation: firstPerIntent(readClinc('validation'), full ? 20 : argOf('--val-per-intent', 20)),
  };
  // CLINC150's longest utterance is 44 tokens. One more training row, eight utterances of one intent joined, is
  // longer than 64: every batch is then padded to maxLength 64, as on data with long texts.
  const first = data.train.filter((r) => r.label === data.train[0].label).slice(0, 8);
  data.train.push({ text: first.map((r) => r.text).join(' '), label: first[0].label });
  const { model: base } = await loadUseLite();
  const r = await customize(base, data, {
    strategy: 'lora',
    lora: { targets: { kind: 'all-linear' } },
    epochs: 1,
    maxLength: MAX_LENGTH,
    seed: 1,
    threads: THREADS,
  });
  return {
    case: 'customize',
    train: data.train.length,
    validation: data.validation.length,
    seq: Number(r.lineage.hyperparameters.seq),
    peakRssBytes: r.report.peakRssBytes,
    processPeakRssBytes: rssHighWaterMark() ?? 0,
    epochSeconds: r.report.epochSeconds[0],
    totalSeconds: r.report.totalSeconds,
    accuracy: r.report.accuracy,
    load: load(),
  };
}

const caseArg = args.indexOf('--case');
if (caseArg >= 0) {
  const which = args[caseArg + 1];
  const out = which === 'customize' ? await customizeCase() : await stepCase(which === 'step-pattern');
  process.stdout.write(`${JSON.stringify(out)}\n`);
} else {
  const mb = (b: number): string => `${(b / MB).toFixed(0)} MB`;
  say(
    `training memory: LoRA all-linear on USE-lite (r 8), 150-class head, batch ${BATCH}, maxLength ${MAX_LENGTH}, ` +
      `${THREADS} threads; ${os.cpus().length} cores, load ${load()}`,
  );
  const run = (c: string): StepCase | CustomizeCase => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), ...args.filter((a) => a !== '--json'), '--case', c],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * MB },
    );
    if (r.status !== 0) throw new Error(`bench/train-memory.ts --case ${c} failed (exit ${r.status ?? r.signal})`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as StepCase | CustomizeCase;
  };
  const results = ['step', 'step-pattern', 'customize'].map(run);
  for (const r of results) {
    if (r.case === 'customize') {
      say(
        `customize (${r.train} train / ${r.validation} validation rows, ${r.seq} tokens, 1 epoch): peak RSS ${mb(r.peakRssBytes)} ` +
          `(process ${mb(r.processPeakRssBytes)}), epoch ${r.epochSeconds.toFixed(0)} s, total ${r.totalSeconds.toFixed(0)} s, ` +
          `validation accuracy ${(100 * r.accuracy).toFixed(1)}%; load ${r.load}`,
      );
    } else {
      const ref = r.reference;
      say(
        `${r.case.padEnd(12)} ${BATCH}x${r.seq}: step ${r.stepMs.toFixed(0)} ms, peak RSS ${mb(r.peakRssBytes)} ` +
          `= ${mb(r.rssBeforeBytes)} before the engine + ${mb(r.engineBytes)}; reference ${mb(ref.totalBytes)} ` +
          `(weights ${mb(ref.weightsBytes)} + trainable state ${mb(ref.trainableStateBytes)} + saved activations ` +
          `${mb(ref.savedActivationBytes)}), engine/reference ${(r.engineBytes / ref.totalBytes).toFixed(2)}; load ${r.load}`,
      );
    }
  }
  if (json) console.log(JSON.stringify({ cases: results }));
}
