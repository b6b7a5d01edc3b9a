import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gradCheck } from './fd.ts';

// float64 unless noted: ORT's double kernels cover these ops and ScatterND/ScatterElements/Pad used by their gradients.
describe('reduction gradients', () => {
  it('ReduceSum (axes input, keepdims 0 and 1, all axes)', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [2, 3, 4]);
      return {
        outputs: [b.reduceSum(x, [1], false), b.reduceSum(x, [0, -1], true), b.op('ReduceSum', [x], { keepdims: 0 })],
        wrt: ['x'],
      };
    });
  });
  it('ReduceMean (axes attribute)', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [2, 3, 4]);
      return { outputs: [b.reduceMean(x, [-1], true), b.reduceMean(x, [0, 2], false)], wrt: ['x'] };
    });
  });
  it('ReduceMax and ReduceMin', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 5]);
      return {
        outputs: [
          b.op('ReduceMax', [x], { axes: [1], keepdims: 0 }),
          b.op('ReduceMin', [x], { axes: [0], keepdims: 1 }),
        ],
        wrt: ['x'],
      };
    });
  });
  it('ReduceMax splits the gradient evenly between tied maxima', async () => {
    const { grads } = await gradCheck(
      'float64',
      (b) => {
        b.input('t', 'float64', [4]);
        return { outputs: [b.op('ReduceMax', ['t'], { keepdims: 0 })], wrt: ['t'] };
      },
      { feeds: { t: { dtype: 'float64', dims: [4], data: Float64Array.of(1, 3, 3, 2) } }, maxElems: 1 },
    );
    const g = [...grads.get('t')!];
    assert.equal(g[0], 0);
    assert.ok(Math.abs(g[1] - g[2]) < 1e-12 && g[1] !== 0 && g[3] === 0);
  });
});

describe('data-movement gradients', () => {
  it('Reshape, Flatten, Squeeze, Unsqueeze, Transpose', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [2, 1, 3, 4]);
      const y1 = b.reshape(x, [6, -1]);
      const y2 = b.op('Flatten', [x], { axis: 2 });
      const y3 = b.squeeze(x, [1]);
      const y4 = b.unsqueeze(x, [0, 5]);
      const y5 = b.transpose(x, [3, 0, 2, 1]);
      return { outputs: [y1, y2, y3, y4, y5], wrt: ['x'] };
    });
  });
  it('Concat and Split (one Split output unused)', async () => {
    await gradCheck('float64', (b, feed) => {
      const a = feed('a', [2, 3]);
      const c = feed('c', [2, 2]);
      const cat = b.concat([a, c, a], 1);
      const [p0, , p2] = b.node('Split', [cat, b.ints([3, 2, 3])], { axis: 1 }, { outputs: 3 });
      return { outputs: [cat, p0, p2], wrt: ['a', 'c'] };
    });
  });
  it('Slice with unit, strided, negative steps and clamped ends', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [4, 6, 5]);
      const s1 = b.op('Slice', [x, b.ints([1, -4]), b.ints([3, 1000]), b.ints([0, 1])]);
      const s2 = b.op('Slice', [x, b.ints([0, 4]), b.ints([6, 0]), b.ints([1, 2]), b.ints([2, -2])]);
      const s3 = b.op('Slice', [x, b.ints([-1]), b.ints([-1000]), b.ints([0]), b.ints([-1])]);
      return { outputs: [s1, s2, s3], wrt: ['x'] };
    });
  });
  it('Gather axis 0 (embedding lookup with repeated and negative indices)', async () => {
    await gradCheck('float64', (b, feed) => {
      const table = feed('table', [5, 3]);
      const ids = b.constant('int64', BigInt64Array.of(0n, 2n, 2n, -1n, 4n, 0n), [2, 3]);
      return { outputs: [b.gather(table, ids, 0), b.gather(table, b.scalar(3, 'int64'), 0)], wrt: ['table'] };
    });
  });
  it('Gather axis 1 and GatherElements', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 4, 2]);
      const ids = b.constant('int64', BigInt64Array.of(3n, 1n, 3n), [3]);
      const ge = b.constant(
        'int64',
        BigInt64Array.of(0n, 1n, 1n, 3n, 2n, 2n, 0n, 0n, 1n, 3n, 3n, 3n, 0n, 1n, 2n, 3n, 0n, 0n),
        [3, 3, 2],
      );
      return { outputs: [b.gather(x, ids, 1), b.op('GatherElements', [x, ge], { axis: 1 })], wrt: ['x'] };
    });
  });
});
