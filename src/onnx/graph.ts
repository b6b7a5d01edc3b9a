/**
 * Queries and pure transforms over Tailor's in-memory graph: topological order, producer/consumer maps, type
 * lookup, safe renaming, unique names, dead-code removal, subgraph extraction, and structural validation.
 * Transforms return a new Graph and never mutate their argument; tensor bytes are shared, never copied.
 */
import { GraphError } from '../errors.ts';
import { bytesPerElement } from './dtype.ts';
import { cloneGraph, type Attribute, type Graph, type ModelProto, type Node, type ValueInfo } from './ir.ts';
import { isKnownOp, MS_DOMAIN } from './known-ops.ts';
import { numel } from './tensor.ts';

/** Names the subgraphs of a node (If/Loop/Scan bodies) read from the enclosing scope. */
function outerReferences(g: Graph): Set<string> {
  const local = new Set<string>([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  for (const n of g.nodes) for (const o of n.outputs) if (o) local.add(o);
  const refs = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i && !local.has(i)) refs.add(i);
    for (const r of subgraphReferences(n)) if (!local.has(r)) refs.add(r);
  }
  for (const o of g.outputs) if (!local.has(o.name)) refs.add(o.name);
  return refs;
}

function subgraphReferences(n: Node): Set<string> {
  const refs = new Set<string>();
  for (const a of Object.values(n.attrs)) if (a.type === 'graph') for (const r of outerReferences(a.value)) refs.add(r);
  return refs;
}

/** Every value a node reads: its explicit inputs plus outer-scope values its subgraphs use. */
export function nodeReads(n: Node): string[] {
  const explicit = n.inputs.filter((i) => i !== '');
  if (!Object.values(n.attrs).some((a) => a.type === 'graph')) return explicit;
  return [...new Set([...explicit, ...subgraphReferences(n)])];
}

/** Value name -> the node that produces it. */
export function producerMap(g: Graph): Map<string, Node> {
  const m = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) m.set(o, n);
  return m;
}

/** Value name -> nodes that read it (including reads from inside their subgraphs), in graph order. */
export function consumerMap(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const i of nodeReads(n)) {
      const list = m.get(i);
      if (list) {
        if (list[list.length - 1] !== n) list.push(n);
      } else m.set(i, [n]);
    }
  }
  return m;
}

/** The dtype/shape of a value, from graph inputs, outputs, initializers or valueInfo; undefined when unknown. */
export function typeOf(g: Graph, name: string): ValueInfo | undefined {
  const init = g.initializers.get(name);
  if (init) return { name, dtype: init.dtype, shape: [...init.dims] };
  const input = g.inputs.find((v) => v.name === name);
  if (input) return input;
  const vi = g.valueInfo.get(name);
  if (vi) return vi;
  return g.outputs.find((v) => v.name === name);
}

/**
 * Nodes in a topological order (stable: nodes keep their original relative order where dependencies allow).
 * Throws a GraphError naming the nodes of a cycle.
 */
export function topoOrder(g: Graph): Node[] {
  const producers = producerMap(g);
  const index = new Map<Node, number>(g.nodes.map((n, i) => [n, i]));
  const deps: number[][] = g.nodes.map(() => []);
  const dependents: number[][] = g.nodes.map(() => []);
  g.nodes.forEach((n, i) => {
    for (const r of nodeReads(n)) {
      const p = producers.get(r);
      if (p === undefined) continue;
      const j = index.get(p) as number;
      deps[i].push(j);
      dependents[j].push(i);
    }
  });
  const remaining = deps.map((d) => d.length);
  // A min-heap on original index keeps the order stable; graphs are already sorted in the common case.
  const heap: number[] = [];
  const push = (v: number): void => {
    heap.push(v);
    for (let c = heap.length - 1; c > 0;) {
      const p = (c - 1) >> 1;
      if (heap[p] <= heap[c]) break;
      [heap[p], heap[c]] = [heap[c], heap[p]];
      c = p;
    }
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap.pop() as number;
    if (heap.length) {
      heap[0] = last;
      for (let p = 0; ;) {
        const l = 2 * p + 1,
          r = l + 1;
        let m = p;
        if (l < heap.length && heap[l] < heap[m]) m = l;
        if (r < heap.length && heap[r] < heap[m]) m = r;
        if (m === p) break;
        [heap[p], heap[m]] = [heap[m], heap[p]];
        p = m;
      }
    }
    return top;
  };
  remaining.forEach((r, i) => {
    if (r === 0) push(i);
  });
  const order: Node[] = [];
  while (heap.length) {
    const i = pop();
    order.push(g.nodes[i]);
    for (const d of dependents[i]) if (--remaining[d] === 0) push(d);
  }
  if (order.length !== g.nodes.length) {
    const cycle = findCycle(g.nodes, deps, remaining);
    const names = cycle.map((i) => g.nodes[i].name);
    throw new GraphError(`graph '${g.name}' has a cycle: ${names.join(' -> ')} -> ${names[0]}`, {
      node: names[0],
      op: g.nodes[cycle[0]].opType,
      details: { cycle: names },
    });
  }
  return order;
}

