import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphError } from '../../src/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph, type Graph, type Node } from '../../src/onnx/ir.ts';
import {
  consumerMap,
  extractSubgraph,
  nameAllocator,
  producerMap,
  pruneDead,
  renameValue,
  topoOrder,
  topoSort,
  typeOf,
  uniqueName,
  validateModel,
} from '../../src/onnx/graph.ts';
import { isKnownOp } from '../../src/onnx/known-ops.ts';
import { Session, ort } from '../../src/runtime/session.ts';

/**
 * x[2,3] -> a = x + c1 -> r = relu(a) -> y = r * c2 (output)
 *                     \-> dead = neg(a) -> dead2 = abs(dead)       (no output uses these)
 */
function sample(): { g: Graph; a: string; r: string; y: string; dead: string } {
  const b = new GraphBuilder('sample');
  const x = b.input('x', 'float32', [2, 3]);
  const c1 = b.initializer('c1', 'float32', Float32Array.of(1, -2, 3), [3]);
  const c2 = b.initializer('c2', 'float32', Float32Array.of(2), [1]);
  b.initializer('unused', 'float32', Float32Array.of(9), [1]);
  const a = b.add(x, c1);
  const r = b.relu(a);
  const dead = b.neg(a);
  b.abs(dead);
  const y = b.mul(r, c2);
  b.output(y, 'float32', [2, 3]);
  b.graph.valueInfo.set(a, { name: a, dtype: 'float32', shape: [2, 3] });
  b.graph.valueInfo.set(r, { name: r, dtype: 'float32', shape: [2, 3] });
  b.graph.valueInfo.set(dead, { name: dead, dtype: 'float32', shape: [2, 3] });
  return { g: b.graph, a, r, y, dead };
}

const names = (ns: Node[]): string[] => ns.map((n) => n.name);

describe('topological order', () => {
  it('sorts shuffled nodes so every input is produced first, keeping the original order where free', () => {
    const { g } = sample();
    const shuffled = { ...g, nodes: [g.nodes[4], g.nodes[2], g.nodes[3], g.nodes[1], g.nodes[0]] };
    const sorted = topoSort(shuffled);
    const seen = new Set(['x', 'c1', 'c2', 'unused']);
    for (const n of sorted.nodes) {
      for (const i of n.inputs) assert.ok(seen.has(i), `${n.name} reads ${i} before it is produced`);
      for (const o of n.outputs) seen.add(o);
    }
    // Add first (only ready node); then, among ready nodes, the original positions: Neg(1) before Relu(3).
    assert.deepEqual(names(sorted.nodes), ['Add', 'Neg', 'Abs', 'Relu', 'Mul']);
    assert.deepEqual(names(shuffled.nodes), ['Mul', 'Neg', 'Abs', 'Relu', 'Add'], 'input graph untouched');
    assert.deepEqual(names(topoOrder(g)), names(g.nodes), 'an already sorted graph keeps its order');
  });

  it('names the nodes of a cycle', () => {
    const b = new GraphBuilder('loop');
    const x = b.input('x', 'float32', [1]);
    b.node('Relu', [x], {}, { outputs: ['ok'], name: 'fine' });
    b.node('Add', ['ok', 'p3'], {}, { outputs: ['p1'], name: 'n1' });
    b.node('Neg', ['p1'], {}, { outputs: ['p2'], name: 'n2' });
    b.node('Abs', ['p2'], {}, { outputs: ['p3'], name: 'n3' });
    b.output('p3');
    assert.throws(
      () => topoSort(b.graph),
      (e: unknown) => {
        assert.ok(e instanceof GraphError);
        assert.equal(e.message, "graph 'loop' has a cycle: n1 -> n2 -> n3 -> n1");
        assert.deepEqual(e.context.details, { cycle: ['n1', 'n2', 'n3'] });
        return true;
      },
    );
  });
});

describe('maps and lookups', () => {
  it('producer and consumer maps', () => {
    const { g, a, r } = sample();
    const prod = producerMap(g);
    assert.equal(prod.get(a)?.opType, 'Add');
    assert.equal(prod.get('x'), undefined);
    const cons = consumerMap(g);
    assert.deepEqual(
      cons.get(a)?.map((n) => n.opType),
      ['Relu', 'Neg'],
    );
    assert.deepEqual(
      cons.get(r)?.map((n) => n.opType),
      ['Mul'],
    );
    assert.deepEqual(
      cons.get('c1')?.map((n) => n.opType),
      ['Add'],
    );
  });

  it('typeOf finds inputs, initializers, valueInfo and outputs', () => {
    const { g, a, y } = sample();
    assert.deepEqual(typeOf(g, 'x'), { name: 'x', dtype: 'float32', shape: [2, 3] });
    assert.deepEqual(typeOf(g, 'c1'), { name: 'c1', dtype: 'float32', shape: [3] });
    assert.deepEqual(typeOf(g, a), { name: a, dtype: 'float32', shape: [2, 3] });
    assert.deepEqual(typeOf(g, y), { name: y, dtype: 'float32', shape: [2, 3] });
    assert.equal(typeOf(g, 'nothing'), undefined);
  });

  it('unique names avoid every value and node name', () => {
    const { g } = sample();
    assert.equal(uniqueName(g, 'fresh'), 'fresh');
    assert.equal(uniqueName(g, 'x'), 'x_1');
    assert.equal(uniqueName(g, 'Add'), 'Add_1', 'node names count too');
    const next = nameAllocator(g);
    assert.deepEqual([next('c1'), next('c1'), next('c1')], ['c1_1', 'c1_2', 'c1_3']);
  });
});

