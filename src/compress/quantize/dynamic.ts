/**
 * Dynamic INT8 quantization: weights stored as per-output-channel symmetric int8, activations quantized to uint8 at
 * run time. uint8 activations x int8 weights (u8s8) is the combination AVX-512 VNNI's vpdpbusd multiplies natively.
 *
 * Two formulations of the same arithmetic:
 * - 'matmul-integer' (standard ONNX, what ORT's own `quantize_dynamic` emits):
 *   DynamicQuantizeLinear(x) -> MatMulInteger(xq, Wq, xz) -> Cast(float) -> Mul(x_scale · w_scale[n]).
 *   ORT's optimizer fuses the chain into MatMulIntegerToFloat / DynamicQuantizeMatMul at level 'extended'+.
 * - 'dynamic-quantize-matmul': one com.microsoft DynamicQuantizeMatMul(x, Wq, w_scale[n]) node.
 * bench/quantize.ts measures both; 'matmul-integer' is the default (docs/compression.md has the figures).
 */
import type { ModelProto } from '../../onnx/ir.ts';
import {
  defaultOpset,
  dropUnusedInitializers,
  ensureOpsets,
  f32Tensor,
  int8Tensor,
  mkNode,
  quantizePerChannelInt8,
  replaceNode,
  scopePrefix,
  selectMatMuls,
  weightValues,
  workingCopy,
  type QuantizedEmbedding,
  type QuantizedNode,
  type SelectOptions,
  type SkippedNode,
  quantizeEmbeddingTables,
} from './common.ts';

export type DynamicFormat = 'matmul-integer' | 'dynamic-quantize-matmul';

export interface DynamicQuantizeOptions extends SelectOptions {
  /**
   * Default 'matmul-integer': on this CPU (Xeon, AVX-512 VNNI, 2 threads) it measured as fast or faster than
   * DynamicQuantizeMatMul at batch 1 and 32 (ORT fuses the chain itself), and it is standard ONNX (bench/quantize.ts).
   */
  format?: DynamicFormat;
  /** Also store embedding tables as int8 with per-row scales (default true; see quantizeEmbeddingTables). */
  embeddings?: boolean;
}

export interface QuantizeResult {
  /** The quantized model (a new object; the input is untouched). */
  model: ModelProto;
  mode: 'dynamic-int8' | 'static-int8' | 'int4';
  quantized: QuantizedNode[];
  skipped: SkippedNode[];
  /** Embedding tables stored as int8 (empty when not asked for). */
  embeddings: QuantizedEmbedding[];
}

/** Dynamic INT8 quantization of every selected weight MatMul. Pure: the input model is not modified. */
export function quantizeDynamic(input: ModelProto, opts: DynamicQuantizeOptions = {}): QuantizeResult {
  const format = opts.format ?? 'matmul-integer';
  const { model, graph, fresh } = workingCopy(input);
  const { sites, skipped } = selectMatMuls(graph, opts);
  const quantized: QuantizedNode[] = [];
  // A weight shared by several MatMuls is quantized once.
  const qWeights = new Map<string, { q: string; scale: string }>();
  for (const s of sites) {
    const pre = scopePrefix(s.node);
    let qw = qWeights.get(s.weight.name);
    if (!qw) {
      const { q, scales } = quantizePerChannelInt8(weightValues(s.weight), s.k, s.n);
      const qName = fresh(`${s.weight.name}_quantized`);
      const sName = fresh(`${s.weight.name}_scale`);
      graph.initializers.set(qName, int8Tensor(qName, q, [s.k, s.n]));
      graph.initializers.set(sName, f32Tensor(sName, scales, [s.n]));
      qw = { q: qName, scale: sName };
      qWeights.set(s.weight.name, qw);
    }
    const y = s.node.outputs[0];
    if (format === 'dynamic-quantize-matmul') {
      replaceNode(graph, s.node, [
        mkNode(
          fresh(`${pre}DynamicQuantizeMatMul`),
          'DynamicQuantizeMatMul',
          [s.activation, qw.q, qw.scale],
          [y],
          {},
          'com.microsoft',
        ),
      ]);
      quantized.push({
        module: s.module,
        node: s.node.name,
        output: y,
        ops: ['DynamicQuantizeMatMul'],
        k: s.k,
        n: s.n,
      });
    } else {
      const [xq, xs, xz, yi, ys, yf] = [
        'x_quantized',
        'x_scale',
        'x_zero_point',
        'MatMulInteger_output',
        'scale',
        'Cast_output',
      ].map((b) => fresh(`${pre}${b}`));
      replaceNode(graph, s.node, [
        mkNode(fresh(`${pre}DynamicQuantizeLinear`), 'DynamicQuantizeLinear', [s.activation], [xq, xs, xz]),
        mkNode(fresh(`${pre}MatMulInteger`), 'MatMulInteger', [xq, qw.q, xz], [yi]),
        mkNode(fresh(`${pre}scale_Mul`), 'Mul', [xs, qw.scale], [ys]),
        mkNode(fresh(`${pre}Cast`), 'Cast', [yi], [yf], { to: { type: 'int', value: 1 } }),
        mkNode(fresh(`${pre}output_Mul`), 'Mul', [yf, ys], [y]),
      ]);
      quantized.push({
        module: s.module,
        node: s.node.name,
        output: y,
        ops: ['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul'],
        k: s.k,
        n: s.n,
      });
    }
  }
  const embeddings = (opts.embeddings ?? true) ? quantizeEmbeddingTables(graph, fresh, opts, defaultOpset(input)) : [];
  dropUnusedInitializers(graph);
  ensureOpsets(model, 11, format === 'dynamic-quantize-matmul' && quantized.length > 0, 'dynamic INT8');
  model.metadata['tailor.quantization'] = `dynamic-int8:${format}`;
  return { model, mode: 'dynamic-int8', quantized, skipped, embeddings };
}