/** One concrete cycle among the nodes Kahn's algorithm could not schedule. */
function findCycle(nodes: Node[], deps: number[][], remaining: number[]): number[] {
  const stuck = new Set(remaining.map((r, i) => (r > 0 ? i : -1)).filter((i) => i >= 0));
  // Walk dependency edges within the stuck set; every stuck node has a stuck dependency, so the walk must loop.
  const start = Math.min(...stuck);
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  let cur = start;
  while (!seenAt.has(cur)) {
    seenAt.set(cur, path.length);
    path.push(cur);
    const next = deps[cur].find((d) => stuck.has(d));
    if (next === undefined) break;
    cur = next;
  }
  // Dependencies point backwards along data flow; reverse so the cycle reads producer -> consumer, and start it at
  // the earliest node so the message is stable.
  const cycle = path.slice(seenAt.get(cur) ?? 0).reverse();
  const first = cycle.indexOf(Math.min(...cycle));
  return [...cycle.slice(first), ...cycle.slice(0, first)];
}

/** A copy of the graph with nodes in topological order. */
export function topoSort(g: Graph): Graph {
  const order = topoOrder(g);
  return {
    ...cloneGraph(g),
    nodes: order.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
  };
}

/** Every name in use by a value or a node (for unique-name generation). */
export function usedNames(g: Graph): Set<string> {
  const used = new Set<string>([
    ...g.inputs.map((v) => v.name),
    ...g.outputs.map((v) => v.name),
    ...g.initializers.keys(),
    ...g.valueInfo.keys(),
  ]);
  const visit = (graph: Graph): void => {
    for (const n of graph.nodes) {
      used.add(n.name);
      for (const v of [...n.inputs, ...n.outputs]) if (v) used.add(v);
      for (const a of Object.values(n.attrs))
        if (a.type === 'graph') {
          visit(a.value);
          for (const v of a.value.inputs) used.add(v.name);
        }
    }
  };
  visit(g);
  return used;
}

/**
 * A generator of names not used anywhere in the graph (nor returned before): `base`, then `base_1`, `base_2`...
 * Build one per transform when creating many names; `uniqueName` is the one-off form.
 */
export function nameAllocator(g: Graph): (base: string) => string {
  const used = usedNames(g);
  return (base: string): string => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
}

/** One name not used anywhere in the graph. */
export function uniqueName(g: Graph, base: string): string {
  return nameAllocator(g)(base);
}

/**
 * Renames value `from` to `to` everywhere: producers, consumers (also inside subgraphs that read it from the outer
 * scope), graph inputs/outputs, initializers and valueInfo. `to` must not already be in use.
 */
export function renameValue(g: Graph, from: string, to: string): Graph {
  if (from === to) return g;
  if (!from || !to)
    throw new GraphError(`cannot rename '${from}' to '${to}': value names must be non-empty`, { value: from });
  const used = usedNames(g);
  if (!used.has(from))
    throw new GraphError(`cannot rename '${from}': no such value in graph '${g.name}'`, { value: from });
  if (used.has(to))
    throw new GraphError(`cannot rename '${from}' to '${to}': '${to}' is already used in graph '${g.name}'`, {
      value: to,
    });
  return renameIn(g, from, to, true);
}

