/**
 * Module paths recovered from an ONNX export. Optimum names nodes after the module that produced them
 * (`/bert/encoder/layer.3/attention/self/query/MatMul`) while the transposed linear weights become anonymous
 * initializers (`onnx::MatMul_1234`); biases, norms and embeddings keep their state-dict names. So a parameter's
 * module path is its initializer name when that is a state-dict name, and otherwise the path of the MatMul/Gemm
 * node that consumes it.
 */
import type { Graph, Node } from '../../onnx/ir.ts';
import { isFloat } from '../../onnx/dtype.ts';
import { numel } from '../../onnx/tensor.ts';
import type { Parameter, ParamLayout, ParamRole } from '../model.ts';

/** `/bert/encoder/layer.3/attention/self/query/MatMul` -> `bert.encoder.layer.3.attention.self.query` (null when unscoped). */
export function nodeNameToModulePath(nodeName: string): string | null {
  if (!nodeName.startsWith('/')) return null;
  const parts = nodeName.slice(1).split('/');
  parts.pop();
  if (!parts.length) return null;
  return parts.join('.');
}

const STATE_DICT_NAME = /^[A-Za-z_][\w-]*(\.[\w-]+)*\.(weight|bias|gamma|beta|running_mean|running_var)$/;

/** Whether an initializer name looks like a PyTorch state-dict key (`encoder.layer.0.output.dense.bias`). */
export function isStateDictName(name: string): boolean {
  return STATE_DICT_NAME.test(name);
}

function roleOf(path: string): ParamRole {
  if (/running_(mean|var)$/.test(path)) return 'buffer';
  if (/(LayerNorm|layer_norm|layernorm|norm|bn\d*)\./i.test(path) || /\.(gamma|beta)$/.test(path)) return 'norm';
  if (path.endsWith('.bias')) return 'bias';
  if (/embeddings?\./.test(path)) return 'embedding';
  return 'weight';
}

/**
 * The parameters of an imported graph, keyed by module path. Float initializers that are neither state-dict
 * named nor the weight of a scoped MatMul/Gemm are constants, not parameters, and are left out.
 */
export function recoverParams(g: Graph): Map<string, Parameter> {
  const consumers = new Map<string, { node: Node; index: number }[]>();
  for (const n of g.nodes) {
    n.inputs.forEach((v, index) => {
      if (!g.initializers.has(v)) return;
      const list = consumers.get(v) ?? [];
      list.push({ node: n, index });
      consumers.set(v, list);
    });
  }
  const params = new Map<string, Parameter>();
  for (const [name, t] of g.initializers) {
    if (!isFloat(t.dtype) || numel(t.dims) <= 1) continue;
    const uses = consumers.get(name) ?? [];
    let path: string | null = isStateDictName(name) ? name : null;
    let layout: ParamLayout = 'same';
    for (const { node, index } of uses) {
      if (node.opType === 'MatMul' && index === 1 && t.dims.length === 2) {
        layout = 'in_out';
        if (!path) {
          const mod = nodeNameToModulePath(node.name);
          if (mod) path = `${mod}.weight`;
        }
      } else if (node.opType === 'Gemm' && index === 1 && t.dims.length === 2) {
        const transB = node.attrs.transB;
        layout = transB && transB.type === 'int' && transB.value === 1 ? 'out_in' : 'in_out';
        if (!path) {
          const mod = nodeNameToModulePath(node.name);
          if (mod) path = `${mod}.weight`;
        }
      }
    }
    if (!path || params.has(path)) continue;
    params.set(path, {
      path,
      initializer: name,
      dtype: t.dtype,
      shape: [...t.dims],
      trainable: true,
      role: roleOf(path),
      layout: path.endsWith('.weight') ? layout : 'same',
    });
  }
  return params;
}
