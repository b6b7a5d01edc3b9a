/** MatMul family (batched, broadcasting), Gemm, com.microsoft FusedMatMul, MatMulInteger, Einsum. */
import type { DType } from '../dtype.ts';
import type { Dim, Shape } from '../ir.ts';
import type { InferContext, InferFn } from './context.ts';
import { broadcastDim, canon, dimEq } from './dims.ts';
import { broadcastShapes } from './elementwise.ts';

function compatible(a: Dim, b: Dim): boolean {
  // two different symbols cannot be disproven; only two different numbers are an error
  return typeof a !== 'number' || typeof b !== 'number' || a === b;
}

/** numpy matmul semantics over shapes, with optional transposes of the last two axes (FusedMatMul). */
function matmulShape(ctx: InferContext, a: Shape, b: Shape, transA: boolean, transB: boolean): Shape {
  if (a.length === 0 || b.length === 0) ctx.fail(`inputs must not be scalars: ${ctx.shapeStr(a)} x ${ctx.shapeStr(b)}`);
  let sa = [...a];
  let sb = [...b];
  const aVec = sa.length === 1;
  const bVec = sb.length === 1;
  if (aVec) sa = [1, sa[0]];
  if (bVec) sb = [sb[0], 1];
  if (transA) [sa[sa.length - 2], sa[sa.length - 1]] = [sa[sa.length - 1], sa[sa.length - 2]];
  if (transB) [sb[sb.length - 2], sb[sb.length - 1]] = [sb[sb.length - 1], sb[sb.length - 2]];
  const k1 = sa[sa.length - 1];
  const k2 = sb[sb.length - 2];
  if (!compatible(k1, k2)) ctx.fail(`inner dimensions differ: ${ctx.shapeStr(a)} x ${ctx.shapeStr(b)}`);
  const batchA = sa.slice(0, -2);
  const batchB = sb.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const batch: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = batchA[batchA.length - rank + i] ?? 1;
    const db = batchB[batchB.length - rank + i] ?? 1;
    const d = broadcastDim(da, db);
    if (d === undefined) ctx.fail(`batch dimensions do not broadcast: ${ctx.shapeStr(a)} x ${ctx.shapeStr(b)}`);
    batch.push(d);
  }
  const out = [...batch];
  if (!aVec) out.push(canon(sa[sa.length - 2]));
  if (!bVec) out.push(canon(sb[sb.length - 1]));
  return out;
}

export const matmul: InferFn = (ctx: InferContext) => {
  const a = ctx.in(0);
  const b = ctx.in(1);
  if (a.dtype !== b.dtype) ctx.fail(`input types differ: ${a.dtype} vs ${b.dtype}`);
  return [{ dtype: a.dtype, shape: matmulShape(ctx, a.shape, b.shape, false, false) }];
};

export const fusedMatMul: InferFn = (ctx: InferContext) => {
  const a = ctx.in(0);
  const b = ctx.in(1);
  if (a.dtype !== b.dtype) ctx.fail(`input types differ: ${a.dtype} vs ${b.dtype}`);
  if (ctx.int('transBatchA', 0) || ctx.int('transBatchB', 0))
    ctx.fail('transBatchA/transBatchB are not supported by shape inference');
  const transA = ctx.int('transA', 0) !== 0 && a.shape.length >= 2;
  const transB = ctx.int('transB', 0) !== 0 && b.shape.length >= 2;
  return [{ dtype: a.dtype, shape: matmulShape(ctx, a.shape, b.shape, transA, transB) }];
};

export const matmulInteger: InferFn = (ctx: InferContext) => {
  const a = ctx.in(0);
  const b = ctx.in(1);
  return [{ dtype: 'int32', shape: matmulShape(ctx, a.shape, b.shape, false, false) }];
};

