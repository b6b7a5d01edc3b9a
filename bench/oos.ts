/**
 * Out-of-scope detection on the full CLINC150 (Larson et al. 2019: 150 intents, 15,000 train / 3,000 validation /
 * 4,500 test in-scope rows; 100 / 100 / 1,000 out-of-scope rows), USE-lite customized with `head` (and, with
 * `--strategies head,lora`, LoRA at the strategy's defaults). Every variant is scored on test.csv + oos_test.csv:
 *
 *   (a) the closed-set model, argmax (it answers every out-of-scope query with an intent);
 *   (b) (a) with an MSP threshold and (c) with an energy threshold, each fitted on the in-scope validation rows for a
 *       5% false-rejection rate (`--frr`), exactly as `tailor customize --abstain` does (eval/abstain.ts);
 *   (d) the model trained with an explicit out-of-scope class (oos_train rows added as class "oos", oos_validation
 *       in validation), argmax; and (d) + energy threshold.
 *
 * For `head`, the frozen encoder's features of every row are computed once and the heads applied to them (the
 * logits equal running the saved model: checked on the first test rows); LoRA changes the encoder, so its model runs
 * on every row. Figures: in-scope accuracy (a rejected in-scope row counts as wrong), accuracy on the in-scope rows
 * answered, false-rejection rate, out-of-scope recall, and each against (a) of the same strategy, measured in the
 * same run.
 *
 *   node --import tsx bench/oos.ts [--json] [--strategies head[,lora]] [--frr 0.05] [--epochs N] [--max-length 32] [--threads 2]
 *
 * Reads ../shared/datasets/clinc150 beside the repository (or $CLINC150_DIR). `npm run bench -- --sections oos`
 * runs it as the `oos` section; `head` alone took 13 minutes on 2 busy cores (load ~15); LoRA, whose 3 epochs run the
 * whole encoder over 15,000 rows twice over (with and without the oos class), takes hours there.
 */
import os from 'node:os';
import { customize, type CustomizeResult } from '../src/customize/customize.ts';
import { mergedModel } from '../src/customize/save.ts';
import {
  abstainedLabel,
  fitAbstainRule,
  outOfScopeMetrics,
  thresholdText,
  type AbstainRule,
  type AbstainScore,
  type OutOfScopeMetrics,
} from '../src/eval/abstain.ts';
import { argmax } from '../src/eval/metrics.ts';
import { HEAD_BIAS, HEAD_WEIGHT } from '../src/models/head.ts';
import { paramValues, type Model } from '../src/models/model.ts';
import { loadUseLite } from '../src/models/use/index.ts';
import { predictTexts, textFeatures } from '../src/models/text.ts';
import { renderTable } from '../src/util/table.ts';
import { readClinc, type ClincRow } from './clinc150.ts';
import { sayer, loadAverage } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const arg = (k: string, d: string): string => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const STRATEGIES = arg('--strategies', 'head').split(',') as Array<'head' | 'lora'>;
const FRR = Number(arg('--frr', '0.05'));
const MAX_LENGTH = Number(arg('--max-length', '32'));
/** Default: the strategy's own (customize's default, 3). */
const EPOCHS = args.includes('--epochs') ? Number(arg('--epochs', '3')) : undefined;
const THREADS = Number(arg('--threads', '2'));
const OOS = 'oos';
const say = sayer(json);
const load = loadAverage;
const secs = (t0: number): number => (performance.now() - t0) / 1000;

const split = {
  train: readClinc('train'),
  validation: readClinc('validation'),
  test: readClinc('test'),
  oosTrain: readClinc('oos_train'),
  oosValidation: readClinc('oos_validation'),
  oosTest: readClinc('oos_test'),
};
const evalRows = [...split.test, ...split.oosTest];
const yTrue = evalRows.map((r) => r.label);
const t00 = performance.now();
const loadStart = load();
say(
  `oos bench: USE-lite on CLINC150, ${split.train.length} train / ${split.validation.length} validation / ${split.test.length} test in-scope rows, ` +
    `${split.oosTrain.length} / ${split.oosValidation.length} / ${split.oosTest.length} out-of-scope; strategies ${STRATEGIES.join(', ')}; ` +
    `target FRR ${FRR}; maxLength ${MAX_LENGTH}; ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}; load ${loadStart}`,
);
const { model: base } = await loadUseLite();

