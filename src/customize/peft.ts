/**
 * LoRA adapters in Hugging Face PEFT's format: `adapter_config.json` + `adapter_model.safetensors`.
 *
 * Name mapping (Tailor module path -> PEFT tensor name), layouts as PyTorch stores them:
 *   `<module>.lora_A.weight` graph [in, r]  <->  `base_model.model.<module>.lora_A.weight` [r, in]
 *   `<module>.lora_B.weight` graph [r, out] <->  `base_model.model.<module>.lora_B.weight` [out, r]
 *   `classifier.weight` graph [in, labels]  <->  `base_model.model.classifier.weight` [labels, in] (modules_to_save)
 *   `classifier.bias`                       <->  `base_model.model.classifier.bias`
 * An MLP head (models/head.ts kind `mlp`, RoBERTa's RobertaClassificationHead) is saved as PEFT saves RoBERTa's
 * `classifier` module: `classifier.dense.weight` [D, D] and `classifier.out_proj.weight` [labels, D] (PyTorch
 * layout, so the graph's [in, out] transposed), with `classifier.dense.bias` and `classifier.out_proj.bias`.
 * A `tailor.json` beside them holds the lineage (base hash, labels, ...); PEFT ignores it, and an adapter without
 * one (written by PEFT) loads with `LABEL_i` labels and no base-hash check.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError, ModelFileError } from '../errors.ts';
import type { Tensor } from '../onnx/ir.ts';
import { encodeSafetensors, parseSafetensors, type SafetensorsFile } from '../onnx/safetensors.ts';
import { tensorFromArray, tensorToArray, transpose2d } from '../onnx/tensor.ts';
import { writeFileAtomic } from '../onnx/io.ts';
import { HEAD_KINDS, MLP_DENSE_BIAS, MLP_DENSE_WEIGHT, type HeadKind, type HeadSpec } from '../models/head.ts';
import type { Lineage } from './lineage.ts';
import { loraScaling, type LoraWeights } from './lora.ts';
import { HEAD_MODULE } from './sites.ts';

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
  /** The output layer: [features, labels] (an MLP head's: [features, labels] over its hidden layer of width features). */
  weight: Float32Array;
  bias: Float32Array;
  features: number;
  labels: string[];
  /**
   * An MLP head's hidden layer (models/head.ts kind `mlp`, RoBERTa's `classifier.dense`): weight [features, features],
   * bias [features]. Absent for the linear head.
   */
  dense?: { weight: Float32Array; bias: Float32Array };
}

/** The kind of head an adapter saved: an MLP when it has a hidden layer. */
export const adapterHeadKind = (h: AdapterHead): HeadKind => (h.dense ? 'mlp' : 'linear');

/**
 * The `attachHead` spec that rebuilds a saved head on a base: kind `mlp` when it has a hidden layer (else `linear`),
 * its labels and all its values, so the rebuilt model computes the logits the adapter was saved with.
 */
export function adapterHeadSpec(h: AdapterHead): HeadSpec {
  return {
    labels: h.labels,
    kind: adapterHeadKind(h),
    weight: h.weight,
    bias: h.bias,
    ...(h.dense ? { dense: { weight: h.dense.weight, bias: h.dense.bias } } : {}),
  };
}

