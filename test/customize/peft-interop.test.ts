/**
 * LoRA adapters in PEFT 0.20's real layout (issue #18), each written by hand (see peft-fixtures.ts for the PEFT
 * source every layout fact comes from) and checked against outputs computed here: the base with W + scaling·B·A
 * folded in plain JS and the fixture's head put in place, run in onnxruntime.
 *
 * Why each test failed before the fix (commit a5e4090):
 *  - `.default.` keys: `classifier.modules_to_save.default.weight` was "neither a LoRA tensor nor a saved classifier".
 *  - rank/alpha patterns: the key `layer.0|value` was tried as `(^|\.)layer.0|value$`, which gives layer 0's query
 *    alpha 16 (scaling 4 instead of PEFT's 1).
 *  - score head: a bias-free `score` (nn.Linear(bias=False)) was "a [2, 32] weight but no bias".
 *  - half-precision head: "tensor ... is float16; only float32 adapters are supported".
 *  - the head as a target: `/query|classifier/` adapted `classifier` (PEFT never does), and a file with
 *    `classifier.lora_A` loaded.
 *  - LoRA variants: aLoRA, QA-LoRA, lora_bias, layer_replication, PiSSA/OLoRA/CorDA/LoftQ/LoRA-GA inits, BD-LoRA,
 *    Arrow, target_parameters, trainable_token_indices loaded and ran as plain LoRA.
 *  - Optimum bases: with the pooler a Gemm, peftTargetModules wrote ["dense"], which PEFT also applies to
 *    bert.pooler.dense.
 * The `bert.`-prefixed and rsLoRA fixtures already loaded correctly; they pin the layout down.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { applyAdapter, mergeAdapter } from '../../src/customize/adapters.ts';
import { injectLora } from '../../src/customize/lora.ts';
import { adapterScaling, loadAdapter } from '../../src/customize/peft.ts';
import { peftTargetModules, selectSites } from '../../src/customize/sites.ts';
import { ConfigError, ModelFileError } from '../../src/errors.ts';
import type { Model } from '../../src/models/model.ts';
import { bertConfig, buildBert } from '../../src/models/zoo/bert.ts';
import { clincSlice, tinyBert } from './fixtures.ts';
import {
  H,
  INTER,
  loraConfig,
  logits,
  maxDiff,
  peftResolve,
  tmpDir,
  vals,
  withClassifier,
  withLoraDelta,
  writeAdapterDir,
  type FixtureTensor,
} from './peft-fixtures.ts';

const data = clincSlice(3, 5, 2);
/** BertForSequenceClassification's layout: `bert.encoder...`, `bert.pooler.dense`, `classifier` (2 labels). */
const base = tinyBert(data, 'sequence-classification');
const P = 'base_model.model.';
const q = (l: number): string => `bert.encoder.layer.${l}.attention.self.query`;
const v = (l: number): string => `bert.encoder.layer.${l}.attention.self.value`;

interface Lora {
  module: string;
  r: number;
  inF: number;
  outF: number;
  A: number[];
  B: number[];
}

function lora(module: string, r: number, seed: number, inF = H, outF = H): Lora {
  return { module, r, inF, outF, A: vals(r * inF, seed), B: vals(outF * r, seed + 1) };
}

/** PEFT's tensors for some LoRA modules; `adapterName` puts the name back as a live state dict has it. */
function loraTensors(mods: Lora[], adapterName?: string): FixtureTensor[] {
  const n = adapterName ? `.${adapterName}` : '';
  return mods.flatMap((m) => [
    { name: `${P}${m.module}.lora_A${n}.weight`, shape: [m.r, m.inF], values: m.A },
    { name: `${P}${m.module}.lora_B${n}.weight`, shape: [m.outF, m.r], values: m.B },
  ]);
}

const headW = vals(2 * H, 99);
const headB = [0.25, -0.375];

/** The reference: each module's delta folded in by hand with the scaling given, and the head put in place. */
function reference(mods: Lora[], scaling: (m: Lora) => number, w = headW, b = headB): Model {
  let m = base;
  for (const x of mods) m = withLoraDelta(m, x.module, x.A, x.B, x.r, scaling(x));
  return withClassifier(m, w, b);
}

