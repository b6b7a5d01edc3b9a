/**
 * Pre-differentiation rewrites that make training graphs cheaper without changing what they compute.
 *
 * `fuseGelu` replaces the exact GELU written in standard ops, 0.5·x·(1 + erf(x/√2)) in any of the association orders
 * exporters and builders use (Optimum: Div(x,√2) → Erf → Add 1 → Mul x → Mul 0.5), with one com.microsoft Gelu
 * node. ORT fuses that pattern itself for inference, but in a training graph the backward pass reads the
 * intermediates, which blocks ORT's fusion: five elementwise passes over the FFN activation forward and ten
 * backward become one forward and nine backward (the Gelu rule's derivative).
 */
import type { Graph, Node } from '../onnx/ir.ts';
import { cloneGraph } from '../onnx/ir.ts';
import { tensorToNumbers } from '../onnx/tensor.ts';

function scalarValue(graph: Graph, consts: Map<string, number>, name: string): number | undefined {
  if (consts.has(name)) return consts.get(name);
  const t = graph.initializers.get(name);
  if (!t || (t.dtype !== 'float32' && t.dtype !== 'float64') || t.dims.reduce((a, b) => a * b, 1) !== 1)
    return undefined;
  return tensorToNumbers(t)[0];
}

const near = (v: number | undefined, target: number): boolean =>
  v !== undefined && Math.abs(v - target) <= 1e-6 * Math.abs(target);

/** Replaces exact-GELU subgraphs with com.microsoft Gelu (float32 only). Returns a new graph and the count. */
export function fuseGelu(graph: Graph): { graph: Graph; fused: number } {
  const g = cloneGraph(graph);
  const consts = new Map<string, number>();
  for (const n of g.nodes) {
    if (n.opType === 'Constant' && n.domain === '' && n.attrs.value?.type === 'tensor') {
      const t = n.attrs.value.value;
      if ((t.dtype === 'float32' || t.dtype === 'float64') && t.dims.reduce((a, b) => a * b, 1) === 1)
        consts.set(n.outputs[0], tensorToNumbers(t)[0]);
    }
  }
  const producer = new Map<string, Node>();
  const uses = new Map<string, number>();
  for (const n of g.nodes) {
    for (const o of n.outputs) if (o) producer.set(o, n);
    for (const i of n.inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1);
  }
  for (const o of g.outputs) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  const floatType = new Map<string, string>();
  for (const v of [...g.inputs, ...g.valueInfo.values(), ...g.outputs]) floatType.set(v.name, v.dtype);
  const only = (v: string): boolean => uses.get(v) === 1;
  const prod = (v: string, op: string): Node | undefined => {
    const n = producer.get(v);
    return n && n.opType === op && n.domain === '' ? n : undefined;
  };
  /** For a binary node with a scalar-constant operand: [other operand, constant]. */
  const withConst = (n: Node): [string, number] | undefined => {
    const c1 = scalarValue(g, consts, n.inputs[1]);
    if (c1 !== undefined) return [n.inputs[0], c1];
    const c0 = n.opType === 'Mul' || n.opType === 'Add' ? scalarValue(g, consts, n.inputs[0]) : undefined;
    return c0 !== undefined ? [n.inputs[1], c0] : undefined;
  };
  /** v = 1 + erf(x/√2) with single-use intermediates: returns x and the nodes. */
  const onePlusErf = (v: string): { x: string; nodes: Node[] } | undefined => {
    const add = prod(v, 'Add');
    if (!add || !only(v)) return undefined;
    const ac = withConst(add);
    if (!ac || !near(ac[1], 1)) return undefined;
    const erf = prod(ac[0], 'Erf');
    if (!erf || !only(ac[0])) return undefined;
    const scaled = erf.inputs[0];
    const s = prod(scaled, 'Div') ?? prod(scaled, 'Mul');
    if (!s || !only(scaled)) return undefined;
    const sc = withConst(s);
    if (!sc || !(s.opType === 'Div' ? near(sc[1], Math.SQRT2) : near(sc[1], Math.SQRT1_2))) return undefined;
    if (s.opType === 'Div' && s.inputs[0] !== sc[0]) return undefined;
    return { x: sc[0], nodes: [add, erf, s] };
  };
  const removed = new Set<Node>();
  const replace = new Map<Node, Node>();
  let fused = 0;
  for (const top of g.nodes) {
    if (top.opType !== 'Mul' || top.domain !== '' || removed.has(top)) continue;
    // top = P · Q; look for {x·0.5, 1+erf}, {x, 0.5·(1+erf)} or {x·(1+erf), 0.5} with x the same value
    let match: { x: string; nodes: Node[] } | undefined;
    for (const [p, q] of [
      [top.inputs[0], top.inputs[1]],
      [top.inputs[1], top.inputs[0]],
    ]) {
      if (match) break;
      const qc = scalarValue(g, consts, q);
      const pn = producer.get(p);
      if (qc !== undefined && near(qc, 0.5) && pn && pn.opType === 'Mul' && pn.domain === '' && only(p)) {
        // (x · (1+erf)) · 0.5
        for (const [xx, e] of [
          [pn.inputs[0], pn.inputs[1]],
          [pn.inputs[1], pn.inputs[0]],
        ]) {
          const m = onePlusErf(e);
          if (m && m.x === xx) {
            match = { x: xx, nodes: [pn, ...m.nodes] };
            break;
          }
        }
      }
      if (match || !pn || pn.opType !== 'Mul' || pn.domain !== '' || !only(p)) continue;
      const pc = withConst(pn);
      if (pc && near(pc[1], 0.5)) {
        // (x · 0.5) · (1+erf) or ((1+erf) · 0.5) · x
        const m = onePlusErf(q);
        if (m && m.x === pc[0]) match = { x: pc[0], nodes: [pn, ...m.nodes] };
        const m2 = onePlusErf(pc[0]);
        if (!match && m2 && m2.x === q) match = { x: q, nodes: [pn, ...m2.nodes] };
      }
    }
    if (!match || match.nodes.some((n) => removed.has(n))) continue;
    const xt = floatType.get(match.x) ?? g.initializers.get(match.x)?.dtype;
    if (xt !== undefined && xt !== 'float32') continue;
    for (const n of match.nodes) removed.add(n);
    replace.set(top, {
      name: `${top.name || top.outputs[0]}/Gelu`,
      opType: 'Gelu',
      domain: 'com.microsoft',
      inputs: [match.x],
      outputs: [top.outputs[0]],
      attrs: {},
    });
    fused++;
  }
  if (fused === 0) return { graph: g, fused };
  g.nodes = g.nodes.filter((n) => !removed.has(n)).map((n) => replace.get(n) ?? n);
  for (const n of removed) for (const o of n.outputs) g.valueInfo.delete(o);
  return { graph: g, fused };
}
