/**
 * `tailor customize | evaluate | runs | models` end to end on a tiny BERT (the base does not matter here) with
 * CLINC150 slices and a user CSV with other column names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { clincRows, json, tailor, workspace, type Workspace, clincArgs } from './fixtures.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { loadArtifact } from '../../src/models/artifact.ts';
import { loadHfModel } from '../../src/models/hf/load.ts';
import { countParams } from '../../src/models/model.ts';
import { readAdapterWeights } from '../../src/customize/peft.ts';
import { numel } from '../../src/onnx/tensor.ts';

/**
 * Accuracy and macro-F1 (scikit-learn's definition: unweighted mean of per-class F1, classes = the true labels)
 * of a saved model folder on rows, from its own predictions through the library's Classifier.
 */
async function recompute(dir: string, rows: ReadonlyArray<{ text: string; label: string }>) {
  const clf = await Classifier.load(dir);
  try {
    const pred = (await clf.predict(rows.map((r) => r.text))).map((p) => p.label);
    const right = pred.filter((p, i) => p === rows[i].label).length;
    const f1 = [...new Set(rows.map((r) => r.label))].map((c) => {
      const tp = pred.filter((p, i) => p === c && rows[i].label === c).length;
      const fp = pred.filter((p, i) => p === c && rows[i].label !== c).length;
      const fn = pred.filter((p, i) => p !== c && rows[i].label === c).length;
      return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
    });
    return { right, accuracy: right / rows.length, macroF1: f1.reduce((a, b) => a + b, 0) / f1.length };
  } finally {
    await clf.release();
  }
}

interface Metrics {
  accuracy: number;
  macro_f1: number;
  count: number;
}
interface CustomizeJson {
  run_id: string;
  baseline_run_id: string;
  strategy: string;
  trainable_params: number;
  total_params: number;
  train_seconds: number;
  baseline: Metrics;
  customized: Metrics;
  model: { name: string; version: number; ref: string };
  artifacts: { model: string; adapter?: string; report: string };
  comparison: { only_baseline_right: number; only_customized_right: number; p_value: number };
}

let ws: Workspace;

