import { describe, it } from 'node:test';
import { gradCheck } from './fd.ts';

describe('activation, softmax and normalisation gradients', () => {
  it('Erf (float32: ORT has no double Erf; default float32 tolerance)', async () => {
    await gradCheck('float32', (b, feed) => ({ outputs: [b.erf(feed('x', [3, 5], -2, 2))], wrt: ['x'] }));
  });
  it('com.microsoft Gelu (exact) and FastGelu with bias (float32)', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [3, 6], -3, 3);
      const bias = feed('bias', [6], -0.5, 0.5);
      const g1 = b.op('Gelu', [x], {}, { domain: 'com.microsoft' });
      const g2 = b.op('FastGelu', [x, bias], {}, { domain: 'com.microsoft' });
      return { outputs: [g1, g2], wrt: ['x', 'bias'] };
    });
  });
  it('GELU decomposed into standard ops: exact (Erf) and tanh approximation (float32)', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [4, 5], -3, 3);
      // 0.5 * x * (1 + erf(x / sqrt 2)), as Optimum exports it
      const exact = b.mul(b.mul(x, b.add(b.erf(b.div(x, b.scalar(Math.SQRT2))), b.scalar(1))), b.scalar(0.5));
      // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
      const inner = b.mul(b.add(x, b.mul(b.pow(x, b.scalar(3)), b.scalar(0.044715))), b.scalar(Math.sqrt(2 / Math.PI)));
      const approx = b.mul(b.mul(x, b.add(b.tanh(inner), b.scalar(1))), b.scalar(0.5));
      return { outputs: [exact, approx], wrt: ['x'] };
    });
  });
  for (const axis of [-1, 1]) {
    it(`Softmax and LogSoftmax axis=${axis} (float64)`, async () => {
      await gradCheck('float64', (b, feed) => {
        const x = feed('x', [2, 3, 4], -2, 2);
        return { outputs: [b.softmax(x, axis), b.logSoftmax(x, axis)], wrt: ['x'] };
      });
    });
  }
  it('LayerNormalization over the last axis, scale and bias trainable (float64)', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [2, 3, 5], -2, 2);
      const s = feed('s', [5], 0.5, 1.5);
      const bias = feed('bias', [5]);
      return { outputs: [b.layerNorm(x, s, bias, -1, 1e-5)], wrt: ['x', 's', 'bias'] };
    });
  });
  it('LayerNormalization over the last two axes, Mean/InvStdDev already outputs (float32)', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [3, 2, 4], -2, 2);
      const s = feed('s', [2, 4], 0.5, 1.5);
      const bias = feed('bias', [2, 4]);
      const [y, mean] = b.node('LayerNormalization', [x, s, bias], { axis: 1, epsilon: 1e-5 }, { outputs: 3 });
      return { outputs: [y, mean], wrt: ['x', 's', 'bias'] };
    });
  });
  it('BatchNormalization in training mode, 4-D input (float32)', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [3, 2, 2, 3], -2, 2);
      const s = feed('s', [2], 0.5, 1.5);
      const bias = feed('bias', [2]);
      const rm = b.constant('float32', Float32Array.of(0, 0), [2]);
      const rv = b.constant('float32', Float32Array.of(1, 1), [2]);
      const [y] = b.node(
        'BatchNormalization',
        [x, s, bias, rm, rv],
        { epsilon: 1e-5, momentum: 0.9, training_mode: 1 },
        { outputs: 3 },
      );
      return { outputs: [y], wrt: ['x', 's', 'bias'] };
    });
  });
  it('BatchNormalization in inference mode (float64)', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [3, 2, 4], -2, 2);
      const s = feed('s', [2], 0.5, 1.5);
      const bias = feed('bias', [2]);
      const rm = b.constant('float64', Float64Array.of(0.1, -0.2), [2]);
      const rv = b.constant('float64', Float64Array.of(0.8, 1.3), [2]);
      return {
        outputs: [b.op('BatchNormalization', [x, s, bias, rm, rv], { epsilon: 1e-5 })],
        wrt: ['x', 's', 'bias'],
      };
    });
  });
});
