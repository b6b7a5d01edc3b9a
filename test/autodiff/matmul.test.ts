import { describe, it } from 'node:test';
import { gradCheck, type FloatDType } from './fd.ts';

describe('MatMul / Gemm / Einsum gradients', () => {
  for (const dtype of ['float64', 'float32'] as FloatDType[]) {
    it(`MatMul batched with broadcast batch axes (${dtype})`, async () => {
      await gradCheck(dtype, (b, feed) => {
        const a = feed('a', [2, 1, 3, 4]);
        const w = feed('w', [3, 4, 5]);
        return { outputs: [b.matmul(a, w)], wrt: ['a', 'w'] };
      });
    });
    it(`MatMul 3-D x 2-D weight (linear layer, ${dtype})`, async () => {
      await gradCheck(dtype, (b, feed) => {
        const x = feed('x', [2, 3, 4]);
        const w = b.initializer(
          'w',
          dtype,
          dtype === 'float64'
            ? Float64Array.from({ length: 20 }, (_, i) => Math.sin(i))
            : Float32Array.from({ length: 20 }, (_, i) => Math.sin(i)),
          [4, 5],
        );
        return { outputs: [b.matmul(x, w)], wrt: ['x', w] };
      });
    });
  }
  it('MatMul with 1-D operands (float64)', async () => {
    await gradCheck('float64', (b, feed) => {
      const v = feed('v', [4]);
      const m = feed('m', [2, 4, 3]);
      const u = feed('u', [3]);
      return { outputs: [b.matmul(v, m), b.matmul(m, u)], wrt: ['v', 'm', 'u'] };
    });
  });
  for (const [tA, tB] of [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
  ]) {
    it(`Gemm transA=${tA} transB=${tB} alpha/beta, broadcast C (float64)`, async () => {
      await gradCheck('float64', (b, feed) => {
        const a = feed('a', tA ? [4, 3] : [3, 4]);
        const w = feed('w', tB ? [5, 4] : [4, 5]);
        const c = feed('c', [5]);
        return { outputs: [b.gemm(a, w, c, { alpha: 0.7, beta: 1.3, transA: tA, transB: tB })], wrt: ['a', 'w', 'c'] };
      });
    });
  }
  it('Einsum attention patterns bhqd,bhkd->bhqk and bhqk,bhkd->bhqd (float64)', async () => {
    await gradCheck('float64', (b, feed) => {
      const q = feed('q', [2, 2, 3, 4]);
      const k = feed('k', [2, 2, 5, 4]);
      const v = feed('v', [2, 2, 5, 4]);
      const s = b.op('Einsum', [q, k], { equation: 'bhqd,bhkd->bhqk' });
      return { outputs: [b.op('Einsum', [s, v], { equation: 'bhqk,bhkd->bhqd' })], wrt: ['q', 'k', 'v'] };
    });
  });
  it('Einsum with an ellipsis and an index summed inside one operand (float64)', async () => {
    await gradCheck('float64', (b, feed) => {
      const x = feed('x', [2, 3, 4]);
      const w = feed('w', [4, 5]);
      const y = b.op('Einsum', [x, w], { equation: '...d,de->...e' });
      return { outputs: [y, b.op('Einsum', [x, w], { equation: 'bij,jk->bk' })], wrt: ['x', 'w'] };
    });
  });
});
