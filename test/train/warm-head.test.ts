import assert from 'node:assert/strict';
import { test } from 'node:test';
import { predictTexts } from '../../src/models/text.ts';
import { mergeAdapter } from '../../src/customize/adapters.ts';
import { customize, selectionKey, type CustomizeResult } from '../../src/customize/customize.ts';
import type { CustomizeData } from '../../src/customize/types.ts';
import { HEAD_BIAS, HEAD_WEIGHT } from '../../src/models/head.ts';
import { fitWarmHead } from '../../src/train/warm-head.ts';
import { fitLinearHead, linearScores } from '../../src/train/linear-probe.ts';
import { calibrationFromConfidence } from '../../src/eval/calibration.ts';
import { paramValues, type Model } from '../../src/models/model.ts';
import { clincSlice, tinyBert } from '../customize/fixtures.ts';

const data = clincSlice(4, 30, 10);
const base = tinyBert(data);

/**
 * Mean log-loss and per-example (confidence, correct) of a model's logits on the validation split, in plain JS;
 * `scale` multiplies the logits first (the fitted temperature undoes the temperature folded into the head).
 */
async function validationProbabilities(
  m: Model,
  labels: readonly string[],
  d: CustomizeData = data,
  scale = 1,
): Promise<{ nll: number; conf: number[]; correct: boolean[] }> {
  const { logits, classes } = await predictTexts(
    m,
    d.validation.map((r) => r.text),
    { maxLength: 24 },
  );
  let nll = 0;
  const conf: number[] = [];
  const correct: boolean[] = [];
  d.validation.forEach((r, i) => {
    const row = Array.from(logits.subarray(i * classes, (i + 1) * classes), (v) => v * scale);
    const mx = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - mx), 0);
    const y = labels.indexOf(r.label);
    nll += Math.log(z) - (row[y] - mx);
    const arg = row.indexOf(mx);
    conf.push(1 / z);
    correct.push(arg === y);
  });
  return { nll: nll / d.validation.length, conf, correct };
}

test('selection key: more correct always wins; equal counts go to the lower log-loss', () => {
  assert.ok(selectionKey(10, 50) > selectionKey(9, 0));
  assert.ok(selectionKey(10, 0.1) > selectionKey(10, 0.2));
  assert.ok(selectionKey(10, 0) > selectionKey(10, 1e-9));
});

test('best epoch: among epochs of equal validation accuracy the lowest loss wins, and the returned model has exactly its probabilities (then temperature-scaled)', async () => {
  // A head-only run on an easy slice: accuracy saturates early while the loss keeps falling. The old rule (first
  // epoch of best accuracy) returned a barely trained head, whose confidences sat near 1/classes.
  const words = ['table', 'river', 'green', 'seven', 'window', 'music', 'paper', 'stone', 'light', 'cloud'];
  const rows = (label: string, from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      text: `${label} ${label} ${words[(from + i) % 10]} ${words[(from + 3 * i) % 10]}`,
      label,
    }));
  const easy: CustomizeData = {
    train: [...rows('yes', 0, 40), ...rows('no', 0, 40)],
    validation: [...rows('yes', 5, 10), ...rows('no', 5, 10)],
  };
  const easyBase = tinyBert(easy);
  const r = await customize(easyBase, easy, {
    strategy: 'head',
    epochs: 6,
    batchSize: 20,
    lr: 3e-2,
    seed: 1,
    threads: 1,
    maxLength: 24,
    // From a random head (the warm head would already be at 100% with a low loss: no epochs to choose between).
    warmStartHead: false,
  });
  const c = r.report.curve;
  const bestAcc = Math.max(...c.map((e) => e.accuracy));
  const tied = c.filter((e) => e.accuracy === bestAcc);
  assert.ok(
    tied.length >= 2,
    `the slice should give tied accuracies (curve ${JSON.stringify(c.map((e) => e.accuracy))})`,
  );
  const want = tied.reduce((a, e) => (e.valLoss < a.valLoss ? e : a));
  assert.equal(r.report.bestEpoch, want.epoch);
  assert.ok(want.epoch > tied[0].epoch, 'a later epoch than the first of the tie');
  const cal = r.report.calibration;
  const p = await validationProbabilities(r.model, r.labels, easy, cal.temperature);
  assert.ok(Math.abs(p.nll - want.valLoss) < 1e-4, `exported model log-loss ${p.nll} vs training-time ${want.valLoss}`);
  const scaled = await validationProbabilities(r.model, r.labels, easy);
  assert.ok(Math.abs(scaled.nll - cal.logLossAfter) < 1e-4, `${scaled.nll} vs calibrated ${cal.logLossAfter}`);
  assert.ok(cal.logLossAfter <= want.valLoss);
});