function renameIn(g: Graph, from: string, to: string, top: boolean): Graph {
  const sub = (v: string): string => (v === from ? to : v);
  // A subgraph that defines its own `from` shadows the outer one: leave it untouched.
  if (
    !top &&
    (g.inputs.some((v) => v.name === from) || g.initializers.has(from) || g.nodes.some((n) => n.outputs.includes(from)))
  )
    return g;
  const out = cloneGraph(g);
  out.nodes = out.nodes.map((n) => {
    const attrs: Record<string, Attribute> = {};
    for (const [k, a] of Object.entries(n.attrs))
      attrs[k] = a.type === 'graph' ? { type: 'graph', value: renameIn(a.value, from, to, false) } : a;
    return { ...n, inputs: n.inputs.map(sub), outputs: n.outputs.map(sub), attrs };
  });
  if (!top) {
    out.outputs = out.outputs.map((v) => (v.name === from ? { ...v, name: to } : v));
    return out;
  }
  out.inputs = out.inputs.map((v) => (v.name === from ? { ...v, name: to } : v));
  out.outputs = out.outputs.map((v) => (v.name === from ? { ...v, name: to } : v));
  const t = out.initializers.get(from);
  if (t) {
    out.initializers = new Map([...out.initializers].map(([k, v]) => (k === from ? [to, { ...t, name: to }] : [k, v])));
  }
  const vi = out.valueInfo.get(from);
  if (vi)
    out.valueInfo = new Map([...out.valueInfo].map(([k, v]) => (k === from ? [to, { ...vi, name: to }] : [k, v])));
  return out;
}

/** Indices of the nodes needed to compute `targets`, stopping at values in `stopAt`. */
function liveNodes(
  g: Graph,
  targets: Iterable<string>,
  stopAt: Set<string> = new Set(),
): { live: Set<Node>; reached: Set<string> } {
  const producers = producerMap(g);
  const live = new Set<Node>();
  const reached = new Set<string>();
  const stack = [...targets];
  while (stack.length) {
    const v = stack.pop() as string;
    if (reached.has(v)) continue;
    reached.add(v);
    if (stopAt.has(v)) continue;
    const p = producers.get(v);
    if (!p || live.has(p)) continue;
    live.add(p);
    for (const r of nodeReads(p)) stack.push(r);
  }
  return { live, reached };
}

/**
 * Removes nodes whose outputs never reach a graph output, then initializers and valueInfo entries nothing uses.
 * Graph inputs are kept (they are the graph's interface).
 */
export function pruneDead(g: Graph): Graph {
  const { live, reached } = liveNodes(
    g,
    g.outputs.map((o) => o.name),
  );
  const out = cloneGraph(g);
  out.nodes = out.nodes.filter((_, i) => live.has(g.nodes[i]));
  const keep = new Set(reached);
  out.initializers = new Map([...out.initializers].filter(([k]) => keep.has(k)));
  const produced = new Set(out.nodes.flatMap((n) => n.outputs));
  out.valueInfo = new Map([...out.valueInfo].filter(([k]) => produced.has(k)));
  return out;
}

/**
 * The minimal graph computing `outputs`. With `inputs`, those values become the graph inputs (their producers
 * are cut off) and everything the outputs need must follow from them or from initializers; without, the needed
 * original graph inputs are kept. Types come from `typeOf`; a value with no known type is a GraphError.
 */
export function extractSubgraph(g: Graph, outputs: readonly string[], inputs?: readonly string[]): Graph {
  const producers = producerMap(g);
  const known = (v: string): boolean => producers.has(v) || g.initializers.has(v) || g.inputs.some((i) => i.name === v);
  for (const v of [...outputs, ...(inputs ?? [])]) {
    if (!known(v))
      throw new GraphError(`cannot extract subgraph: value '${v}' does not exist in graph '${g.name}'`, { value: v });
  }
  const stop = new Set(inputs ?? []);
  const { live, reached } = liveNodes(g, outputs, stop);
  const sub = cloneGraph(g);
  sub.nodes = sub.nodes.filter((_, i) => live.has(g.nodes[i]));
  sub.initializers = new Map([...g.initializers].filter(([k]) => reached.has(k) && !stop.has(k)));
  const needType = (v: string, role: string): ValueInfo => {
    const t = typeOf(g, v);
    if (!t)
      throw new GraphError(
        `cannot extract subgraph: the type of ${role} '${v}' is unknown (run shape inference first)`,
        { value: v },
      );
    return { ...t, name: v, ...(t.shape ? { shape: [...t.shape] } : {}) };
  };
  if (inputs) {
    const missing = [...reached].filter((v) => !stop.has(v) && !producers.has(v) && !g.initializers.has(v));
    if (missing.length) {
      throw new GraphError(
        `cannot extract subgraph: outputs [${outputs.join(', ')}] also depend on [${missing.join(', ')}], which are not among the given inputs`,
        { value: missing[0], details: { missing } },
      );
    }
    sub.inputs = inputs.map((v) => needType(v, 'input'));
  } else {
    sub.inputs = g.inputs.filter((v) => reached.has(v.name)).map((v) => ({ ...v }));
  }
  sub.outputs = outputs.map((v) => needType(v, 'output'));
  const produced = new Set(sub.nodes.flatMap((n) => n.outputs));
  sub.valueInfo = new Map([...g.valueInfo].filter(([k]) => produced.has(k)));
  return sub;
}

