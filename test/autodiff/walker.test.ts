import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildGradientGraph, differentiableOps } from '../../src/autodiff/index.ts';
import { GraphError } from '../../src/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph } from '../../src/onnx/ir.ts';
import { ort, Session } from '../../src/runtime/session.ts';

async function run(
  graph: Parameters<typeof modelFromGraph>[0],
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const s = await Session.create(modelFromGraph(graph));
  const r = await s.run(feeds);
  await s.release();
  return r;
}

describe('buildGradientGraph', () => {
  it('keeps the original outputs, adds <w>_grad outputs, sums fan-out with one Sum node, leaves the input graph alone', async () => {
    const b = new GraphBuilder('g');
    b.input('x', 'float32', [3]);
    const w = b.initializer('w', 'float32', Float32Array.of(2, 3, 4), [3]);
    const y = b.mul(b.mul('x', w), w); // w used twice: dL/dw = 2 x w
    const loss = b.op('ReduceSum', [y], { keepdims: 0 });
    b.output(y);
    b.output(loss);
    const nodesBefore = b.graph.nodes.length;
    const { graph, gradients } = buildGradientGraph(b.graph, { loss, wrt: ['w'] });
    assert.equal(b.graph.nodes.length, nodesBefore);
    assert.deepEqual(
      graph.outputs.map((o) => o.name),
      [y, loss, 'w_grad'],
    );
    assert.equal(gradients.get('w'), 'w_grad');
    assert.equal(graph.nodes.filter((n) => n.opType === 'Sum').length, 1);
    const r = await run(graph, { x: new ort.Tensor('float32', Float32Array.of(1, -1, 0.5), [3]) });
    assert.deepEqual([...(r.w_grad.data as Float32Array)], [4, -6, 4]);
  });

  it('differentiates only the path from wrt to the loss; integer values stop gradients', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'float32', [2, 3]);
    const w = b.initializer('w', 'float32', new Float32Array(3).fill(1), [3]);
    const frozen = b.initializer('frozen', 'float32', new Float32Array(3).fill(1), [3]);
    const side = b.op('Tanh', [b.op('Mul', [x, frozen], {}, { name: 'side_mul' })], {}, { name: 'side_tanh' }); // not on a path from w
    // through int64: no gradient
    const shapeDependent = b.op(
      'Cast',
      [b.op('Shape', [b.op('Mul', [x, w], {}, { name: 'shape_mul' })])],
      { to: 1 },
      { name: 'shape_cast' },
    );
    const xw = b.op('Add', [x, w], {}, { name: 'xw' });
    const prod = b.op('Mul', [xw, side], {}, { name: 'prod' });
    const sum = b.op(
      'Add',
      [prod, b.op('ReduceSum', [shapeDependent], { keepdims: 0 }, { name: 'shape_sum' })],
      {},
      { name: 'total' },
    );
    const loss = b.op('ReduceSum', [sum], { keepdims: 0 }, { name: 'loss' });
    b.output(loss);
    const { graph } = buildGradientGraph(b.graph, { loss, wrt: ['w'] });
    const differentiated = new Set(
      graph.nodes
        .slice(b.graph.nodes.length)
        .filter((n) => n.name.includes('_grad/'))
        .map((n) => n.name.split('_grad/')[0]),
    );
    // 'total' is on the path too, but an Add without broadcasting passes dY through without emitting a node
    assert.deepEqual([...differentiated].sort(), ['loss', 'prod', 'xw']);
  });

  it('a wrt tensor that does not reach the loss gets an exact zero gradient', async () => {
    const b = new GraphBuilder('g');
    b.input('x', 'float32', [2]);
    b.initializer('unused', 'float32', Float32Array.of(5, 6), [2]);
    const loss = b.op('ReduceSum', [b.mul('x', 'x')], { keepdims: 0 });
    b.output(loss);
    const { graph } = buildGradientGraph(b.graph, { loss, wrt: ['x', 'unused'] });
    const r = await run(graph, { x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) });
    assert.deepEqual([...(r.x_grad.data as Float32Array)], [2, 4]);
    assert.deepEqual([...(r.unused_grad.data as Float32Array)], [0, 0]);
  });

  it('undoes broadcasting at run time when symbolic dims cannot be compared statically', async () => {
    const b = new GraphBuilder('g');
    b.input('a', 'float32', ['n', 3]);
    b.input('c', 'float32', ['m', 3]);
    const loss = b.op('ReduceSum', [b.mul(b.add('a', 'c'), b.constant('float32', Float32Array.of(1, 2, 3), [3]))], {
      keepdims: 0,
    });
    b.output(loss);
    const { graph } = buildGradientGraph(b.graph, { loss, wrt: ['a', 'c'] });
    const r = await run(graph, {
      a: new ort.Tensor('float32', new Float32Array(6), [2, 3]),
      c: new ort.Tensor('float32', new Float32Array(3), [1, 3]),
    });
    assert.deepEqual(r.c_grad.dims, [1, 3]);
    assert.deepEqual([...(r.c_grad.data as Float32Array)], [2, 4, 6]);
    assert.deepEqual([...(r.a_grad.data as Float32Array)], [1, 2, 3, 1, 2, 3]);
  });

  it('names the node and op when no rule exists, and rejects bad loss/wrt names', () => {
    const b = new GraphBuilder('g');
    b.input('x', 'float32', [4]);
    const y = b.op('Round', [b.mul('x', 'x')]);
    const loss = b.op('ReduceSum', [y], { keepdims: 0 });
    b.output(loss);
    assert.throws(
      () => buildGradientGraph(b.graph, { loss, wrt: ['x'] }),
      (e: unknown) =>
        e instanceof GraphError &&
        e.message ===
          "no gradient rule for op Round (node 'Round'), which lies between a trainable tensor and the loss" &&
        e.context.op === 'Round',
    );
    assert.throws(
      () => buildGradientGraph(b.graph, { loss: 'nope', wrt: ['x'] }),
      /loss 'nope' is not a value of graph 'g'/,
    );
    assert.throws(
      () => buildGradientGraph(b.graph, { loss, wrt: ['w'] }),
      /wrt 'w' is neither an initializer nor an input of graph 'g'/,
    );
    b.input('ids', 'int64', [4]);
    assert.throws(
      () => buildGradientGraph(b.graph, { loss, wrt: ['ids'] }),
      /wrt 'ids' has dtype int64; only float tensors have gradients/,
    );
  });

  it('covers every op the engine issue lists', () => {
    const required = [
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
      'com.microsoft:Gelu',
      'com.microsoft:FastGelu',
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
      'Where',
      'Expand',
      'Identity',
      'Cast',
      'Clip',
      'Max',
      'Min',
      'Dropout',
      'Conv',
      'MaxPool',
      'AveragePool',
      'GlobalAveragePool',
      'BatchNormalization',
      'Einsum',
      'SoftmaxCrossEntropyLoss',
    ];
    const have = new Set(differentiableOps());
    assert.deepEqual(
      required.filter((op) => !have.has(op)),
      [],
    );
  });
});
