import type { GraphBuilder } from '../../onnx/builder.ts';

/**
 * AdamW with decoupled weight decay. `mode: 'torch'` (default) reproduces `torch.optim.AdamW`: decay first
 * (w *= 1 - lr·wd), then w -= lr/(1-β1ᵗ) · m / (√v/√(1-β2ᵗ) + ε). `mode: 'hf'` reproduces Hugging Face's / ORT's
 * training AdamW: w -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε), then w -= lr·wd·w (ε sits outside the bias correction,
 * so the two differ while v is small).
 */
export interface AdamWConfig {
  type: 'adamw';
  lr: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8 (PyTorch's; Hugging Face's Trainer also uses 1e-8, ORT's artifacts 1e-6). */
  eps?: number;
  /** Default 0.01 (PyTorch's AdamW default). */
  weightDecay?: number;
  mode?: 'torch' | 'hf';
}

/** SGD as `torch.optim.SGD`: coupled L2 weight decay, momentum with dampening, optional Nesterov. */
export interface SgdConfig {
  type: 'sgd';
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export type OptimizerConfig = AdamWConfig | SgdConfig;

/** Value names inside the graph being built. */
export interface UpdateValues {
  param: string;
  slots: Record<string, string>;
}

/**
 * One optimizer's update rule: which per-parameter state slots it keeps, which per-step scalars it needs (computed in
 * JS from the step number and learning rate), and the graph ops of one parameter's update.
 */
export interface UpdateRule {
  readonly slots: readonly string[];
  readonly scalarNames: readonly string[];
  scalars(step: number, lr: number): Record<string, number>;
  /** Appends the update of one parameter; `decay` false skips weight decay for it. */
  emit(
    b: GraphBuilder,
    param: string,
    grad: string,
    slots: Record<string, string>,
    scalars: Record<string, string>,
    decay: boolean,
  ): UpdateValues;
}