export interface LoraAdapter {
  config: PeftLoraConfig;
  weights: Map<string, LoraWeights>;
  head?: AdapterHead;
  lineage?: Lineage;
  /** What loading changed or assumed (e.g. float16 tensors upcast to float32); absent when nothing. */
  notes?: string[];
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

/**
 * PEFT's pattern-key rule (utils/other.py get_pattern_key): the first key, in the config's order, for which
 * `re.match(rf"(.*\.)?({key})$", module)` holds. The key is grouped, so `a|b` means "ends in a or in b".
 */
export function patternValue(
  patterns: Record<string, number>,
  module: string,
  field = 'rank_pattern',
): number | undefined {
  for (const [k, v] of Object.entries(patterns)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${k})$`);
    } catch (e) {
      throw new ConfigError(`${field} key '${k}' is not a valid regular expression: ${(e as Error).message}`, {
        field,
        value: k,
      });
    }
    if (re.test(module)) return v;
  }
  return undefined;
}

/** The scaling PEFT applies to a module: alpha/r (or alpha/√r), with rank_pattern/alpha_pattern overrides. */
export function adapterScaling(adapter: LoraAdapter, module: string): number {
  const c = adapter.config;
  const w = adapter.weights.get(module);
  const r = w?.r ?? patternValue(c.rank_pattern ?? {}, module) ?? c.r;
  const alpha = patternValue(c.alpha_pattern ?? {}, module, 'alpha_pattern') ?? c.lora_alpha;
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

/**
 * Checks that a head's arrays have the sizes of a head over `D` features (default: the head's own), before they are
 * written or fed to ORT without building a head (ORT's own size error names no tensor). A ConfigError naming the
 * tensor otherwise.
 */
export function checkAdapterHead(h: AdapterHead, D = h.features, where = 'adapter'): void {
  const C = h.labels.length;
  const { out } = HEAD_KINDS[adapterHeadKind(h)];
  const sizes: [string, Float32Array, number][] = [
    [out.weight, h.weight, D * C],
    [out.bias, h.bias, C],
  ];
  if (h.dense) sizes.push([MLP_DENSE_WEIGHT, h.dense.weight, D * D], [MLP_DENSE_BIAS, h.dense.bias, D]);
  for (const [name, v, n] of sizes)
    if (v.length !== n)
      throw new ConfigError(
        `${where}'s '${name}' has ${v.length} values; a head over ${D} features with ${C} labels needs ${n}`,
        { field: name },
      );
}

/**
 * The head as PEFT's modules_to_save tensors, PyTorch layout: a linear head as `classifier.weight` [labels, features]
 * and `classifier.bias`; an MLP head as `classifier.dense.weight` [features, features], `classifier.dense.bias`,
 * `classifier.out_proj.weight` [labels, features] and `classifier.out_proj.bias` (RoBERTa's module names, which is
 * what PEFT writes for a RobertaClassificationHead). A ConfigError when the values do not fit those shapes.
 */
