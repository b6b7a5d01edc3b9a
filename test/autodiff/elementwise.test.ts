import { describe, it } from 'node:test';
import { gradCheck } from './fd.ts';

// float64 throughout: ORT has double kernels for all of these ops and for every op their gradients emit.
describe('elementwise gradients (float64, broadcasting)', () => {
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    it(`${op} with broadcasting on both sides`, async () => {
      await gradCheck('float64', (b, feed) => {
        const a = feed('a', [2, 1, 4], op === 'Div' ? 0.5 : -1, op === 'Div' ? 1.5 : 1);
        const c = feed('c', [3, 1], op === 'Div' ? 0.5 : -1, op === 'Div' ? 1.5 : 1);
        return { outputs: [b.op(op, [a, c])], wrt: ['a', 'c'] };
      });
    });
  }
  it('Mul with a scalar initializer and a value used twice (fan-out summed)', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 4]);
      const s = b.initializer('s', 'float64', Float64Array.of(1.7), []);
      const y = b.mul(b.mul(x, s), x);
      return { outputs: [b.add(y, x)], wrt: ['x', 's'] };
    });
  });
  const unary: [string, number, number][] = [
    ['Neg', -1, 1],
    ['Sqrt', 0.3, 2],
    ['Reciprocal', 0.5, 2],
    ['Exp', -1, 1],
    ['Log', 0.3, 2],
    ['Abs', -1, 1],
    ['Tanh', -2, 2],
    ['Sigmoid', -3, 3],
    ['Relu', -1, 1],
    ['Identity', -1, 1],
  ];
  for (const [op, lo, hi] of unary) {
    it(op, async () => {
      await gradCheck('float64', (b, feed) => ({ outputs: [b.op(op, [feed('x', [3, 5], lo, hi)])], wrt: ['x'] }));
    });
  }
  // ORT has no double kernels for Elu, Softplus and Mean: float32 with the default float32 tolerance (see fd.ts)
  it('LeakyRelu, Elu and Softplus (float32)', async () => {
    await gradCheck(
      'float32',
      (b, feed) => {
        const x = feed('x', [4, 5]);
        return {
          outputs: [b.op('LeakyRelu', [x], { alpha: 0.2 }), b.op('Elu', [x], { alpha: 0.7 }), b.op('Softplus', [x])],
          wrt: ['x'],
        };
      },
      { kinkMargin: 0.05 },
    );
  });
  it('Pow with constant exponents 2, 3 and 0.5', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 4], 0.3, 2);
      return {
        outputs: [
          b.pow(x, b.scalar(2, 'float64')),
          b.pow(x, b.scalar(3, 'float64')),
          b.pow(x, b.scalar(0.5, 'float64')),
        ],
        wrt: ['x'],
      };
    });
  });
  it('Pow with a trainable exponent', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 4], 0.5, 2);
      const p = feed('p', [4], 0.5, 2);
      return { outputs: [b.pow(x, p)], wrt: ['x', 'p'] };
    });
  });
  it('Max and Min with broadcasting', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 4]);
      const y = feed('y', [4]);
      return { outputs: [b.op('Max', [x, y]), b.op('Min', [x, y])], wrt: ['x', 'y'] };
    });
  });
  it('Where with broadcast branches', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 4]);
      const y = feed('y', [1, 4]);
      const cond = b.op('Greater', [x, b.scalar(0, 'float64')]);
      return { outputs: [b.op('Where', [cond, x, y])], wrt: ['x', 'y'] };
    });
  });
  it('Expand', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 1]);
      return { outputs: [b.op('Expand', [x, b.ints([2, 3, 4])])], wrt: ['x'] };
    });
  });
  it('Clip with min and max inputs', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [4, 5], -2, 2);
      return { outputs: [b.op('Clip', [x, b.scalar(-1, 'float64'), b.scalar(1, 'float64')])], wrt: ['x'] };
    });
  });
  it('Cast float64 -> float32 -> float64', async () => {
    await gradCheck(
      'float64',
      (b, feed) => {
        const x = feed('x', [3, 3]);
        const y = b.cast(b.mul(b.cast(x, 'float32'), b.scalar(3)), 'float64');
        return { outputs: [y], wrt: ['x'] };
        // the float32 leg limits both sides to ~1e-7 relative; with h = 1e-3 the FD error is ~1e-4 absolute
      },
      { atol: 1e-3, rtol: 1e-3, h: 1e-3 },
    );
  });
  it('Sum and Mean (variadic, float32)', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [3, 4]);
      const y = feed('y', [4]);
      return { outputs: [b.op('Sum', [x, y, x]), b.op('Mean', [x, y])], wrt: ['x', 'y'] };
    });
  });
});
