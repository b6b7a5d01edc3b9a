/**
 * Symbolic dimension arithmetic. A symbolic dim is a string holding an integer polynomial over named symbols
 * (`batch`, `seq`, `batch*seq`, `seq-1`, `2*seq+1`), kept in one canonical spelling so that two dims are equal
 * exactly when their strings are equal. This is enough for the shape arithmetic exports do (Reshape to -1,
 * Concat of symbolic lengths, Slice with offsets) and lets `specialize` evaluate every derived dim once its
 * symbols are bound. Symbol names that are not plain identifiers (ONNX dim_params can be anything) are
 * treated as atoms and written in parentheses inside compound expressions.
 */
import type { Dim, Shape } from '../ir.ts';

/** monomial key (sorted factor names joined by '*', '' for the constant term) -> integer coefficient */
export type Poly = Map<string, number>;

const IDENT = /^[A-Za-z_][\w.:]*$/;

function atomKey(name: string): string {
  return IDENT.test(name) ? name : `(${name})`;
}

function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (ch === sep && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Parses a dim; a string that is not a polynomial in Tailor's grammar becomes one atomic symbol. */
export function toPoly(d: Dim): Poly {
  if (typeof d === 'number') return d === 0 ? new Map() : new Map([['', d]]);
  const parsed = tryParse(d);
  return parsed ?? new Map([[atomKey(d), 1]]);
}

function tryParse(s: string): Poly | undefined {
  // 'sequence length' is one name, not a product
  if (/[\w)]\s+[\w(]/.test(s.replace(/\([^()]*\)/g, 'X'))) return undefined;
  let src = '';
  let depth0 = 0;
  for (const ch of s) {
    if (ch === '(') depth0++;
    if (ch === ')') depth0--;
    if (depth0 > 0 || !/\s/.test(ch)) src += ch;
  }
  if (!src) return undefined;
  // '-' only as a term sign: rewrite a-b as a+-b outside parentheses
  let rewritten = '';
  let depth = 0;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === '-' && depth === 0 && i > 0 && src[i - 1] !== '+' && src[i - 1] !== '*') rewritten += '+-';
    else rewritten += ch;
  }
  const p: Poly = new Map();
  for (const term of splitTop(rewritten, '+')) {
    if (!term) return undefined;
    let coef = 1;
    let body = term;
    if (body.startsWith('-')) {
      coef = -1;
      body = body.slice(1);
    }
    const names: string[] = [];
    for (const f of splitTop(body, '*')) {
      if (/^\d+$/.test(f)) coef *= Number(f);
      else if (IDENT.test(f)) names.push(f);
      else if (f.startsWith('(') && f.endsWith(')') && !f.slice(1, -1).includes('(')) names.push(f);
      else return undefined;
    }
    names.sort();
    const key = names.join('*');
    p.set(key, (p.get(key) ?? 0) + coef);
  }
  for (const [k, v] of p) if (v === 0) p.delete(k);
  return p;
}

/** The canonical dim for a polynomial: a number when it has no symbols. */
export function fromPoly(p: Poly): Dim {
  const terms = [...p.entries()].filter(([, c]) => c !== 0);
  if (terms.every(([k]) => k === '')) return terms.length ? terms[0][1] : 0;
  // symbolic terms first (by name), constant last: `seq-1`, `2*seq+1`
  terms.sort(([a], [b]) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : a > b ? 1 : 0));
  let s = '';
  for (const [k, c] of terms) {
    const mag = Math.abs(c);
    const body = k === '' ? String(mag) : mag === 1 ? k : `${mag}*${k}`;
    s += s === '' ? (c < 0 ? `-${body}` : body) : c < 0 ? `-${body}` : `+${body}`;
  }
  return s;
}

/** Canonical spelling of a dim (so `seq*batch` and `batch*seq` compare equal). */
export function canon(d: Dim): Dim {
  return typeof d === 'number' ? d : fromPoly(toPoly(d));
}