export function addHeadTensors(out: Map<string, { shape: number[]; data: Float32Array }>, h: AdapterHead): void {
  const C = h.labels.length;
  const D = h.features;
  checkAdapterHead(h);
  const layer = h.dense ? 'classifier.out_proj' : 'classifier';
  if (h.dense) {
    out.set(`${PREFIX}classifier.dense.weight`, { shape: [D, D], data: transpose2d(h.dense.weight, D, D) });
    out.set(`${PREFIX}classifier.dense.bias`, { shape: [D], data: h.dense.bias });
  }
  out.set(`${PREFIX}${layer}.weight`, { shape: [C, D], data: transpose2d(h.weight, D, C) });
  out.set(`${PREFIX}${layer}.bias`, { shape: [C], data: h.bias });
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

/** Reads and parses a JSON file; errors name the file. */
export function readJson(file: string): unknown {
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

/**
 * LoraConfig fields (PEFT 0.20, tuners/lora/config.py) that, when set, make the adapter something other than
 * `W + scaling·B·A` on the base as loaded: a different forward pass, extra tensors, or a base PEFT changes first.
 * Each is refused by name rather than run as plain LoRA. VeLoRA (a custom backward pass only), MiCA (B frozen in
 * training) and MonteCLoRA (sampling only in training) keep plain LoRA's inference forward and are not listed.
 */
const LORA_VARIANT_FIELDS: readonly { field: string; what: string; set: (v: unknown) => boolean }[] = [
  { field: 'use_dora', what: 'DoRA (a learned magnitude per output feature)', set: (v) => v === true },
  {
    field: 'alora_invocation_tokens',
    what: 'Activated LoRA (the adapter acts only from its invocation tokens on)',
    set: (v) => v != null && !(Array.isArray(v) && v.length === 0),
  },
  { field: 'use_qalora', what: 'QA-LoRA (lora_A reads group-pooled inputs)', set: (v) => v === true },
  { field: 'use_bdlora', what: 'BD-LoRA (block-diagonal lora_A or lora_B)', set: (v) => v != null && v !== false },
  { field: 'arrow_config', what: 'Arrow (routing among several LoRA experts)', set: (v) => v != null },
  { field: 'lora_bias', what: 'a bias on lora_B', set: (v) => v === true },
  {
    field: 'layer_replication',
    what: 'layer replication (the base model gets repeated layers)',
    set: (v) => v != null && !(Array.isArray(v) && v.length === 0),
  },
  {
    field: 'target_parameters',
    what: 'LoRA on bare parameters (nn.Parameter, not nn.Linear)',
    set: (v) => v != null && !(Array.isArray(v) && v.length === 0),
  },
  {
    field: 'trainable_token_indices',
    what: 'trainable tokens (a delta on chosen embedding rows)',
    set: (v) => v != null && !(Array.isArray(v) && v.length === 0),
  },
  { field: 'megatron_config', what: 'Megatron parallel linear layers', set: (v) => v != null },
];

/** init_lora_weights values that only choose initial values: the saved A and B are plain LoRA on the plain base. */
const PLAIN_INITS: readonly unknown[] = [true, false, 'gaussian', 'eva', 'orthogonal', 'mica'];

function refuse(file: string, field: string, value: unknown, why: string): ModelFileError {
  return new ModelFileError(
    `${file}: ${field} ${JSON.stringify(value)} is not supported: ${why}; Tailor runs plain LoRA only and refuses rather than run this adapter as something else`,
    { file, field, value: JSON.stringify(value) },
  );
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
  for (const v of LORA_VARIANT_FIELDS) if (v.set(o[v.field])) throw refuse(file, v.field, o[v.field], v.what);
  const init = o.init_lora_weights;
  if (init !== undefined && !PLAIN_INITS.includes(init))
    throw refuse(
      file,
      'init_lora_weights',
      init,
      typeof init === 'string' && /^(pissa|olora|corda|loftq|lora_ga)/i.test(init)
        ? 'this initialisation rewrites the base weights before training, so the saved A and B only hold on that rewritten base (PEFT saves a converted adapter with init_lora_weights true)'
        : 'not an initialisation PEFT 0.20 documents as leaving the base weights and the forward pass unchanged',
    );
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    const p = o[k];
    if (
      p != null &&
      (typeof p !== 'object' || Array.isArray(p) || !Object.values(p).every((x) => typeof x === 'number' && x > 0))
    )
      throw new ModelFileError(
        `${file}: ${k} must map module patterns to positive numbers, found ${JSON.stringify(p)}`,
        {
          file,
          field: k,
        },
      );
  }
  const tm = o.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.every((t) => typeof t === 'string')))) {
    throw new ModelFileError(
      `${file}: target_modules must be a string or a list of strings, found ${JSON.stringify(tm)}`,
      { file, field: 'target_modules' },
    );
  }
  return peftConfig({
    ...(o as Partial<PeftLoraConfig> & Pick<PeftLoraConfig, 'r' | 'lora_alpha' | 'target_modules'>),
    rank_pattern: (o.rank_pattern as Record<string, number> | null) ?? {},
    alpha_pattern: (o.alpha_pattern as Record<string, number> | null) ?? {},
  });
}

