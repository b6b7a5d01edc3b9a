/**
 * LoRA adapters in Hugging Face PEFT's format: `adapter_config.json` + `adapter_model.safetensors`.
 *
 * Name mapping (Tailor module path -> PEFT tensor name), layouts as PyTorch stores them:
 *   `<module>.lora_A.weight` graph [in, r]  <->  `base_model.model.<module>.lora_A.weight` [r, in]
 *   `<module>.lora_B.weight` graph [r, out] <->  `base_model.model.<module>.lora_B.weight` [out, r]
 *   `classifier.weight` graph [in, labels]  <->  `base_model.model.classifier.weight` [labels, in] (modules_to_save)
 *   `classifier.bias`                       <->  `base_model.model.classifier.bias`
 * A `tailor.json` beside them holds the lineage (base hash, labels, ...); PEFT ignores it, and an adapter without
 * one (written by PEFT) loads with `LABEL_i` labels and no base-hash check.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, ModelFileError } from '../errors.ts';
import { encodeSafetensors, parseSafetensors } from '../onnx/safetensors.ts';
import { tensorFromArray, tensorToArray, transpose2d } from '../onnx/tensor.ts';
import { writeFileAtomic } from '../onnx/io.ts';
import type { Lineage } from './lineage.ts';
import { loraScaling, type LoraWeights } from './lora.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const TAILOR_JSON = 'tailor.json';
const PREFIX = 'base_model.model.';

/** PEFT's LoraConfig as JSON (the fields PEFT writes; extra ones are kept on load). */
export interface PeftLoraConfig {
  peft_type: 'LORA';
  task_type: string | null;
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  target_modules: string[] | string;
  lora_dropout: number;
  bias: 'none' | 'all' | 'lora_only';
  use_rslora: boolean;
  modules_to_save: string[] | null;
  fan_in_fan_out: boolean;
  init_lora_weights: boolean;
  inference_mode: boolean;
  layers_to_transform: number[] | number | null;
  layers_pattern: string | null;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  revision: string | null;
  use_dora: boolean;
  [key: string]: unknown;
}

/** A classification head saved through modules_to_save, in graph layout. */
export interface AdapterHead {
  /** [features, labels] */
  weight: Float32Array;
  bias: Float32Array;
  features: number;
  labels: string[];
}

export interface LoraAdapter {
  config: PeftLoraConfig;
  weights: Map<string, LoraWeights>;
  head?: AdapterHead;
  lineage?: Lineage;
}

/** PEFT's defaults for the fields we do not set. */
export function peftConfig(
  fields: Partial<PeftLoraConfig> & Pick<PeftLoraConfig, 'r' | 'lora_alpha' | 'target_modules'>,
): PeftLoraConfig {
  return {
    peft_type: 'LORA',
    task_type: null,
    base_model_name_or_path: null,
    lora_dropout: 0,
    bias: 'none',
    use_rslora: false,
    modules_to_save: null,
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
    use_dora: false,
    ...fields,
  };
}

/** PEFT's pattern-key rule: a rank_pattern/alpha_pattern key applies to a module whose name ends in it. */
function patternValue(patterns: Record<string, number>, module: string): number | undefined {
  for (const [k, v] of Object.entries(patterns)) {
    if (module === k || module.endsWith(`.${k}`) || new RegExp(`(^|\\.)${k}$`).test(module)) return v;
  }
  return undefined;
}

/** The scaling PEFT applies to a module: alpha/r (or alpha/√r), with rank_pattern/alpha_pattern overrides. */
export function adapterScaling(adapter: LoraAdapter, module: string): number {
  const c = adapter.config;
  const w = adapter.weights.get(module);
  const r = w?.r ?? patternValue(c.rank_pattern ?? {}, module) ?? c.r;
  const alpha = patternValue(c.alpha_pattern ?? {}, module) ?? c.lora_alpha;
  return loraScaling(alpha, r, c.use_rslora);
}