let lora: CustomizeResult;

test('lora (warm-started head by default): the merged model reproduces training-time probabilities and is calibrated', async () => {
  lora = await customize(base, data, {
    strategy: 'lora',
    epochs: 3,
    batchSize: 20,
    lr: 5e-3,
    seed: 1,
    threads: 1,
    maxLength: 24,
    lora: { targets: 'query|value', r: 4, alpha: 8 },
  });
  assert.equal(lora.report.headInit.kind, 'warm');
  const best = lora.report.curve[lora.report.bestEpoch];
  const merged = mergeAdapter(base, lora.adapter!).model;
  const cal = lora.report.calibration;
  const raw = await validationProbabilities(merged, lora.labels, data, cal.temperature);
  assert.ok(Math.abs(raw.nll - best.valLoss) < 1e-4, `merged log-loss ${raw.nll} vs training-time ${best.valLoss}`);
  // The merged model itself is temperature-scaled: the calibrated log-loss, no higher than the raw one.
  const p = await validationProbabilities(merged, lora.labels);
  assert.ok(Math.abs(p.nll - cal.logLossAfter) < 1e-4, `merged log-loss ${p.nll} vs calibrated ${cal.logLossAfter}`);
  assert.ok(cal.logLossAfter <= best.valLoss);
  const acc = p.correct.filter(Boolean).length / p.correct.length;
  assert.ok(Math.abs(acc - best.accuracy) < 1e-9);
  const ece = calibrationFromConfidence(p.conf, p.correct, 10).ece;
  assert.ok(ece < 0.2, `ECE ${ece}`);
  // Confidences are not stuck near 1/classes as they were with the first-tied-epoch rule.
  assert.ok(p.conf.reduce((a, b) => a + b, 0) / p.conf.length > 0.5);
});

test('warm start: the head starts at the softmax-regression fit on frozen features, which beats a random head', async () => {
  const hi = lora.report.headInit;
  assert.equal(hi.kind, 'warm');
  if (hi.kind !== 'warm') return;
  assert.ok(hi.valLoss < Math.log(4) - 0.1, `warm head validation loss ${hi.valLoss} vs uniform ${Math.log(4)}`);
  // A given head is used as is (lr ~ 0 so training does not move it visibly).
  const D = lora.adapter!.head!.features;
  const weight = Float32Array.from({ length: D * 4 }, (_, i) => ((i * 7) % 5) / 10 - 0.2);
  const bias = Float32Array.of(0.1, -0.1, 0.2, 0);
  const r = await customize(base, data, {
    strategy: 'bitfit',
    epochs: 1,
    batchSize: 20,
    lr: 1e-12,
    seed: 1,
    threads: 1,
    maxLength: 24,
    head: { weight, bias },
  });
  assert.equal(r.report.headInit.kind, 'given');
  // The returned head is the given one with the fitted temperature folded in (divided by T).
  const T = r.report.calibration.temperature;
  const w = paramValues(r.model, HEAD_WEIGHT) as Float32Array;
  const b = paramValues(r.model, HEAD_BIAS) as Float32Array;
  for (let i = 0; i < w.length; i++) assert.ok(Math.abs(w[i] * T - weight[i]) < 1e-6);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(b[i] * T - bias[i]) < 1e-6);
});

test('fitWarmHead: stationary point of the relative-L2-regularised log-loss (gradient checked in plain JS)', async () => {
  const n = 60,
    d = 5,
    k = 3;
  let s = 7;
  const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
  const y = Array.from({ length: n }, (_, i) => i % k);
  const x = Float32Array.from({ length: n * d }, (_, i) => rnd() + (i % d === y[Math.floor(i / d)] ? 0.6 : 0));
  const h = await fitWarmHead({ features: x, labels: y }, { features: x, labels: y }, d, k, {
    l2: [0.05],
    iterations: 3000,
    scaledRidge: false,
  });
  // Gradient of mean CE + (l2/2)|W|^2 at the fit, computed independently.
  const gw = new Float64Array(d * k);
  const gb = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const sc = Array.from(
      { length: k },
      (_, c) =>
        h.bias[c] + Array.from({ length: d }, (_, j) => x[i * d + j] * h.weight[j * k + c]).reduce((a, b) => a + b, 0),
    );
    const mx = Math.max(...sc);
    const e = sc.map((v) => Math.exp(v - mx));
    const z = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < k; c++) {
      const g = (e[c] / z - (c === y[i] ? 1 : 0)) / n;
      gb[c] += g;
      for (let j = 0; j < d; j++) gw[j * k + c] += x[i * d + j] * g;
    }
  }
  // The L2 is relative to the mean per-feature variance of the training features.
  let v = 0;
  for (let j = 0; j < d; j++) {
    const col = Array.from({ length: n }, (_, i) => x[i * d + j]);
    const m = col.reduce((a, b) => a + b, 0) / n;
    v += col.reduce((a, b) => a + (b - m) ** 2, 0) / n;
  }
  const pen = (0.05 * v) / d;
  for (let i = 0; i < d * k; i++)
    assert.ok(Math.abs(gw[i] + pen * h.weight[i]) < 1e-4, `dW[${i}] = ${gw[i] + pen * h.weight[i]}`);
  for (let c = 0; c < k; c++) assert.ok(Math.abs(gb[c]) < 1e-4, `db[${c}] = ${gb[c]}`);
  assert.equal(h.l2, 0.05);
  assert.ok(h.valAccuracy > 0.8);
});

