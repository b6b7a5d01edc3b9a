/** Gradients of MatMul (batched, broadcasting), Gemm and two-operand Einsum. */
import type { GradContext, GradRule } from '../context.ts';

/**
 * a·bᵀ-style products without Transpose nodes through com.microsoft FusedMatMul (ORT's CPU kernels: float32 and
 * float64); other dtypes get an explicit Transpose + MatMul.
 */
function matmulT(
  c: GradContext,
  a: string,
  b: string,
  rankA: number,
  rankB: number,
  transA: boolean,
  transB: boolean,
): string {
  if (!transA && !transB) return c.op('MatMul', [a, b]);
  if (c.dtype === 'float32' || c.dtype === 'float64') {
    return c.op(
      'FusedMatMul',
      [a, b],
      { transA: transA ? 1 : 0, transB: transB ? 1 : 0, alpha: 1.0 },
      { domain: 'com.microsoft' },
    );
  }
  return c.op('MatMul', [transA ? c.transposeLast2(a, rankA) : a, transB ? c.transposeLast2(b, rankB) : b]);
}

export const matmul: GradRule = (c) => {
  const A = c.x(0);
  const B = c.x(1);
  const sa = c.shapeOf(A);
  const sb = c.shapeOf(B);
  let dy = c.dy()!;
  // 1-D operands are promoted to matrices by MatMul; promote dY the same way and reshape back at the end.
  let a = A;
  let b = B;
  let ra = sa.length;
  let rb = sb.length;
  const ys = [...c.shapeOf(c.y(0))];
  if (ra === 1) {
    a = c.op('Unsqueeze', [A, c.ints([0])]);
    dy = c.op('Unsqueeze', [dy, c.ints([-2])]);
    ys.splice(ys.length - 1, 0, 1);
    ra = 2;
  }
  if (rb === 1) {
    b = c.op('Unsqueeze', [B, c.ints([1])]);
    dy = c.op('Unsqueeze', [dy, c.ints([-1])]);
    ys.push(1);
    rb = 2;
  }
  const ry = ys.length;
  let dA: string | undefined;
  let dB: string | undefined;
  if (c.needs(0)) {
    // dA = dY·Bᵀ, summed over batch axes that A broadcast along
    const g = matmulT(c, dy, b, ry, rb, false, true);
    const gShape = [...ys.slice(0, -1), sb.length === 1 ? 1 : sb[sb.length - 2]];
    // a 1-D A was shared by every row and batch: sum all axes but the last
    dA =
      sa.length === 1
        ? c.reduceSum(
            g,
            Array.from({ length: ry - 1 }, (_, i) => i),
            false,
          )
        : c.unbroadcast(g, A, gShape);
  }
  if (c.needs(1)) {
    const K = sa[sa.length - 1];
    const N = ys[ys.length - 1];
    if (rb === 2 && ra > 2 && typeof K === 'number' && typeof N === 'number') {
      // the linear-layer case: fold the batch axes of A and dY into rows and do one 2-D product
      const a2 = c.reshape(a, c.ints([-1, K]));
      const dy2 = c.reshape(dy, c.ints([-1, N]));
      const g = c.op('Gemm', [a2, dy2], { transA: 1 });
      dB = sb.length === 1 ? c.reshape(g, c.shapeTensor(B)) : g;
    } else {
      const g = matmulT(c, a, dy, ra, ry, true, false);
      const gShape = [...ys.slice(0, -2), sa.length === 1 ? 1 : sa[sa.length - 1], ys[ys.length - 1]];
      dB =
        sb.length === 1
          ? c.reduceSum(g, [...Array.from({ length: ry - 2 }, (_, i) => i), ry - 1], false)
          : c.unbroadcast(g, B, gShape);
    }
  }
  return [dA, dB];
};

/** Y = alpha·A'·B' + beta·C with A' = Aᵀ if transA, B' = Bᵀ if transB. */
export const gemm: GradRule = (c) => {
  const dy = c.dy()!;
  const alpha = c.float('alpha', 1);
  const beta = c.float('beta', 1);
  const tA = c.int('transA', 0) === 1;
  const tB = c.int('transB', 0) === 1;
  const A = c.x(0);
  const B = c.x(1);
  const g = (p: string, q: string, ta: boolean, tb: boolean): string =>
    c.op('Gemm', [p, q], { alpha, transA: ta ? 1 : 0, transB: tb ? 1 : 0 });
  let dA: string | undefined;
  let dB: string | undefined;
  if (c.needs(0)) dA = tA ? g(B, dy, tB, true) : g(dy, B, false, !tB);
  if (c.needs(1)) dB = tB ? g(dy, A, true, tA) : g(A, dy, !tA, false);
  let dC: string | undefined;
  if (c.hasInput(2) && c.needs(2)) {
    const scaled = beta === 1 ? dy : c.mul(dy, c.scalar(beta));
    dC = c.unbroadcast(scaled, c.x(2), c.shapeOf(c.y(0)));
  }
  return [dA, dB, dC];
};

/**
 * Einsum with one or two operands and explicit output (`bhqd,bhkd->bhqk`): the gradient of an operand is the
 * einsum of dY with the other operand back to the operand's subscripts. Ellipses are spelled out from static
 * ranks. An index that appears only in the operand being differentiated (summed away on its own) is restored with
 * Expand.
 */
export const einsum: GradRule = (c) => {
  const eq = c.str('equation', '').replace(/\s+/g, '');
  const arrow = eq.indexOf('->');
  if (arrow < 0) throw c.error(`equation '${eq}' has no explicit output; write it with '->'`);
  const lhs = eq.slice(0, arrow).split(',');
  let out = eq.slice(arrow + 2);
  if (lhs.length > 2) throw c.error(`only one or two operands are supported, equation '${eq}'`);
  // spell out '...' with unused letters (ranks are static in shape-inferred graphs)
  const used = new Set(eq.replace(/[.,\->]/g, ''));
  const free = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('').filter((l) => !used.has(l));
  const ellRank = Math.max(0, ...lhs.map((s, i) => (s.includes('...') ? c.rankOf(c.x(i)) - (s.length - 3) : 0)));
  const ell = free.slice(0, ellRank).join('');
  const subs = lhs.map((s, i) =>
    s.includes('...') ? s.replace('...', ell.slice(ellRank - (c.rankOf(c.x(i)) - (s.length - 3)))) : s,
  );
  out = out.replace('...', ell);
  for (const s of subs)
    if (new Set(s).size !== s.length) throw c.error(`repeated index in '${s}' (diagonals) is not supported`);
  const dy = c.dy()!;
  const grads: (string | undefined)[] = [];
  for (let i = 0; i < subs.length; i++) {
    if (!c.needs(i)) {
      grads.push(undefined);
      continue;
    }
    const target = subs[i];
    const others = subs.filter((_, j) => j !== i);
    const avail = new Set([...out, ...others.join('')]);
    const kept = [...target].filter((l) => avail.has(l)).join('');
    const inputs = [dy, ...others.map((_, j) => c.x(j >= i ? j + 1 : j))];
    const eqn = `${[out, ...others].join(',')}->${kept}`;
    let g = c.op('Einsum', inputs, { equation: eqn });
    if (kept !== target) {
      // indices summed only inside this operand: broadcast the gradient back along them
      const unsq: number[] = [];
      [...target].forEach((l, k) => {
        if (!avail.has(l)) unsq.push(k);
      });
      g = c.op('Unsqueeze', [g, c.ints(unsq)]);
      g = c.op('Expand', [g, c.shapeTensor(c.x(i))]);
    }
    grads.push(g);
  }
  return grads;
};