/** The adapter's tensors under PEFT's names, PyTorch layout. */
export function adapterTensors(adapter: LoraAdapter): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [m, w] of adapter.weights) {
    out.set(`${PREFIX}${m}.lora_A.weight`, { shape: [w.r, w.inFeatures], data: transpose2d(w.A, w.inFeatures, w.r) });
    out.set(`${PREFIX}${m}.lora_B.weight`, { shape: [w.outFeatures, w.r], data: transpose2d(w.B, w.r, w.outFeatures) });
  }
  if (adapter.head) addHeadTensors(out, adapter.head);
  return out;
}

/** The head as PEFT's modules_to_save tensors (`classifier.weight` [labels, features], `classifier.bias`). */
export function addHeadTensors(out: Map<string, { shape: number[]; data: Float32Array }>, h: AdapterHead): void {
  out.set(`${PREFIX}classifier.weight`, {
    shape: [h.labels.length, h.features],
    data: transpose2d(h.weight, h.features, h.labels.length),
  });
  out.set(`${PREFIX}classifier.bias`, { shape: [h.labels.length], data: h.bias });
}

/**
 * Writes an adapter folder: adapter_model.safetensors, adapter_config.json and (with lineage) tailor.json, each
 * file atomically; the folder is created if needed.
 */
export async function writeAdapterFolder(
  dir: string,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  config: object,
  kind: string,
  lineage?: Lineage,
): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const list = [...tensors].map(([name, t]) => tensorFromArray(name, 'float32', t.data, t.shape));
  await writeFileAtomic(path.join(dir, ADAPTER_WEIGHTS), encodeSafetensors(list, { format: 'pt' }));
  await writeFileAtomic(
    path.join(dir, ADAPTER_CONFIG),
    new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`),
  );
  if (lineage)
    await writeFileAtomic(
      path.join(dir, TAILOR_JSON),
      new TextEncoder().encode(`${JSON.stringify({ kind, lineage }, null, 2)}\n`),
    );
}

/** Writes the adapter folder (each file atomically; the folder is created if needed). */
export async function saveAdapter(dir: string, adapter: LoraAdapter): Promise<void> {
  await writeAdapterFolder(dir, adapterTensors(adapter), adapter.config, 'lora-adapter', adapter.lineage);
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelFileError(`cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(`${file}: not valid JSON (${(e as Error).message})`, { file }, { cause: e });
  }
}

function parseConfig(raw: unknown, file: string): PeftLoraConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ModelFileError(`${file}: expected a JSON object`, { file });
  const o = raw as Record<string, unknown>;
  if (o.peft_type !== 'LORA')
    throw new ModelFileError(`${file}: peft_type ${JSON.stringify(o.peft_type)} is not supported (only "LORA")`, {
      file,
      field: 'peft_type',
    });
  for (const k of ['r', 'lora_alpha']) {
    if (typeof o[k] !== 'number' || !((o[k] as number) > 0))
      throw new ModelFileError(`${file}: field '${k}' must be a positive number, found ${JSON.stringify(o[k])}`, {
        file,
        field: k,
      });
  }
  if (o.bias !== undefined && o.bias !== 'none')
    throw new ModelFileError(`${file}: bias ${JSON.stringify(o.bias)} is not supported (only "none")`, {
      file,
      field: 'bias',
    });
  if (o.fan_in_fan_out === true)
    throw new ModelFileError(`${file}: fan_in_fan_out adapters (GPT-2 Conv1D) are not supported`, {
      file,
      field: 'fan_in_fan_out',
    });
  if (o.use_dora === true)
    throw new ModelFileError(`${file}: DoRA adapters are not supported`, { file, field: 'use_dora' });
  const tm = o.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.every((t) => typeof t === 'string')))) {
    throw new ModelFileError(
      `${file}: target_modules must be a string or a list of strings, found ${JSON.stringify(tm)}`,
      { file, field: 'target_modules' },
    );
  }
  return peftConfig(o as Partial<PeftLoraConfig> & Pick<PeftLoraConfig, 'r' | 'lora_alpha' | 'target_modules'>);
}

