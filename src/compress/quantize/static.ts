/**
 * Static INT8 in ONNX's QDQ form: each quantized MatMul reads DequantizeLinear(QuantizeLinear(x)) with an
 * activation scale/zero point fixed by calibration (uint8, asymmetric) and DequantizeLinear(W_int8) with
 * per-output-channel scales (axis 1 of the [K, N] weight). Everything else — LayerNorm, Softmax, GELU, residual
 * adds, attention score MatMuls — stays float. ORT's QDQ fusions turn the pairs into integer kernels
 * (MatMulIntegerToFloat / QLinearMatMul); a runtime without them still runs the file as float math.
 */
import type { ModelProto, Node } from '../../onnx/ir.ts';
import type { Feeds } from '../../runtime/session.ts';
import { calibrate, type CalibrationOptions, type TensorRange } from './calibrate.ts';
import {
  defaultOpset,
  dropUnusedInitializers,
  ensureOpsets,
  f32Tensor,
  int8Tensor,
  mkNode,
  quantizePerChannelInt8,
  roundHalfEven,
  scopePrefix,
  quantizeEmbeddingTables,
  selectMatMuls,
  uint8Tensor,
  weightValues,
  workingCopy,
  type SelectOptions,
} from './common.ts';
import type { QuantizeResult } from './dynamic.ts';

export interface StaticQuantizeOptions extends SelectOptions, CalibrationOptions {
  /** Batches of domain data (graph feeds) to calibrate activation ranges on. */
  calibration: readonly Feeds[];
  /** Also store embedding tables as int8 with per-row scales (default true). */
  embeddings?: boolean;
}

export interface StaticQuantizeResult extends QuantizeResult {
  /** Calibrated range of each quantized activation, with its uint8 scale and zero point. */
  activations: Array<{ tensor: string; range: TensorRange; scale: number; zeroPoint: number }>;
}

/** uint8 affine parameters for a range containing 0: x ≈ (q - zp) · scale. */
export function uint8Params(lo: number, hi: number): { scale: number; zeroPoint: number } {
  const l = Math.min(0, lo),
    h = Math.max(0, hi);
  if (h - l === 0) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((h - l) / 255);
  return { scale, zeroPoint: Math.max(0, Math.min(255, roundHalfEven(-l / scale))) };
}

/** Calibrates on `opts.calibration`, then inserts QDQ pairs for the selected MatMuls. Pure for the input model. */
export async function quantizeStatic(input: ModelProto, opts: StaticQuantizeOptions): Promise<StaticQuantizeResult> {
  const { model, graph, fresh } = workingCopy(input);
  // Checked before calibrating, which is the slow part.
  ensureOpsets(model, 13, false, 'static INT8 (per-channel QDQ)');
  const { sites, skipped } = selectMatMuls(graph, opts);
  const acts = [...new Set(sites.map((s) => s.activation))];
  const ranges = await calibrate(input, acts, opts.calibration, opts);
  const quantized: QuantizeResult['quantized'] = [];
  const activations: StaticQuantizeResult['activations'] = [];
  const dqAct = new Map<string, string>();
  const dqW = new Map<string, string>();
  const pending = new Map<Node, Node[]>();
  for (const s of sites) {
    const pre = scopePrefix(s.node);
    const extra: Node[] = [];
    let xd = dqAct.get(s.activation);
    if (!xd) {
      const range = ranges.get(s.activation)!;
      const { scale, zeroPoint } = uint8Params(range.lo, range.hi);
      const sName = fresh(`${s.activation}_scale`),
        zName = fresh(`${s.activation}_zero_point`);
      graph.initializers.set(sName, f32Tensor(sName, Float32Array.of(scale), []));
      graph.initializers.set(zName, uint8Tensor(zName, Uint8Array.of(zeroPoint), []));
      const xq = fresh(`${s.activation}_QuantizeLinear`);
      xd = fresh(`${s.activation}_DequantizeLinear`);
      extra.push(mkNode(fresh(`${pre}input_QuantizeLinear`), 'QuantizeLinear', [s.activation, sName, zName], [xq]));
      extra.push(mkNode(fresh(`${pre}input_DequantizeLinear`), 'DequantizeLinear', [xq, sName, zName], [xd]));
      dqAct.set(s.activation, xd);
      activations.push({ tensor: s.activation, range, scale, zeroPoint });
    }
    let wd = dqW.get(s.weight.name);
    if (!wd) {
      const { q, scales } = quantizePerChannelInt8(weightValues(s.weight), s.k, s.n);
      const qName = fresh(`${s.weight.name}_quantized`),
        sName = fresh(`${s.weight.name}_scale`),
        zName = fresh(`${s.weight.name}_zero_point`);
      graph.initializers.set(qName, int8Tensor(qName, q, [s.k, s.n]));
      graph.initializers.set(sName, f32Tensor(sName, scales, [s.n]));
      graph.initializers.set(zName, int8Tensor(zName, new Int8Array(s.n), [s.n]));
      wd = fresh(`${s.weight.name}_DequantizeLinear`);
      extra.push(
        mkNode(fresh(`${pre}weight_DequantizeLinear`), 'DequantizeLinear', [qName, sName, zName], [wd], {
          axis: { type: 'int', value: 1 },
        }),
      );
      dqW.set(s.weight.name, wd);
    }
    pending.set(s.node, [...extra, { ...s.node, inputs: [xd, wd] }]);
    quantized.push({
      module: s.module,
      node: s.node.name,
      output: s.node.outputs[0],
      ops: ['QuantizeLinear', 'DequantizeLinear', 'MatMul'],
      k: s.k,
      n: s.n,
    });
  }
  // Insert the QDQ nodes right before their first consumer, which keeps the node list topologically ordered.
  graph.nodes = graph.nodes.flatMap((n) => {
    const site = sites.find((s) => s.node.name === n.name);
    return site ? pending.get(site.node)! : [n];
  });
  const embeddings = (opts.embeddings ?? true) ? quantizeEmbeddingTables(graph, fresh, opts, defaultOpset(input)) : [];
  dropUnusedInitializers(graph);
  model.metadata['tailor.quantization'] = `static-int8:qdq:${opts.method ?? 'minmax'}`;
  return { model, mode: 'static-int8', quantized, skipped, embeddings, activations };
}
