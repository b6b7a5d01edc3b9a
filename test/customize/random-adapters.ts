/** Seeded random LoRA adapters with heads, for the mixed-adapter tests (non-zero B, so every adapter matters). */
import { peftConfig, type LoraAdapter } from '../../src/customize/peft.ts';
import type { LoraWeights } from '../../src/customize/lora.ts';
import { linearSites } from '../../src/customize/sites.ts';
import type { Model } from '../../src/models/model.ts';
import { mulberry32 } from '../../src/util/rng.ts';

export interface RandomAdapterSpec {
  /** Module paths (exact) to adapt. */
  modules: string[];
  r: number;
  alpha: number;
  labels: string[];
  seed: number;
  rslora?: boolean;
  /** Width of the feature the head reads. */
  features: number;
  /** Spread of A, B and head values (default 0.3). */
  scale?: number;
  /** Give the adapter an MLP head (models/head.ts kind `mlp`): a random [features, features] hidden layer too. */
  mlpHead?: boolean;
}

/** An adapter with uniform(±scale) A, B, head weight and bias (and hidden layer, with `mlpHead`), from `seed`. */
export function randomAdapter(base: Model, spec: RandomAdapterSpec): LoraAdapter {
  const rnd = mulberry32(spec.seed);
  const sc = spec.scale ?? 0.3;
  const u = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * sc);
  const sites = new Map(linearSites(base).map((s) => [s.module, s]));
  const weights = new Map<string, LoraWeights>();
  for (const m of spec.modules) {
    const s = sites.get(m);
    if (!s) throw new Error(`no module ${m}`);
    weights.set(m, {
      A: u(s.inFeatures * spec.r),
      B: u(spec.r * s.outFeatures),
      r: spec.r,
      inFeatures: s.inFeatures,
      outFeatures: s.outFeatures,
    });
  }
  const C = spec.labels.length;
  const weight = u(spec.features * C);
  const bias = u(C);
  // Drawn after the output layer, so an adapter's other values do not depend on whether it has a hidden layer.
  const dense = spec.mlpHead ? { weight: u(spec.features * spec.features), bias: u(spec.features) } : undefined;
  return {
    config: peftConfig({
      r: spec.r,
      lora_alpha: spec.alpha,
      target_modules: spec.modules,
      use_rslora: spec.rslora ?? false,
      modules_to_save: ['classifier'],
    }),
    weights,
    head: { weight, bias, features: spec.features, labels: [...spec.labels], ...(dense ? { dense } : {}) },
  };
}
