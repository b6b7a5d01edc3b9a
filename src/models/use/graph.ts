/**
 * Rebuilds USE-lite's KonaTransformer encoder as a dense ONNX graph (opset 17) and maps the TF.js weights into
 * it by name. Why a rebuild rather than an op-by-op converter: the TF graph takes *sparse* token ids and spends
 * most of its nodes on sparse bookkeeping (SparseToDense, Where, GatherNd/ScatterNd around every position-wise
 * block, StridedSlice/Pack shape arithmetic). Tailor's model takes dense `input_ids` + `attention_mask`, so a
 * literal conversion would have to be rewritten anyway, and ScatterNd/GatherNd on the path to the weights would
 * make the autodiff's job harder. The rebuild uses only MatMul/Add/Mul/Div/LayerNormalization/Softmax/Relu/Tanh/
 * Gather/Reshape/Transpose/ReduceSum/Max/Sqrt/Slice/Cast/Unsqueeze, each with a standard gradient.
 *
 * What the TF graph computes (read from model.json, reproduced exactly):
 *   x0 = E[id] + (E[id] + timing[pos])          (the embedding is added twice: Layer_0/add sums the scattered
 *                                               embeddings and the scattered AddTimingSignal output)
 *   layer 0 (d=256 -> 512): h = LN(x0); attn = MHA(h) (4 heads x 64) -> 512; x = attn + Dense(x0); x += FFN(LN(x))
 *   layer 1 (d=512):        h = LN(x);  attn = MHA(h) (4 heads x 128);    x = attn + x;         x += FFN(LN(x))
 *   pooled = sum_t(x * mask) / max(len, 1);  out = l2_normalize(tanh(pooled W + b))
 * with LN eps 1e-6, query scaled by 1/sqrt(head_dim) before QK^T, key padding bias -1e9, ReLU FFN (x3 width).
 * Valid positions of the dense graph equal the TF graph's: padding only enters as attention keys, which the
 * -1e9 bias removes, and every other op is position-wise.
 */
import { GraphError, ModelFileError } from '../../errors.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import { modelFromGraph, type ModelProto } from '../../onnx/ir.ts';
import type { Parameter, ParamRole } from '../model.ts';
import type { TfGraphModel, TfWeight } from './package.ts';

const ENC = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const VAR = 'module/Encoder_en/KonaTransformer/Encode/';

/** The architecture read off the TF weights; saved as the cached model's config.json. */
export interface UseLiteConfig {
  model_type: 'use-lite';
  vocab_size: number;
  embedding_size: number;
  hidden_sizes: number[];
  num_attention_heads: number[];
  intermediate_sizes: number[];
  num_hidden_layers: number;
  output_size: number;
  max_position_embeddings: number;
  layer_norm_eps: number;
  attention_mask_bias: number;
  l2_epsilon: number;
  /** Source package, for lineage and the cache key. */
  source_package: string;
  source_version: string;
}

export interface BuiltUseLite {
  onnx: ModelProto;
  params: Map<string, Parameter>;
  config: UseLiteConfig;
}

/** Op types of the TF graph this rebuild reproduces; any other op means a different architecture. */
const KNOWN_TF_OPS = new Set([
  'Const',
  'Placeholder',
  'StridedSlice',
  'Less',
  'Where',
  'Reshape',
  'GatherV2',
  'Max',
  'Add',
  'Shape',
  'Maximum',
  'SparseToDense',
  'Greater',
  'LogicalNot',
  'Cast',
  'ConcatV2',
  'Sum',
  'Mul',
  'ScatterNd',
  'ExpandDims',
  'GatherNd',
  'Sin',
  'Cos',
  'Mean',
  'Sub',
  'MatMul',
  'Square',
  'BiasAdd',
  'Rsqrt',
  'Conv2D',
  'Squeeze',
  'SplitV',
  'Pack',
  'Transpose',
  'BatchMatMul',
  'Slice',
  'Softmax',
  'Prod',
  'Relu',
  'Range',
  'RealDiv',
  'Tanh',
]);

class Weights {
  constructor(
    private readonly tf: TfGraphModel,
    private readonly file: string,
  ) {}

  has(name: string): boolean {
    return this.tf.weights.has(name);
  }

