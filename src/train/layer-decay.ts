/**
 * Per-parameter learning-rate multipliers (layer-wise LR decay) as a reparameterisation, so the fused AdamW step
 * needs no per-parameter learning rate: W = c·θ with θ trained. Adam's step on θ is (almost) independent of the
 * gradient's scale, so W moves c times as far. (Differences from a true per-parameter LR: AdamW's decoupled decay is
 * not scaled by c, and ε acts as ε/c.)
 */
import { ConfigError } from '../errors.ts';
import { cloneGraph, type Graph } from '../onnx/ir.ts';
import { tensorFromArray, tensorToArray } from '../onnx/tensor.ts';

/** Name of the trained θ that stands for initializer `name` under a scale other than 1. */
export const lrScaledName = (name: string): string => `${name}::lr_scaled`;

/**
 * Returns the graph with each rescaled initializer replaced by θ = W / c (named `lrScaledName`) and a Mul node that
 * restores W = c·θ; scales of 1 are left alone.
 */
export function lrScaleReparam(graph: Graph, scales: ReadonlyMap<string, number>): Graph {
  const g = cloneGraph(graph);
  const pre: Graph['nodes'] = [];
  for (const [name, c] of scales) {
    if (c === 1) continue;
    const t = g.initializers.get(name);
    if (!t) throw new ConfigError(`no initializer '${name}' to rescale`, { field: name });
    const v = tensorToArray(t) as Float32Array;
    const theta = lrScaledName(name);
    g.initializers.delete(name);
    g.initializers.set(
      theta,
      tensorFromArray(
        theta,
        'float32',
        Float32Array.from(v, (x) => x / c),
        [...t.dims],
      ),
    );
    g.initializers.set(`${name}::lr_scale`, tensorFromArray(`${name}::lr_scale`, 'float32', Float32Array.of(c), []));
    pre.push({
      name: `${name}/lr_scale`,
      opType: 'Mul',
      domain: '',
      inputs: [theta, `${name}::lr_scale`],
      outputs: [name],
      attrs: {},
    });
  }
  g.nodes = [...pre, ...g.nodes];
  return g;
}

/** Inverse of `lrScaleReparam` on trained values: `original` with W = c·θ taken from the trained `graph`. */
export function foldLrScale(graph: Graph, original: Graph, scales: ReadonlyMap<string, number>): Graph {
  const g = cloneGraph(original);
  for (const [name, c] of scales) {
    if (c === 1) {
      g.initializers.set(name, graph.initializers.get(name)!);
      continue;
    }
    const theta = tensorToArray(graph.initializers.get(lrScaledName(name))!) as Float32Array;
    g.initializers.set(
      name,
      tensorFromArray(
        name,
        'float32',
        Float32Array.from(theta, (x) => x * c),
        [...original.initializers.get(name)!.dims],
      ),
    );
  }
  return g;
}
