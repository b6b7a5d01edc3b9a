/**
 * ONNX exports in the form Hugging Face Optimum writes them, for fixtures and for interchange with tools that
 * expect that form: linear weights as anonymous `onnx::MatMul_N` initializers (the module path survives only in
 * the consuming node's name), everything else under its state-dict name.
 */
import type { ModelProto } from '../../onnx/ir.ts';
import { cloneGraph } from '../../onnx/ir.ts';
import { toOnnxModel, type Model } from '../model.ts';

/**
 * The model's ONNX graph with every MatMul weight renamed `onnx::MatMul_<n>` (n counting up from `start`, as the
 * exporter numbers values). Build the model with `style: 'optimum'` to also get opset 14 and decomposed LayerNorm.
 */
export function toOptimumOnnx(model: Model, start = 1000): ModelProto {
  const onnx = toOnnxModel(model);
  const g = cloneGraph(onnx.graph);
  const renamed = new Map<string, string>();
  let n = start;
  for (const node of g.nodes) {
    if (node.opType !== 'MatMul') continue;
    const w = node.inputs[1];
    const t = g.initializers.get(w);
    if (!t) continue;
    let anon = renamed.get(w);
    if (!anon) {
      anon = `onnx::MatMul_${n++}`;
      renamed.set(w, anon);
      g.initializers.delete(w);
      g.initializers.set(anon, { ...t, name: anon });
    }
    node.inputs[1] = anon;
  }
  return { ...onnx, graph: g };
}
