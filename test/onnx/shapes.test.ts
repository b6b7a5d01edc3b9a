/** Shape inference: symbolic dim arithmetic, folding of export-style shape chains, specialisation, errors. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphError, ShapeError } from '../../src/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import type { Graph, Tensor } from '../../src/onnx/ir.ts';
import {
  bindDim,
  broadcastDim,
  canon,
  dimDiv,
  dimMul,
  dimSub,
  inferShapes,
  specialize,
  supportedOps,
  valueType,
} from '../../src/onnx/shapes/index.ts';
import { int64Tensor } from '../../src/onnx/tensor.ts';

function shapeOf(g: Graph, name: string): unknown {
  return valueType(g, name)?.shape;
}

test('symbolic dims have one canonical spelling and evaluate when bound', () => {
  assert.equal(canon('seq*batch'), 'batch*seq');
  assert.equal(canon('3 + seq - 3'), 'seq');
  assert.equal(dimSub('seq', 1), 'seq-1');
  assert.equal(dimMul(dimMul('seq', 2), 'batch'), '2*batch*seq');
  assert.equal(dimDiv('2*batch*seq', 'seq'), '2*batch');
  assert.equal(dimDiv('batch*seq', 'heads'), undefined);
  assert.equal(dimDiv(12, 5), undefined);
  assert.equal(bindDim('2*batch*seq-1', { batch: 2, seq: 3 }), 11);
  assert.equal(bindDim('2*batch*seq', { batch: 2 }), '4*seq');
  // dim_params that are not identifiers stay atoms and still bind by their full name
  assert.equal(bindDim(dimMul('sequence length', 2), { 'sequence length': 5 }), 10);
});

test('broadcasting a symbol against 1 gives the symbol; two different symbols keep the left one', () => {
  assert.equal(broadcastDim('seq', 1), 'seq');
  assert.equal(broadcastDim(1, 'seq'), 'seq');
  assert.equal(broadcastDim('seq', 7), 7);
  assert.equal(broadcastDim('q_len', 'k_len'), 'q_len');
  assert.equal(broadcastDim(3, 4), undefined);
});

test('Optimum-style Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains fold to symbolic shapes', () => {
  const b = new GraphBuilder('chain');
  const x = b.input('hidden', 'float32', ['batch', 'seq', 8]);
  const shp = b.shape(x);
  const constNode = (v: number[], dims: number[]): string =>
    b.op('Constant', [], { value: int64Tensor('v', v, dims) as Tensor });
  const d0 = b.gather(shp, constNode([0], []));
  const d1 = b.gather(shp, constNode([1], []));
  const target = b.concat([b.unsqueeze(d0, [0]), b.unsqueeze(d1, [0]), constNode([2], [1]), constNode([4], [1])], 0);
  const heads = b.reshape(x, target);
  const back = b.reshape(
    b.transpose(heads, [0, 2, 1, 3]),
    b.concat([b.unsqueeze(d0, [0]), constNode([-1], [1]), constNode([4], [1])], 0),
  );
  // position ids: Range(0, seq) sliced out of a [1, 512] buffer with end = seq
  const seqLen = b.range(b.scalar(0, 'int64'), d1, b.scalar(1, 'int64'));
  const buffer = b.initializer('position_ids', 'int64', new BigInt64Array(512), [1, 512]);
  const pos = b.slice(buffer, [0], b.unsqueeze(d1, [0]), [1]);
  // newer exports: Expand(mask, Where(Equal(shape, -1), ones, shape))
  const mask = b.input('mask', 'float32', ['batch', 1, 1, 'seq']);
  const want = b.concat([b.unsqueeze(d0, [0]), constNode([1], [1]), b.unsqueeze(d1, [0]), b.unsqueeze(d1, [0])], 0);
  const ones = b.constantOfShape([4], 1, 'int64');
  const fixed = b.where(b.equal(want, b.mul(ones, b.scalar(-1, 'int64'))), ones, want);
  const expanded = b.expand(mask, fixed);
  for (const o of [heads, back, seqLen, pos, expanded]) b.output(o);
  const g = inferShapes(b.graph);
  assert.deepEqual(shapeOf(g, heads), ['batch', 'seq', 2, 4]);
  assert.deepEqual(shapeOf(g, back), ['batch', '2*seq', 4]);
  assert.deepEqual(shapeOf(g, seqLen), ['seq']);
  assert.deepEqual(shapeOf(g, pos), [1, 'seq']);
  assert.deepEqual(shapeOf(g, expanded), ['batch', 1, 'seq', 'seq']);
  assert.deepEqual(shapeOf(g, shp), [3]);
  assert.equal(valueType(g, shp)?.dtype, 'int64');

  const s = specialize(b.graph, { batch: 2, seq: 5 });
  assert.deepEqual(s.inputs[0].shape, [2, 5, 8]);
  assert.deepEqual(
    s.outputs.map((o) => o.shape),
    [[2, 5, 2, 4], [2, 10, 4], [5], [1, 5], [2, 1, 5, 5]],
  );
  // the original graph is untouched
  assert.deepEqual(b.graph.inputs[0].shape, ['batch', 'seq', 8]);
  assert.equal(b.graph.valueInfo.size, 0);
});

test('every node output gets a valueInfo and graph outputs are filled', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 4]);
  const w = b.initializer('w', 'float32', new Float32Array(12), [4, 3]);
  const [ya, yb] = b.split(b.linear(x, w), [1, 2], 1);
  b.output(b.cast(ya, 'float64'), 'float32');
  b.output(yb);
  const g = inferShapes(b.graph);
  for (const n of g.nodes) for (const o of n.outputs) assert.ok(g.valueInfo.get(o)?.shape, `valueInfo for ${o}`);
  assert.deepEqual(
    g.outputs.map((o) => [o.dtype, o.shape]),
    [
      ['float64', ['batch', 1]],
      ['float32', ['batch', 2]],
    ],
  );
  assert.deepEqual(valueType(g, 'w'), { name: 'w', dtype: 'float32', shape: [4, 3] });
  assert.deepEqual(valueType(g, 'x')?.shape, ['batch', 4]);
});

test('the builder infers types incrementally while building', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 'seq', 16]);
  const q = b.reshape(x, [0, 0, 4, 4]);
  assert.deepEqual(b.shapeOf(q), ['batch', 'seq', 4, 4]);
  const t = b.transpose(q, [0, 2, 3, 1]);
  assert.deepEqual(b.shapeOf(t), ['batch', 4, 4, 'seq']);
  assert.equal(b.typeOf(b.argMax(t))?.dtype, 'int64');
  const w = b.initializer('w2', 'float32', new Float32Array(4), [4]);
  assert.deepEqual(b.shapeOf(b.mul(q, w)), ['batch', 'seq', 4, 4]);
  assert.throws(() => b.shapeOf('nope'), GraphError);
});

function expectShapeError(build: (b: GraphBuilder) => void, message: string): void {
  const b = new GraphBuilder();
  build(b);
  assert.throws(
    () => inferShapes(b.graph),
    (e: unknown) => {
      assert.ok(e instanceof ShapeError, `expected ShapeError, got ${String(e)}`);
      assert.equal(e.message, message);
      return true;
    },
  );
}

test('inference errors name the node, the op and the shapes', () => {
  expectShapeError((b) => {
    const a = b.input('a', 'float32', [2, 3]);
    const w = b.input('w', 'float32', [4, 5]);
    b.scope('encoder.layer.0', () => b.output(b.matmul(a, w)));
  }, "MatMul node '/encoder/layer.0/MatMul': inner dimensions differ: [2, 3] x [4, 5]");
  expectShapeError((b) => {
    b.output(b.add(b.input('a', 'float32', ['batch', 3]), b.input('c', 'float32', [4])));
  }, "Add node 'Add': cannot broadcast [batch, 3] and [4]: dimension 1 (from the right: 1) differs");
  expectShapeError((b) => {
    b.output(b.reshape(b.input('a', 'float32', [2, 3]), [4, -1]));
  }, "Reshape node 'Reshape': cannot reshape [2, 3] (6 elements) to [4, -1]");
  expectShapeError((b) => {
    b.output(b.concat([b.input('a', 'float32', [2, 3]), b.input('c', 'float32', [3, 3])], 1));
  }, "Concat node 'Concat': inputs differ outside axis 1: [2, 3], [3, 3]");
  expectShapeError((b) => {
    b.output(b.transpose(b.input('a', 'float32', [2, 3]), [0, 2]));
  }, "Transpose node 'Transpose': perm [0, 2] is not a permutation of the axes of [2, 3]");
  expectShapeError((b) => {
    b.output(b.softmax(b.reduceSum(b.input('a', 'float32', [2, 3]), [2])));
  }, "ReduceSum node 'ReduceSum': axis 2 is out of range for rank 2");
  expectShapeError((b) => {
    b.output(b.add(b.input('a', 'float32', [2]), b.input('i', 'int64', [2])));
  }, "Add node 'Add': input types differ: float32 vs int64");
  expectShapeError((b) => {
    b.output(b.gemm(b.input('a', 'float32', [2, 3]), b.input('w', 'float32', [2, 3]), undefined, { transB: 0 }));
  }, "Gemm node 'Gemm': inner dimensions differ: [2, 3] x [2, 3] (transA=0, transB=0)");
  expectShapeError((b) => {
    b.output(b.conv(b.input('x', 'float32', [1, 3, 8, 8]), b.input('w', 'float32', [4, 2, 3, 3])));
  }, "Conv node 'Conv': input channels 3 do not match weight [4, 2, 3, 3] x group 1 (input [1, 3, 8, 8])");
  expectShapeError((b) => {
    b.output(b.op('Frobnicate', [b.input('x', 'float32', [1])]));
  }, "Frobnicate node 'Frobnicate': no shape inference rule for op Frobnicate");
  expectShapeError((b) => {
    b.output(b.relu('ghost'));
  }, "Relu node 'Relu': input 'ghost' is not a graph input, initializer or output of an earlier node");
});

test('allowUnknown leaves outputs of unknown ops (and their consumers) untyped', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2]);
  const y = b.op('Frobnicate', [x]);
  const z = b.relu(y);
  const ok = b.relu(x);
  b.output(z);
  b.output(ok);
  const g = inferShapes(b.graph, { allowUnknown: true });
  assert.equal(g.valueInfo.get(z), undefined);
  assert.deepEqual(g.valueInfo.get(ok)?.shape, [2]);
});

test('nodes out of order are inferred in dependency order; cycles are reported', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3]);
  const y = b.relu(x);
  const z = b.transpose(y, [1, 0]);
  b.output(z);
  b.graph.nodes.reverse();
  assert.deepEqual(inferShapes(b.graph).outputs[0].shape, [3, 2]);
  b.graph.nodes[0].inputs[0] = z; // Transpose now reads its own output through Relu
  b.graph.nodes[1].inputs[0] = z;
  assert.throws(() => inferShapes(b.graph), /has a cycle: /);
});

test('specialize rejects bad bindings and binds derived dims', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 'seq', 4]);
  b.output(b.reshape(x, [-1, 4]));
  assert.throws(() => specialize(b.graph, { batch: -1 }), /binding for 'batch' must be a non-negative integer/);
  assert.deepEqual(inferShapes(b.graph).outputs[0].shape, ['batch*seq', 4]);
  assert.deepEqual(specialize(b.graph, { batch: 3, seq: 7 }).outputs[0].shape, [21, 4]);
  assert.deepEqual(specialize(b.graph, { seq: 7 }).outputs[0].shape, ['7*batch', 4]);
});

test('the rule table covers the autodiff op list', () => {
  const ops = new Set(supportedOps());
  for (const op of [
    'MatMul',
    'Gemm',
    'Add',
    'Sub',
    'Mul',
    'Div',
    'Neg',
    'Pow',
    'Sqrt',
    'Reciprocal',
    'Exp',
    'Log',
    'Abs',
    'Tanh',
    'Sigmoid',
    'Relu',
    'LeakyRelu',
    'Elu',
    'Erf',
    'Gelu',
    'com.microsoft.Gelu',
    'com.microsoft.FastGelu',
    'Softmax',
    'LogSoftmax',
    'LayerNormalization',
    'ReduceMean',
    'ReduceSum',
    'ReduceMax',
    'Reshape',
    'Flatten',
    'Transpose',
    'Squeeze',
    'Unsqueeze',
    'Concat',
    'Split',
    'Slice',
    'Gather',
    'GatherElements',
    'Where',
    'Expand',
    'Identity',
    'Cast',
    'Clip',
    'Max',
    'Min',
    'Dropout',
    'Conv',
    'ConvTranspose',
    'MaxPool',
    'AveragePool',
    'GlobalAveragePool',
    'BatchNormalization',
    'Einsum',
    'SoftmaxCrossEntropyLoss',
    'NegativeLogLikelihoodLoss',
    'Equal',
    'Less',
    'Greater',
    'Not',
    'And',
    'Shape',
    'Size',
    'Constant',
    'ConstantOfShape',
    'Range',
    'OneHot',
    'ScatterND',
    'ScatterElements',
    'Pad',
    'Tile',
    'TopK',
    'ArgMax',
    'Sum',
    'Mean',
    'Sign',
    'Floor',
    'Ceil',
    'com.microsoft.FusedMatMul',
    'DynamicQuantizeLinear',
    'QuantizeLinear',
    'DequantizeLinear',
    'MatMulInteger',
  ]) {
    assert.ok(ops.has(op), `missing rule for ${op}`);
  }
});
