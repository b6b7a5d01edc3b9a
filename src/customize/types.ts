/**
 * The types `customize` and its strategies share (kept apart from customize.ts so that the strategy files and the
 * orchestrator import them without importing each other).
 */
import type { Lineage } from './lineage.ts';
import type { LoraOptions } from './lora.ts';
import type { LoraAdapter } from './peft.ts';
import type { Ia3Adapter, Ia3Options, Ia3Spec } from './ia3.ts';
import type { TargetSpec } from './sites.ts';
import type { HeadKind } from '../models/head.ts';
import type { Model, NamePattern } from '../models/model.ts';
import type { WarmHead, WarmHeadOptions } from '../train/warm-head.ts';
import type { ort } from '../runtime/session.ts';

export interface LabeledText {
  text: string;
  label: string;
}

export interface CustomizeData {
  train: readonly LabeledText[];
  validation: readonly LabeledText[];
}

export interface CustomizeOptions {
  /** A strategy's name in the strategy table (`STRATEGIES`). */
  strategy: string;
  /** Label order of the head (default: sorted distinct training labels). */
  labels?: readonly string[];
  /** Training epochs (default: the strategy's `defaultEpochs`, else 3; head: 10). */
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate (default: the strategy's `defaultLr`). */
  lr?: number;
  weightDecay?: number;
  /** Linear warmup then linear decay to 0 over the run (fraction of steps in warmup; default 0.06). */
  warmup?: number;
  maxGradNorm?: number;
  seed?: number;
  /** Longest token sequence (default models/text.ts DEFAULT_MAX_LENGTH); batches pad to the longest training text up to this. */
  maxLength?: number;
  /** Stop after this many epochs without a better validation accuracy (default: never). */
  patience?: number;
  lora?: Omit<LoraOptions, 'targets' | 'seed'> & { targets?: TargetSpec };
  /** ia3: which modules get vectors and which of them are scaled on their input (defaults: PEFT's for BERT). */
  ia3?: Ia3Options;
  /** partial: train the top `layers` encoder blocks (default 1) or the parameters matching `patterns`; the head always trains. */
  partial?: { layers?: number; patterns?: NamePattern[] };
  /** full: per-layer learning-rate multiplier decay^(depth from the top) (default 1: none). */
  layerDecay?: number;
  /** setfit: the contrastive body phase's settings (strategies/setfit.ts has the defaults). */
  setfit?: SetFitOptions;
  /**
   * The head's kind (models/head.ts `HEAD_KINDS`): `linear` (default) or `mlp` (RoBERTa's classification head:
   * dense features -> features, tanh, then the output layer; warm-started as the linear head, see `warmHeadValues`).
   */
  headType?: HeadKind;
  /**
   * Initial head values in graph layout (output layer weight [features, labels] row-major, bias [labels]; an `mlp`
   * head's hidden layer in `dense`); overrides `warmStartHead`.
   */
  head?: { weight: Float32Array; bias: Float32Array; dense?: { weight: Float32Array; bias: Float32Array } };
  /**
   * Fit the head on the frozen body's features before training (LP-FT): ridge init, then L2 softmax regression
   * (src/train/warm-head.ts). Default: the strategy's `warmStartHead`.
   */
  warmStartHead?: boolean | WarmHeadOptions;
  /**
   * One weight per training row (e.g. AIF360's Reweighing, eval/mitigation.ts `reweighingWeights`): training
   * minimises the weighted mean cross-entropy Σ wᵢℓᵢ / Σ wᵢ of each batch, and the warm head (and so the head
   * strategy, which trains on cached features) is fitted with the same weights. Validation (the best epoch, the
   * warm-or-trained head choice, calibration) stays unweighted.
   */
  sampleWeights?: ArrayLike<number>;
  /**
   * Work already done on exactly these rows, so that runs on the same data (a search's trials) do it once: the
   * frozen body's features of the train and validation rows ([rows, width] row-major, in the rows' order), used
   * instead of a feature pass, and the warm head fitted on the features (used instead of fitting one when the warm
   * start is on; it may come from more training rows than these, e.g. all of them for a trial on a fraction).
   */
  precomputed?: { train: Float32Array; validation: Float32Array; width: number; warmHead?: WarmHead };
  /** ORT intra-op threads for training sessions. */
  threads?: number;
  /**
   * Checkpoint the training loop into `dir` every `every` optimizer steps (and at the end), and resume from the
   * latest checkpoint there, if any: a job restarted after its process was killed continues where it stopped.
   */
  checkpoint?: { dir: string; every?: number };
  onEpoch?: (e: EpochReport) => void;
}

export interface EpochReport {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  accuracy: number;
  macroF1: number;
  seconds: number;
}

/** SetFit's contrastive body phase (customize/setfit.ts). */
export interface SetFitOptions {
  /** What the pair loss tunes: LoRA adapters (the `lora` options apply) or every body weight. */
  body?: 'lora' | 'full';
  /** Pair-sampling rounds: each gives every training example one positive and one negative pair. */
  pairsPerExample?: number;
  /** Epochs over the pairs. */
  epochs?: number;
  /** Peak learning rate of the body phase (the head phase uses `lr`). */
  lr?: number;
  /** Pairs per step (the body runs over twice as many texts). */
  batchSize?: number;
}

/** What a strategy's body phase did (`report.bodyPhase`). */
export interface BodyPhaseReport {
  seconds: number;
  /** Optimizer steps. */
  steps: number;
  /** Mean training loss of each epoch. */
  trainLoss: number[];
  /** The phase's own figures (setfit: pair counts, mean cosines of the training pairs before and after). */
  metrics: Record<string, number>;
}

/** The training split as the body phase gets it: rows, their encoded texts and label ids (head order). */
export interface BodyPhaseData {
  rows: readonly LabeledText[];
  feeds: Record<string, ort.Tensor>;
  labels: BigInt64Array;
  maxLength: number;
}

/** What a strategy packages beyond the trained weights: a PEFT-format adapter (LoRA or IA3). */
export interface StrategyArtifacts {
  /** lora: the adapter in PEFT's form. */
  adapter?: LoraAdapter;
  /** ia3: the sites, the trained vectors and the adapter in PEFT's form (`mergeIa3(model, ia3.spec)` folds them in). */
  ia3?: { spec: Ia3Spec; vectors: Map<string, Float32Array>; adapter: Ia3Adapter };
}

/** A strategy's model, ready to train: trainable flags set, adapters injected, plus what the trainer must know. */
export interface PreparedModel {
  model: Model;
  /** Extra hyper-parameters recorded in the lineage. */
  hyperparameters?: Record<string, unknown>;
  /** Initializers exempt from weight decay (besides biases and norms). */
  noDecay?: readonly string[];
  /** Per-initializer learning-rate multipliers, applied by reparameterisation (train/layer-decay.ts). */
  lrScales?: ReadonlyMap<string, number>;
  /** Packages the strategy's adapter from the trained model. */
  package?(trained: Model, ctx: { base: Model; labels: string[]; lineage: Lineage }): StrategyArtifacts;
}

/**
 * One customization strategy, a row of the strategy table (customize/strategies/index.ts), as PEFT registers a
 * tuner class per type: it decides the graph and which initializers train; `customize` does everything else.
 */
export interface StrategyDef {
  readonly name: string;
  /** One line for help texts and docs. */
  readonly summary: string;
  readonly defaultLr: number;
  /** Epochs when the caller gives none (default 3). */
  readonly defaultEpochs?: number;
  /** The default learning rate with a head of another kind than `linear`, where it differs (head: an MLP head). */
  readonly defaultLrByHead?: Partial<Record<HeadKind, number>>;
  /** Whether the head is fitted on frozen features before training, unless the caller says otherwise. */
  readonly warmStartHead: boolean;
  /** Only the head trains: the frozen body runs once over the data and training runs on the cached features. */
  readonly headOnly?: boolean;
  /** The fewest training rows a label needs (setfit: 2, for a same-label pair); the search's fractions keep them. */
  readonly minPerLabel?: number;
  /** The headed model (a `classifier` head of the kind asked for on the base's features), prepared for training. */
  prepare(headed: Model, ctx: { seed: number; options: CustomizeOptions }): PreparedModel;
  /**
   * A phase that tunes the body before anything else (setfit: contrastive pairs). It gets the prepared model and
   * returns it with the body tuned and trainable flags set for the rest of the run; the feature cache, the warm
   * head and the training loop then start from it.
   */
  bodyPhase?(
    prepared: Model,
    train: BodyPhaseData,
    ctx: { seed: number; options: CustomizeOptions },
  ): Promise<{ model: Model; report: BodyPhaseReport }>;
}
