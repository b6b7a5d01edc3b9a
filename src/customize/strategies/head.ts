import type { StrategyDef } from '../types.ts';
import { isHead, setTrainable } from '../trainable.ts';

/** head: the frozen encoder runs once over the data; a linear head trains on the cached features. */
export const head: StrategyDef = {
  name: 'head',
  summary: 'frozen encoder, a linear head trained on features computed once',
  defaultLr: 1e-2,
  warmStartHead: false,
  headOnly: true,
  prepare: (headed) => ({ model: setTrainable(headed, isHead) }),
};
