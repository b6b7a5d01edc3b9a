/**
 * Shape inference per op checked against what ONNX Runtime actually produces: each case is a one-node graph run
 * on random inputs; the inferred dtype and dims (after binding any symbolic dims) must equal ORT's output.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import type { DType } from '../../src/onnx/dtype.ts';
import { modelFromGraph, type Dim, type Tensor } from '../../src/onnx/ir.ts';
import { bindDim, inferShapes, specialize } from '../../src/onnx/shapes/index.ts';
import { Session, ort } from '../../src/runtime/session.ts';

interface In {
  shape: Dim[];
  dtype?: DType;
  /** fixed values (fed, or stored as an initializer when `init`) */
  values?: number[];
  /** store as an initializer, so inference sees its values */
  init?: boolean;
  /** random integers in [0, max) */
  maxInt?: number;
}

interface Case {
  name: string;
  op: string;
  domain?: string;
  inputs: (In | null)[];
  attrs?: Record<string, number | string | number[] | Tensor>;
  outputs?: number;
  opset?: number;
  bind?: Record<string, number>;
  /** the inferred (possibly symbolic) shape of output 0, checked before binding */
  expect?: Dim[];
}

let seed = 12345;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

function makeData(dtype: DType, n: number, inp: In): ort.Tensor['data'] {
  const vals =
    inp.values ??
    Array.from({ length: n }, () => (inp.maxInt !== undefined ? Math.floor(rand() * inp.maxInt) : rand() * 2 - 1));
  switch (dtype) {
    case 'float32':
      return Float32Array.from(vals);
    case 'float64':
      return Float64Array.from(vals);
    case 'int64':
      return BigInt64Array.from(vals, (v) => BigInt(Math.round(v)));
    case 'int32':
      return Int32Array.from(vals, (v) => Math.round(v));
    case 'uint8':
      return Uint8Array.from(vals, (v) => Math.round(v));
    case 'int8':
      return Int8Array.from(vals, (v) => Math.round(v));
    case 'bool':
      return Uint8Array.from(vals, (v) => (v > 0 ? 1 : 0));
    default:
      throw new Error(`no data for ${dtype}`);
  }
}

async function check(c: Case): Promise<void> {
  const b = new GraphBuilder(c.name);
  const bind = c.bind ?? {};
  const feeds: Record<string, ort.Tensor> = {};
  const names = c.inputs.map((inp, i) => {
    if (!inp) return '';
    const dtype = inp.dtype ?? 'float32';
    const concrete = inp.shape.map((d) => bindDim(d, bind) as number);
    const n = concrete.reduce((a, d) => a * d, 1);
    const data = makeData(dtype, n, inp);
    if (inp.init) return b.initializer(`in${i}`, dtype, data as Float32Array, concrete);
    feeds[`in${i}`] = new ort.Tensor(dtype as 'float32', data as Float32Array, concrete);
    return b.input(`in${i}`, dtype, inp.shape);
  });
  while (names.length && names[names.length - 1] === '') names.pop();
  const outs = b.node(c.op, names, c.attrs ?? {}, {
    outputs: c.outputs ?? 1,
    ...(c.domain ? { domain: c.domain } : {}),
  });
  for (const o of outs) b.output(o);
  const inferred = inferShapes(b.graph);
  if (c.expect) assert.deepEqual(inferred.outputs[0].shape, c.expect, `${c.name}: symbolic shape`);
  const spec = specialize(b.graph, bind);
  const model = modelFromGraph({ ...spec, valueInfo: new Map() });
  if (c.opset) {
    model.opsetImports[0].version = c.opset;
    model.irVersion = 10;
  }
  const session = await Session.create(model, { label: c.name, intraOpThreads: 1 });
  const res = await session.run(feeds);
  await session.release();
  outs.forEach((o, i) => {
    const got = res[o];
    const inf = spec.outputs[i];
    const sym = inferred.outputs[i].shape?.map((d) => bindDim(d, bind));
    assert.deepEqual(sym, inf.shape, `${c.name}: output ${i} symbolic shape binds to the specialised one`);
    assert.deepEqual(inf.shape, [...got.dims], `${c.name}: output ${i} shape`);
    assert.equal(inf.dtype, got.type, `${c.name}: output ${i} dtype`);
  });
}

