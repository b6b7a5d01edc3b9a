import type { StrategyDef } from '../types.ts';
import { isHead, setTrainable } from '../trainable.ts';

/** bitfit: bias terms (and norm biases) only, plus the head (Ben Zaken et al., 2022). */
export const bitfit: StrategyDef = {
  name: 'bitfit',
  summary: 'bias terms only, plus the head',
  defaultLr: 5e-3,
  warmStartHead: true,
  prepare: (headed) => ({
    model: setTrainable(
      headed,
      (p) => isHead(p) || p.role === 'bias' || (p.role === 'norm' && p.path.endsWith('.bias')),
    ),
  }),
};