/** Logit rows of `rows` for a customized model: its head on cached features (head), or the model itself. */
type Scorer = (model: Model, rows: readonly ClincRow[]) => Promise<Float32Array[]>;

/** The frozen encoder's features of every row the head variants need, computed once. */
let featureCache: Map<string, Float32Array> | undefined;
async function cachedFeatures(): Promise<Map<string, Float32Array>> {
  if (featureCache) return featureCache;
  const t0 = performance.now();
  const texts = [
    ...new Set([...split.validation, ...split.oosValidation, ...split.test, ...split.oosTest].map((r) => r.text)),
  ];
  const f = await textFeatures(base, texts, { maxLength: MAX_LENGTH, intraOpThreads: THREADS, batchSize: 64 });
  featureCache = new Map(texts.map((t, i) => [t, f.features.subarray(i * f.width, (i + 1) * f.width)]));
  say(`  encoder features of ${texts.length} validation/test texts: ${secs(t0).toFixed(0)} s (load ${load()})`);
  return featureCache;
}

const headScorer: Scorer = async (model, rows) => {
  const features = await cachedFeatures();
  const w = paramValues(model, HEAD_WEIGHT) as Float32Array; // [features, labels] row-major
  const b = paramValues(model, HEAD_BIAS) as Float32Array;
  const C = b.length;
  return rows.map((r) => {
    const x = features.get(r.text)!;
    const out = Float32Array.from(b);
    for (let f = 0; f < x.length; f++) {
      const v = x[f];
      const o = f * C;
      for (let c = 0; c < C; c++) out[c] += v * w[o + c];
    }
    return out;
  });
};

const modelScorer: Scorer = async (model, rows) => {
  const r = await predictTexts(
    model,
    rows.map((x) => x.text),
    { maxLength: MAX_LENGTH, intraOpThreads: THREADS, batchSize: 64 },
  );
  return rows.map((_, i) => r.logits.subarray(i * r.classes, (i + 1) * r.classes));
};

interface Row {
  strategy: string;
  variant: string;
  /** The threshold and how it did on validation, for abstaining variants. */
  threshold?: string;
  validationFrr?: number;
  metrics: OutOfScopeMetrics;
}
const rows: Row[] = [];
const runs: Array<{ strategy: string; withOosClass: boolean; seconds: number; valAccuracy: number }> = [];

async function train(
  strategy: 'head' | 'lora',
  withOosClass: boolean,
): Promise<{ model: Model; result: CustomizeResult }> {
  const t0 = performance.now();
  const data = {
    train: withOosClass ? [...split.train, ...split.oosTrain] : split.train,
    validation: withOosClass ? [...split.validation, ...split.oosValidation] : split.validation,
  };
  const result = await customize(base, data, {
    strategy,
    seed: 0,
    maxLength: MAX_LENGTH,
    threads: THREADS,
    ...(EPOCHS !== undefined ? { epochs: EPOCHS } : {}),
    onEpoch: (e) =>
      say(
        `    ${strategy} epoch ${e.epoch + 1}: val accuracy ${(100 * e.accuracy).toFixed(2)}%, ${e.seconds.toFixed(0)} s (load ${load()})`,
      ),
  });
  const seconds = secs(t0);
  runs.push({ strategy, withOosClass, seconds, valAccuracy: result.report.accuracy });
  say(
    `  customized ${strategy}${withOosClass ? ' + oos class' : ''}: validation accuracy ${(100 * result.report.accuracy).toFixed(2)}% in ${seconds.toFixed(0)} s (load ${load()})`,
  );
  return { model: mergedModel(result, base), result };
}

function score(
  strategy: string,
  variant: string,
  labels: readonly string[],
  logits: readonly Float32Array[],
  rule?: AbstainRule,
): void {
  const pred = logits.map((l) => abstainedLabel(labels[argmax(l)], l, rule));
  rows.push({
    strategy,
    variant,
    ...(rule ? { threshold: thresholdText(rule.spec), validationFrr: rule.spec.validation.falseRejectionRate } : {}),
    metrics: outOfScopeMetrics(yTrue, pred, { oosLabel: OOS }),
  });
}

