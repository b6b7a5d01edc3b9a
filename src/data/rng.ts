/**
 * Small seeded PRNG used wherever Tailor needs reproducible randomness (splits, augmentation, bootstrap,
 * shuffling in training). Math.random cannot be seeded, and a run must be replayable from its recorded seed.
 */

/** A reproducible stream of pseudo-random numbers. */
export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[];
  /** A fresh generator derived from this one, so sub-tasks don't perturb each other's sequences. */
  fork(): Rng;
}

/** Hashes a string to a 32-bit seed (FNV-1a), so seeds can be names as well as numbers. */
export function seedFromString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * mulberry32: 32-bit state, passes the usual statistical batteries for this kind of use and is trivially
 * portable, so sequences are identical on every platform and Node version.
 */
export function createRng(seed: number | string): Rng {
  let state = (typeof seed === 'string' ? seedFromString(seed) : seed) >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng: Rng = {
    next,
    int(n: number): number {
      return Math.floor(next() * n);
    },
    shuffle<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const tmp = items[i];
        items[i] = items[j];
        items[j] = tmp;
      }
      return items;
    },
    fork(): Rng {
      return createRng(Math.floor(next() * 4294967296));
    },
  };
  return rng;
}