/** An adapter folder's safetensors file, read and parsed. */
export async function readAdapterWeights(dir: string): Promise<{ file: string; st: SafetensorsFile }> {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    throw new ModelFileError(`cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return { file, st: parseSafetensors(bytes, file) };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * An adapter tensor's values as float32. float16 and bfloat16 are widened exactly (every such value is a float32):
 * PEFT upcasts only the adapter layers, so a head saved from a half-precision model stays F16/BF16 in its file.
 * `upcast` collects the names widened, by dtype, for the adapter's notes.
 */
export function adapterFloat32(t: Tensor, file: string, upcast: Map<string, string[]>): Float32Array {
  if (t.dtype === 'float32') return Float32Array.from(tensorToArray(t) as Float32Array);
  if (t.dtype !== 'float16' && t.dtype !== 'bfloat16')
    throw new ModelFileError(
      `${file}: tensor '${t.name}' is ${t.dtype}; adapter tensors must be float32, float16 or bfloat16`,
      { file, field: t.name },
    );
  const bits = tensorToArray(t) as Uint16Array;
  const out = new Float32Array(bits.length);
  if (t.dtype === 'bfloat16') {
    // bfloat16 is the top half of a float32's bits.
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  } else for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]);
  upcast.set(t.dtype, [...(upcast.get(t.dtype) ?? []), t.name]);
  return out;
}

/** The notes for tensors `adapterFloat32` widened (empty when none were). */
export function upcastNotes(upcast: Map<string, string[]>): string[] {
  return [...upcast].map(([dtype, names]) => `${dtype} tensors upcast to float32 on load: ${names.join(', ')}`);
}

/** Where a saved head tensor belongs: the head module, the MLP layer (absent for a linear head) and the part. */
export interface HeadTensor {
  module: string;
  /** `dense` (hidden layer) or `out_proj` (output layer) of an MLP head; absent for a linear head's own weight/bias. */
  layer?: 'dense' | 'out_proj';
  part: 'weight' | 'bias';
}

/**
 * A saved head tensor: PEFT saves a modules_to_save module under its own name (`base_model.model.classifier.weight`,
 * utils/other.py ModulesToSaveWrapper.adapter_state_dict); a full state dict has it under
 * `classifier.modules_to_save.<adapter>.weight`. PEFT's sequence-classification heads are `classifier` and `score`;
 * RoBERTa's `classifier` is an MLP whose tensors are `classifier.dense.*` and `classifier.out_proj.*` (in either form).
 */
export function headTensorOf(name: string): HeadTensor | undefined {
  const m =
    /^base_model\.model\.(classifier|score)(?:\.modules_to_save\.[^.]+)?(?:\.(dense|out_proj))?\.(weight|bias)$/.exec(
      name,
    );
  if (!m) return undefined;
  return { module: m[1], ...(m[2] ? { layer: m[2] as 'dense' | 'out_proj' } : {}), part: m[3] as 'weight' | 'bias' };
}

/** A head tensor as read: its name in the file, its PyTorch shape, its values. */
interface SeenTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** The parts of an MLP head, in the order PEFT saves them. */
const MLP_PARTS = ['dense.weight', 'dense.bias', 'out_proj.weight', 'out_proj.bias'] as const;

/** Collects the head's tensors while reading a file; `head()` checks and returns it in graph layout. */
export class HeadReader {
  private module?: string;
  /** By part: `weight`/`bias` for a linear head, `dense.weight` ... `out_proj.bias` for an MLP head. */
  private readonly seen = new Map<string, SeenTensor>();

  constructor(private readonly file: string) {}

  /** Takes `name` if it is a head tensor; false otherwise. */
  take(name: string, dims: readonly number[], data: Float32Array): boolean {
    const h = headTensorOf(name);
    if (!h) return false;
    if (this.module && this.module !== h.module)
      throw new ModelFileError(`${this.file}: the file saves two heads, '${this.module}' and '${h.module}'`, {
        file: this.file,
        field: name,
      });
    this.module = h.module;
    const key = h.layer ? `${h.layer}.${h.part}` : h.part;
    if (this.seen.has(key))
      throw new ModelFileError(`${this.file}: '${h.module}.${key}' is saved twice (under two adapter names?)`, {
        file: this.file,
        field: name,
      });
    this.seen.set(key, { name, shape: [...dims], data });
    return true;
  }

  private fail(message: string, field: string): ModelFileError {
    return new ModelFileError(`${this.file}: ${message}`, { file: this.file, field });
  }

  private labelNames(labels: readonly string[] | undefined, C: number): string[] {
    return labels?.length === C ? [...labels] : Array.from({ length: C }, (_, i) => `LABEL_${i}`);
  }

  /**
   * The head, if the file has one. A `score` head may lack a bias (Hugging Face's `score` layers are
   * `nn.Linear(..., bias=False)`): it then gets zeros. A `classifier` without a bias is a broken file, and so is an
   * MLP head short of any of its four tensors, with shapes that do not chain, or saved beside a linear head.
   */
  head(labels: readonly string[] | undefined, notes: string[]): AdapterHead | undefined {
    const mlp = MLP_PARTS.map((k) => this.seen.get(k)).filter((t): t is SeenTensor => t !== undefined);
    const linear = (['weight', 'bias'] as const)
      .map((k) => this.seen.get(k))
      .filter((t): t is SeenTensor => t !== undefined);
    if (mlp.length && linear.length)
      throw this.fail(
        `the file mixes a linear head ('${linear[0].name}') and an MLP head ('${mlp[0].name}'); a saved ${this.module} is one or the other`,
        mlp[0].name,
      );
    if (mlp.length) return this.mlpHead(labels);
    const w = this.seen.get('weight');
    const b = this.seen.get('bias');
    if (!w) {
      if (b)
        throw this.fail(`the file saves ${this.module}.bias but no ${this.module}.weight`, `${this.module}.weight`);
      return undefined;
    }
    const [C, D] = w.shape;
    let bias = b?.data;
    if (!bias && this.module === 'score' && w.shape.length === 2) {
      bias = new Float32Array(C);
      notes.push('the score head has no bias (nn.Linear with bias=False): a zero bias is used');
    }
    if (w.shape.length !== 2 || !bias || bias.length !== C)
      throw this.fail(
        `the saved ${this.module} has a [${w.shape.join(', ')}] weight but ${bias ? `a ${bias.length}-element` : 'no'} bias`,
        `${this.module}.bias`,
      );
    return { weight: transpose2d(w.data, C, D), bias, features: D, labels: this.labelNames(labels, C) };
  }

  /** RoBERTa's head: dense [D, D] + bias [D], out_proj [C, D] + bias [C] (PyTorch layout), all four required. */
  private mlpHead(labels: readonly string[] | undefined): AdapterHead {
    const m = this.module!;
    const missing = MLP_PARTS.filter((k) => !this.seen.has(k));
    if (missing.length)
      throw this.fail(
        `the saved MLP head ${m} is incomplete: it has ${MLP_PARTS.filter((k) => this.seen.has(k))
          .map((k) => `'${this.seen.get(k)!.name}'`)
          .join(', ')} but no ${missing.map((k) => `${m}.${k}`).join(', ')}`,
        `${m}.${missing[0]}`,
      );
    const [dw, db, ow, ob] = MLP_PARTS.map((k) => this.seen.get(k)!);
    const D = dw.shape[0];
    if (dw.shape.length !== 2 || dw.shape[1] !== D)
      throw this.fail(
        `'${dw.name}' is [${dw.shape.join(', ')}]; an MLP head's hidden layer is square, [features, features]`,
        dw.name,
      );
    if (db.shape.length !== 1 || db.shape[0] !== D)
      throw this.fail(`'${db.name}' is [${db.shape.join(', ')}]; the hidden layer '${dw.name}' needs [${D}]`, db.name);
    const C = ow.shape[0];
    if (ow.shape.length !== 2 || ow.shape[1] !== D)
      throw this.fail(
        `'${ow.name}' is [${ow.shape.join(', ')}]; it reads the ${D}-wide hidden layer, so it must be [labels, ${D}]`,
        ow.name,
      );
    if (ob.shape.length !== 1 || ob.shape[0] !== C)
      throw this.fail(`'${ob.name}' is [${ob.shape.join(', ')}]; the output layer '${ow.name}' needs [${C}]`, ob.name);
    return {
      weight: transpose2d(ow.data, C, D),
      bias: ob.data,
      features: D,
      labels: this.labelNames(labels, C),
      dense: { weight: transpose2d(dw.data, D, D), bias: db.data },
    };
  }
}