test('customize --json on CLINC150 (head strategy): one JSON object, artifact folder, run and model version', async (t) => {
  ws = await workspace('customize');
  t.after(() => rmSync(ws.dir, { recursive: true, force: true }));
  const out = path.join(ws.dir, 'clinc-head');
  const t0 = performance.now();
  const r = await tailor([
    'customize',
    '--base',
    ws.bert,
    '--train',
    ws.train,
    '--eval',
    ws.eval,
    '--text-column',
    'text',
    '--label-column',
    'intent',
    '--strategy',
    'head',
    '--epochs',
    '2',
    '--out',
    out,
    '--name',
    'clinc',
    '--home',
    ws.home,
    '--json',
  ]);
  const wall = (performance.now() - t0) / 1000;
  assert.equal(r.status, 0, r.stderr);
  const j = json<CustomizeJson>(r);
  assert.equal(j.strategy, 'head');
  assert.equal(j.baseline.count, 40);
  assert.equal(j.customized.count, 40);
  // The saved model's own predictions on the eval CSV give the reported figures.
  const evalRows = clincRows('test', 4, 10);
  const mine = await recompute(path.join(out, 'model'), evalRows);
  assert.equal(j.customized.accuracy, mine.accuracy);
  assert.ok(Math.abs(j.customized.macro_f1 - mine.macroF1) < 1e-12, `${j.customized.macro_f1} vs ${mine.macroF1}`);
  // The baseline's right answers = the customized model's, minus the rows only it got right, plus those only the
  // baseline got right (the McNemar counts).
  assert.equal(
    Math.round(j.baseline.accuracy * 40),
    mine.right - j.comparison.only_customized_right + j.comparison.only_baseline_right,
  );
  assert.match(j.run_id, /^[0-9a-f]{8,}/);
  // head: 16 features x 4 intents + 4 biases, on top of every parameter of the base folder.
  assert.equal(j.trainable_params, 16 * 4 + 4);
  assert.equal(j.total_params, countParams(await loadHfModel(ws.bert)).total + 16 * 4 + 4);
  assert.equal(j.total_params, countParams((await loadArtifact(out)).model).total);
  assert.ok(j.train_seconds > 0 && j.train_seconds < wall, `train ${j.train_seconds} s within the command's ${wall} s`);
  assert.deepEqual(j.model, { name: 'clinc', version: 1, ref: 'clinc:1', aliases: [] });
  for (const f of ['model/model.onnx', 'model/tokenizer.json', 'model/tailor.json', 'report.json', 'report.txt'])
    assert.ok(existsSync(path.join(out, f)), f);
  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as { customized: Metrics };
  assert.equal(report.customized.accuracy, j.customized.accuracy);

  // evaluate through the registry reproduces the customized accuracy on the same eval file.
  const ev = await tailor([
    'evaluate',
    '--model',
    'clinc@latest',
    '--eval',
    ws.eval,
    '--label-column',
    'intent',
    '--no-latency',
    '--home',
    ws.home,
    '--json',
  ]);
  assert.equal(ev.status, 0, ev.stderr);
  const e = json<{ count: number; metrics: { accuracy: number; macroF1: number } }>(ev);
  assert.equal(e.count, 40);
  assert.equal(e.metrics.accuracy, j.customized.accuracy);
  assert.ok(Math.abs(e.metrics.macroF1 - j.customized.macro_f1) < 1e-12);

  // runs: both runs are finished and compare pairs their eval predictions.
  const list = json<Array<{ id: string; status: string; name: string }>>(
    await tailor(['runs', 'list', '--home', ws.home, '--json']),
  );
  assert.deepEqual(list.map((x) => x.status).sort(), ['finished', 'finished']);
  assert.deepEqual(new Set(list.map((x) => x.id)), new Set([j.run_id, j.baseline_run_id]));
  const cmp = await tailor(['runs', 'compare', j.baseline_run_id.slice(0, 8), j.run_id.slice(0, 8), '--home', ws.home]);
  assert.equal(cmp.status, 0, cmp.stderr);
  assert.match(cmp.stdout, /McNemar exact: A right\/B wrong = (\d+), A wrong\/B right = (\d+), p = /);
  const [, b, c] = /A right\/B wrong = (\d+), A wrong\/B right = (\d+)/.exec(cmp.stdout)!;
  assert.equal(Number(b), j.comparison.only_baseline_right);
  assert.equal(Number(c), j.comparison.only_customized_right);
  assert.match(cmp.stdout, /accuracy\s+\d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]/);
  const show = json<{ params: Record<string, unknown>; status: string }>(
    await tailor(['runs', 'show', j.run_id, '--home', ws.home, '--json']),
  );
  assert.equal(show.params.strategy, 'head');

  // models: alias, show, export.
  const al = await tailor(['models', 'alias', 'clinc', 'production', '1', '--home', ws.home]);
  assert.equal(al.status, 0, al.stderr);
  assert.match(al.stdout, /clinc@production -> clinc:1/);
  const mv = json<{ version: number; aliases: string[]; parents: Array<{ relation: string; external?: string }> }>(
    await tailor(['models', 'show', 'clinc@production', '--home', ws.home, '--json']),
  );
  assert.equal(mv.version, 1);
  assert.ok(mv.aliases.includes('production'));
  assert.equal(mv.parents[0].relation, 'base');
  const dest = path.join(ws.dir, 'exported');
  const ex = await tailor(['models', 'export', 'clinc@production', dest, '--home', ws.home]);
  assert.equal(ex.status, 0, ex.stderr);
  assert.equal(
    readFileSync(path.join(dest, 'model.onnx')).length,
    readFileSync(path.join(out, 'model', 'model.onnx')).length,
  );
  const models = json<Array<{ name: string }>>(await tailor(['models', 'list', '--home', ws.home, '--json']));
  assert.deepEqual(
    models.map((m) => m.name),
    ['clinc'],
  );
});