const f = (shape: Dim[]): In => ({ shape });
const i64 = (values: number[], init = true): In => ({ shape: [values.length], dtype: 'int64', values, init });
const s64 = (v: number): In => ({ shape: [], dtype: 'int64', values: [v], init: true });
const B = { batch: 2, seq: 3 };

const cases: Case[] = [
  // elementwise + broadcasting
  { name: 'Add broadcast', op: 'Add', inputs: [f([2, 3, 4]), f([4])] },
  { name: 'Add both sides', op: 'Add', inputs: [f([2, 1, 4]), f([3, 1])] },
  {
    name: 'Sub symbolic',
    op: 'Sub',
    inputs: [f(['batch', 'seq', 4]), f([1, 'seq', 1])],
    bind: B,
    expect: ['batch', 'seq', 4],
  },
  { name: 'Mul scalar', op: 'Mul', inputs: [f(['batch', 4]), f([])], bind: B, expect: ['batch', 4] },
  { name: 'Div', op: 'Div', inputs: [f([3, 1]), f([1, 5])] },
  { name: 'Pow', op: 'Pow', inputs: [f([2, 3]), f([])] },
  { name: 'Max variadic', op: 'Max', inputs: [f([2, 1]), f([3]), f([1, 1])] },
  { name: 'Min', op: 'Min', inputs: [f([4]), f([2, 4])] },
  { name: 'Sum', op: 'Sum', inputs: [f([2, 3]), f([3]), f([2, 1])] },
  { name: 'Mean', op: 'Mean', inputs: [f([2, 3]), f([3])] },
  ...[
    'Neg',
    'Sqrt',
    'Reciprocal',
    'Exp',
    'Log',
    'Abs',
    'Tanh',
    'Sigmoid',
    'Relu',
    'Erf',
    'Sign',
    'Floor',
    'Ceil',
    'Identity',
  ].map((op): Case => ({ name: op, op, inputs: [f(['batch', 5])], bind: B, expect: ['batch', 5] })),
  { name: 'LeakyRelu', op: 'LeakyRelu', inputs: [f([2, 3])], attrs: { alpha: 0.1 } },
  { name: 'Elu', op: 'Elu', inputs: [f([2, 3])] },
  { name: 'Gelu opset 20', op: 'Gelu', inputs: [f([2, 3])], attrs: { approximate: 'tanh' }, opset: 20 },
  { name: 'com.microsoft Gelu', op: 'Gelu', domain: 'com.microsoft', inputs: [f(['batch', 7])], bind: B },
  { name: 'com.microsoft FastGelu with bias', op: 'FastGelu', domain: 'com.microsoft', inputs: [f([2, 3, 7]), f([7])] },
  { name: 'Softmax', op: 'Softmax', inputs: [f([2, 3, 4])], attrs: { axis: 1 } },
  { name: 'LogSoftmax', op: 'LogSoftmax', inputs: [f([2, 3, 4])], attrs: { axis: -1 } },
  {
    name: 'Clip',
    op: 'Clip',
    inputs: [f([2, 3]), { shape: [], values: [-0.5], init: true }, { shape: [], values: [0.5], init: true }],
  },
  { name: 'Clip min only', op: 'Clip', inputs: [f([2, 3]), { shape: [], values: [0] }] },
  { name: 'Cast', op: 'Cast', inputs: [f([2, 3])], attrs: { to: 7 } },
  { name: 'Cast to bool', op: 'Cast', inputs: [f([2])], attrs: { to: 9 } },
  {
    name: 'Dropout mask',
    op: 'Dropout',
    inputs: [
      f([4, 5]),
      { shape: [], values: [0.5], init: true },
      { shape: [], dtype: 'bool', values: [1], init: true },
    ],
    outputs: 2,
    attrs: { seed: 1 },
  },
  { name: 'Equal', op: 'Equal', inputs: [f([2, 3]), f([3])] },
  { name: 'Less', op: 'Less', inputs: [f([2, 1]), f([1, 3])] },
  { name: 'Greater', op: 'Greater', inputs: [f([3]), f([])] },
  { name: 'Not', op: 'Not', inputs: [{ shape: [2, 2], dtype: 'bool' }] },
  {
    name: 'And',
    op: 'And',
    inputs: [
      { shape: [2, 2], dtype: 'bool' },
      { shape: [2], dtype: 'bool' },
    ],
  },
  { name: 'Where', op: 'Where', inputs: [{ shape: [2, 1, 4], dtype: 'bool' }, f([3, 1]), f([])] },
  // linear algebra
  { name: 'MatMul 2-D', op: 'MatMul', inputs: [f([2, 3]), f([3, 5])] },
  { name: 'MatMul batched broadcast', op: 'MatMul', inputs: [f([2, 1, 4, 3]), f([5, 3, 6])] },
  { name: 'MatMul vector-matrix', op: 'MatMul', inputs: [f([3]), f([2, 3, 4])] },
  { name: 'MatMul matrix-vector', op: 'MatMul', inputs: [f([2, 4, 3]), f([3])] },
  {
    name: 'MatMul symbolic',
    op: 'MatMul',
    inputs: [f(['batch', 'seq', 4]), f([4, 6])],
    bind: B,
    expect: ['batch', 'seq', 6],
  },
  { name: 'Gemm', op: 'Gemm', inputs: [f([3, 4]), f([5, 4]), f([5])], attrs: { transB: 1 } },
  { name: 'Gemm transA', op: 'Gemm', inputs: [f([4, 3]), f([4, 5])], attrs: { transA: 1, alpha: 0.5 } },
  {
    name: 'FusedMatMul transB batched',
    op: 'FusedMatMul',
    domain: 'com.microsoft',
    inputs: [f([2, 3, 4]), f([2, 5, 4])],
    attrs: { transB: 1, alpha: 2 },
  },
  {
    name: 'FusedMatMul transA',
    op: 'FusedMatMul',
    domain: 'com.microsoft',
    inputs: [f([4, 3]), f([4, 5])],
    attrs: { transA: 1 },
  },
  {
    name: 'Einsum attention',
    op: 'Einsum',
    inputs: [f([2, 4, 3, 8]), f([2, 4, 5, 8])],
    attrs: { equation: 'bhqd,bhkd->bhqk' },
  },
  { name: 'Einsum implicit', op: 'Einsum', inputs: [f([3, 4]), f([4, 5])], attrs: { equation: 'ij,jk' } },
  { name: 'Einsum ellipsis', op: 'Einsum', inputs: [f([2, 3, 4]), f([4, 5])], attrs: { equation: '...ij,jk->...ik' } },
  {
    name: 'MatMulInteger',
    op: 'MatMulInteger',
    inputs: [
      { shape: [2, 3], dtype: 'uint8', maxInt: 10 },
      { shape: [3, 4], dtype: 'uint8', maxInt: 10 },
    ],
  },
  // reductions
  { name: 'ReduceMean keepdims', op: 'ReduceMean', inputs: [f([2, 3, 4])], attrs: { axes: [-1] } },
  { name: 'ReduceMean no keepdims', op: 'ReduceMean', inputs: [f([2, 3, 4])], attrs: { axes: [0, 2], keepdims: 0 } },
  { name: 'ReduceMean all', op: 'ReduceMean', inputs: [f([2, 3, 4])], attrs: { keepdims: 0 } },
  { name: 'ReduceMean axes input opset 18', op: 'ReduceMean', inputs: [f([2, 3, 4]), i64([1])], opset: 18 },
  {
    name: 'ReduceSum axes input',
    op: 'ReduceSum',
    inputs: [f(['batch', 3, 4]), i64([0, 1])],
    attrs: { keepdims: 0 },
    bind: B,
    expect: [4],
  },
  { name: 'ReduceSum noop', op: 'ReduceSum', inputs: [f([2, 3]), i64([])], attrs: { noop_with_empty_axes: 1 } },
  { name: 'ReduceMax', op: 'ReduceMax', inputs: [f([2, 3, 4])], attrs: { axes: [1], keepdims: 1 } },
  { name: 'ArgMax', op: 'ArgMax', inputs: [f([2, 3, 4])], attrs: { axis: -1, keepdims: 0 } },
  // normalisation
  {
    name: 'LayerNormalization',
    op: 'LayerNormalization',
    inputs: [f(['batch', 'seq', 8]), f([8]), f([8])],
    outputs: 3,
    bind: B,
    expect: ['batch', 'seq', 8],
  },
  {
    name: 'LayerNormalization axis 1',
    op: 'LayerNormalization',
    inputs: [f([2, 3, 4]), f([3, 4])],
    attrs: { axis: 1 },
    outputs: 3,
  },
  {
    name: 'BatchNormalization training',
    op: 'BatchNormalization',
    inputs: [f([2, 3, 4, 4]), f([3]), f([3]), f([3]), { shape: [3], values: [1, 1, 1] }],
    attrs: { training_mode: 1 },
    outputs: 3,
  },
  {
    name: 'BatchNormalization inference',
    op: 'BatchNormalization',
    inputs: [f([2, 3, 4]), f([3]), f([3]), f([3]), { shape: [3], values: [1, 1, 1] }],
  },
  // shape ops
  { name: 'Reshape 0 and -1', op: 'Reshape', inputs: [f([2, 3, 4]), i64([0, -1])] },
  {
    name: 'Reshape symbolic -1',
    op: 'Reshape',
    inputs: [f(['batch', 'seq', 8]), i64([-1, 8])],
    bind: B,
    expect: ['batch*seq', 8],
  },
  {
    name: 'Reshape heads',
    op: 'Reshape',
    inputs: [f(['batch', 'seq', 8]), i64([0, 0, 2, 4])],
    bind: B,
    expect: ['batch', 'seq', 2, 4],
  },
  {
    name: 'Reshape split -1',
    op: 'Reshape',
    inputs: [f(['batch', 'seq', 8]), i64([0, -1, 2])],
    bind: B,
    expect: ['batch', '4*seq', 2],
  },
  { name: 'Flatten', op: 'Flatten', inputs: [f([2, 3, 4, 5])], attrs: { axis: 2 } },
  { name: 'Flatten axis 0', op: 'Flatten', inputs: [f([2, 3])], attrs: { axis: 0 } },
  {
    name: 'Transpose perm',
    op: 'Transpose',
    inputs: [f(['batch', 'seq', 2, 4])],
    attrs: { perm: [0, 2, 1, 3] },
    bind: B,
    expect: ['batch', 2, 'seq', 4],
  },
  { name: 'Transpose default', op: 'Transpose', inputs: [f([2, 3, 4])] },
  { name: 'Squeeze axes', op: 'Squeeze', inputs: [f([2, 1, 3, 1]), i64([-1])] },
  { name: 'Squeeze all', op: 'Squeeze', inputs: [f([1, 2, 1])] },
  { name: 'Unsqueeze', op: 'Unsqueeze', inputs: [f([2, 3]), i64([0, -1])] },
  { name: 'Concat', op: 'Concat', inputs: [f([2, 3]), f([2, 5])], attrs: { axis: -1 } },
  {
    name: 'Concat symbolic',
    op: 'Concat',
    inputs: [f(['batch', 'seq']), f(['batch', 'seq'])],
    attrs: { axis: 1 },
    bind: B,
    expect: ['batch', '2*seq'],
  },
  { name: 'Split sizes', op: 'Split', inputs: [f([2, 6]), i64([1, 5])], attrs: { axis: 1 }, outputs: 2 },
  { name: 'Split equal', op: 'Split', inputs: [f([6, 2])], outputs: 3 },
  {
    name: 'Split num_outputs uneven',
    op: 'Split',
    inputs: [f([7, 2])],
    attrs: { num_outputs: 3 },
    outputs: 3,
    opset: 18,
  },
  { name: 'Slice', op: 'Slice', inputs: [f([5, 6]), i64([1, 0]), i64([4, -1]), i64([0, 1])] },
  { name: 'Slice step', op: 'Slice', inputs: [f([10]), i64([1]), i64([9]), i64([0]), i64([3])] },
  { name: 'Slice negative step', op: 'Slice', inputs: [f([5, 4]), i64([-1]), i64([-(2 ** 62)]), i64([0]), i64([-1])] },
  { name: 'Slice clamp', op: 'Slice', inputs: [f([5]), i64([-10]), i64([100])] },
  {
    name: 'Slice symbolic tail',
    op: 'Slice',
    inputs: [f(['batch', 'seq', 4]), i64([1]), i64([2 ** 62]), i64([1])],
    bind: B,
    expect: ['batch', 'seq-1', 4],
  },
  {
    name: 'Gather',
    op: 'Gather',
    inputs: [f([10, 4]), { shape: ['batch', 'seq'], dtype: 'int64', maxInt: 10 }],
    bind: B,
    expect: ['batch', 'seq', 4],
  },
  {
    name: 'Gather axis 1 scalar',
    op: 'Gather',
    inputs: [f([3, 4, 5]), { shape: [], dtype: 'int64', values: [2] }],
    attrs: { axis: 1 },
  },
  {
    name: 'GatherElements',
    op: 'GatherElements',
    inputs: [f([3, 4]), { shape: [3, 2], dtype: 'int64', maxInt: 4 }],
    attrs: { axis: 1 },
  },
  { name: 'Expand', op: 'Expand', inputs: [f([3, 1]), i64([2, 1, 4])] },
  { name: 'Tile', op: 'Tile', inputs: [f([2, 3]), i64([2, 2])] },
  { name: 'Pad', op: 'Pad', inputs: [f([2, 3]), i64([0, 1, 1, 2])] },
  { name: 'Shape', op: 'Shape', inputs: [f([2, 3, 4])] },
  { name: 'Shape start/end', op: 'Shape', inputs: [f([2, 3, 4])], attrs: { start: 1, end: -1 } },
  { name: 'Size', op: 'Size', inputs: [f([2, 3, 4])] },
  { name: 'ConstantOfShape', op: 'ConstantOfShape', inputs: [i64([2, 3])] },
  { name: 'Range', op: 'Range', inputs: [s64(1), s64(10), s64(3)] },
  {
    name: 'OneHot',
    op: 'OneHot',
    inputs: [{ shape: [2, 3], dtype: 'int64', maxInt: 5 }, s64(5), { shape: [2], values: [0, 1], init: true }],
    attrs: { axis: -1 },
  },
  {
    name: 'OneHot axis 0',
    op: 'OneHot',
    inputs: [{ shape: [3], dtype: 'int64', maxInt: 4 }, s64(4), { shape: [2], values: [0, 1], init: true }],
    attrs: { axis: 0 },
  },
  {
    name: 'ScatterND add',
    op: 'ScatterND',
    inputs: [f([5, 3]), { shape: [4, 1], dtype: 'int64', values: [0, 1, 1, 4] }, f([4, 3])],
    attrs: { reduction: 'add' },
  },
  {
    name: 'ScatterElements add',
    op: 'ScatterElements',
    inputs: [f([3, 4]), { shape: [3, 2], dtype: 'int64', maxInt: 4 }, f([3, 2])],
    attrs: { axis: 1, reduction: 'add' },
  },
  { name: 'TopK', op: 'TopK', inputs: [f([3, 6]), i64([2])], outputs: 2 },
  // convolution and pooling
  {
    name: 'Conv pads strides',
    op: 'Conv',
    inputs: [f([1, 2, 7, 6]), f([4, 2, 3, 3]), f([4])],
    attrs: { pads: [1, 1, 1, 1], strides: [2, 2] },
  },
  {
    name: 'Conv groups dilations',
    op: 'Conv',
    inputs: [f([2, 4, 9, 9]), f([6, 2, 3, 3])],
    attrs: { group: 2, dilations: [2, 1] },
  },
  {
    name: 'Conv SAME_UPPER',
    op: 'Conv',
    inputs: [f([1, 1, 7, 5]), f([1, 1, 3, 3])],
    attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] },
  },
  { name: 'Conv VALID', op: 'Conv', inputs: [f([1, 1, 7, 5]), f([2, 1, 3, 2])], attrs: { auto_pad: 'VALID' } },
  {
    name: 'ConvTranspose',
    op: 'ConvTranspose',
    inputs: [f([1, 3, 4, 5]), f([3, 2, 3, 3])],
    attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] },
  },
  {
    name: 'ConvTranspose groups',
    op: 'ConvTranspose',
    inputs: [f([1, 4, 3, 3]), f([4, 3, 2, 2])],
    attrs: { group: 2 },
  },
  {
    name: 'MaxPool indices',
    op: 'MaxPool',
    inputs: [f([1, 2, 7, 7])],
    attrs: { kernel_shape: [3, 3], strides: [2, 2] },
    outputs: 2,
  },
  {
    name: 'MaxPool ceil',
    op: 'MaxPool',
    inputs: [f([1, 1, 6, 6])],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 },
  },
  {
    name: 'AveragePool pads',
    op: 'AveragePool',
    inputs: [f([1, 2, 5, 5])],
    attrs: { kernel_shape: [2, 2], pads: [1, 1, 0, 0] },
  },
  { name: 'GlobalAveragePool', op: 'GlobalAveragePool', inputs: [f([2, 3, 4, 5])] },
  // losses
  {
    name: 'SoftmaxCrossEntropyLoss mean + log_prob',
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [f([4, 5]), { shape: [4], dtype: 'int64', maxInt: 5 }],
    outputs: 2,
  },
  {
    name: 'SoftmaxCrossEntropyLoss none',
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [f([2, 5, 3]), { shape: [2, 3], dtype: 'int64', maxInt: 5 }],
    attrs: { reduction: 'none' },
  },
  {
    name: 'NegativeLogLikelihoodLoss',
    op: 'NegativeLogLikelihoodLoss',
    inputs: [f([4, 5]), { shape: [4], dtype: 'int64', maxInt: 5 }],
    attrs: { reduction: 'sum' },
  },
  // quantisation
  { name: 'DynamicQuantizeLinear', op: 'DynamicQuantizeLinear', inputs: [f([3, 4])], outputs: 3 },
  {
    name: 'QuantizeLinear',
    op: 'QuantizeLinear',
    inputs: [
      f([3, 4]),
      { shape: [], values: [0.1], init: true },
      { shape: [], dtype: 'int8', values: [0], init: true },
    ],
  },
  {
    name: 'DequantizeLinear',
    op: 'DequantizeLinear',
    inputs: [
      { shape: [3, 4], dtype: 'uint8', maxInt: 255 },
      { shape: [], values: [0.1], init: true },
      { shape: [], dtype: 'uint8', values: [3], init: true },
    ],
  },
];

test('shape inference agrees with ONNX Runtime', async (t) => {
  for (const c of cases) await t.test(c.name, () => check(c));
});
