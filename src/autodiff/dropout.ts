/**
 * Per-step dropout randomness. ONNX Dropout draws its mask inside the kernel (from a fixed `seed` attribute or
 * ORT's own generator), so a training run could not be reproduced from the run's seed. `rewriteDropoutToNoise`
 * replaces each training-mode Dropout with `Where(noise < 1 − ratio, x / (1 − ratio), 0)`, where `noise` is a new
 * graph input of x's shape that the trainer fills with uniform [0, 1) numbers from its seeded generator at every
 * step. The mask is then an ordinary value computed once in the forward pass and reused by the backward pass
 * (through the Where and Mul rules); the original mask output, if any, keeps its name.
 */
import { GraphError } from '../errors.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import type { DType } from '../onnx/dtype.ts';
import { cloneGraph, type Graph, type Node, type Shape } from '../onnx/ir.ts';
import { inferShapes } from '../onnx/shapes/index.ts';
import { tensorToNumbers } from '../onnx/tensor.ts';

export interface NoiseInput {
  /** Graph input to feed with uniform [0, 1) values every step. */
  name: string;
  dtype: DType;
  shape: Shape;
  /** Drop probability of the replaced Dropout. */
  ratio: number;
  /** Name of the Dropout node it replaced. */
  node: string;
}

function constValue(graph: Graph, name: string): number[] | undefined {
  const init = graph.initializers.get(name);
  if (init) return tensorToNumbers(init);
  const n = graph.nodes.find((m) => m.opType === 'Constant' && m.outputs[0] === name);
  const v = n?.attrs.value;
  return v && v.type === 'tensor' ? tensorToNumbers(v.value) : undefined;
}

/**
 * Rewrites training-mode Dropout nodes (training_mode a constant true) into noise-input form. Inference-mode
 * Dropouts are left alone (they are identities). Returns the new graph and the noise inputs to feed.
 */
export function rewriteDropoutToNoise(
  graph: Graph,
  opts: { prefix?: string } = {},
): { graph: Graph; noise: NoiseInput[] } {
  const typed = inferShapes(graph, { allowUnknown: true });
  const g = cloneGraph(graph);
  const targets = g.nodes.filter(
    (n) => n.opType === 'Dropout' && n.domain === '' && n.inputs[2] && constValue(g, n.inputs[2])?.[0],
  );
  if (targets.length === 0) return { graph: g, noise: [] };
  const b = new GraphBuilder(g);
  const noise: NoiseInput[] = [];
  const replaced = new Map<Node, Node[]>();
  for (const n of targets) {
    const x = n.inputs[0];
    const vi =
      typed.valueInfo.get(x) ??
      typed.inputs.find((v) => v.name === x) ??
      (g.initializers.has(x) ? { dtype: g.initializers.get(x)!.dtype, shape: g.initializers.get(x)!.dims } : undefined);
    if (!vi?.shape)
      throw new GraphError(`Dropout node '${n.name}': shape of its input '${x}' is unknown`, {
        node: n.name,
        op: 'Dropout',
      });
    let ratio = 0.5;
    if (n.inputs[1]) {
      const r = constValue(g, n.inputs[1]);
      if (!r)
        throw new GraphError(`Dropout node '${n.name}': ratio must be a constant to rewrite it`, {
          node: n.name,
          op: 'Dropout',
        });
      ratio = r[0];
    }
    const name = b.uniqueName(`${opts.prefix ?? 'dropout_noise'}_${noise.length}`);
    g.inputs.push({ name, dtype: vi.dtype, shape: [...vi.shape] });
    noise.push({ name, dtype: vi.dtype, shape: [...vi.shape], ratio, node: n.name });
    const before = g.nodes.length;
    const keepProb = b.op('CastLike', [b.scalar(1 - ratio), x]);
    const mask = b.node(
      'Less',
      [name, keepProb],
      {},
      { outputs: n.outputs[1] ? [n.outputs[1]] : 1, name: `${n.name}/keep` },
    )[0];
    const scaled = b.mul(x, b.op('CastLike', [b.scalar(ratio < 1 ? 1 / (1 - ratio) : 0), x]));
    // the Where's output takes over the Dropout's output name, so consumers are untouched
    b.node(
      'Where',
      [mask, scaled, b.op('CastLike', [b.scalar(0), x])],
      {},
      { outputs: [`${n.outputs[0]}__tmp`], name: `${n.name}/apply` },
    );
    const added = g.nodes.splice(before);
    added[added.length - 1].outputs[0] = n.outputs[0];
    replaced.set(n, added);
  }
  g.nodes = g.nodes.flatMap((n) => replaced.get(n) ?? [n]);
  return { graph: g, noise };
}
