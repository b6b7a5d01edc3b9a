import type { StrategyDef } from '../types.ts';
import { isHead, setTrainable } from '../trainable.ts';

/**
 * head: the frozen encoder runs once over the data; a linear head trains on the cached features, starting from the
 * warm head (ridge + temperature, refined) and kept only if it beats that start on validation. From a random head,
 * a few epochs of AdamW on unit-norm features could not grow the logits: 16 points below ridge, ECE 0.51 (#19).
 */
export const head: StrategyDef = {
  name: 'head',
  summary: 'frozen encoder, a linear head trained on features computed once',
  defaultLr: 1e-2,
  warmStartHead: true,
  headOnly: true,
  prepare: (headed) => ({ model: setTrainable(headed, isHead) }),
};
