/**
 * Training checkpoints: one safetensors file per checkpoint (`step-00000040.safetensors`) holding parameters
 * (`param/<name>`), optimizer state (`slot/<name>`) and the best weights so far (`best/<name>`), with the loop's
 * position, RNG state and early-stopping state as JSON in the file's metadata. `latest.json` names the newest file.
 * Both are written atomically (temp file + rename), so a process killed at any moment leaves the previous
 * checkpoint readable.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TrainingError } from '../errors.ts';
import { writeFileAtomic } from '../onnx/io.ts';
import { readSafetensors, writeSafetensors } from '../onnx/safetensors.ts';
import { tensorFromArray, tensorToArray } from '../onnx/tensor.ts';
import type { Tensor } from '../onnx/ir.ts';
import type { EngineState } from './engine.ts';
import type { RngState } from '../util/rng.ts';

export const CHECKPOINT_FORMAT = 'tailor.train.checkpoint/1';

/** The training loop's position and bookkeeping, stored beside the tensors. */
export interface LoopState {
  /** Optimizer steps taken. */
  step: number;
  epoch: number;
  /** Micro-batches of `epoch` already consumed. */
  batchInEpoch: number;
  rng: RngState;
  best?: { metric: number; step: number; epoch: number };
  /** Epochs since the best metric improved (early stopping). */
  badEpochs: number;
  history: Record<string, number>[];
}

export interface Checkpoint {
  loop: LoopState;
  engine: EngineState;
  best?: Record<string, Float32Array>;
  file: string;
}

function f32tensor(name: string, v: Float32Array, dims: number[]): Tensor {
  return tensorFromArray(name, 'float32', v, dims);
}

/** Writes a checkpoint into `dir`, updates `latest.json`, and deletes all but the newest `keep` checkpoints. */
export async function saveCheckpoint(
  dir: string,
  loop: LoopState,
  engine: EngineState,
  shapes: Map<string, number[]>,
  best?: Map<string, Float32Array>,
  keep = 2,
): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const tensors: Tensor[] = [];
  const dimsOf = (k: string, n: number): number[] => shapes.get(k) ?? [n];
  for (const [k, v] of Object.entries(engine.params)) tensors.push(f32tensor(`param/${k}`, v, dimsOf(k, v.length)));
  for (const [k, v] of Object.entries(engine.slots)) tensors.push(f32tensor(`slot/${k}`, v, [v.length]));
  for (const [k, v] of Object.entries(engine.buffers ?? {}))
    tensors.push(f32tensor(`buffer/${k}`, v, dimsOf(k, v.length)));
  if (best) for (const [k, v] of best) tensors.push(f32tensor(`best/${k}`, v, dimsOf(k, v.length)));
  const name = `step-${String(loop.step).padStart(8, '0')}.safetensors`;
  const file = path.join(dir, name);
  await writeSafetensors(file, tensors, {
    format: CHECKPOINT_FORMAT,
    loop: JSON.stringify(loop),
    engine_step: String(engine.step),
  });
  await writeFileAtomic(
    path.join(dir, 'latest.json'),
    new TextEncoder().encode(`${JSON.stringify({ file: name, step: loop.step })}\n`),
  );
  const all = (await fsp.readdir(dir)).filter((f) => /^step-\d{8}\.safetensors$/.test(f)).sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep)))
    if (old !== name) await fsp.rm(path.join(dir, old), { force: true });
  return file;
}

/** Loads the checkpoint `latest.json` points to; undefined when `dir` has none. */
export async function loadLatestCheckpoint(dir: string): Promise<Checkpoint | undefined> {
  let pointer: { file: string };
  try {
    pointer = JSON.parse(await fsp.readFile(path.join(dir, 'latest.json'), 'utf8')) as { file: string };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TrainingError(
      `cannot read ${path.join(dir, 'latest.json')}: ${(e as Error).message}`,
      { file: path.join(dir, 'latest.json') },
      { cause: e },
    );
  }
  return loadCheckpoint(path.join(dir, pointer.file));
}

/** Reads one checkpoint file. */
export async function loadCheckpoint(file: string): Promise<Checkpoint> {
  const st = await readSafetensors(file);
  if (st.metadata.format !== CHECKPOINT_FORMAT) {
    throw new TrainingError(
      `${file} is not a Tailor training checkpoint (format '${st.metadata.format ?? ''}', expected '${CHECKPOINT_FORMAT}')`,
      { file },
    );
  }
  const loop = JSON.parse(st.metadata.loop) as LoopState;
  const params: Record<string, Float32Array> = {};
  const slots: Record<string, Float32Array> = {};
  const buffers: Record<string, Float32Array> = {};
  const best: Record<string, Float32Array> = {};
  for (const [k, t] of st.tensors) {
    const v = Float32Array.from(tensorToArray(t) as Float32Array);
    const slash = k.indexOf('/');
    const kind = k.slice(0, slash);
    const name = k.slice(slash + 1);
    if (kind === 'param') params[name] = v;
    else if (kind === 'slot') slots[name] = v;
    else if (kind === 'buffer') buffers[name] = v;
    else if (kind === 'best') best[name] = v;
  }
  return {
    loop,
    engine: {
      step: Number(st.metadata.engine_step),
      params,
      slots,
      ...(Object.keys(buffers).length ? { buffers } : {}),
    },
    ...(Object.keys(best).length ? { best } : {}),
    file,
  };
}