async function assertRuns(dir: string, want: Model): Promise<void> {
  const a = await loadAdapter(dir);
  const ref = await logits(want);
  assert.ok(maxDiff(ref, await logits(base)) > 1e-2, 'the fixture changes the outputs');
  assert.ok(maxDiff(await logits(applyAdapter(base, a)), ref) < 1e-5, 'applied adapter = reference');
  assert.ok(maxDiff(await logits(mergeAdapter(base, a).model), ref) < 1e-5, 'merged adapter = reference');
}

const qv = [lora(q(0), 2, 1), lora(v(0), 2, 3), lora(q(1), 2, 5), lora(v(1), 2, 7)];

test('PEFT BertForSequenceClassification LoRA: bert.-prefixed modules, classifier via modules_to_save, scaling alpha/r', async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv),
    { name: `${P}classifier.weight`, shape: [2, H], values: headW },
    { name: `${P}classifier.bias`, shape: [2], values: headB },
  ]);
  const a = await loadAdapter(dir);
  assert.deepEqual([...a.weights.keys()].sort(), qv.map((m) => m.module).sort());
  assert.deepEqual(a.head!.labels, ['LABEL_0', 'LABEL_1']);
  assert.equal(a.notes, undefined);
  await assertRuns(
    dir,
    reference(qv, () => 4 / 2),
  );
});

test("keys with the adapter name kept (a live model's state dict): lora_A.default.weight and classifier.modules_to_save.default.*", async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv, 'default'),
    { name: `${P}classifier.modules_to_save.default.weight`, shape: [2, H], values: headW },
    { name: `${P}classifier.modules_to_save.default.bias`, shape: [2], values: headB },
  ]);
  await assertRuns(
    dir,
    reference(qv, () => 4 / 2),
  );
  // Two adapter names in one file would put two tensors on one module: refused, not overwritten.
  const two = tmpDir();
  writeAdapterDir(two, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv.slice(0, 1), 'default'),
    ...loraTensors(qv.slice(0, 1), 'other'),
  ]);
  await assert.rejects(loadAdapter(two), {
    message: `${path.join(two, 'adapter_model.safetensors')}: module '${q(0)}' has lora_A twice (under two adapter names?)`,
  });
});

test("rank_pattern / alpha_pattern keys match as PEFT's get_pattern_key does: re.match((.*\\.)?(key)$), first key wins", async () => {
  // query at rank 4 by rank_pattern; alpha 16 for modules ending in "layer.0" or "value". PEFT's grouped form
  // leaves layer 0's query at lora_alpha 4; the ungrouped `(^|\.)layer.0|value$` gave it 16.
  const mods = [lora(q(0), 4, 11), lora(v(0), 2, 13), lora(q(1), 4, 15), lora(v(1), 2, 17)];
  const cfg = loraConfig({ r: 2, lora_alpha: 4, rank_pattern: { query: 4 }, alpha_pattern: { 'layer.0|value': 16 } });
  const dir = tmpDir();
  writeAdapterDir(dir, cfg, [
    ...loraTensors(mods),
    { name: `${P}classifier.weight`, shape: [2, H], values: headW },
    { name: `${P}classifier.bias`, shape: [2], values: headB },
  ]);
  const a = await loadAdapter(dir);
  const want = (m: string): number => (m.endsWith('value') ? 16 / 2 : 4 / 4);
  for (const m of mods) assert.equal(adapterScaling(a, m.module), want(m.module), m.module);
  await assertRuns(
    dir,
    reference(mods, (m) => want(m.module)),
  );
  // The first matching key in the config's order wins, as in get_pattern_key's loop.
  const first = { ...a, config: { ...a.config, alpha_pattern: { 'self.query': 2, query: 8 } } };
  assert.equal(adapterScaling(first, q(1)), 2 / 4);
  // Tensors of another rank than r/rank_pattern give are refused (PEFT's layer would not take them).
  const bad = tmpDir();
  writeAdapterDir(bad, { ...cfg, rank_pattern: {} }, loraTensors(mods.slice(0, 1)));
  await assert.rejects(loadAdapter(bad), {
    message: `${path.join(bad, 'adapter_model.safetensors')}: module '${q(0)}' has rank 4 tensors but ${path.join(bad, 'adapter_config.json')} gives it rank 2 (r or rank_pattern)`,
  });
});

