import { ConfigError } from '../../errors.ts';
import { layerIndex } from '../../models/layers.ts';
import { matchParams, type Model } from '../../models/model.ts';
import type { StrategyDef } from '../types.ts';
import { isHead, isPooler, setTrainable } from '../trainable.ts';

/** The top `n` encoder blocks, everything above the encoder (pooler) and the head train. Pure. */
export function topLayersTrainable(model: Model, n: number): Model {
  const idx = [...new Set([...model.params.keys()].map(layerIndex).filter((i): i is number => i !== undefined))].sort(
    (a, b) => a - b,
  );
  if (idx.length === 0)
    throw new ConfigError('the model has no numbered encoder blocks (`layer.N.`); use partial.patterns', {
      field: 'partial.layers',
    });
  if (!Number.isInteger(n) || n < 1 || n > idx.length)
    throw new ConfigError(`partial.layers must be an integer in [1, ${idx.length}], got ${n}`, {
      field: 'partial.layers',
      value: String(n),
    });
  const top = new Set(idx.slice(idx.length - n));
  return setTrainable(model, (p) => {
    const i = layerIndex(p.path);
    return isHead(p) || (i !== undefined && top.has(i)) || isPooler(p);
  });
}

/** partial: the top N encoder blocks (or the parameters matching name patterns) plus the head. */
export const partial: StrategyDef = {
  name: 'partial',
  summary: 'the top N encoder blocks (or parameters matching patterns) plus the head',
  defaultLr: 5e-4,
  warmStartHead: true,
  prepare(headed, { options }) {
    const pp = options.partial ?? {};
    if (pp.patterns?.length) {
      const hit = new Set(matchParams(headed, pp.patterns));
      return {
        model: setTrainable(headed, (p) => isHead(p) || hit.has(p.path)),
        hyperparameters: { partial: { patterns: pp.patterns.map(String) } },
      };
    }
    return {
      model: topLayersTrainable(headed, pp.layers ?? 1),
      hyperparameters: { partial: { layers: pp.layers ?? 1 } },
    };
  },
};