describe('renameValue', () => {
  it('renames a value in producers, consumers, outputs and valueInfo, without touching the original', () => {
    const { g, a, y } = sample();
    const g2 = renameValue(g, a, 'hidden');
    assert.ok(!JSON.stringify(g2.nodes).includes(`"${a}"`));
    assert.deepEqual(producerMap(g2).get('hidden')?.opType, 'Add');
    assert.deepEqual(
      consumerMap(g2)
        .get('hidden')
        ?.map((n) => n.opType),
      ['Relu', 'Neg'],
    );
    assert.deepEqual(g2.valueInfo.get('hidden'), { name: 'hidden', dtype: 'float32', shape: [2, 3] });
    assert.ok(!g2.valueInfo.has(a));
    assert.ok(producerMap(g).has(a), 'original unchanged');
    const g3 = renameValue(renameValue(g2, y, 'logits'), 'c1', 'bias');
    assert.equal(g3.outputs[0].name, 'logits');
    assert.equal(g3.initializers.get('bias')?.name, 'bias');
    assert.ok(!g3.initializers.has('c1'));
    const g4 = renameValue(g3, 'x', 'pixels');
    assert.equal(g4.inputs[0].name, 'pixels');
    assert.deepEqual(g4.nodes[0].inputs, ['pixels', 'bias']);
  });

  it('refuses a clash or a missing value', () => {
    const { g, a } = sample();
    assert.throws(() => renameValue(g, a, 'c1'), /'c1' is already used/);
    assert.throws(() => renameValue(g, 'ghost', 'z'), /no such value/);
  });

  it('renames outer-scope reads inside If branches, but not a branch value that shadows it', () => {
    const b = new GraphBuilder('cond');
    const x = b.input('x', 'float32', [1]);
    const c = b.input('c', 'bool', []);
    const branch = (name: string, shadow: boolean): Graph => {
      const s = new GraphBuilder(name);
      if (shadow) {
        s.node('Identity', [x], {}, { outputs: ['t'] });
        s.graph.nodes.push({
          name: 'inner',
          opType: 'Neg',
          domain: '',
          inputs: ['t'],
          outputs: [`${name}_out`],
          attrs: {},
        });
      } else {
        s.graph.nodes.push({
          name: 'inner',
          opType: 'Neg',
          domain: '',
          inputs: ['t'],
          outputs: [`${name}_out`],
          attrs: {},
        });
      }
      s.graph.outputs.push({ name: `${name}_out`, dtype: 'float32', shape: [1] });
      return s.graph;
    };
    b.node('Relu', [x], {}, { outputs: ['t'] });
    b.node(
      'If',
      [c],
      {
        then_branch: { type: 'graph', value: branch('then', false) },
        else_branch: { type: 'graph', value: branch('else', true) },
      },
      { outputs: ['y'] },
    );
    b.output('y');
    const g2 = renameValue(b.graph, 't', 'u');
    const ifNode = g2.nodes[1];
    const thenG = (ifNode.attrs.then_branch as { value: Graph }).value;
    const elseG = (ifNode.attrs.else_branch as { value: Graph }).value;
    assert.deepEqual(thenG.nodes[0].inputs, ['u'], 'outer read renamed');
    assert.deepEqual(elseG.nodes[1].inputs, ['t'], 'shadowed local kept');
    // The If node consumes 't' through its branch, so pruning keeps Relu.
    assert.deepEqual(names(pruneDead(b.graph).nodes), ['Relu', 'If']);
  });
});

describe('pruneDead and extractSubgraph', () => {
  it('pruneDead removes dead nodes, unused initializers and stale valueInfo', () => {
    const { g, dead } = sample();
    const p = pruneDead(g);
    assert.deepEqual(names(p.nodes), ['Add', 'Relu', 'Mul']);
    assert.deepEqual([...p.initializers.keys()].sort(), ['c1', 'c2']);
    assert.ok(!p.valueInfo.has(dead));
    assert.equal(p.inputs.length, 1);
    assert.equal(g.nodes.length, 5, 'original unchanged');
  });

  it('extracts the minimal graph for an intermediate output, and it runs in ORT', async () => {
    const { g, r } = sample();
    const sub = extractSubgraph(g, [r]);
    assert.deepEqual(names(sub.nodes), ['Add', 'Relu']);
    assert.deepEqual([...sub.initializers.keys()], ['c1']);
    assert.deepEqual(sub.outputs, [{ name: r, dtype: 'float32', shape: [2, 3] }]);
    const s = await Session.create(modelFromGraph(sub));
    const x = [0.5, 1, -4, -2, 3, 0];
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 3]) });
    const c1 = [1, -2, 3];
    assert.deepEqual(
      Array.from(out[r].data as Float32Array),
      x.map((v, i) => Math.max(0, v + c1[i % 3])),
    );
    await s.release();
  });

  it('extracts with new inputs, cutting off their producers', () => {
    const { g, a, y } = sample();
    const sub = extractSubgraph(g, [y], [a]);
    assert.deepEqual(names(sub.nodes), ['Relu', 'Mul']);
    assert.deepEqual(sub.inputs, [{ name: a, dtype: 'float32', shape: [2, 3] }]);
    assert.deepEqual([...sub.initializers.keys()], ['c2']);
    assert.throws(
      () => extractSubgraph(g, [y], ['c2']),
      (e: unknown) =>
        e instanceof GraphError && /also depend on \[x\], which are not among the given inputs/.test(e.message),
    );
    assert.throws(() => extractSubgraph(g, ['nope']), /value 'nope' does not exist/);
  });
});