test('rsLoRA (use_rslora: scaling alpha/sqrt(r)) on a layer subset, with a non-square intermediate.dense', async () => {
  const mods = [lora(q(1), 4, 21), lora('bert.encoder.layer.1.intermediate.dense', 4, 23, H, INTER)];
  const dir = tmpDir();
  writeAdapterDir(
    dir,
    loraConfig({
      r: 4,
      lora_alpha: 8,
      use_rslora: true,
      target_modules: ['query', 'intermediate.dense'],
      layers_to_transform: [1],
    }),
    [
      ...loraTensors(mods),
      { name: `${P}classifier.weight`, shape: [2, H], values: headW },
      { name: `${P}classifier.bias`, shape: [2], values: headB },
    ],
  );
  await assertRuns(
    dir,
    reference(mods, () => 8 / Math.sqrt(4)),
  );
});

test('a bias-free score head (nn.Linear(bias=False), as PEFT saves modules_to_save "score") loads with a zero bias', async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv),
    { name: `${P}score.weight`, shape: [2, H], values: headW },
  ]);
  const a = await loadAdapter(dir);
  assert.deepEqual([...a.head!.bias], [0, 0]);
  assert.deepEqual(a.notes, ['the score head has no bias (nn.Linear with bias=False): a zero bias is used']);
  await assertRuns(
    dir,
    reference(qv, () => 2, headW, [0, 0]),
  );
  // A classifier without its bias is a broken file, not a bias-free layer.
  const bad = tmpDir();
  writeAdapterDir(bad, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv),
    { name: `${P}classifier.weight`, shape: [2, H], values: headW },
  ]);
  await assert.rejects(loadAdapter(bad), {
    message: `${path.join(bad, 'adapter_model.safetensors')}: the saved classifier has a [2, 32] weight but no bias`,
  });
});

test('a float16 head (PEFT upcasts only adapter layers, so a half-precision model saves its head in F16) is upcast and noted', async () => {
  const dir = tmpDir();
  writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv),
    { name: `${P}classifier.weight`, shape: [2, H], values: headW, dtype: 'float16' },
    { name: `${P}classifier.bias`, shape: [2], values: headB, dtype: 'float16' },
  ]);
  const a = await loadAdapter(dir);
  // Graph layout [features, labels]: element (d, c) is the PyTorch weight's (c, d); every value is exact in float16.
  for (let c = 0; c < 2; c++) for (let d = 0; d < H; d++) assert.equal(a.head!.weight[d * 2 + c], headW[c * H + d]);
  assert.deepEqual([...a.head!.bias], headB);
  assert.deepEqual(a.notes, [
    'float16 tensors upcast to float32 on load: base_model.model.classifier.bias, base_model.model.classifier.weight',
  ]);
  await assertRuns(
    dir,
    reference(qv, () => 2),
  );
  // Other dtypes stay refused.
  const f64 = tmpDir();
  writeAdapterDir(f64, loraConfig({ r: 2, lora_alpha: 4 }), [
    ...loraTensors(qv.slice(1)),
    { ...loraTensors(qv.slice(0, 1))[0], dtype: 'float64' },
    loraTensors(qv.slice(0, 1))[1],
  ]);
  await assert.rejects(loadAdapter(f64), {
    message: `${path.join(f64, 'adapter_model.safetensors')}: tensor '${P}${q(0)}.lora_A.weight' is float64; adapter tensors must be float32, float16 or bfloat16`,
  });
});

test('the head is never a LoRA target (PEFT excludes modules_to_save modules); a file adapting it is refused', async () => {
  assert.deepEqual(
    injectLora(base, { targets: /query|classifier/, r: 2 }).spec.modules,
    [q(0), q(1)],
    'classifier left out',
  );
  assert.throws(
    () => selectSites(base, ['classifier']),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        'target [classifier] selects only the classification head (classifier); PEFT saves the head whole through modules_to_save and never adapts it, so it cannot be a LoRA/IA3 target (it trains in full anyway)',
  );
  const dir = tmpDir();
  writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4 }), [...loraTensors([...qv, lora('classifier', 2, 31, H, 2)])]);
  await assert.rejects(loadAdapter(dir), {
    message: `${path.join(dir, 'adapter_model.safetensors')}: tensor 'base_model.model.classifier.lora_A.weight' adapts the classification head 'classifier', which PEFT keeps whole in modules_to_save and never adapts (PEFT would ignore this tensor)`,
  });
});