test('fitWarmHead on unit-norm sentence-embedding-like features: never below the temperature-scaled ridge head it starts from', async () => {
  // An absolute L2 shrank such heads (per-feature variance ~1/d) below the ridge head: USE-lite on SpamAssassin 97% -> 91%.
  const d = 128;
  const make = (n: number, seed: number): { x: Float32Array; y: number[] } => {
    let s = seed;
    const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    const y = Array.from({ length: n }, (_, i) => i % 2);
    const x = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const row = Array.from({ length: d }, (_, j) => rnd() + (j === 0 ? 0.8 : 0) + (j < 4 ? (y[i] ? 0.2 : -0.2) : 0));
      const nrm = Math.hypot(...row);
      row.forEach((v, j) => {
        x[i * d + j] = v / nrm;
      });
    }
    return { x, y };
  };
  const tr = make(300, 3);
  const va = make(300, 11);
  const ridge = await fitLinearHead(tr.x, tr.y, d, 2, { validation: { features: va.x, labels: va.y } });
  const sc = linearScores(ridge, va.x);
  const ridgeCorrect = va.y.filter((y, i) => (sc[i * 2 + 1] > sc[i * 2] ? 1 : 0) === y).length;
  // Best temperature for the ridge scores by a plain grid, in plain JS.
  let ridgeLoss = Infinity;
  for (let t = -4; t <= 8; t += 0.01) {
    const a = Math.exp(t);
    let l = 0;
    va.y.forEach((y, i) => {
      const s0 = a * sc[i * 2];
      const s1 = a * sc[i * 2 + 1];
      const m = Math.max(s0, s1);
      l += m + Math.log(Math.exp(s0 - m) + Math.exp(s1 - m)) - (y ? s1 : s0);
    });
    ridgeLoss = Math.min(ridgeLoss, l / va.y.length);
  }
  const h = await fitWarmHead({ features: tr.x, labels: tr.y }, { features: va.x, labels: va.y }, d, 2);
  const correct = Math.round(h.valAccuracy * va.y.length);
  assert.ok(correct >= ridgeCorrect, `warm head ${correct} correct < ridge ${ridgeCorrect}`);
  if (correct === ridgeCorrect)
    assert.ok(h.valLoss <= ridgeLoss + 1e-3, `warm head log-loss ${h.valLoss} > scaled ridge ${ridgeLoss}`);
  assert.ok(h.valLoss < 0.6 * Math.log(2), `warm head log-loss ${h.valLoss}`);
});

test('lora with lr 0: epoch 0 is exactly the warm head (same validation accuracy and log-loss); a tiny lr stays close', async () => {
  const opts = { strategy: 'lora' as const, epochs: 1, batchSize: 20, seed: 1, threads: 1, maxLength: 24 };
  const r0 = await customize(base, data, { ...opts, lr: 0 });
  const hi = r0.report.headInit;
  assert.equal(hi.kind, 'warm');
  if (hi.kind !== 'warm') return;
  assert.equal(r0.report.curve[0].accuracy, hi.valAccuracy);
  assert.ok(
    Math.abs(r0.report.curve[0].valLoss - hi.valLoss) < 1e-5,
    `epoch 0 ${r0.report.curve[0].valLoss} vs warm ${hi.valLoss}`,
  );
  const r1 = await customize(base, data, { ...opts, lr: 1e-5 });
  assert.ok(
    r1.report.curve[0].accuracy >= hi.valAccuracy - 0.05,
    `epoch 0 accuracy ${r1.report.curve[0].accuracy} vs warm head ${hi.valAccuracy}`,
  );
  assert.ok(
    r1.report.curve[0].valLoss <= hi.valLoss + 0.05,
    `epoch 0 loss ${r1.report.curve[0].valLoss} vs warm head ${hi.valLoss}`,
  );
});
