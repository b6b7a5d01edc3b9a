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
  // Epochs on cached features cost next to nothing (full CLINC150: 1.2 s for 7 more), and the head kept improving:
  // validation 93.53% -> 94.17%, test 92.62% -> 93.29% from 3 to 10 epochs (bench/heads.ts, docs/customize.md).
  defaultEpochs: 10,
  // An MLP head's hidden layer starts as the identity (warmHeadValues): at 1e-2, AdamW's per-entry steps over its
  // 512x512 weights scrambled it in the first epoch (full CLINC150: validation 91.4% -> 83.0%); at 3e-4 it kept
  // its start and ended at 93.4% after 10 epochs (docs/customize.md, "Head type").
  defaultLrByHead: { mlp: 3e-4 },
  warmStartHead: true,
  headOnly: true,
  prepare: (headed) => ({ model: setTrainable(headed, isHead) }),
};