describe('validateModel', () => {
  const check = (g: Graph, pattern: RegExp, opsets = [{ domain: '', version: 17 }]): void => {
    const m = { ...modelFromGraph(g), opsetImports: opsets };
    assert.throws(
      () => validateModel(m, { file: 'm.onnx' }),
      (e: unknown) => {
        assert.ok(e instanceof GraphError, String(e));
        assert.match(e.message, pattern);
        return true;
      },
    );
  };

  it('accepts a well-formed graph, including com.microsoft ops', () => {
    const { g } = sample();
    validateModel(modelFromGraph(g));
    const b = new GraphBuilder('ms');
    const x = b.input('x', 'float32', [2, 2]);
    b.output(b.op('FusedMatMul', [x, x], { transB: 1 }, { domain: 'com.microsoft' }));
    const m = modelFromGraph(b.graph);
    assert.deepEqual(
      m.opsetImports.map((o) => o.domain),
      ['', 'com.microsoft'],
    );
    validateModel(m);
  });

  it('rejects unknown ops and ops newer than the opset', () => {
    const b = new GraphBuilder('u');
    const x = b.input('x', 'float32', [2]);
    b.output(b.op('Frobnicate', [x]));
    check(b.graph, /^m\.onnx: node 'Frobnicate' has unknown op 'Frobnicate' for domain 'ai\.onnx' at opset 17$/);
    const b2 = new GraphBuilder('v');
    b2.output(b2.op('Gelu', [b2.input('x', 'float32', [2])]));
    check(b2.graph, /node 'Gelu' has unknown op 'Gelu' for domain 'ai\.onnx' at opset 17/);
    validateModel({ ...modelFromGraph(b2.graph), opsetImports: [{ domain: '', version: 20 }] });
    const b3 = new GraphBuilder('w');
    b3.output(b3.op('NotAnOp', [b3.input('x', 'float32', [2])], {}, { domain: 'com.microsoft' }));
    check(b3.graph, /unknown op 'NotAnOp' for domain 'com\.microsoft'/, [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ]);
    check(b3.graph, /imports no opset for domain 'com\.microsoft'/);
  });

  it('rejects undefined inputs, duplicate outputs, undefined graph outputs and bad initializer sizes', () => {
    const b = new GraphBuilder('bad');
    const x = b.input('x', 'float32', [2]);
    b.node('Add', [x, 'ghost'], {}, { outputs: ['y'], name: 'adder' });
    b.output('y');
    check(
      b.graph,
      /node 'adder' \(Add\) reads 'ghost', which is not a graph input, an initializer or any node's output/,
    );

    const d = new GraphBuilder('dup');
    const dx = d.input('x', 'float32', [2]);
    d.node('Relu', [dx], {}, { outputs: ['y'], name: 'one' });
    d.graph.nodes.push({ name: 'two', opType: 'Neg', domain: '', inputs: [dx], outputs: ['y'], attrs: {} });
    d.output('y');
    check(d.graph, /value 'y' is produced by both node 'one' and node 'two' \(Neg\)/);

    const o = new GraphBuilder('out');
    o.input('x', 'float32', [2]);
    o.output('missing');
    check(o.graph, /graph output 'missing' is not produced by any node/);

    const s = sample().g;
    s.initializers.set('c1', { ...s.initializers.get('c1')!, dims: [4] });
    check(s, /initializer 'c1' \(float32\[4\]\) should hold 16 bytes but has 12/);
  });

  it('known-op table spot checks', () => {
    assert.ok(isKnownOp('', 'LayerNormalization', 14), 'ORT runs LayerNormalization below opset 17');
    assert.ok(isKnownOp('', 'Trilu', 14) && !isKnownOp('', 'Trilu', 13));
    assert.ok(isKnownOp('', 'ScatterND', 11) && !isKnownOp('', 'ScatterND', 10));
    assert.ok(isKnownOp('com.microsoft', 'Gelu', 1) && isKnownOp('com.microsoft', 'SkipLayerNormalization', 1));
    assert.ok(isKnownOp('ai.onnx.ml', 'Anything', 1), 'other domains are not checked');
  });
});
