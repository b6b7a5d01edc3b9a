import { ConfigError } from '../../errors.ts';
import { layerIndex } from '../../models/layers.ts';
import type { Model } from '../../models/model.ts';
import type { StrategyDef } from '../types.ts';
import { isHead, isPooler, setTrainable } from '../trainable.ts';

/** Multipliers decay^(depth): head/pooler 1, block i of L decay^(L-i), embeddings decay^(L+1). */
export function layerDecayScales(model: Model, decay: number): Map<string, number> {
  const idx = [...model.params.keys()].map(layerIndex).filter((i): i is number => i !== undefined);
  const L = idx.length ? Math.max(...idx) + 1 : 0;
  const out = new Map<string, number>();
  for (const p of model.params.values()) {
    if (!p.trainable) continue;
    const i = layerIndex(p.path);
    const depth = isHead(p) || isPooler(p) ? 0 : i !== undefined ? L - i : L + 1;
    out.set(p.initializer, decay ** depth);
  }
  return out;
}

/** full: every weight trains, optionally with layer-wise learning-rate decay. */
export const full: StrategyDef = {
  name: 'full',
  summary: 'every weight trains (optional layer-wise learning-rate decay)',
  defaultLr: 1e-4,
  warmStartHead: true,
  prepare(headed, { options }) {
    const model = setTrainable(headed, () => true);
    const decay = options.layerDecay;
    if (decay === undefined || decay === 1) return { model };
    if (!(decay > 0 && decay <= 1))
      throw new ConfigError(`layerDecay must lie in (0, 1], got ${decay}`, {
        field: 'layerDecay',
        value: String(decay),
      });
    return { model, lrScales: layerDecayScales(model, decay), hyperparameters: { layerDecay: decay } };
  },
};
