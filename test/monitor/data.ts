/**
 * Seeded samples for the monitor tests. test/monitor/scipy_reference.py regenerates the same numbers (a port of
 * mulberry32 and the same Box–Muller transform) and computes the expected statistics with scipy/numpy.
 */
import { createRng } from '../../src/util/rng.ts';

/** n normal draws with mean mu and standard deviation sd (Box–Muller, cosine branch only). */
export function normals(seed: number, n: number, mu = 0, sd = 1): number[] {
  const rng = createRng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u1 = rng.next();
    const u2 = rng.next();
    out.push(mu + sd * Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2));
  }
  return out;
}

/** n categorical draws from `categories` with probabilities `p` (inverse CDF on one uniform each). */
export function categorical(seed: number, n: number, categories: string[], p: number[]): string[] {
  const rng = createRng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    let acc = 0;
    let k = 0;
    while (k < p.length - 1 && u >= (acc += p[k])) k++;
    out.push(categories[k]);
  }
  return out;
}
