/** fuseGelu: exact-GELU subgraphs in standard ops become one com.microsoft Gelu with the same values. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuseGelu } from '../../src/autodiff/fuse.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph, type Graph } from '../../src/onnx/ir.ts';
import { Session, ort } from '../../src/runtime/session.ts';

type Form = (b: GraphBuilder, x: string) => string;
const erfDiv = (b: GraphBuilder, x: string): string => b.erf(b.div(x, b.scalar(Math.SQRT2)));
const erfMul = (b: GraphBuilder, x: string): string => b.erf(b.mul(x, b.scalar(Math.SQRT1_2)));
const forms: Record<string, Form> = {
  'builder / Optimum: ((x·(1+erf(x/√2)))·0.5)': (b, x) => b.gelu(x),
  '(x·0.5)·(erf(x·(1/√2))+1)': (b, x) => b.mul(b.mul(x, b.scalar(0.5)), b.add(erfMul(b, x), b.scalar(1))),
  '((1+erf)·0.5)·x': (b, x) => b.mul(b.mul(b.add(b.scalar(1), erfDiv(b, x)), b.scalar(0.5)), x),
  '0.5·(x·(1+erf))': (b, x) => b.mul(b.scalar(0.5), b.mul(b.add(erfDiv(b, x), b.scalar(1)), x)),
};

function model(form: Form, extra?: (b: GraphBuilder, x: string, y: string) => string): Graph {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'float32', [3, 4]);
  const h = b.add(x, b.scalar(0.25));
  const y = form(b, h);
  b.output(b.node('Identity', [extra ? extra(b, h, y) : y], {}, { outputs: ['out'] })[0], 'float32', [3, 4]);
  return b.graph;
}

async function run(g: Graph, xs: Float32Array): Promise<Float32Array> {
  const s = await Session.create(modelFromGraph(g), { optimizationLevel: 'disabled' });
  const out = await s.run({ x: new ort.Tensor('float32', xs, [3, 4]) });
  await s.release();
  return out.out.data as Float32Array;
}

test('every association order of the exact GELU is fused, with unchanged values', async () => {
  const xs = Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 2);
  for (const [name, form] of Object.entries(forms)) {
    const g = model(form);
    const { graph, fused } = fuseGelu(g);
    assert.equal(fused, 1, name);
    assert.deepEqual(
      graph.nodes.filter((n) => n.opType !== 'Constant').map((n) => n.opType),
      ['Add', 'Gelu', 'Identity'],
      name,
    );
    const [a, b] = [await run(g, xs), await run(graph, xs)];
    // JS reference: x·Φ(x) at x = -2.75 is -0.00822 (tables), and both graphs agree to float32 rounding
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-6, `${name} [${i}]: ${a[i]} vs ${b[i]}`);
    assert.ok(Math.abs(b[0] - -0.0082) < 1e-4, `${name}: gelu(-2.75) = ${b[0]}`);
  }
});

test('not fused when an intermediate has another consumer, or for other constants', () => {
  // the 1+erf value is used twice
  const shared = model(
    (b, x) => b.gelu(x),
    (b, x, y) => b.add(y, b.node('Erf', [x])[0]),
  );
  assert.equal(fuseGelu(shared).fused, 1, 'a separate Erf of x does not block fusion');
  const b = new GraphBuilder('g');
  const x = b.input('x', 'float32', [3, 4]);
  const onePlus = b.add(erfDiv(b, x), b.scalar(1));
  const y = b.mul(b.mul(x, onePlus), b.scalar(0.5));
  b.output(b.node('Add', [y, onePlus], {}, { outputs: ['out'] })[0], 'float32', [3, 4]);
  assert.equal(fuseGelu(b.graph).fused, 0, '1+erf feeds another node');
  const c = new GraphBuilder('g');
  const x2 = c.input('x', 'float32', [3, 4]);
  c.output(
    c.node(
      'Mul',
      [c.mul(x2, c.add(c.erf(c.div(x2, c.scalar(2))), c.scalar(1))), c.scalar(0.5)],
      {},
      { outputs: ['out'] },
    )[0],
    'float32',
    [3, 4],
  );
  assert.equal(fuseGelu(c.graph).fused, 0, 'erf(x/2) is not GELU');
});
