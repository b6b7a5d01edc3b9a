/**
 * The one non-cryptographic string hash: FNV-1a (32-bit). Seeds derived from names (a dataset seed given as a
 * string, a tensor's module path) go through it so that the same name gives the same seed on every platform.
 */

const FNV_PRIME = 0x01000193;
export const FNV_OFFSET = 0x811c9dc5;

/** FNV-1a of `s`'s UTF-16 code units, starting from `basis` (default: FNV's offset basis); unsigned 32-bit. */
export function fnv1a(s: string, basis: number = FNV_OFFSET): number {
  let h = basis >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** A stable per-name seed under a numeric seed: FNV-1a of `name` after mixing `seed` into the basis. */
export function seedFor(seed: number, name: string): number {
  return fnv1a(name, Math.imul((FNV_OFFSET ^ (seed >>> 0)) >>> 0, FNV_PRIME));
}
