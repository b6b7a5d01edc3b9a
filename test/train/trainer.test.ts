import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildEncoderClassifier, classificationLoss } from '../../bench/encoder.ts';
import { TrainingError } from '../../src/errors.ts';
import { readSafetensors } from '../../src/onnx/safetensors.ts';
import { ort } from '../../src/runtime/session.ts';
import { loadLatestCheckpoint } from '../../src/train/checkpoint.ts';
import { TrainRng } from '../../src/util/rng.ts';
import { epochPermutation, tensorData, Trainer } from '../../src/train/trainer.ts';
import { clincSlice } from './clinc.ts';
import { IN, lcg, linearGradients, linearModel, mseLoss, OUT } from './helpers.ts';
import { logitsAccuracy } from '../../src/train/metrics.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const isParam = (n: string): boolean => /\.(weight|bias)$/.test(n);

const accuracy = logitsAccuracy();

test('a small transformer classifier trained on 10 CLINC150 intents beats chance (10%) by far', async () => {
  const d = clincSlice(10, 16);
  assert.equal(d.classes, 10);
  const g = buildEncoderClassifier({
    vocab: d.vocab,
    hidden: 32,
    heads: 2,
    ffn: 64,
    layers: 1,
    maxSeq: 16,
    classes: d.classes,
    dropout: 0.1,
    seed: 1,
  });
  const steps: number[] = [];
  const trainer = new Trainer(g, classificationLoss, isParam, d.train, {
    seed: 1,
    epochs: 8,
    batchSize: 32,
    optimizer: { type: 'adamw', lr: 3e-3 },
    session: { intraOpThreads: 1 },
    validation: { data: d.validation, batchSize: 200, metrics: accuracy },
    earlyStopping: { metric: 'accuracy', mode: 'max', patience: 2 },
    progress: 'none',
    onStep: (s) => {
      steps.push(s.loss);
    },
  });
  const r = await trainer.fit();
  await trainer.release();
  // 40 training rows per intent in the committed slice; early stopping may end the run at an epoch boundary.
  assert.equal(r.steps, r.history.length * Math.floor(400 / 32));
  const accs = r.history.map((h) => h.accuracy);
  assert.ok(r.best && r.best.metric === Math.max(...accs), `best ${JSON.stringify(r.best)} vs history ${accs}`);
  assert.ok(r.best.metric > 0.5, `validation accuracy ${r.best.metric}`);
  assert.ok(steps[steps.length - 1] < steps[0] / 2, `loss ${steps[0]} -> ${steps[steps.length - 1]}`);
});

test('same seed gives identical weights; another seed (other shuffles and dropout masks) does not', async () => {
  const d = clincSlice(3, 8);
  const run = async (seed: number): Promise<Float32Array> => {
    const g = buildEncoderClassifier({
      vocab: d.vocab,
      hidden: 8,
      heads: 2,
      ffn: 16,
      layers: 1,
      maxSeq: 8,
      classes: d.classes,
      dropout: 0.2,
      seed: 5,
    });
    const t = new Trainer(g, classificationLoss, isParam, d.train, {
      seed,
      epochs: 1,
      batchSize: 50,
      optimizer: { type: 'adamw', lr: 1e-2 },
      progress: 'none',
      session: { intraOpThreads: 1 },
    });
    const r = await t.fit();
    await t.release();
    return r.finalWeights.get('classifier.weight') as Float32Array;
  };
  const a = await run(1);
  assert.deepEqual(await run(1), a);
  assert.notDeepEqual(await run(2), a);
});

test('epoch permutations are seeded per epoch and the RNG state round-trips', () => {
  assert.deepEqual(epochPermutation(3, 1, 20), epochPermutation(3, 1, 20));
  assert.notDeepEqual(epochPermutation(3, 1, 20), epochPermutation(3, 2, 20));
  assert.deepEqual(
    [...epochPermutation(3, 1, 20)].sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i),
  );
  const r = new TrainRng(42);
  r.fillUniform(new Float32Array(7));
  const saved = r.getState();
  const a = r.fillUniform(new Float32Array(5));
  const b = new TrainRng(saved).fillUniform(new Float32Array(5));
  assert.deepEqual(b, a);
  assert.ok(a.every((v) => v >= 0 && v < 1) && new Set(a).size === 5);
  const draws = new TrainRng(9).fillUniform(new Float32Array(100000));
  const mean = draws.reduce((s, v) => s + v, 0) / draws.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
});