/** The largest safetensors header read (the reference implementation refuses headers above 100 MB too). */
const MAX_HEADER = 100_000_000;

/**
 * The tensor names in an adapter folder's adapter_model.safetensors, from its header alone (the weights are not
 * read): enough to tell how to serve an adapter before loading it. ModelFileErrors name the file.
 */
export function adapterTensorNames(dir: string): string[] {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, len, 0, 8, 0) !== 8)
      throw new ModelFileError(
        `${file}: not a safetensors file: ${size} bytes is shorter than the 8-byte header length`,
        {
          file,
        },
      );
    const n = Number(len.readBigUInt64LE(0));
    if (n > MAX_HEADER || 8 + n > size)
      throw new ModelFileError(
        `${file}: not a safetensors file (or truncated): header length ${n} does not fit in ${size} bytes`,
        { file },
      );
    const header = Buffer.alloc(n);
    if (fs.readSync(fd, header, 0, n, 8) !== n)
      throw new ModelFileError(`${file}: the ${n}-byte header could not be read whole`, { file });
    let parsed: unknown;
    try {
      parsed = JSON.parse(header.toString('utf8'));
    } catch (e) {
      throw new ModelFileError(`${file}: the safetensors header is not valid JSON (${(e as Error).message})`, { file });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new ModelFileError(`${file}: the safetensors header is not a JSON object`, { file });
    return Object.keys(parsed).filter((k) => k !== '__metadata__');
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    throw new ModelFileError(`cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * The kind of head an adapter folder saves (`mlp` when it has `classifier.dense` / `classifier.out_proj` tensors,
 * `linear` for `classifier.weight|bias` or `score.*`), or undefined for none, from the safetensors header alone.
 * The full check of the head's tensors is `loadAdapter`'s.
 */
export function savedHeadKind(dir: string): HeadKind | undefined {
  const heads = adapterTensorNames(dir)
    .map(headTensorOf)
    .filter((h): h is HeadTensor => h !== undefined);
  if (heads.length === 0) return undefined;
  return heads.some((h) => h.layer) ? 'mlp' : 'linear';
}

/** The lineage in an adapter folder's tailor.json, if it has one. */
export function readLineage(dir: string): Lineage | undefined {
  const tFile = path.join(dir, TAILOR_JSON);
  return fs.existsSync(tFile) ? (readJson(tFile) as { lineage?: Lineage }).lineage : undefined;
}

/** Reads an adapter folder written by PEFT or by `saveAdapter`. */
export async function loadAdapter(dir: string): Promise<LoraAdapter> {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const config = parseConfig(readJson(cfgFile), cfgFile);
  const { file: wFile, st } = await readAdapterWeights(dir);
  const parts = new Map<
    string,
    { A?: { shape: number[]; data: Float32Array }; B?: { shape: number[]; data: Float32Array } }
  >();
  const upcast = new Map<string, string[]>();
  const heads = new HeadReader(wFile);
  for (const [name, t] of st.tensors) {
    const data = adapterFloat32(t, wFile, upcast);
    // PEFT strips the adapter name on save; tolerate files that kept it (`.lora_A.default.weight`).
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(name);
    if (m) {
      if (HEAD_MODULE.test(m[1]))
        throw new ModelFileError(
          `${wFile}: tensor '${name}' adapts the classification head '${m[1]}', which PEFT keeps whole in modules_to_save and never adapts (PEFT would ignore this tensor)`,
          { file: wFile, field: name },
        );
      const e = parts.get(m[1]) ?? {};
      if (e[m[2] as 'A' | 'B'])
        throw new ModelFileError(`${wFile}: module '${m[1]}' has lora_${m[2]} twice (under two adapter names?)`, {
          file: wFile,
          field: name,
        });
      e[m[2] as 'A' | 'B'] = { shape: [...t.dims], data };
      parts.set(m[1], e);
      continue;
    }
    if (!heads.take(name, t.dims, data))
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
    // PEFT builds each layer with rank_pattern's rank (tuners/lora/model.py _create_and_replace) and would refuse
    // tensors of another rank; so do we, since the scaling depends on it.
    const want = patternValue(config.rank_pattern, m) ?? config.r;
    if (r !== want)
      throw new ModelFileError(
        `${wFile}: module '${m}' has rank ${r} tensors but ${cfgFile} gives it rank ${want} (r or rank_pattern)`,
        { file: wFile, field: m, value: String(r) },
      );
    weights.set(m, {
      r,
      inFeatures: inF,
      outFeatures: outF,
      A: transpose2d(e.A.data, r, inF),
      B: transpose2d(e.B.data, outF, r),
    });
  }
  if (weights.size === 0) throw new ModelFileError(`${wFile}: no LoRA tensors found`, { file: wFile });
  const lineage = readLineage(dir);
  const notes = upcastNotes(upcast);
  const head = heads.head(lineage?.labels, notes);
  return {
    config,
    weights,
    ...(head ? { head } : {}),
    ...(lineage ? { lineage } : {}),
    ...(notes.length ? { notes } : {}),
  };
}

/** Checks an adapter's lineage hash against a base's (when the adapter has one). */
export function checkAdapterBase(adapter: { lineage?: Lineage }, hash: string, where = 'adapter'): void {
  const want = adapter.lineage?.base?.hash;
  if (want && want !== hash) {
    throw new ConfigError(
      `${where} was trained on base ${want} (${adapter.lineage?.base.id}) but the loaded base is ${hash}`,
      { field: 'base', details: { expected: want, found: hash } },
    );
  }
}