for (const strategy of STRATEGIES) {
  const scorer = strategy === 'head' ? headScorer : modelScorer;
  // (a)-(c): the closed-set model, without and with a threshold fitted on in-scope validation.
  {
    const { model, result } = await train(strategy, false);
    const labels = result.labels;
    if (strategy === 'head') {
      // The cached-feature logits are the saved model's: compare on the first test rows.
      const probe = split.test.slice(0, 64);
      const [a, b] = [await headScorer(model, probe), await modelScorer(model, probe)];
      let diff = 0;
      a.forEach((row, i) => row.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - b[i][j])))));
      say(
        `  cached-feature logits vs the model run on ${probe.length} test rows: max |difference| ${diff.toExponential(1)}`,
      );
      if (diff > 1e-3) throw new Error(`head logits from cached features differ from the model's by ${diff}`);
    }
    const valLogits = await scorer(model, split.validation);
    const evalLogits = await scorer(model, evalRows);
    score(strategy, '(a) closed set, argmax', labels, evalLogits);
    for (const [tag, s] of [
      ['(b)', 'msp'],
      ['(c)', 'energy'],
    ] as Array<[string, AbstainScore]>) {
      const rule = fitAbstainRule({ labels, score: s, inScope: valLogits, targetFrr: FRR });
      score(strategy, `${tag} ${s} threshold`, labels, evalLogits, rule);
    }
  }
  // (d): trained with the oos rows as a class; then an energy threshold on top (FRR counts both rejections).
  {
    const { model, result } = await train(strategy, true);
    const labels = result.labels;
    const valLogits = await scorer(model, split.validation);
    const evalLogits = await scorer(model, evalRows);
    score(strategy, `(d) oos class, argmax`, labels, evalLogits);
    const rule = fitAbstainRule({
      labels,
      score: 'energy',
      inScope: valLogits,
      outOfScope: await scorer(model, split.oosValidation),
      targetFrr: FRR,
      outOfScopeClass: OOS,
    });
    score(strategy, `(d) + energy threshold`, labels, evalLogits, rule);
  }
}

const pct = (x: number | null | undefined): string =>
  x === null || x === undefined ? '-' : `${(100 * x).toFixed(2)}%`;
const pts = (x: number | null, y: number | null): string =>
  x === null || y === null ? '-' : `${x - y >= 0 ? '+' : ''}${(100 * (x - y)).toFixed(2)}`;
const baseOf = (s: string): OutOfScopeMetrics => rows.find((r) => r.strategy === s)!.metrics;
const table = renderTable(
  [
    'strategy',
    'variant',
    'threshold',
    'val FRR',
    'in-scope acc',
    'vs (a)',
    'acc answered',
    'test FRR',
    'oos recall',
    'vs (a)',
  ],
  rows.map((r) => [
    r.strategy,
    r.variant,
    r.threshold ?? '-',
    pct(r.validationFrr),
    pct(r.metrics.inScopeAccuracy),
    pts(r.metrics.inScopeAccuracy, baseOf(r.strategy).inScopeAccuracy),
    pct(r.metrics.acceptedAccuracy),
    pct(r.metrics.falseRejectionRate),
    pct(r.metrics.outOfScopeRecall),
    pts(r.metrics.outOfScopeRecall, baseOf(r.strategy).outOfScopeRecall),
  ]),
  ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
);
const summary = `On CLINC150 test (${split.test.length} in-scope + ${split.oosTest.length} out-of-scope rows); thresholds fitted on the ${split.validation.length} in-scope validation rows for ${(100 * FRR).toFixed(0)}% false rejections; ${secs(t00).toFixed(0)} s in all, load ${loadStart} at start, ${load()} at end`;
if (json) console.log(JSON.stringify({ frr: FRR, maxLength: MAX_LENGTH, runs, rows, seconds: secs(t00) }));
else {
  say(summary);
  say(table);
}
