import { describe, it } from 'node:test';
import { gradCheck, rng } from './fd.ts';

// ORT's CPU Conv/ConvTranspose/pooling kernels are float32 only. Tolerances: with h = 1e-2 central differences of
// these piecewise-linear/bilinear functions are exact up to float32 rounding of the loss (|L| ~ 10, ulp ~ 1e-6,
// divided by 2h gives ~1e-4), well inside atol 5e-3 + rtol 1e-2.
describe('convolution and pooling gradients (float32)', () => {
  it('Conv 2-D with stride 2, padding, dilation and bias', async () => {
    await gradCheck(
      'float32',
      (b, feed) => {
        const x = feed('x', [2, 3, 7, 6]);
        const w = feed('w', [4, 3, 3, 2]);
        const bias = feed('bias', [4]);
        const y = b.op('Conv', [x, w, bias], {
          strides: [2, 2],
          pads: [1, 0, 1, 1],
          dilations: [1, 2],
          kernel_shape: [3, 2],
        });
        return { outputs: [y], wrt: ['x', 'w', 'bias'] };
      },
      { maxElems: 60 },
    );
  });
  it('Conv 2-D with groups=2 and SAME_UPPER padding', async () => {
    await gradCheck(
      'float32',
      (b, feed) => {
        const x = feed('x', [2, 4, 5, 5]);
        const w = feed('w', [6, 2, 3, 3]);
        const y = b.op('Conv', [x, w], { group: 2, auto_pad: 'SAME_UPPER', strides: [2, 1] });
        return { outputs: [y], wrt: ['x', 'w'] };
      },
      { maxElems: 60 },
    );
  });
  it('Depthwise Conv (groups = channels)', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [1, 3, 5, 4]);
      const w = feed('w', [3, 1, 3, 3]);
      return { outputs: [b.op('Conv', [x, w], { group: 3, pads: [1, 1, 1, 1] })], wrt: ['x', 'w'] };
    });
  });
  it('MaxPool with stride and padding (Indices output added to the forward node)', async () => {
    // distinct values 1/60 apart (> 2h), so no perturbation changes which element is a window's maximum
    const n = 2 * 2 * 5 * 6;
    const r = rng(5);
    const vals = Array.from({ length: n }, (_, i) => i / n);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [vals[i], vals[j]] = [vals[j], vals[i]];
    }
    await gradCheck(
      'float32',
      (b) => {
        const x = b.input('x', 'float32', [2, 2, 5, 6]);
        return {
          outputs: [b.op('MaxPool', [x], { kernel_shape: [2, 3], strides: [2, 2], pads: [1, 1, 0, 1] })],
          wrt: ['x'],
        };
      },
      { feeds: { x: { dtype: 'float32', dims: [2, 2, 5, 6], data: Float32Array.from(vals) } }, h: 2e-3, atol: 1e-2 },
    );
  });
  it('AveragePool with padding, count_include_pad 0 and 1', async () => {
    await gradCheck('float32', (b, feed) => {
      const x = feed('x', [1, 2, 5, 5]);
      const a = b.op('AveragePool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
      const c = b.op('AveragePool', [x], {
        kernel_shape: [3, 3],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        count_include_pad: 1,
      });
      const d = b.op('AveragePool', [x], { kernel_shape: [2, 2], strides: [1, 2] });
      return { outputs: [a, c, d], wrt: ['x'] };
    });
  });
  it('GlobalAveragePool', async () => {
    await gradCheck('float32', (b, feed) => ({
      outputs: [b.op('GlobalAveragePool', [feed('x', [2, 3, 4, 5])])],
      wrt: ['x'],
    }));
  });
});