/** Reads an adapter folder written by PEFT or by `saveAdapter`. */
export async function loadAdapter(dir: string): Promise<LoraAdapter> {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const config = parseConfig(readJson(cfgFile), cfgFile);
  const wFile = path.join(dir, ADAPTER_WEIGHTS);
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(wFile);
  } catch (e) {
    throw new ModelFileError(`cannot read ${wFile}: ${(e as Error).message}`, { file: wFile }, { cause: e });
  }
  const st = parseSafetensors(bytes, wFile);
  const parts = new Map<
    string,
    { A?: { shape: number[]; data: Float32Array }; B?: { shape: number[]; data: Float32Array } }
  >();
  let headW: { shape: number[]; data: Float32Array } | undefined;
  let headB: Float32Array | undefined;
  for (const [name, t] of st.tensors) {
    if (t.dtype !== 'float32')
      throw new ModelFileError(`${wFile}: tensor '${name}' is ${t.dtype}; only float32 adapters are supported`, {
        file: wFile,
        field: name,
      });
    const data = Float32Array.from(tensorToArray(t) as Float32Array);
    // PEFT strips the adapter name on save; tolerate files that kept it (`.lora_A.default.weight`).
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(name);
    if (m) {
      const e = parts.get(m[1]) ?? {};
      e[m[2] as 'A' | 'B'] = { shape: [...t.dims], data };
      parts.set(m[1], e);
      continue;
    }
    if (name === `${PREFIX}classifier.weight` || name === `${PREFIX}score.weight`) headW = { shape: [...t.dims], data };
    else if (name === `${PREFIX}classifier.bias` || name === `${PREFIX}score.bias`) headB = data;
    else
      throw new ModelFileError(
        `${wFile}: tensor '${name}' is neither a LoRA tensor (base_model.model.<module>.lora_A/B.weight) nor a saved classifier`,
        { file: wFile, field: name },
      );
  }
  const weights = new Map<string, LoraWeights>();
  for (const [m, e] of parts) {
    if (!e.A || !e.B)
      throw new ModelFileError(`${wFile}: module '${m}' has lora_${e.A ? 'A' : 'B'} but no lora_${e.A ? 'B' : 'A'}`, {
        file: wFile,
        field: m,
      });
    const [r, inF] = e.A.shape;
    const [outF, rB] = e.B.shape;
    if (e.A.shape.length !== 2 || e.B.shape.length !== 2 || r !== rB) {
      throw new ModelFileError(
        `${wFile}: module '${m}': lora_A [${e.A.shape.join(', ')}] and lora_B [${e.B.shape.join(', ')}] do not form [r, in] and [out, r]`,
        { file: wFile, field: m },
      );
    }
    weights.set(m, {
      r,
      inFeatures: inF,
      outFeatures: outF,
      A: transpose2d(e.A.data, r, inF),
      B: transpose2d(e.B.data, outF, r),
    });
  }
  if (weights.size === 0) throw new ModelFileError(`${wFile}: no LoRA tensors found`, { file: wFile });
  let lineage: Lineage | undefined;
  const tFile = path.join(dir, TAILOR_JSON);
  if (fs.existsSync(tFile)) lineage = (readJson(tFile) as { lineage?: Lineage }).lineage;
  let head: AdapterHead | undefined;
  if (headW) {
    const [C, D] = headW.shape;
    if (!headB || headB.length !== C)
      throw new ModelFileError(
        `${wFile}: the saved classifier has a [${headW.shape.join(', ')}] weight but ${headB ? `a ${headB.length}-element` : 'no'} bias`,
        { file: wFile, field: 'classifier.bias' },
      );
    const labels = lineage?.labels?.length === C ? lineage.labels : Array.from({ length: C }, (_, i) => `LABEL_${i}`);
    head = { weight: transpose2d(headW.data, C, D), bias: headB, features: D, labels };
  }
  return { config, weights, ...(head ? { head } : {}), ...(lineage ? { lineage } : {}) };
}

/** Checks an adapter's lineage hash against a base's (when the adapter has one). */
export function checkAdapterBase(adapter: LoraAdapter, hash: string, where = 'adapter'): void {
  const want = adapter.lineage?.base?.hash;
  if (want && want !== hash) {
    throw new ConfigError(
      `${where} was trained on base ${want} (${adapter.lineage?.base.id}) but the loaded base is ${hash}`,
      { field: 'base', details: { expected: want, found: hash } },
    );
  }
}