test('a non-finite loss stops the Trainer with a TrainingError naming the step; the last good checkpoint stays', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-train-nan-'));
  const rand = lcg(3);
  const n = 16;
  const x = Float32Array.from({ length: n * IN }, () => rand());
  const t = Float32Array.from({ length: n * OUT }, () => rand());
  x.fill(Number.NaN, 0, IN); // row 0 poisons whichever batch holds it
  const data = tensorData({ x: new ort.Tensor('float32', x, [n, IN]), t: new ort.Tensor('float32', t, [n, OUT]) });
  const perm = epochPermutation(0, 0, n);
  const badStep = Math.floor(perm.indexOf(0) / 2) + 1;
  const trainer = new Trainer(linearModel([0, 0, 0, 0, 0, 0], [0, 0]), mseLoss, ['W', 'B'], data, {
    seed: 0,
    epochs: 1,
    batchSize: 2,
    optimizer: { type: 'sgd', lr: 0.1 },
    gradients: linearGradients,
    checkpointDir: dir,
    checkpointEvery: 1,
    progress: 'none',
  });
  await assert.rejects(
    trainer.fit(),
    (e: unknown) =>
      e instanceof TrainingError &&
      e.message === `loss is NaN at step ${badStep}: training stopped (the last good state is kept)`,
  );
  const ck = await loadLatestCheckpoint(dir);
  if (badStep === 1) assert.equal(ck, undefined);
  else {
    assert.equal(ck?.loop.step, badStep - 1);
    assert.ok(Object.values(ck?.engine.params ?? {}).every((v) => v.every(Number.isFinite)));
  }
  await trainer.release();
  fs.rmSync(dir, { recursive: true, force: true });
});

function child(args: string[]): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'fixtures/resume-child.ts'), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

function exited(p: ReturnType<typeof spawn>): Promise<number | null> {
  let err = '';
  p.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return new Promise((resolve, reject) =>
    p.on('exit', (code, sig) =>
      code === 0 || sig ? resolve(code) : reject(new Error(`child exited ${code}: ${err}`)),
    ),
  );
}

test('a training process killed after a checkpoint resumes to bit-identical final weights', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-train-resume-'));
  const full = path.join(root, 'full.safetensors');
  const resumed = path.join(root, 'resumed.safetensors');
  const ckFull = path.join(root, 'ck-full');
  const ckKill = path.join(root, 'ck-kill');
  const a = child([ckFull, full, '0', '0']);
  // b stops (without exiting) at step 7, after the step-6 checkpoint: kill it there, mid-run.
  const b = child([ckKill, resumed, '0', '7']);
  await exited(a);
  const bDone = exited(b);
  for (let i = 0; i < 2400 && !fs.existsSync(`${ckKill}.hang`); i++) await new Promise((r) => setTimeout(r, 50));
  b.kill('SIGKILL');
  await bDone;
  const killedAt = (JSON.parse(fs.readFileSync(path.join(ckKill, 'latest.json'), 'utf8')) as { step: number }).step;
  assert.equal(killedAt, 6, `the last checkpoint before the kill is step ${killedAt}`);
  assert.ok(!fs.existsSync(resumed), 'the killed run must not have finished');
  await exited(child([ckKill, resumed, '1', '0']));
  const wa = await readSafetensors(full);
  const wb = await readSafetensors(resumed);
  assert.equal(wa.metadata.steps, '20');
  assert.equal(wb.metadata.steps, '20');
  assert.deepEqual([...wb.tensors.keys()], [...wa.tensors.keys()]);
  for (const [k, t] of wa.tensors)
    assert.ok(Buffer.from(t.data).equals(Buffer.from(wb.tensors.get(k)?.data ?? [])), `weights '${k}' differ`);
  fs.rmSync(root, { recursive: true, force: true });
});
