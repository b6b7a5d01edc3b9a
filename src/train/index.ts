/**
 * Training on ONNX Runtime: the Trainer (epochs, validation, best weights, early stopping, checkpoints), the
 * training and optimizer graphs it runs, and the closed-form heads (ridge linear probe, warm softmax head) that
 * the audit and customization share.
 */
export {
  Trainer,
  tensorData,
  epochPermutation,
  type TrainData,
  type TrainerConfig,
  type TrainResult,
  type EpochInfo,
  type StepInfo,
  type ValidationConfig,
} from './trainer.ts';
export { buildTrainingGraphs, buildOptimizerGraph, evalGraph, LOSS_OUTPUT, type TrainingGraphs } from './graph.ts';
export {
  saveCheckpoint,
  loadCheckpoint,
  loadLatestCheckpoint,
  CHECKPOINT_FORMAT,
  type Checkpoint,
} from './checkpoint.ts';
export { logitsAccuracy } from './metrics.ts';
export { fitLinearHead, linearScores, type LinearHead, type FitOptions } from './linear-probe.ts';
export { fitWarmHead, type WarmHead, type WarmHeadOptions } from './warm-head.ts';
export { lrScaleReparam, foldLrScale, lrScaledName } from './layer-decay.ts';
export type { AdamWConfig, SgdConfig, OptimizerConfig } from './optim/index.ts';
