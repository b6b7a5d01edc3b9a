/**
 * Memory-bounded set of seen texts for streaming deduplication. A JS Set of strings costs ~100 bytes per
 * entry and keeps every text alive; here each entry is a 64-bit hash plus `width` int32 values in typed
 * arrays at a load factor of 0.375–0.75 (12–24 bytes per entry for width 0), so ten million rows fit in a
 * few hundred MB.
 * The price is a tiny false-positive rate: two different texts colliding on 64 bits, about n²/2⁶⁵
 * (≈3·10⁻⁶ for 10⁷ rows).
 */

/** 64-bit string hash as two 32-bit halves (cyrb53's mixing, both lanes kept). */
export function hash64(s: string): [number, number] {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/**
 * Open-addressing map from a string's 64-bit hash to a fixed number (`width`) of int32 values, e.g. a label
 * id plus the file index and line of the first occurrence.
 */
export class HashMap64 {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private values: Int32Array;
  private used: Uint8Array;
  private count = 0;

  constructor(
    initialCapacity = 1024,
    readonly width = 1,
  ) {
    let cap = 16;
    while (cap * 0.75 < initialCapacity) cap *= 2;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.values = new Int32Array(cap * width);
    this.used = new Uint8Array(cap);
  }

  get size(): number {
    return this.count;
  }

  /** The values stored for `key` (a view, do not keep), or undefined. */
  get(key: string): Int32Array | undefined {
    const [a, b] = hash64(key);
    const slot = this.find(a, b);
    return this.used[slot] === 1 ? this.values.subarray(slot * this.width, (slot + 1) * this.width) : undefined;
  }

  has(key: string): boolean {
    const [a, b] = hash64(key);
    return this.used[this.find(a, b)] === 1;
  }

  /** Stores `values` for `key` unless present. Returns the existing values if present, else undefined. */
  setIfAbsent(key: string, values: number[]): Int32Array | undefined {
    const [a, b] = hash64(key);
    let slot = this.find(a, b);
    const w = this.width;
    if (this.used[slot]) return this.values.subarray(slot * w, (slot + 1) * w);
    if ((this.count + 1) * 4 > this.used.length * 3) {
      this.grow();
      slot = this.find(a, b);
    }
    this.used[slot] = 1;
    this.hi[slot] = a;
    this.lo[slot] = b;
    for (let k = 0; k < w; k++) this.values[slot * w + k] = values[k] ?? 0;
    this.count++;
    return undefined;
  }

  private find(a: number, b: number): number {
    const mask = this.used.length - 1;
    let i = (b ^ Math.imul(a, 0x9e3779b1)) & mask;
    while (this.used[i] && (this.hi[i] !== a || this.lo[i] !== b)) i = (i + 1) & mask;
    return i;
  }

  private grow(): void {
    const { hi, lo, values, used } = this;
    const w = this.width;
    const cap = used.length * 2;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.values = new Int32Array(cap * w);
    this.used = new Uint8Array(cap);
    for (let i = 0; i < used.length; i++) {
      if (!used[i]) continue;
      const slot = this.find(hi[i], lo[i]);
      this.used[slot] = 1;
      this.hi[slot] = hi[i];
      this.lo[slot] = lo[i];
      this.values.set(values.subarray(i * w, (i + 1) * w), slot * w);
    }
  }
}
