import { cloneGraph } from '../../onnx/ir.ts';
import { numel, tensorFromArray } from '../../onnx/tensor.ts';
import type { Model } from '../../models/model.ts';
import { initValues } from '../../models/zoo/params.ts';
import type { StrategyDef } from '../types.ts';
import { isHead, setTrainable } from '../trainable.ts';

/**
 * Every body parameter re-initialised (weights/embeddings normal(0, 0.02), norm scales 1, biases 0), buffers and
 * the head kept. Pure.
 */
export function reinitialize(model: Model, seed: number): Model {
  const g = cloneGraph(model.graph);
  for (const p of model.params.values()) {
    if (p.role === 'buffer' || isHead(p)) continue;
    const n = numel(p.shape);
    const isScale = p.role === 'norm' && !p.path.endsWith('.bias');
    const v =
      p.role === 'bias' || (p.role === 'norm' && p.path.endsWith('.bias'))
        ? new Float32Array(n)
        : isScale
          ? new Float32Array(n).fill(1)
          : initValues({ kind: 'normal', std: 0.02 }, n, seed, p.path);
    g.initializers.set(p.initializer, tensorFromArray(p.initializer, 'float32', v, [...p.shape]));
  }
  return { ...model, graph: g };
}

/** scratch: the same architecture re-initialised, every weight trained (what pretraining is worth). */
export const scratch: StrategyDef = {
  name: 'scratch',
  summary: 'the same architecture re-initialised, every weight trained',
  defaultLr: 1e-3,
  warmStartHead: false,
  prepare: (headed, { seed }) => ({ model: setTrainable(reinitialize(headed, seed), () => true) }),
};
