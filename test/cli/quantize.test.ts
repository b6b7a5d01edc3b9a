/**
 * `tailor quantize` end to end on a tiny zoo-BERT classifier folder with CLINC150 slices: the JSON report, the
 * saved folder (loads back, its parameter table matches the quantized graph), registry versions with lineage, and
 * bad input (exact messages, nothing written).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadArtifact } from '../../src/models/artifact.ts';
import { paramValues } from '../../src/models/model.ts';
import { predictTexts, argmaxRows } from '../../src/models/text.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { json, tailor } from './fixtures.ts';
import { assertNothingWritten, compressionWorkspace, type CompressionWorkspace } from './quantize-fixtures.ts';

let ws: CompressionWorkspace;
test.before(async () => {
  ws = await compressionWorkspace('quantize-cli');
});
test.after(() => rmSync(ws.dir, { recursive: true, force: true }));

interface Report {
  mode: string;
  quantizedNodes: string[];
  quantizedEmbeddings: string[];
  skipped: Array<{ module: string; reason: string }>;
  float: { bytes: number; accuracy?: number; macroF1?: number };
  quantized: { bytes: number; accuracy?: number };
  sizeRatio: number;
  accuracyDelta?: number;
  layerErrors: Array<{ module: string; relativeMse: number }>;
  speedupBatch1?: number;
  out: string;
  run_id: string;
  source: string;
  model: {
    name: string;
    version: number;
    ref: string;
    parents: Array<{ relation: string; model?: string; external?: string }>;
  };
}
const common = (): string[] => [
  '--label-column',
  'intent',
  '--home',
  ws.home,
  '--json',
  '-q',
  '--latency-iterations',
  '3',
];

test('dynamic INT8 of a folder: report, a folder whose params describe the quantized graph, a registered version with lineage', async () => {
  const out = path.join(ws.dir, 'q-dynamic');
  const r = await tailor([
    'quantize',
    '--model',
    ws.teacher,
    '--mode',
    'dynamic',
    '--eval',
    ws.eval,
    '--out',
    out,
    ...common(),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<Report>(r);
  assert.equal(j.mode, 'dynamic-int8');
  // 2 layers x (query, key, value, attention output, intermediate, output), the pooler and the classifier.
  assert.equal(j.quantizedNodes.length, 14);
  assert.ok(j.quantizedNodes.includes('classifier'));
  assert.deepEqual(j.quantizedEmbeddings.sort(), [
    'bert.embeddings.position_embeddings',
    'bert.embeddings.token_type_embeddings',
    'bert.embeddings.word_embeddings',
  ]);
  assert.ok(j.quantized.bytes < j.float.bytes && j.sizeRatio === j.quantized.bytes / j.float.bytes);
  assert.equal(j.layerErrors.length, 14);
  assert.ok(j.speedupBatch1! > 0);
  // The float accuracy is the teacher's own, recomputed here from its logits.
  const teacher = await loadArtifact(ws.teacher);
  const { logits, classes } = await predictTexts(
    teacher.model,
    ws.evalRows.map((x) => x.text),
    { maxLength: 32 },
  );
  const pred = argmaxRows(logits, classes);
  const acc = pred.filter((p, i) => teacher.info.labels[p] === ws.evalRows[i].label).length / ws.evalRows.length;
  assert.equal(j.float.accuracy, acc);
  assert.equal(j.accuracyDelta, j.quantized.accuracy! - acc);

  // The saved folder loads; every parameter it lists exists in the graph (the stale-table bug) and none is trainable.
  const q = await loadArtifact(out);
  assert.ok(existsSync(path.join(out, 'quantization.json')));
  assert.ok(q.model.graph.nodes.some((n) => n.opType === 'MatMulInteger'));
  for (const p of q.model.params.values()) assert.ok(paramValues(q.model, p.path).length > 0, p.path);
  assert.equal(q.model.params.has('bert.encoder.layer.0.attention.self.query.weight'), false);
  assert.deepEqual(q.info.labels, ws.labels);

  // Registered: name from --out, lineage to the source folder, run finished with the metrics.
  assert.deepEqual(j.model, {
    name: 'q-dynamic',
    version: 1,
    ref: 'q-dynamic:1',
    aliases: [],
    parents: [{ relation: 'quantized-from', external: ws.teacher }],
  });
  const reg = await openRegistry({ home: ws.home });
  try {
    const mv = await reg.getModel('q-dynamic:1');
    assert.equal(mv.runId, j.run_id);
    const run = await reg.showRun(j.run_id);
    assert.equal(run.status, 'finished');
    assert.equal(run.latestMetrics.size_ratio, j.sizeRatio);
  } finally {
    await reg.close();
  }
});

test('static INT8 from a registry reference with JSONL calibration, entropy ranges and --exclude; INT4 asymmetric', async () => {
  const reg = await openRegistry({ home: ws.home });
  await reg.registerModel({ name: 'clinc', source: ws.teacher, aliases: ['production'] });
  await reg.close();
  const out = path.join(ws.dir, 'q-static');
  const r = await tailor([
    'quantize',
    '--model',
    'clinc@production',
    '--mode',
    'static',
    '--calibration',
    ws.unlabelled,
    '--calibration-method',
    'entropy',
    '--exclude',
    'layer\\.1\\.output',
    '--out',
    out,
    '--name',
    'clinc-int8',
    ...common(),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<Report>(r);
  assert.equal(j.mode, 'static-int8');
  assert.equal(j.quantizedNodes.length, 13);
  assert.deepEqual(
    j.skipped.map((s) => `${s.module}: ${s.reason}`),
    ['bert.encoder.layer.1.output.dense: excluded by /layer\\.1\\.output/'],
  );
  assert.equal(j.float.accuracy, undefined, 'no --eval, no accuracy');
  assert.deepEqual(j.model.parents, [{ relation: 'quantized-from', model: 'clinc:1' }]);
  assert.equal(j.model.ref, 'clinc-int8:1');
  const q = await loadArtifact(out);
  assert.ok(q.model.graph.nodes.some((n) => n.opType === 'QuantizeLinear'));
  assert.ok(
    q.model.params.has('bert.encoder.layer.1.output.dense.weight'),
    'the excluded layer keeps its float weight as a parameter',
  );

  const out4 = path.join(ws.dir, 'q-int4');
  const r4 = await tailor([
    'quantize',
    '--model',
    'clinc-int8@latest',
    '--mode',
    'int4',
    '--asymmetric',
    '--block-size',
    '16',
    '--min-weight-elements',
    '0',
    '--no-embeddings',
    '--out',
    out4,
    ...common(),
  ]);
  assert.equal(r4.status, 0, r4.stderr);
  const j4 = json<Report>(r4);
  assert.equal(j4.mode, 'int4');
  assert.equal(j4.quantizedNodes.length, 1, 'only the MatMul static left float is still a float MatMul');
  assert.deepEqual(j4.quantizedEmbeddings, []);
  assert.deepEqual(j4.model.parents, [{ relation: 'quantized-from', model: 'clinc-int8:1' }]);
  const nbits = (await loadArtifact(out4)).model.graph.nodes.find((n) => n.opType === 'MatMulNBits')!;
  assert.deepEqual([nbits.attrs.block_size, nbits.inputs.length], [{ type: 'int', value: 16 }, 4]);
});

test('bad input: exact messages, exit codes, nothing written', async () => {
  const out = path.join(ws.dir, 'bad-out');
  const home = path.join(ws.dir, 'bad-home');
  const nothing = (): void => assertNothingWritten(ws.dir, out, home);
  const run = (args: string[]) => tailor(['quantize', '--out', out, '--home', home, ...args]);
  const missing = path.join(ws.dir, 'no-such-model');
  let r = await run(['--model', missing]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `tailor: --model ${missing}: no such model folder`);
  nothing();
  r = await run(['--model', ws.teacher, '--mode', 'fast']);
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /error: option '--mode <mode>' argument 'fast' is invalid\. Allowed choices are dynamic, static, int4\./,
  );
  nothing();
  const calib = path.join(ws.dir, 'calib.csv');
  writeFileSync(calib, 'utterance,intent\nhello there,alarm\n');
  r = await run(['--model', ws.teacher, '--mode', 'static', '--calibration', calib]);
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim().split('\n').at(-1),
    `tailor: ${calib}:1: missing column "text" (found: "utterance", "intent")`,
  );
  nothing();
  r = await run(['--model', ws.teacher, '--mode', 'static']);
  assert.equal(
    r.stderr.trim(),
    'tailor: --mode static needs --calibration FILE (domain text to calibrate activation ranges on)',
  );
  nothing();
  r = await run(['--model', ws.teacher, '--eval', ws.eval]);
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim().split('\n').at(-1),
    `tailor: ${ws.eval}:1: missing column "label" (found: "text", "intent")`,
  );
  nothing();
  r = await run(['--model', 'clinc@staging']);
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim(),
    `tailor: no registry at ${home} (run 'tailor customize' first, or point --home / TAILOR_HOME at one)`,
  );
  nothing();
});
