import { ia3Adapter, ia3Name, ia3VectorsOf, injectIa3 } from '../ia3.ts';
import type { StrategyDef } from '../types.ts';
import { adapterHead, peftBaseName } from './lora.ts';

/** ia3: learned scaling vectors (ones at first) on key/value outputs and the FFN's inner activations, plus the head. */
export const ia3: StrategyDef = {
  name: 'ia3',
  summary: 'IA3 scaling vectors on key/value outputs and FFN activations plus the head (PEFT-format adapter)',
  defaultLr: 5e-3,
  warmStartHead: true,
  prepare(headed, { options }) {
    const { model, spec } = injectIa3(headed, options.ia3 ?? {});
    return {
      model,
      hyperparameters: {
        ia3: {
          modules: spec.sites.map((s) => s.module),
          feedforward: spec.sites.filter((s) => s.feedforward).map((s) => s.module),
        },
      },
      // The vectors scale activations around 1: decay toward 0 would shrink the base model's features.
      noDecay: spec.sites.map((s) => ia3Name(s.module)),
      package: (trained, { base, labels, lineage }) => ({
        ia3: {
          spec,
          vectors: ia3VectorsOf(trained, spec),
          adapter: ia3Adapter(trained, spec, { head: adapterHead(trained, labels), lineage, base: peftBaseName(base) }),
        },
      }),
    };
  },
};
