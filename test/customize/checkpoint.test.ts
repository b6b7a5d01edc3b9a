/**
 * customize's `checkpoint` option (what a job worker uses to resume a killed job): a run stopped after its first
 * epoch and started again with the same checkpoint folder ends with the same weights as a run never stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { customize } from '../../src/customize/customize.ts';
import { paramValues } from '../../src/models/model.ts';
import { clincSlice, tinyBert } from './fixtures.ts';

const data = clincSlice(3, 16, 6);
const base = tinyBert(data);

test('customize with checkpoint: stopped after epoch 1 and resumed, the LoRA weights equal an uninterrupted run', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-ckpt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const opts = { strategy: 'lora' as const, epochs: 3, batchSize: 8, seed: 5 };
  const whole = await customize(base, data, opts);

  class Stop extends Error {}
  const stopAfterFirstEpoch = (ckDir: string, lr?: number): Promise<unknown> =>
    assert.rejects(
      customize(base, data, {
        ...opts,
        ...(lr !== undefined ? { lr } : {}),
        checkpoint: { dir: ckDir, every: 2 },
        onEpoch: (e) => {
          if (e.epoch === 0) throw new Stop('stopped after epoch 1');
        },
      }),
      Stop,
    );
  await stopAfterFirstEpoch(dir);
  // 48 texts / batch 8 = 6 steps per epoch: the newest checkpoint is step 6.
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'latest.json'), 'utf8')), {
    file: 'step-00000006.safetensors',
    step: 6,
  });
  const resumed = await customize(base, data, { ...opts, checkpoint: { dir, every: 2 } });
  assert.ok(existsSync(path.join(dir, 'step-00000018.safetensors')));
  // Epoch 0's training steps are in the checkpoint; its validation (interrupted) runs again.
  assert.deepEqual(
    resumed.report.curve.map((e) => e.epoch),
    [0, 1, 2],
  );
  const trained = [...whole.model.params.keys()].filter((n) => n.includes('lora') || n.startsWith('classifier'));
  assert.ok(trained.length >= 4, trained.join(', '));
  for (const name of trained) assert.deepEqual(paramValues(resumed.model, name), paramValues(whole.model, name), name);

  // The checkpoint is really read: one written by a first epoch at another learning rate changes the result.
  const other = path.join(dir, 'other');
  await stopAfterFirstEpoch(other, 0.05);
  const fromOther = await customize(base, data, { ...opts, checkpoint: { dir: other, every: 2 } });
  assert.ok(
    trained.some(
      (n) => JSON.stringify(paramValues(fromOther.model, n)) !== JSON.stringify(paramValues(whole.model, n)),
    ),
  );
});
