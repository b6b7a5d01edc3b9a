/**
 * Small seeded PRNG used wherever Tailor needs reproducible randomness (splits, augmentation, bootstrap,
 * parameter initialisation). Math.random cannot be seeded, and a run must be replayable from its recorded seed.
 * The training loop's own stream (`TrainRng`, xoshiro128**) is in this module too: it needs a serialisable state and
 * a period long enough for millions of dropout draws per step.
 */
import { fnv1a } from './hash.ts';

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
  return fnv1a(s);
}

/** mulberry32 as a bare function: the generator behind `createRng` and seeded parameter initialisation. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * mulberry32: 32-bit state, passes the usual statistical batteries for this kind of use and is trivially
 * portable, so sequences are identical on every platform and Node version.
 */
export function createRng(seed: number | string): Rng {
  const next = mulberry32(typeof seed === 'string' ? seedFromString(seed) : seed);
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

// The training run's random stream: shuffling and dropout noise draw from it, and its whole state is four 32-bit
// words, so a checkpoint can save it and `resume` continues the same sequence.

/** The serialisable state of a {@link TrainRng}. */
export interface RngState {
  /** xoshiro128** state words (unsigned 32-bit). */
  s: [number, number, number, number];
}

/** splitmix32 spreads a small seed over the four state words (xoshiro must not start from all zeros). */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * xoshiro128**: a small, fast generator with a 2^128 period; chosen over mulberry32 (above) because dropout
 * noise draws millions of numbers per step and a 32-bit state would repeat within a long run.
 */
export class TrainRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number | RngState) {
    if (typeof seed === 'number') {
      const sm = splitmix32(seed);
      this.s0 = sm();
      this.s1 = sm();
      this.s2 = sm();
      this.s3 = sm();
    } else {
      [this.s0, this.s1, this.s2, this.s3] = seed.s;
    }
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniform unsigned 32-bit integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller; one value per call so the state advance is easy to reason about). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Fills `out` with an inverted-dropout mask: `scale` where the uniform draw u (the same draws as `fillUniform`) has
   * u >= ratio, else 0. One pass, no uniform array: the graph then needs a single Mul per dropout site.
   */
  fillDropoutMask(out: Float32Array, ratio: number, scale = 1 / (1 - ratio)): Float32Array {
    let s0 = this.s0,
      s1 = this.s1,
      s2 = this.s2,
      s3 = this.s3;
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = (r >>> 8) * (1 / 16777216) >= ratio ? scale : 0;
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    return out;
  }

  /** Fills `out` with uniform [0, 1) float32 values (24 random bits each, exactly representable). */
  fillUniform(out: Float32Array): Float32Array {
    let s0 = this.s0,
      s1 = this.s1,
      s2 = this.s2,
      s3 = this.s3;
    // Inlined copy of nextU32: dropout noise is the one place this generator is hot.
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = (r >>> 8) * (1 / 16777216);
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    return out;
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /** An independent generator seeded from this one (advances this one by four draws). */
  fork(): TrainRng {
    return new TrainRng({ s: [this.nextU32(), this.nextU32(), this.nextU32(), this.nextU32()] });
  }

  getState(): RngState {
    return { s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0] };
  }

  setState(state: RngState): void {
    [this.s0, this.s1, this.s2, this.s3] = state.s;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