test('customize and audit on a user CSV with other column names (lora)', async (t) => {
  const w = await workspace('user');
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const ta = performance.now();
  const audit = await tailor([
    'audit',
    '--base',
    w.bert,
    '--train',
    w.userTrain,
    '--eval',
    w.userEval,
    '--text-column',
    'utterance',
    '--label-column',
    'category',
    '--target-accuracy',
    '0.99',
    '--json',
  ]);
  const auditMs = performance.now() - ta;
  assert.equal(audit.status, 0, audit.stderr);
  const a = json<{
    recommendation: { strategy: string; rules: string[]; reasons: Array<{ rule: string; text: string }> };
    baseline: { accuracy: number };
    profile: { byOpType: Array<{ opType: string }> };
    latency: { batch1: { p50Ms: number } };
  }>(audit);
  // The rules, applied by hand: the gap to 99% decides R2/R3; 20 rows per intent minus the 10% validation split
  // leaves a median of 18 per class (< 20), so R6 fires and the strategy is SetFit either way.
  assert.ok(a.baseline.accuracy < 0.99, String(a.baseline.accuracy));
  const gap = (0.99 - a.baseline.accuracy) / 0.99;
  assert.deepEqual(a.recommendation.rules, [gap > 0.2 ? 'R2-large-gap' : 'R3-moderate-gap', 'R6-little-data']);
  assert.equal(a.recommendation.strategy, 'setfit');
  assert.ok(
    a.profile.byOpType.some(
      (o) => o.opType === 'MatMul' || o.opType === 'FusedMatMul' || o.opType === 'Gemm' || o.opType === 'FusedGemm',
    ),
  );
  assert.ok(a.latency.batch1.p50Ms > 0 && a.latency.batch1.p50Ms < auditMs, `p50 ${a.latency.batch1.p50Ms} ms`);
  assert.equal(existsSync(path.join(w.dir, '.tailor')), false, 'audit writes nothing');

  const out = path.join(w.dir, 'user-lora');
  const r = await tailor([
    'customize',
    '--base',
    w.bert,
    '--train',
    w.userTrain,
    '--eval',
    w.userEval,
    '--text-column',
    'utterance',
    '--label-column',
    'category',
    '--strategy',
    'lora',
    '--rank',
    '2',
    '--epochs',
    '1',
    '--out',
    out,
    '--home',
    w.home,
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<CustomizeJson>(r);
  assert.equal(j.strategy, 'lora');
  assert.ok(existsSync(path.join(out, 'adapter', 'adapter_config.json')));
  // What trained is exactly what the adapter file holds: rank-2 A/B pairs on every linear layer (the default
  // targets), PEFT's [r, in] and [out, r], on 16-wide projections, the 16 -> 32 FFN input and the 32 -> 16 FFN
  // output, and the 16 x 4 head.
  const { st } = await readAdapterWeights(path.join(out, 'adapter'));
  const shapes = [...st.tensors].map(([k, t]) => [k, [...t.dims]] as const);
  const lora = shapes.filter(([k]) => /lora_[AB]/.test(k));
  const width = (k: string): [number, number] =>
    /intermediate\.dense/.test(k) ? [16, 32] : /\.output\.dense/.test(k) && !/attention/.test(k) ? [32, 16] : [16, 16];
  for (const [k, d] of lora) {
    const [inW, outW] = width(k);
    assert.deepEqual(d, /lora_A/.test(k) ? [2, inW] : [outW, 2], k);
  }
  // Six linear modules a layer (query, key, value, attention output, FFN in, FFN out), an A and a B each.
  assert.equal(lora.length % 12, 0, JSON.stringify(shapes));
  assert.ok(
    lora.some(([k]) => /intermediate\.dense/.test(k)),
    'the FFN is adapted too',
  );
  const inFile = shapes.reduce((a, [, d]) => a + numel(d), 0);
  assert.equal(inFile, (lora.length / 12) * (4 * 2 * (2 * 16) + 2 * (2 * 16 + 2 * 32)) + 16 * 4 + 4);
  assert.equal(j.trainable_params, inFile);
  assert.equal(j.total_params, countParams(await loadHfModel(w.bert)).total + inFile);
  const evalRows = clincRows('test', 4, 10);
  assert.equal(j.customized.accuracy, (await recompute(path.join(out, 'model'), evalRows)).accuracy);
  assert.equal(j.model.name, 'user-lora');
});

test('a customized model significantly worse than the baseline is registered but takes no alias (exit 3) unless --allow-regression', async (t) => {
  const w = await workspace('regression');
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const run = (out: string, extra: string[]) =>
    tailor([
      'customize',
      ...clincArgs(w),
      '--epochs',
      '1',
      '--out',
      path.join(w.dir, out),
      '--name',
      'clinc',
      '--alias',
      'production',
      '--home',
      w.home,
      ...extra,
    ]);
  const alias = async (): Promise<number> => {
    const reg = await openRegistry({ home: w.home });
    try {
      return (await reg.getModel('clinc@production')).version;
    } finally {
      await reg.close();
    }
  };
  const good = await run('good', ['--strategy', 'none']);
  assert.equal(good.status, 0, good.stderr);
  assert.equal(await alias(), 1);
  // A learning rate of 0.5 for full fine-tuning wrecks the encoder: far below the ridge baseline on the same rows.
  const bad = await run('bad', ['--strategy', 'full', '--lr', '0.5']);
  assert.equal(bad.status, 3, bad.stderr);
  assert.match(bad.stdout, /alias not moved: the customized model is significantly worse than the baseline/);
  assert.match(bad.stdout, /McNemar p = /);
  assert.match(
    bad.stdout,
    /^calibration: temperature [\d.]+ fitted on validation and folded into the head; validation ECE [\d.]+ -> [\d.]+/m,
  );
  assert.equal(await alias(), 1, 'production stays on version 1');
  assert.ok(existsSync(path.join(w.dir, 'bad', 'model', 'tailor.json')), 'the version is still written');
  const forced = await run('forced', ['--strategy', 'full', '--lr', '0.5', '--allow-regression', '--json']);
  assert.equal(forced.status, 0, forced.stderr);
  const j = json<{ model: { version: number }; alias_decision: { moved: boolean; regression: boolean } }>(forced);
  assert.deepEqual([j.alias_decision.moved, j.alias_decision.regression], [true, true]);
  assert.equal(j.model.version, 3);
  assert.equal(await alias(), 3);
});

test('customize --head-type mlp: an MLP head on the frozen encoder, saved, recorded in the lineage, predicting what it reports; an unknown head type is a usage error', async (t) => {
  const w = await workspace('customize-mlp');
  t.after(() => rmSync(w.dir, { recursive: true, force: true }));
  const out = path.join(w.dir, 'clinc-mlp');
  const r = await tailor([
    'customize',
    ...clincArgs(w),
    '--strategy',
    'head',
    '--head-type',
    'mlp',
    '--epochs',
    '2',
    '--out',
    out,
    '--home',
    w.home,
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<CustomizeJson>(r);
  // 16 features: dense 16 x 16 + 16, out_proj 16 x 4 + 4.
  assert.equal(j.trainable_params, 16 * 16 + 16 + 16 * 4 + 4);
  const saved = await loadArtifact(out);
  assert.deepEqual([...saved.model.params.keys()].filter((k) => k.startsWith('classifier.')).sort(), [
    'classifier.dense.bias',
    'classifier.dense.weight',
    'classifier.out_proj.bias',
    'classifier.out_proj.weight',
  ]);
  const hp = (saved.info.lineage as { hyperparameters: Record<string, unknown> }).hyperparameters;
  assert.equal(hp.headType, 'mlp');
  assert.equal(hp.lr, 3e-4);
  const mine = await recompute(path.join(out, 'model'), clincRows('test', 4, 10));
  assert.equal(j.customized.accuracy, mine.accuracy);

  const bad = await tailor(['customize', ...clincArgs(w), '--head-type', 'tree', '--out', path.join(w.dir, 'x')]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--head-type.*'tree' is invalid\. Allowed choices are linear, mlp/);
  assert.equal(existsSync(path.join(w.dir, 'x')), false);
});