export function isStatic(shape: Shape | undefined): shape is number[] {
  return shape !== undefined && shape.every((d) => typeof d === 'number');
}

export function dimEq(a: Dim, b: Dim): boolean {
  return canon(a) === canon(b);
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  const p = new Map(toPoly(a));
  for (const [k, c] of toPoly(b)) p.set(k, (p.get(k) ?? 0) + c);
  return fromPoly(p);
}

export function dimSub(a: Dim, b: Dim): Dim {
  return dimAdd(a, dimScale(b, -1));
}

export function dimScale(a: Dim, k: number): Dim {
  if (typeof a === 'number') return a * k;
  const p: Poly = new Map();
  for (const [key, c] of toPoly(a)) p.set(key, c * k);
  return fromPoly(p);
}

export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  const p: Poly = new Map();
  for (const [ka, ca] of toPoly(a)) {
    for (const [kb, cb] of toPoly(b)) {
      const names = [...(ka ? ka.split('*') : []), ...(kb ? kb.split('*') : [])].sort();
      const key = names.join('*');
      p.set(key, (p.get(key) ?? 0) + ca * cb);
    }
  }
  return fromPoly(p);
}

/** a / b when the division is exact (b a single monomial dividing every term of a); otherwise undefined. */
export function dimDiv(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : undefined;
  const pb = [...toPoly(b).entries()];
  if (pb.length !== 1) return dimEq(a, b) ? 1 : undefined;
  const [kb, cb] = pb[0];
  const bNames = kb ? kb.split('*') : [];
  const p: Poly = new Map();
  for (const [ka, ca] of toPoly(a)) {
    if (ca % cb !== 0) return undefined;
    const names = ka ? ka.split('*') : [];
    for (const n of bNames) {
      const i = names.indexOf(n);
      if (i < 0) return undefined;
      names.splice(i, 1);
    }
    p.set(names.join('*'), ca / cb);
  }
  return fromPoly(p);
}

export function dimProduct(dims: readonly Dim[]): Dim {
  let r: Dim = 1;
  for (const d of dims) r = dimMul(r, d);
  return r;
}

/** Evaluates a dim with symbols bound; leaves it symbolic (canonical, partially bound) if some are unbound. */
export function bindDim(d: Dim, bindings: Readonly<Record<string, number>>): Dim {
  if (typeof d === 'number') return d;
  const p: Poly = new Map();
  for (const [k, c] of toPoly(d)) {
    let coef = c;
    const rest: string[] = [];
    for (const n of k ? k.split('*') : []) {
      const bare = n.startsWith('(') ? n.slice(1, -1) : n;
      if (Object.hasOwn(bindings, bare)) coef *= bindings[bare];
      else rest.push(n);
    }
    const key = rest.join('*');
    p.set(key, (p.get(key) ?? 0) + coef);
  }
  return fromPoly(p);
}

/** Symbols a dim mentions. */
export function dimSymbols(d: Dim): string[] {
  if (typeof d === 'number') return [];
  const out = new Set<string>();
  for (const k of toPoly(d).keys())
    for (const n of k ? k.split('*') : []) out.add(n.startsWith('(') ? n.slice(1, -1) : n);
  return [...out];
}

export function formatShape(s: Shape | undefined): string {
  return s === undefined ? '<unknown rank>' : `[${s.join(', ')}]`;
}

/**
 * Two-way broadcast of one dim. Equal dims and 1 vs d give the obvious answer; a number n > 1 against a symbol
 * gives n (the symbol must be n or 1). Two different symbols cannot be proven equal: the result keeps the left
 * operand's symbol, so `[batch, heads, seq, seq] + [batch, 1, 1, seq_k]` keeps `seq`. Returns undefined when two
 * different numbers (neither 1) meet.
 */
export function broadcastDim(a: Dim, b: Dim): Dim | undefined {
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number' && typeof b === 'number') return a === b ? a : undefined;
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return canon(a);
}