export const gemm: InferFn = (ctx: InferContext) => {
  const a = ctx.in(0);
  const b = ctx.in(1);
  if (a.shape.length !== 2 || b.shape.length !== 2)
    ctx.fail(`A and B must be 2-D: ${ctx.shapeStr(a.shape)} x ${ctx.shapeStr(b.shape)}`);
  if (a.dtype !== b.dtype) ctx.fail(`input types differ: ${a.dtype} vs ${b.dtype}`);
  const [m, k1] = ctx.int('transA', 0) ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [k2, n] = ctx.int('transB', 0) ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (!compatible(k1, k2)) {
    ctx.fail(
      `inner dimensions differ: ${ctx.shapeStr(a.shape)} x ${ctx.shapeStr(b.shape)} (transA=${ctx.int('transA', 0)}, transB=${ctx.int('transB', 0)})`,
    );
  }
  const out: Shape = [canon(m), canon(n)];
  const c = ctx.opt(2);
  if (c?.shape) {
    const bc = broadcastShapes(ctx, [out, c.shape]);
    if (bc && (bc.length !== 2 || !dimEq(bc[0], out[0]) || !dimEq(bc[1], out[1]))) {
      ctx.fail(`C ${ctx.shapeStr(c.shape)} does not broadcast to ${ctx.shapeStr(out)}`);
    }
  }
  return [{ dtype: a.dtype, shape: out }];
};

/** Einsum, including '...' (broadcast batch dims) and implicit output (sorted letters that appear once). */
export const einsum: InferFn = (ctx: InferContext) => {
  const eq = ctx.str('equation', '').replace(/\s+/g, '');
  if (!eq) ctx.fail('missing equation');
  const [lhs, rhsGiven] = eq.split('->');
  const terms = lhs.split(',');
  const ins = ctx.inputs.map((_, i) => ctx.in(i));
  if (terms.length !== ins.length)
    ctx.fail(`equation '${eq}' has ${terms.length} operands, node has ${ins.length} inputs`);
  const dtype: DType = ins[0].dtype;
  const sizes = new Map<string, Dim>();
  const counts = new Map<string, number>();
  let ellipsis: Shape = [];
  terms.forEach((t, i) => {
    const shape = ins[i].shape;
    const hasEll = t.includes('...');
    const letters = t.replace('...', '').split('');
    const ellRank = shape.length - letters.length;
    if (ellRank < 0 || (!hasEll && ellRank !== 0))
      ctx.fail(`operand ${i} '${t}' does not match shape ${ctx.shapeStr(shape)}`);
    const pos = hasEll ? t.indexOf('...') : letters.length;
    const ell = shape.slice(pos, pos + ellRank);
    const named = [...shape.slice(0, pos), ...shape.slice(pos + ellRank)];
    if (hasEll) {
      const r = Math.max(ellipsis.length, ell.length);
      const merged: Dim[] = [];
      for (let j = 0; j < r; j++) {
        const a = ellipsis[ellipsis.length - r + j] ?? 1;
        const b = ell[ell.length - r + j] ?? 1;
        const d = broadcastDim(a, b);
        if (d === undefined) ctx.fail(`'...' dimensions do not broadcast in operand ${i}`);
        merged.push(d);
      }
      ellipsis = merged;
    }
    letters.forEach((ch, j) => {
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
      const d = named[j];
      const prev = sizes.get(ch);
      if (prev === undefined || prev === 1) sizes.set(ch, d);
      else if (d !== 1 && !compatible(prev, d)) ctx.fail(`index '${ch}' has sizes ${prev} and ${d}`);
    });
  });
  const rhs =
    rhsGiven ??
    `${lhs.includes('...') ? '...' : ''}${[...counts.entries()]
      .filter(([, c]) => c === 1)
      .map(([k]) => k)
      .sort()
      .join('')}`;
  const out: Dim[] = [];
  for (let i = 0; i < rhs.length; i++) {
    if (rhs.startsWith('...', i)) {
      out.push(...ellipsis);
      i += 2;
      continue;
    }
    const d = sizes.get(rhs[i]);
    if (d === undefined) ctx.fail(`output index '${rhs[i]}' does not appear in the inputs`);
    out.push(canon(d));
  }
  return [{ dtype, shape: out }];
};
