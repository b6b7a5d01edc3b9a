/**
 * Adapter folders in PEFT's real layout, written by hand for the interop tests, and plain-JS references for what
 * loading them must give. Every layout fact is PEFT 0.20.0's (huggingface/peft at tag v0.20.0):
 *  - utils/save_and_load.py get_peft_model_state_dict: tensors saved as `base_model.model.<module>.lora_A.weight`
 *    with the adapter name (`.default`) removed; `_insert_adapter_name_into_state_dict` puts it back on load, so a
 *    state dict taken from the live model has `.lora_A.default.weight` and `.ia3_l.default`.
 *  - utils/other.py ModulesToSaveWrapper.adapter_state_dict: a modules_to_save module is saved under its own name
 *    (`base_model.model.classifier.weight`); on the live model it is `classifier.modules_to_save.default.weight`.
 *  - tuners/lora/layer.py Linear: lora_A is nn.Linear(in, r) (weight [r, in]), lora_B nn.Linear(r, out) (weight
 *    [out, r]); the delta is scaling·B·A with scaling = lora_alpha/r, or lora_alpha/√r with use_rslora.
 *  - tuners/ia3/layer.py Linear: ia3_l is [out, 1] (scales the output, bias included) or, for a feed-forward
 *    module, [1, in] (scales the input).
 *  - peft_model.py PeftModelForSequenceClassification: modules_to_save gets ["classifier", "score"].
 * Transformers' BertForSequenceClassification nests BertModel under `bert` and puts `classifier` beside it, so its
 * modules are `bert.encoder.layer.N...` and `classifier`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { paramValues, toOnnxModel, withParamValues, type Model } from '../../src/models/model.ts';
import { encodeSafetensors } from '../../src/onnx/safetensors.ts';
import { tensorFromArray } from '../../src/onnx/tensor.ts';
import { ort, Session } from '../../src/runtime/session.ts';

export const H = 32;
export const INTER = 64;

export interface FixtureTensor {
  name: string;
  shape: number[];
  values: number[];
  /** Default float32. float16/bfloat16 values must be exactly representable (the test's encoder checks). */
  dtype?: 'float32' | 'float64' | 'float16' | 'bfloat16';
}

/** IEEE half-precision bits of a value that has an exact half-precision form (checked). */
export function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  if (e < -14 || e > 15) throw new Error(`f16Bits: ${v} is outside float16's normal range`);
  const mant = (a / 2 ** e - 1) * 1024;
  if (!Number.isInteger(mant)) throw new Error(`f16Bits: ${v} is not exact in float16`);
  return (v < 0 ? 0x8000 : 0) | ((e + 15) << 10) | mant;
}

/** bfloat16 bits: the top half of the float32 bits of a value that has an exact bfloat16 form (checked). */
export function bf16Bits(v: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, v, true);
  const u = dv.getUint32(0, true);
  if ((u & 0xffff) !== 0) throw new Error(`bf16Bits: ${v} is not exact in bfloat16`);
  return u >>> 16;
}

/** Writes adapter_config.json and adapter_model.safetensors (safetensors' `pt` metadata, as PEFT writes them). */
export function writeAdapterDir(dir: string, config: Record<string, unknown>, tensors: FixtureTensor[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  const list = tensors.map((t) => {
    const dtype = t.dtype ?? 'float32';
    const data =
      dtype === 'float32'
        ? Float32Array.from(t.values)
        : dtype === 'float64'
          ? Float64Array.from(t.values)
          : Uint16Array.from(t.values, dtype === 'float16' ? f16Bits : bf16Bits);
    return tensorFromArray(t.name, dtype, data, t.shape);
  });
  fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), encodeSafetensors(list, { format: 'pt' }));
}

export const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-peft-interop-'));

/** Deterministic values exact in float16 and bfloat16: k/64 for k in [-40, 40]. */
export function vals(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return ((s % 81) - 40) / 64;
  });
}

/**
 * PEFT's LoraConfig as `LoraConfig(...).to_dict()` writes it for a sequence-classification adapter (PEFT 0.20.0,
 * tuners/lora/config.py field defaults; modules_to_save as PeftModelForSequenceClassification sets it).
 */
export function loraConfig(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: 'tiny-bert',
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: 8,
    lora_bias: false,
    lora_dropout: 0.1,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: ['classifier', 'score'],
    monteclora_config: null,
    peft_type: 'LORA',
    peft_version: '0.20.0',
    qalora_group_size: 16,
    r: 8,
    rank_pattern: {},
    revision: null,
    runtime_config: { ephemeral_gpu_offload: false },
    target_modules: ['query', 'value'],
    target_parameters: null,
    task_type: 'SEQ_CLS',
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    velora_config: null,
    ...fields,
  };
}

/** PEFT's IA3Config as `to_dict()` writes it (PEFT 0.20.0, tuners/ia3/config.py). */
export function ia3Config(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    auto_mapping: null,
    base_model_name_or_path: 'tiny-bert',
    exclude_modules: null,
    fan_in_fan_out: false,
    feedforward_modules: ['output.dense'],
    inference_mode: true,
    init_ia3_weights: true,
    modules_to_save: ['classifier', 'score'],
    peft_type: 'IA3',
    peft_version: '0.20.0',
    revision: null,
    target_modules: ['key', 'value', 'output.dense'],
    task_type: 'SEQ_CLS',
    ...fields,
  };
}