test('LoRA variants and base-rewriting initialisations are refused by field; init-only choices load as plain LoRA', async () => {
  const refused: [string, unknown][] = [
    ['alora_invocation_tokens', [101, 2023]],
    ['use_qalora', true],
    ['use_bdlora', { target_modules_bd_a: ['query'], nblocks: 2 }],
    ['arrow_config', { top_k: 2 }],
    ['lora_bias', true],
    [
      'layer_replication',
      [
        [0, 2],
        [1, 2],
      ],
    ],
    ['target_parameters', ['feed_forward.experts.down_proj']],
    ['trainable_token_indices', [5, 6]],
    ['megatron_config', { tensor_model_parallel_size: 2 }],
    ['init_lora_weights', 'pissa'],
    ['init_lora_weights', 'pissa_niter_4'],
    ['init_lora_weights', 'olora'],
    ['init_lora_weights', 'corda'],
    ['init_lora_weights', 'loftq'],
    ['init_lora_weights', 'lora_ga'],
    ['init_lora_weights', 'something_new'],
    ['use_dora', true],
  ];
  for (const [field, value] of refused) {
    const dir = tmpDir();
    writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4, [field]: value }), loraTensors(qv));
    await assert.rejects(
      loadAdapter(dir),
      (e: unknown) =>
        e instanceof ModelFileError &&
        e.context.field === field &&
        e.message.startsWith(
          `${path.join(dir, 'adapter_config.json')}: ${field} ${JSON.stringify(value)} is not supported: `,
        ) &&
        e.message.endsWith('; Tailor runs plain LoRA only and refuses rather than run this adapter as something else'),
      `${field}=${JSON.stringify(value)}`,
    );
  }
  const pissa = tmpDir();
  writeAdapterDir(pissa, loraConfig({ r: 2, lora_alpha: 4, init_lora_weights: 'olora' }), loraTensors(qv));
  await assert.rejects(loadAdapter(pissa), {
    message: `${path.join(pissa, 'adapter_config.json')}: init_lora_weights "olora" is not supported: this initialisation rewrites the base weights before training, so the saved A and B only hold on that rewritten base (PEFT saves a converted adapter with init_lora_weights true); Tailor runs plain LoRA only and refuses rather than run this adapter as something else`,
  });
  // Initialisations that only pick starting values, and variants whose inference forward is plain LoRA.
  const plain: Record<string, unknown>[] = [
    { init_lora_weights: false },
    { init_lora_weights: 'gaussian' },
    { init_lora_weights: 'eva' },
    { init_lora_weights: 'orthogonal' },
    { init_lora_weights: 'mica' },
    { velora_config: { num_groups: 2 } },
    { monteclora_config: { num_samples: 4 } },
    { alora_invocation_tokens: [], layer_replication: [], target_parameters: [] },
  ];
  for (const f of plain) {
    const dir = tmpDir();
    writeAdapterDir(dir, loraConfig({ r: 2, lora_alpha: 4, ...f }), loraTensors(qv));
    assert.equal((await loadAdapter(dir)).weights.size, 4, JSON.stringify(f));
  }
});

test('target_modules on an Optimum-style base (pooler a Gemm): suffixes PEFT resolves to exactly the selection', () => {
  const opt = buildBert(
    bertConfig({
      vocab_size: 60,
      hidden_size: H,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: INTER,
      max_position_embeddings: 64,
      num_labels: 2,
    }),
    { task: 'sequence-classification', style: 'optimum', seed: 1 },
  );
  const dense = selectSites(opt, /dense$/).map((s) => s.module);
  assert.equal(dense.length, 6, 'the Gemm pooler is no MatMul site');
  const names = peftTargetModules(opt, dense);
  assert.deepEqual(names, ['intermediate.dense', 'output.dense']);
  assert.deepEqual(peftResolve(names, ['classifier', 'score']), dense);
  // Where the short names are exact they stay short; the tailor-style base (pooler a MatMul) gives the same.
  const qvMods = selectSites(opt, ['query', 'value']).map((s) => s.module);
  assert.deepEqual(peftTargetModules(opt, qvMods), ['query', 'value']);
  assert.deepEqual(peftResolve(['query', 'value'], ['classifier', 'score']), qvMods);
  assert.deepEqual(peftTargetModules(base, dense), ['intermediate.dense', 'output.dense']);
  // The pooler alone: its own suffix.
  assert.deepEqual(peftTargetModules(base, ['bert.pooler.dense']), ['pooler.dense']);
});