export interface ValidateOptions {
  /** Named in error messages (the model's file). */
  file?: string;
}

/**
 * Structural checks before a graph reaches ONNX Runtime: ops known for their domain at the imported opset,
 * every node input defined (graph input, initializer or some node's output), no value produced twice, graph
 * outputs defined, initializer sizes matching their shapes, and no cycle. Throws a GraphError naming the file,
 * node and op.
 */
export function validateModel(model: ModelProto, opts: ValidateOptions = {}): void {
  const opsets = new Map<string, number>();
  for (const o of model.opsetImports) opsets.set(o.domain === 'ai.onnx' ? '' : o.domain, o.version);
  validateGraph(model.graph, opsets, new Set(), opts.file);
}

function validateGraph(g: Graph, opsets: Map<string, number>, outer: Set<string>, file: string | undefined): void {
  const where = file ? `${file}: ` : '';
  const ctx = (n: Node): { file?: string; node: string; op: string } => ({
    ...(file ? { file } : {}),
    node: n.name,
    op: n.opType,
  });
  for (const t of g.initializers.values()) {
    if (t.dtype === 'string') continue;
    const expected = numel(t.dims) * bytesPerElement(t.dtype);
    if (t.data.byteLength !== expected) {
      throw new GraphError(
        `${where}initializer '${t.name}' (${t.dtype}[${t.dims.join(', ')}]) should hold ${expected} bytes but has ${t.data.byteLength}`,
        { ...(file ? { file } : {}), field: t.name, details: { expected, found: t.data.byteLength } },
      );
    }
  }
  const defined = new Set<string>([...outer, ...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  const producedBy = new Map<string, Node>();
  for (const n of g.nodes) {
    for (const o of n.outputs) {
      if (!o) continue;
      const prev = producedBy.get(o);
      if (prev)
        throw new GraphError(
          `${where}value '${o}' is produced by both node '${prev.name}' and node '${n.name}' (${n.opType})`,
          { ...ctx(n), value: o },
        );
      if (g.inputs.some((v) => v.name === o) || g.initializers.has(o)) {
        throw new GraphError(
          `${where}node '${n.name}' (${n.opType}) writes output '${o}', which is already a graph input or initializer`,
          { ...ctx(n), value: o },
        );
      }
      producedBy.set(o, n);
    }
  }
  for (const n of g.nodes) {
    const domain = n.domain === 'ai.onnx' ? '' : n.domain;
    const version = opsets.get(domain);
    if (version === undefined) {
      throw new GraphError(
        `${where}node '${n.name}' uses op ${domain || 'ai.onnx'}::${n.opType}, but the model imports no opset for domain '${domain || 'ai.onnx'}'`,
        ctx(n),
      );
    }
    if ((domain === '' || domain === MS_DOMAIN) && !isKnownOp(domain, n.opType, version)) {
      throw new GraphError(
        `${where}node '${n.name}' has unknown op '${n.opType}' for domain '${domain || 'ai.onnx'}' at opset ${version}`,
        ctx(n),
      );
    }
    for (const i of n.inputs) {
      if (i && !defined.has(i) && !producedBy.has(i)) {
        throw new GraphError(
          `${where}node '${n.name}' (${n.opType}) reads '${i}', which is not a graph input, an initializer or any node's output`,
          { ...ctx(n), value: i },
        );
      }
    }
    for (const a of Object.values(n.attrs)) {
      if (a.type === 'graph') validateGraph(a.value, opsets, new Set([...defined, ...producedBy.keys()]), file);
    }
  }
  for (const o of g.outputs) {
    if (!defined.has(o.name) && !producedBy.has(o.name)) {
      throw new GraphError(`${where}graph output '${o.name}' is not produced by any node`, {
        ...(file ? { file } : {}),
        value: o.name,
      });
    }
  }
  try {
    topoOrder(g);
  } catch (e) {
    if (e instanceof GraphError && file)
      throw new GraphError(`${file}: ${e.message}`, { ...e.context, file }, { cause: e });
    throw e;
  }
}