  get(name: string, shape?: number[]): TfWeight {
    const w = this.tf.weights.get(name);
    if (!w) throw new ModelFileError(`${this.file}: weight '${name}' is missing`, { file: this.file, field: name });
    if (shape && (w.shape.length !== shape.length || w.shape.some((d, i) => shape[i] >= 0 && d !== shape[i]))) {
      throw new ModelFileError(
        `${this.file}: weight '${name}' has shape [${w.shape.join(', ')}], expected [${shape.map((d) => (d < 0 ? '?' : d)).join(', ')}]`,
        { file: this.file, field: name, details: { expected: shape, found: w.shape } },
      );
    }
    return w;
  }

  float(name: string, shape?: number[]): Float32Array {
    const w = this.get(name, shape);
    if (w.dtype !== 'float32')
      throw new ModelFileError(`${this.file}: weight '${name}' is ${w.dtype}, expected float32`, {
        file: this.file,
        field: name,
      });
    return w.data as Float32Array;
  }

  scalar(name: string): number {
    const w = this.get(name, []);
    return Number(w.data[0]);
  }
}

/** Columns [from, to) of a row-major [rows, cols] matrix. */
function columns(src: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const w = to - from;
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * cols + from, r * cols + to), r * w);
  return out;
}

/** sin/cos timing signal for positions [0, maxLen), as the TF graph computes it in float32. */
export function timingSignal(invTimescales: Float32Array, maxLen: number): Float32Array {
  const half = invTimescales.length;
  const out = new Float32Array(maxLen * 2 * half);
  for (let p = 0; p < maxLen; p++) {
    for (let j = 0; j < half; j++) {
      const t = Math.fround(p * invTimescales[j]);
      out[p * 2 * half + j] = Math.sin(t);
      out[p * 2 * half + half + j] = Math.cos(t);
    }
  }
  return out;
}

/**
 * Builds the Tailor forward graph from the TF.js model: inputs `input_ids` [batch, seq] int64 and
 * `attention_mask` [batch, seq] int64 (1 = token, 0 = padding; padding on the right), output `embeddings`
 * [batch, 512] (L2-normalised). `seq` must not exceed `max_position_embeddings` (128).
 */
