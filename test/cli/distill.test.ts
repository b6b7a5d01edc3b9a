/**
 * `tailor distill` end to end: a tiny zoo-BERT classifier folder as teacher (2 layers), a 1-layer student from its
 * alternate layers on CLINC150 slices (labelled + unlabelled transfer text), a teacher produced by `tailor customize`
 * through the registry, and bad input (exact messages, nothing written).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { loadArtifact } from '../../src/models/artifact.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { countParams } from '../../src/models/model.ts';
import { openRegistry } from '../../src/registry/index.ts';
import { json, tailor, workspace, clincArgs } from './fixtures.ts';
import { assertNothingWritten, compressionWorkspace, type CompressionWorkspace } from './quantize-fixtures.ts';

let ws: CompressionWorkspace;
test.before(async () => {
  ws = await compressionWorkspace('distill-cli');
});
test.after(() => rmSync(ws.dir, { recursive: true, force: true }));

interface Side {
  accuracy: number;
  params: number;
  bytesOnDisk: number;
}
interface Report {
  teacher: Side;
  student: Side;
  agreement: number;
  reportOn: string;
  speedupBatch1: number;
  init: { kind: string; teacherLayers: number[] | null; copiedParams: number; hidden: number; layers: number };
  config: {
    temperature: number;
    alpha: number;
    labelledRows: number;
    teacherLabelledRows: number;
    transferRows: number;
    teacherRuns: number;
  };
  train: { epochs: number; steps: number };
  run_id: string;
  model: {
    name: string;
    version: number;
    ref: string;
    parents: Array<{ relation: string; model?: string; external?: string }>;
  };
}

test('distil a classifier folder into 1 layer: report, student folder, registered version with lineage to the teacher', async () => {
  const out = path.join(ws.dir, 'student');
  const r = await tailor([
    'distill',
    '--teacher',
    ws.teacher,
    '--student-layers',
    '1',
    '--train',
    ws.train,
    '--unlabelled',
    ws.unlabelled,
    '--eval',
    ws.eval,
    '--label-column',
    'intent',
    '--epochs',
    '2',
    '--temperature',
    '3',
    '--alpha',
    '0.7',
    '--lr',
    '1e-3',
    '--out',
    out,
    '--home',
    ws.home,
    '--json',
    '-q',
    '--latency-iterations',
    '3',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<Report>(r);
  assert.deepEqual(j.init, {
    kind: 'teacher-layers',
    teacherLayers: [0],
    copiedParams: 21,
    hidden: 32,
    layers: 1,
    heads: 1,
  });
  assert.deepEqual(
    { ...j.config },
    {
      temperature: 3,
      alpha: 0.7,
      hiddenWeight: 0,
      labelledRows: 80,
      teacherLabelledRows: 40,
      transferRows: 120,
      teacherRuns: 2,
    },
  );
  assert.equal(j.reportOn, 'eval');
  assert.equal(j.train.epochs, 2);
  const teacher = await loadArtifact(ws.teacher);
  const student = await loadArtifact(out);
  assert.equal(j.teacher.params, countParams(teacher.model).total);
  assert.equal(j.student.params, countParams(student.model).total);
  // One encoder layer fewer: 4·32·32 + 4·32 (attention) + 2·32·64 + 64 + 32 (FFN) + 4·32 (two LayerNorms).
  assert.equal(j.teacher.params - j.student.params, 4 * 32 * 32 + 4 * 32 + 2 * 32 * 64 + 64 + 32 + 4 * 32);
  assert.deepEqual(student.info.labels, ws.labels);
  assert.ok(existsSync(path.join(out, 'distillation.json')));
  // Both folders' own predictions on the eval CSV, through the library's Classifier, give the report's figures.
  const predict = async (dir: string): Promise<string[]> => {
    const clf = await Classifier.load(dir);
    try {
      return (await clf.predict(ws.evalRows.map((x) => x.text))).map((p) => p.label);
    } finally {
      await clf.release();
    }
  };
  const [tp, sp] = [await predict(ws.teacher), await predict(out)];
  const acc = (p: string[]): number => p.filter((l, i) => l === ws.evalRows[i].label).length / p.length;
  assert.equal(j.teacher.accuracy, acc(tp));
  assert.equal(j.student.accuracy, acc(sp));
  assert.equal(j.agreement, sp.filter((l, i) => l === tp[i]).length / sp.length);
  assert.deepEqual(j.model, {
    name: 'student',
    version: 1,
    ref: 'student:1',
    aliases: [],
    parents: [{ relation: 'distilled-from', external: ws.teacher }],
  });
  const reg = await openRegistry({ home: ws.home });
  try {
    assert.equal((await reg.getModel('student:1')).runId, j.run_id);
    const run = await reg.showRun(j.run_id);
    assert.equal(run.status, 'finished');
    assert.equal(run.params.alpha, 0.7);
  } finally {
    await reg.close();
  }
});

test('a teacher made by tailor customize, by registry reference, unlabelled text only; then quantize the student', async (t) => {
  const cw = await workspace('distill-customize');
  t.after(() => rmSync(cw.dir, { recursive: true, force: true }));
  const c = await tailor([
    'customize',
    ...clincArgs(cw),
    '--strategy',
    'head',
    '--epochs',
    '1',
    '--out',
    path.join(cw.dir, 'cust'),
    '--name',
    'clinc',
    '--home',
    cw.home,
    '--json',
    '-q',
  ]);
  assert.equal(c.status, 0, c.stderr);
  const out = path.join(cw.dir, 'small');
  const r = await tailor([
    'distill',
    '--teacher',
    'clinc@latest',
    '--student-layers',
    '1',
    '--student-hidden',
    '8',
    '--student-heads',
    '2',
    '--unlabelled',
    cw.userTrain,
    '--text-column',
    'utterance',
    '--alpha',
    '1',
    '--epochs',
    '1',
    '--out',
    out,
    '--home',
    cw.home,
    '--json',
    '-q',
    '--latency-iterations',
    '3',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = json<Report>(r);
  assert.equal(j.init.kind, 'fresh');
  assert.equal(j.init.hidden, 8);
  assert.equal(j.reportOn, 'teacher');
  assert.equal(j.teacher.accuracy, 1, 'against its own predictions');
  assert.equal(j.student.accuracy, j.agreement);
  assert.equal(j.config.teacherLabelledRows, 80);
  assert.deepEqual(j.model.parents, [{ relation: 'distilled-from', model: 'clinc:1' }]);
  const q = await tailor([
    'quantize',
    '--model',
    `${j.model.ref}`,
    '--out',
    path.join(cw.dir, 'small-int8'),
    '--home',
    cw.home,
    '--json',
    '-q',
    '--latency-iterations',
    '2',
  ]);
  assert.equal(q.status, 0, q.stderr);
  assert.deepEqual(json<Report>(q).model.parents, [{ relation: 'quantized-from', model: 'small:1' }]);
});

test('bad input: exact messages, exit codes, nothing written', async () => {
  const out = path.join(ws.dir, 'bad-out');
  const home = path.join(ws.dir, 'bad-home');
  const nothing = (): void => assertNothingWritten(ws.dir, out, home);
  const run = (args: string[]) => tailor(['distill', '--out', out, '--home', home, ...args]);
  const missing = path.join(ws.dir, 'nope');
  let r = await run(['--teacher', missing, '--student-layers', '1', '--unlabelled', ws.unlabelled]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `tailor: --teacher ${missing}: no such model folder`);
  nothing();
  r = await run(['--teacher', ws.teacher, '--student-layers', '1']);
  assert.equal(
    r.stderr.trim(),
    'tailor: distill needs transfer text: --train FILE (labelled) and/or --unlabelled FILE',
  );
  nothing();
  r = await run(['--teacher', ws.teacher, '--student-layers', '0', '--unlabelled', ws.unlabelled]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /error: option '--student-layers <n>' argument '0' is invalid\. must be an integer >= 1/);
  nothing();
  r = await run(['--teacher', ws.teacher, '--student-layers', '3', '--unlabelled', ws.unlabelled]);
  assert.equal(r.stderr.trim().split('\n').at(-1), "tailor: a student of the teacher's width needs 1..2 layers, got 3");
  nothing();
  r = await run(['--teacher', ws.teacher, '--student-layers', '1', '--train', ws.eval]);
  assert.equal(r.stderr.trim(), `tailor: ${ws.eval}:1: missing column "label" (found: "text", "intent")`);
  nothing();
});
