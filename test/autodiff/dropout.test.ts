import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rewriteDropoutToNoise } from '../../src/autodiff/dropout.ts';
import { buildGradientGraph } from '../../src/autodiff/index.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph } from '../../src/onnx/ir.ts';
import { ort, Session } from '../../src/runtime/session.ts';
import { checkGradients, floats, rng, uniform } from './fd.ts';

function dropoutGraph(): { b: GraphBuilder; y: string } {
  const b = new GraphBuilder('d');
  b.input('x', 'float32', [4, 8]);
  const t = b.constant('bool', Uint8Array.of(1), []);
  const y = b.op('Dropout', [b.tanh('x'), b.scalar(0.25), t], { seed: 3 });
  return { b, y };
}

describe('Dropout', () => {
  it('ONNX Dropout in training mode: dX = dY · mask / (1 − ratio) with the forward mask', async () => {
    const { b, y } = dropoutGraph();
    const w = b.constant(
      'float32',
      Float32Array.from({ length: 32 }, (_, i) => (i % 5) - 2),
      [4, 8],
    );
    const loss = b.op('ReduceSum', [b.mul(y, w)], { keepdims: 0 });
    b.output(loss);
    const { graph, gradients } = buildGradientGraph(b.graph, { loss, wrt: ['x'] });
    const drop = graph.nodes.find((n) => n.opType === 'Dropout')!;
    assert.ok(drop.outputs[1], 'the rule gives the Dropout node a mask output');
    graph.outputs.push({ name: drop.outputs[1], dtype: 'bool', shape: [4, 8] });
    const s = await Session.create(modelFromGraph(graph));
    const xs = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
    const r = await s.run({ x: new ort.Tensor('float32', xs, [4, 8]) });
    await s.release();
    const mask = r[drop.outputs[1]].data as Uint8Array;
    const g = r[gradients.get('x')!].data as Float32Array;
    let kept = 0;
    for (let i = 0; i < 32; i++) {
      const t = Math.tanh(xs[i]);
      const want = mask[i] ? (((i % 5) - 2) * (1 - t * t)) / 0.75 : 0;
      kept += mask[i];
      assert.ok(Math.abs(g[i] - want) < 1e-5, `element ${i}: ${g[i]} vs ${want}`);
    }
    assert.ok(kept > 8 && kept < 32, `mask keeps ${kept} of 32`);
  });

  it('rewriteDropoutToNoise: the mask comes from a fed noise input, forward and gradient follow it', async () => {
    const { b, y } = dropoutGraph();
    b.output(y);
    const { graph, noise } = rewriteDropoutToNoise(b.graph);
    assert.deepEqual(
      noise.map((n) => [n.name, n.shape, n.ratio]),
      [['dropout_noise_0', [4, 8], 0.25]],
    );
    assert.equal(
      graph.nodes.some((n) => n.opType === 'Dropout'),
      false,
    );
    const r = rng(9);
    const nz = Float32Array.from(uniform(r, 32, 0, 1));
    const xs = Float32Array.from(uniform(r, 32));
    const s = await Session.create(modelFromGraph(graph));
    const out = (
      await s.run({ x: new ort.Tensor('float32', xs, [4, 8]), dropout_noise_0: new ort.Tensor('float32', nz, [4, 8]) })
    )[y].data as Float32Array;
    await s.release();
    for (let i = 0; i < 32; i++) {
      const want = nz[i] < 0.75 ? Math.tanh(xs[i]) / 0.75 : 0;
      assert.ok(Math.abs(out[i] - want) < 1e-6, `element ${i}`);
    }
    await checkGradients(graph, {
      dtype: 'float32',
      wrt: ['x'],
      outputs: [y],
      feeds: {
        x: { dtype: 'float32', dims: [4, 8], data: xs },
        dropout_noise_0: { dtype: 'float32', dims: [4, 8], data: floats('float32', nz) },
      },
    });
  });
});