export function buildUseLite(
  tf: TfGraphModel,
  opts: { file: string; packageName: string; version: string },
): BuiltUseLite {
  const file = opts.file;
  const unknown = [...new Set(tf.nodes.map((n) => n.op))].filter((op) => !KNOWN_TF_OPS.has(op));
  if (unknown.length) {
    throw new GraphError(
      `${file}: the TF graph uses ops ${unknown.join(', ')}, which the USE-lite (KonaTransformer) rebuild does not reproduce: unsupported architecture`,
      { file, op: unknown[0] },
    );
  }
  const w = new Weights(tf, file);
  const emb = w.get('module/Embeddings_en', [-1, -1]);
  const [vocabSize, embSize] = emb.shape;
  const inv = w.float(`${ENC}TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`, [1, embSize / 2]);
  const maxLen = w.scalar('module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y');
  const eps = w.scalar(`${ENC}TransformerStack/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`);
  const maskBias = w.scalar(
    `${ENC}TransformerStack/Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y`,
  );
  const l2eps = w.scalar('module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y');
  const numLayers = [...tf.weights.keys()].filter((k) =>
    /Layer_\d+\/TransformerLayer\/MultiheadAttention\/qkv_transform_single\/kernel\/part_0$/.test(k),
  ).length;
  if (numLayers === 0)
    throw new ModelFileError(`${file}: no transformer layer weights (qkv_transform_single) found`, { file });

  const b = new GraphBuilder('use_lite');
  const params = new Map<string, Parameter>();
  const param = (path: string, values: Float32Array, dims: number[], role: ParamRole, inOut = false): string => {
    b.initializer(path, 'float32', values, dims);
    params.set(path, {
      path,
      initializer: path,
      dtype: 'float32',
      shape: [...dims],
      trainable: role !== 'buffer',
      role,
      layout: inOut ? 'in_out' : 'same',
    });
    return path;
  };
  const linear = (
    x: string,
    path: string,
    weight: Float32Array,
    din: number,
    dout: number,
    bias: Float32Array,
  ): string =>
    b.scope(path, () => {
      const wt = param(`${path}.weight`, weight, [din, dout], 'weight', true);
      const bs = param(`${path}.bias`, bias, [dout], 'bias');
      return b.add(b.matmul(x, wt), bs);
    });
  const layerNorm = (x: string, path: string, scale: Float32Array, bias: Float32Array, d: number): string =>
    b.scope(path, () =>
      b.layerNorm(x, param(`${path}.weight`, scale, [d], 'norm'), param(`${path}.bias`, bias, [d], 'norm'), -1, eps),
    );

  const ids = b.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = b.input('attention_mask', 'int64', ['batch', 'seq']);

  // ---- embeddings + timing signal ----
  let x = b.scope('embeddings', () => {
    const table = param(
      'embeddings.word_embeddings.weight',
      emb.data as Float32Array,
      [vocabSize, embSize],
      'embedding',
    );
    const timing = param('embeddings.timing_signal', timingSignal(inv, maxLen), [maxLen, embSize], 'buffer');
    const e = b.gather(table, ids, 0);
    const seqLen = b.op('Shape', [ids], { start: 1, end: 2 });
    const t = b.op('Slice', [timing, b.ints([0]), seqLen, b.ints([0])]);
    return b.add(e, b.add(e, t));
  });
  const maskF = b.cast(mask, 'float32');
  // [batch, 1, 1, seq]: -1e9 on padded keys, 0 elsewhere (TF: (1 - mask) * -1e9).
  const keyBias = b.scope('attention_bias', () =>
    b.unsqueeze(b.mul(b.sub(b.scalar(1), maskF), b.scalar(maskBias)), [1, 2]),
  );

  const hiddenSizes: number[] = [];
  const headsList: number[] = [];
  const interSizes: number[] = [];
  let d = embSize;
  for (let i = 0; i < numLayers; i++) {
    const L = `encoder.layer.${i}`;
    const qkvName = `${VAR}Layer_${i}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`;
    const qkv = w.get(qkvName, [1, 1, d, -1]);
    const inner = qkv.shape[3] / 3;
    const heads = w.scalar(
      `${ENC}TransformerStack/Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2`,
    );
    const headDim = w.scalar(
      `${ENC}TransformerStack/Layer_${i}/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3`,
    );
    if (heads * headDim !== inner)
      throw new ModelFileError(`${file}: layer ${i}: ${heads} heads x ${headDim} != ${inner} (from '${qkvName}')`, {
        file,
        field: qkvName,
      });
    const qScale = w.scalar(`${ENC}TransformerStack/Layer_${i}/TransformerLayer/MultiheadAttention/mul/y`);
    const qkvW = qkv.data as Float32Array;
    const qkvB = w.float(
      `${ENC}Layer_${i}/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
      [3 * inner],
    );
    const outW = w.get(`${VAR}Layer_${i}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`, [
      1,
      1,
      inner,
      -1,
    ]);
    const hidden = outW.shape[3];
    const outB = w.float(
      `${ENC}Layer_${i}/TransformerLayer/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`,
      [hidden],
    );
    const resName = `${ENC}Layer_${i}/TransformerLayer/dense/kernel/ConcatPartitions/concat`;
    const lnPre = `${ENC}Layer_${i}/TransformerLayer/layer_prepostprocess/layer_norm/`;
    const ffnPre = `${ENC}Layer_${i}/TransformerLayer/FFN/`;
    const conv1 = w.get(`${ENC}TransformerStack/Layer_${i}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`, [
      hidden,
      -1,
    ]);
    const inter = conv1.shape[1];

    x = ((): string => {
      const xin = x;
      const h = layerNorm(
        xin,
        `${L}.attention.layer_norm`,
        w.float(`${lnPre}layer_norm_scale/ConcatPartitions/concat`, [d]),
        w.float(`${lnPre}layer_norm_bias/ConcatPartitions/concat`, [d]),
        d,
      );
      const proj = (name: string, k: number): string =>
        linear(
          h,
          `${L}.attention.self.${name}`,
          columns(qkvW, d, 3 * inner, k * inner, (k + 1) * inner),
          d,
          inner,
          qkvB.slice(k * inner, (k + 1) * inner),
        );
      const q0 = proj('query', 0);
      const k0 = proj('key', 1);
      const v0 = proj('value', 2);
      const ctx = b.scope(`${L}.attention.self`, () => {
        const split = (v: string): string => b.transpose(b.reshape(v, [0, 0, heads, headDim]), [0, 2, 1, 3]);
        const q = split(b.mul(q0, b.scalar(qScale)));
        const kT = b.transpose(b.reshape(k0, [0, 0, heads, headDim]), [0, 2, 3, 1]);
        const v = split(v0);
        const probs = b.softmax(b.add(b.matmul(q, kT), keyBias), -1);
        return b.reshape(b.transpose(b.matmul(probs, v), [0, 2, 1, 3]), [0, 0, inner]);
      });
      const attn = linear(ctx, `${L}.attention.output.dense`, outW.data as Float32Array, inner, hidden, outB);
      // Layers that change the width project the residual (TF: AdjustResidualInput/dense).
      const residual = w.has(resName)
        ? linear(
            xin,
            `${L}.attention.residual.dense`,
            w.float(resName, [d, hidden]),
            d,
            hidden,
            w.float(`${ENC}Layer_${i}/TransformerLayer/dense/bias/ConcatPartitions/concat`, [hidden]),
          )
        : xin;
      if (!w.has(resName) && d !== hidden)
        throw new ModelFileError(
          `${file}: layer ${i} changes width ${d} -> ${hidden} but has no residual projection '${resName}'`,
          { file, field: resName },
        );
      const x1 = b.scope(`${L}.attention.output`, () => b.add(attn, residual));
      const f0 = layerNorm(
        x1,
        `${L}.ffn.layer_norm`,
        w.float(`${ffnPre}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`, [hidden]),
        w.float(`${ffnPre}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`, [hidden]),
        hidden,
      );
      const f1Lin = linear(
        f0,
        `${L}.intermediate.dense`,
        conv1.data as Float32Array,
        hidden,
        inter,
        w.float(`${ffnPre}conv1/bias/ConcatPartitions/concat`, [inter]),
      );
      const f1 = b.scope(`${L}.intermediate`, () => b.relu(f1Lin));
      const f2 = linear(
        f1,
        `${L}.output.dense`,
        w.float(`${ENC}TransformerStack/Layer_${i}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`, [inter, hidden]),
        inter,
        hidden,
        w.float(`${ffnPre}conv2/bias/ConcatPartitions/concat`, [hidden]),
      );
      return b.scope(`${L}.output`, () => b.add(x1, f2));
    })();
    hiddenSizes.push(hidden);
    headsList.push(heads);
    interSizes.push(inter);
    d = hidden;
  }

  // ---- masked mean over tokens, tanh layer, L2 normalisation ----
  const outW = w.get('module/Encoder_en/hidden_layers/tanh_layer_0/weights', [d, -1]);
  const outSize = outW.shape[1];
  const mean = b.scope('pooler.mean', () => {
    const m = b.unsqueeze(maskF, [2]);
    const summed = b.reduceSum(b.mul(x, m), [1], false);
    const count = b.op('Max', [b.reduceSum(maskF, [1], true), b.scalar(1)]);
    return b.div(summed, count);
  });
  const dense = linear(
    mean,
    'pooler.dense',
    outW.data as Float32Array,
    d,
    outSize,
    w.float('module/Encoder_en/hidden_layers/tanh_layer_0/bias', [outSize]),
  );
  const pooled = b.scope('pooler.activation', () => b.tanh(dense));
  const embOut = b.scope('pooler.normalize', () => {
    const ss = b.reduceSum(b.mul(pooled, pooled), [1], true);
    return b.div(pooled, b.sqrt(b.op('Max', [ss, b.scalar(l2eps)])));
  });
  b.graph.nodes.push({
    name: 'embeddings_output',
    opType: 'Identity',
    domain: '',
    inputs: [embOut],
    outputs: ['embeddings'],
    attrs: {},
  });
  b.output('embeddings', 'float32', ['batch', outSize]);

  const config: UseLiteConfig = {
    model_type: 'use-lite',
    vocab_size: vocabSize,
    embedding_size: embSize,
    hidden_sizes: hiddenSizes,
    num_attention_heads: headsList,
    intermediate_sizes: interSizes,
    num_hidden_layers: numLayers,
    output_size: outSize,
    max_position_embeddings: maxLen,
    layer_norm_eps: eps,
    attention_mask_bias: maskBias,
    l2_epsilon: l2eps,
    source_package: opts.packageName,
    source_version: opts.version,
  };
  const onnx = modelFromGraph(b.graph);
  onnx.producerName = 'tailor-use-lite';
  onnx.metadata = { source: `${opts.packageName}@${opts.version}`, model_type: 'use-lite' };
  return { onnx, params, config };
}
