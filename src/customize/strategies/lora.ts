import { headKind, headLayout, MLP_DENSE_BIAS, MLP_DENSE_WEIGHT } from '../../models/head.ts';
import { paramValues, type Model } from '../../models/model.ts';
import { injectLora, loraWeightsOf } from '../lora.ts';
import { peftConfig, type AdapterHead } from '../peft.ts';
import { describeSpec, peftTargetModules, type TargetSpec } from '../sites.ts';
import type { StrategyDef } from '../types.ts';

/** The trained head in the adapter files' form (PEFT's `modules_to_save: ["classifier"]`). */
export function adapterHead(model: Model, labels: string[]): AdapterHead {
  const { out } = headLayout(model);
  return {
    weight: paramValues(model, out.weight) as Float32Array,
    bias: paramValues(model, out.bias) as Float32Array,
    features: model.params.get(out.weight)!.shape[0],
    labels,
    ...(headKind(model) === 'mlp'
      ? {
          dense: {
            weight: paramValues(model, MLP_DENSE_WEIGHT) as Float32Array,
            bias: paramValues(model, MLP_DENSE_BIAS) as Float32Array,
          },
        }
      : {}),
  };
}

/** The base's name or path as PEFT's `base_model_name_or_path`. */
export const peftBaseName = (base: Model): string | null => base.source.hubId ?? base.source.path ?? null;

/** The modules LoRA adapts when `lora.targets` is not given. */
export const LORA_DEFAULT_TARGETS: TargetSpec = { kind: 'all-linear' };

/** lora: low-rank adapters on the chosen linear modules plus the head; base weights stay frozen. */
export const lora: StrategyDef = {
  name: 'lora',
  summary: 'LoRA adapters on the chosen linear modules plus the head (PEFT-format adapter)',
  defaultLr: 2e-3,
  warmStartHead: true,
  prepare(headed, { seed, options }) {
    const lo = options.lora ?? {};
    // Every linear layer by default: on full CLINC150 (USE-lite, 3 epochs) all-linear reached 94.60% validation
    // (94.04% test) against the attention projections' 94.17% (93.69%), for 1.6x the adapter weights
    // (docs/customize.md, "Default LoRA targets").
    const targets = lo.targets ?? LORA_DEFAULT_TARGETS;
    const { model, spec } = injectLora(headed, { ...lo, targets, seed });
    return {
      model,
      hyperparameters: {
        r: spec.r,
        alpha: spec.alpha,
        dropout: spec.dropout,
        rslora: spec.rslora,
        targets: describeSpec(targets),
      },
      package: (trained, { base, labels, lineage }) => ({
        adapter: {
          config: peftConfig({
            r: spec.r,
            lora_alpha: spec.alpha,
            lora_dropout: spec.dropout,
            use_rslora: spec.rslora,
            target_modules: peftTargetModules(trained, spec.modules),
            task_type: 'SEQ_CLS',
            modules_to_save: ['classifier'],
            base_model_name_or_path: peftBaseName(base),
          }),
          weights: loraWeightsOf(trained, spec),
          head: adapterHead(trained, labels),
          lineage,
        },
      }),
    };
  },
};