/**
 * The base with a LoRA delta folded in by hand: W_graph[i, o] += scaling · Σ_k B_pt[o, k] · A_pt[k, i]
 * (PyTorch's y = x·(W_pt + scaling·B·A)ᵀ; the graph stores W_ptᵀ as [in, out]). Float64 sums, one rounding.
 */
export function withLoraDelta(
  base: Model,
  module: string,
  A: readonly number[],
  B: readonly number[],
  r: number,
  scaling: number,
): Model {
  const p = base.params.get(`${module}.weight`)!;
  const [I, O] = p.shape;
  const W = paramValues(base, p.path) as Float32Array;
  const out = new Float32Array(W.length);
  for (let i = 0; i < I; i++)
    for (let o = 0; o < O; o++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * I + i];
      out[i * O + o] = W[i * O + o] + scaling * acc;
    }
  return withParamValues(base, p.path, out);
}

/** The base with an IA3 vector folded in by hand: output side W[i, o]·l[o], b[o]·l[o]; feed-forward W[i, o]·l[i]. */
export function withIa3(base: Model, module: string, l: readonly number[], feedforward: boolean): Model {
  const p = base.params.get(`${module}.weight`)!;
  const O = p.shape[1];
  const W = paramValues(base, p.path) as Float32Array;
  let m = withParamValues(
    base,
    p.path,
    Float32Array.from(W, (w, j) => w * l[feedforward ? Math.floor(j / O) : j % O]),
  );
  if (!feedforward) {
    const b = paramValues(base, `${module}.bias`) as Float32Array;
    m = withParamValues(
      m,
      `${module}.bias`,
      Float32Array.from(b, (x, o) => x * l[o]),
    );
  }
  return m;
}

/** The base's classifier replaced by a PyTorch-layout [labels, features] weight and its bias. */
export function withClassifier(base: Model, weightPt: readonly number[], bias: readonly number[]): Model {
  const [D, C] = base.params.get('classifier.weight')!.shape;
  const g = new Float32Array(D * C);
  for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) g[d * C + c] = weightPt[c * D + d];
  return withParamValues(withParamValues(base, 'classifier.weight', g), 'classifier.bias', Float32Array.from(bias));
}

export function feeds(): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: 24 }, (_, i) => BigInt(5 + ((i * 7) % 20)));
  const mask = BigInt64Array.from({ length: 24 }, (_, i) => (i % 12 < 9 ? 1n : 0n));
  return {
    input_ids: new ort.Tensor('int64', ids, [2, 12]),
    attention_mask: new ort.Tensor('int64', mask, [2, 12]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(24), [2, 12]),
  };
}

export async function logits(m: Model): Promise<Float32Array> {
  const s = await Session.create(toOnnxModel(m), { intraOpThreads: 1 });
  try {
    return (await s.run(feeds())).logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** Largest |a - b| (lengths must agree). */
export function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/**
 * Every module name of transformers' BertForSequenceClassification with 2 layers (`model.named_modules()`, leaves
 * and containers, from modeling_bert.py), for resolving target_modules the way PEFT does.
 */
export const BERT_SEQ_CLS_MODULES: readonly string[] = [
  'bert',
  'bert.embeddings',
  'bert.embeddings.word_embeddings',
  'bert.embeddings.position_embeddings',
  'bert.embeddings.token_type_embeddings',
  'bert.embeddings.LayerNorm',
  'bert.embeddings.dropout',
  'bert.encoder',
  'bert.encoder.layer',
  ...[0, 1].flatMap((l) =>
    [
      '',
      '.attention',
      '.attention.self',
      '.attention.self.query',
      '.attention.self.key',
      '.attention.self.value',
      '.attention.self.dropout',
      '.attention.output',
      '.attention.output.dense',
      '.attention.output.LayerNorm',
      '.attention.output.dropout',
      '.intermediate',
      '.intermediate.dense',
      '.intermediate.intermediate_act_fn',
      '.output',
      '.output.dense',
      '.output.LayerNorm',
      '.output.dropout',
    ].map((s) => `bert.encoder.layer.${l}${s}`),
  ),
  'bert.pooler',
  'bert.pooler.dense',
  'bert.pooler.activation',
  'dropout',
  'classifier',
];

/**
 * The modules PEFT 0.20 adapts for a list `target_modules` (tuners_utils.check_target_module_exists: a
 * modules_to_save module, or one under it, never; else `key == t or key.endswith("." + t)`).
 */
export function peftResolve(targets: readonly string[], modulesToSave: readonly string[]): string[] {
  return BERT_SEQ_CLS_MODULES.filter(
    (key) =>
      !modulesToSave.some((m) => new RegExp(`^(^|.*\\.)${m}($|\\..*)`).test(key)) &&
      targets.some((t) => key === t || key.endsWith(`.${t}`)),
  );
}
