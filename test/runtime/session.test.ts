import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, GraphError, ModelFileError, RuntimeError } from '../../src/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph, type ModelProto, type Tensor } from '../../src/onnx/ir.ts';
import { tensorFromArray, tensorToArray } from '../../src/onnx/tensor.ts';
import { Session, ort } from '../../src/runtime/session.ts';
import { fromOrt, toOrt, ortTensor } from '../../src/runtime/tensors.ts';
import { listProviders, assertProvidersAvailable } from '../../src/runtime/providers.ts';
import { summarizeProfile, formatProfile } from '../../src/runtime/profile.ts';

/** y = relu(x @ W1 + b1) @ W2 + b2 with fixed small weights, and the same computed in plain JS. */
function mlp(): { model: ModelProto; reference: (x: number[], batch: number) => number[] } {
  const [IN, HID, OUT] = [4, 5, 3];
  const W1 = Array.from({ length: IN * HID }, (_, i) => Math.sin(i + 1) / 2);
  const b1 = Array.from({ length: HID }, (_, i) => (i - 2) / 10);
  const W2 = Array.from({ length: HID * OUT }, (_, i) => Math.cos(i * 0.7));
  const b2 = [0.1, -0.2, 0.3];
  const b = new GraphBuilder('mlp');
  const x = b.input('x', 'float32', ['batch', IN]);
  const h = b.scope('layer.0', () =>
    b.relu(
      b.add(
        b.matmul(x, b.initializer('w1', 'float32', Float32Array.from(W1), [IN, HID])),
        b.initializer('b1', 'float32', Float32Array.from(b1), [HID]),
      ),
    ),
  );
  const y = b.scope('layer.1', () =>
    b.add(
      b.matmul(h, b.initializer('w2', 'float32', Float32Array.from(W2), [HID, OUT])),
      b.initializer('b2', 'float32', Float32Array.from(b2), [OUT]),
    ),
  );
  b.output(y, 'float32', ['batch', OUT]);
  const f = Math.fround;
  const reference = (xs: number[], batch: number): number[] => {
    const out: number[] = [];
    for (let r = 0; r < batch; r++) {
      const hid = Array.from({ length: HID }, (_, j) => {
        let acc = 0;
        for (let k = 0; k < IN; k++) acc += xs[r * IN + k] * f(W1[k * HID + j]);
        return Math.max(0, acc + f(b1[j]));
      });
      for (let c = 0; c < OUT; c++) {
        let acc = 0;
        for (let j = 0; j < HID; j++) acc += hid[j] * f(W2[j * OUT + c]);
        out.push(acc + f(b2[c]));
      }
    }
    return out;
  };
  return { model: modelFromGraph(b.graph), reference };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `[${i}] ${a[i]} vs ${b[i]}`);
};

describe('Session', () => {
  it('runs an MLP on CPU with every optimisation level and thread setting, matching a plain-JS reference', async () => {
    const { model, reference } = mlp();
    const x = Array.from({ length: 3 * 4 }, (_, i) => (i % 5) - 2.5);
    const expected = reference(x, 3);
    for (const optimizationLevel of ['disabled', 'basic', 'extended', 'all'] as const) {
      const s = await Session.create(model, {
        optimizationLevel,
        intraOpThreads: 1,
        interOpThreads: 1,
        providers: ['cpu'],
      });
      assert.deepEqual(s.inputNames, ['x']);
      // Tailor Tensors are accepted as feeds.
      const out = await s.run({ x: tensorFromArray('x', 'float32', Float32Array.from(x), [3, 4]) });
      const y = out[s.outputNames[0]];
      assert.deepEqual(y.dims, [3, 3]);
      close(y.data as Float32Array, expected);
      await s.release();
    }
    // Worker threads that sleep instead of spinning (a pass-through to ORT's session config) give the same result.
    const quiet = await Session.create(model, { intraOpThreads: 2, allowSpinning: false });
    close(
      (await quiet.run({ x: tensorFromArray('x', 'float32', Float32Array.from(x), [3, 4]) }))[quiet.outputNames[0]]
        .data as Float32Array,
      expected,
    );
    await quiet.release();
  });

  it('refuses bad options and bad models with typed errors', async () => {
    const { model } = mlp();
    await assert.rejects(Session.create(model, { intraOpThreads: -1 }), ConfigError);
    const broken = {
      ...model,
      graph: { ...model.graph, nodes: [{ ...model.graph.nodes[0], opType: 'MatMull' }, ...model.graph.nodes.slice(1)] },
    };
    await assert.rejects(
      Session.create(broken),
      (e: unknown) => e instanceof GraphError && /unknown op 'MatMull'/.test((e as Error).message),
    );
    // With validation off, ORT's own complaint comes back as a RuntimeError.
    await assert.rejects(
      Session.create(broken, { validate: false, label: 'broken.onnx' }),
      (e: unknown) =>
        e instanceof RuntimeError && /ONNX Runtime could not load broken\.onnx/.test((e as Error).message),
    );
    await assert.rejects(Session.create(Uint8Array.of(1, 2, 3)), RuntimeError);
    await assert.rejects(
      Session.create('/no/such/model.onnx'),
      (e: unknown) =>
        e instanceof ModelFileError && e.message === 'cannot load model /no/such/model.onnx: no such file',
    );
    const s = await Session.create(model);
    await assert.rejects(s.run({ wrong: new ort.Tensor('float32', new Float32Array(4), [1, 4]) }), RuntimeError);
    await s.release();
  });
});

describe('execution providers', () => {
  it('lists what this install has; cpu is always there', () => {
    const ps = listProviders();
    const cpu = ps.find((p) => p.name === 'cpu');
    assert.deepEqual(cpu, { name: 'cpu', bundled: true, installed: true });
  });

  // CUDA's two paths, each run exactly where it can happen: the error where the libraries are missing, a real
  // computation where they are installed and an NVIDIA device is present.
  const cuda = listProviders().find((p) => p.name === 'cuda');
  const nvidia = fs.existsSync('/dev/nvidiactl');
  const missingSkip = !cuda
    ? 'this onnxruntime-node build does not list cuda'
    : cuda.installed
      ? 'the CUDA libraries are installed here, so they cannot be missing'
      : false;
  const cudaSkip = !cuda?.installed
    ? 'CUDA libraries not installed (ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node)'
    : !nvidia
      ? 'no NVIDIA device (/dev/nvidiactl) on this machine'
      : false;

  it(
    'a provider whose binaries are missing is a RuntimeError saying how to get it',
    { skip: missingSkip },
    async () => {
      const { model } = mlp();
      await assert.rejects(Session.create(model, { providers: ['cuda'] }), (e: unknown) => {
        assert.ok(e instanceof RuntimeError);
        assert.match(
          e.message,
          /execution provider 'cuda' is supported on linux\/x64 but its libraries are not installed/,
        );
        assert.match(e.message, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
        return true;
      });
    },
  );

  it('cuda, where installed with a GPU, computes the plain-JS reference', { skip: cudaSkip }, async () => {
    const { model, reference } = mlp();
    const s = await Session.create(model, { providers: ['cuda'] });
    try {
      const x = [1, 2, 3, 4, -0.5, 0.25, 2, -1];
      const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 4]) });
      // GPU matmuls may use TF32 or another summation order: a looser tolerance than the CPU's.
      close(out[s.outputNames[0]].data as Float32Array, reference(x, 2), 1e-2);
    } finally {
      await s.release();
    }
  });

  it('a provider this build lacks is named, with the available ones', () => {
    assert.throws(
      () => assertProvidersAvailable(['cpu', 'dml']),
      (e: unknown) =>
        e instanceof RuntimeError &&
        /execution provider 'dml' is not available in this onnxruntime-node build .*available: cpu/.test(
          (e as Error).message,
        ) &&
        /only available on Windows/.test((e as Error).message),
    );
  });

  it('webgpu without an adapter fails as a RuntimeError naming the provider', async (t) => {
    if (!listProviders().some((p) => p.name === 'webgpu')) {
      t.skip('no webgpu in this build');
      return;
    }
    const { model, reference } = mlp();
    let s: Session | undefined;
    try {
      s = await Session.create(model, { providers: ['webgpu'] });
    } catch (e) {
      assert.ok(e instanceof RuntimeError);
      assert.match((e as Error).message, /execution provider 'webgpu' failed to start/);
      return;
    }
    // A machine with a GPU adapter: it must then compute the right answer.
    const x = [1, 2, 3, 4];
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from(x), [1, 4]) });
    close(out[s.outputNames[0]].data as Float32Array, reference(x, 1), 1e-3);
    await s.release();
  });
});

describe('profiling', () => {
  it('summarises time per op type and per node from a real run, and cleans up the trace', async () => {
    const { model } = mlp();
    const jsonInCwd = (): string[] =>
      fs.readdirSync(process.cwd()).filter((f) => f.endsWith('.json') && /profile|ort/.test(f));
    const cwdBefore = jsonInCwd();
    const traceFile = path.join(os.tmpdir(), `tailor-trace-${process.pid}.json`);
    const s = await Session.create(model, { profile: { traceFile }, optimizationLevel: 'disabled' });
    assert.ok(s.profiling);
    const dir = s.profileDirectory!;
    assert.ok(dir.startsWith(os.tmpdir()) && fs.existsSync(dir));
    const x = new ort.Tensor('float32', new Float32Array(8).fill(1), [2, 4]);
    for (let i = 0; i < 3; i++) await s.run({ x });
    const p = await s.endProfiling();
    assert.equal(p.runs, 3);
    assert.deepEqual(p.byOpType.map((o) => o.opType).sort(), ['Add', 'MatMul', 'Relu']);
    assert.equal(p.byOpType.find((o) => o.opType === 'MatMul')!.calls, 6, '2 MatMul nodes x 3 runs');
    assert.deepEqual(p.byNode.map((n) => n.node).sort(), [
      '/layer.0/Add',
      '/layer.0/MatMul',
      '/layer.0/Relu',
      '/layer.1/Add',
      '/layer.1/MatMul',
    ]);
    for (const n of p.byNode) {
      assert.equal(n.calls, 3);
      assert.equal(n.provider, 'CPUExecutionProvider');
    }
    close([p.byOpType.reduce((a, o) => a + o.share, 0)], [1]);
    assert.ok(p.kernelUs > 0 && p.runUs >= p.kernelUs);
    assert.match(formatProfile(p), /3 run\(s\)/);
    assert.ok(JSON.parse(fs.readFileSync(traceFile, 'utf8')).length > 5, 'raw trace copied');
    fs.rmSync(traceFile);
    assert.ok(!s.profiling);
    await assert.rejects(s.endProfiling(), /profiling is not on/);
    await s.release();
    assert.deepEqual(jsonInCwd(), cwdBefore, 'no trace left in the working directory');
    assert.ok(!fs.existsSync(dir), 'temp profile folder removed');
  });

  it('release() without endProfiling also removes the trace folder', async () => {
    const s = await Session.create(mlp().model, { profile: true });
    const dir = s.profileDirectory!;
    assert.ok(fs.existsSync(dir));
    await s.release();
    assert.ok(!fs.existsSync(dir));
  });

  it('summarizeProfile on a hand-written trace', () => {
    const ev = (name: string, dur: number, op?: string): object =>
      op
        ? { cat: 'Node', name, dur, ph: 'X', args: { op_name: op, provider: 'CPUExecutionProvider' } }
        : { cat: 'Session', name, dur, ph: 'X', args: {} };
    const trace = JSON.stringify([
      ev('session_initialization', 500),
      ev('model_run', 100),
      ev('model_run', 60),
      ev('mm1_kernel_time', 40, 'MatMul'),
      ev('mm1_kernel_time', 20, 'MatMul'),
      ev('mm2_kernel_time', 30, 'MatMul'),
      ev('act_kernel_time', 10, 'Relu'),
      ev('act_kernel_time', 0, 'Relu'),
      { cat: 'Node', name: 'mm1_fence_before', dur: 99, args: { op_name: 'MatMul' } },
    ]);
    const s = summarizeProfile(trace);
    assert.deepEqual(
      { runs: s.runs, kernelUs: s.kernelUs, runUs: s.runUs, initUs: s.initUs },
      { runs: 2, kernelUs: 100, runUs: 160, initUs: 500 },
    );
    assert.deepEqual(s.byOpType, [
      { opType: 'MatMul', calls: 3, totalUs: 90, share: 0.9 },
      { opType: 'Relu', calls: 2, totalUs: 10, share: 0.1 },
    ]);
    assert.deepEqual(
      s.byNode.map((n) => [n.node, n.calls, n.totalUs, n.meanUs]),
      [
        ['mm1', 2, 60, 30],
        ['mm2', 1, 30, 30],
        ['act', 2, 10, 5],
      ],
    );
    assert.throws(
      () => summarizeProfile('{oops', 'p.json'),
      (e: unknown) =>
        e instanceof RuntimeError && /cannot parse ONNX Runtime profile p\.json/.test((e as Error).message),
    );
  });
});

describe('tensor helpers', () => {
  it('toOrt and fromOrt share memory when aligned, and copy only unaligned bytes', () => {
    const arr = Float32Array.of(1, 2, 3, 4);
    const t = tensorFromArray('w', 'float32', arr, [2, 2]);
    const o = toOrt(t);
    assert.equal((o.data as Float32Array).buffer, arr.buffer, 'no copy');
    assert.deepEqual(o.dims, [2, 2]);
    const back = fromOrt(o, 'w');
    assert.equal(back.data.buffer, arr.buffer, 'no copy back');
    assert.deepEqual(back, { name: 'w', dtype: 'float32', dims: [2, 2], data: t.data });
    // Bytes at an odd offset (as protobuf decoding hands out) are copied once into an aligned array.
    const buf = new Uint8Array(17);
    buf.set(t.data, 1);
    const odd: Tensor = { name: 'odd', dtype: 'float32', dims: [4], data: buf.subarray(1) };
    assert.deepEqual(Array.from(toOrt(odd).data as Float32Array), [1, 2, 3, 4]);
    assert.throws(
      () => toOrt({ name: 'b', dtype: 'bfloat16', dims: [1], data: new Uint8Array(2) }),
      /no bfloat16 tensors/,
    );
    assert.throws(() => ortTensor('float32', Float32Array.of(1, 2), [3]), RuntimeError);
  });

  it('every dtype ORT supports goes through an Identity graph byte-identical', async () => {
    const cases: Tensor[] = [
      tensorFromArray('f32', 'float32', Float32Array.of(1.5, -0, NaN, Infinity), [2, 2]),
      tensorFromArray('f16', 'float16', Uint16Array.of(0x3c00, 0xfc00, 0x0001), [3]),
      tensorFromArray('f64', 'float64', Float64Array.of(Math.E, -1e300), [2]),
      tensorFromArray('i64', 'int64', BigInt64Array.of(-(2n ** 62n), 7n), [2]),
      tensorFromArray('i32', 'int32', Int32Array.of(-5, 2 ** 31 - 1), [2]),
      tensorFromArray('i8', 'int8', Int8Array.of(-128, 127, 0), [3]),
      tensorFromArray('u8', 'uint8', Uint8Array.of(0, 255), [1, 2]),
      tensorFromArray('bool', 'bool', Uint8Array.of(1, 0, 1), [3]),
    ];
    const b = new GraphBuilder('ids');
    for (const c of cases) {
      const i = b.input(`in_${c.name}`, c.dtype, c.dims);
      b.node('Identity', [i], {}, { outputs: [`out_${c.name}`] });
      b.output(`out_${c.name}`, c.dtype, c.dims);
    }
    const s = await Session.create(modelFromGraph(b.graph));
    const out = await s.run(Object.fromEntries(cases.map((c) => [`in_${c.name}`, toOrt(c)])));
    for (const c of cases) {
      const r = fromOrt(out[`out_${c.name}`], c.name);
      assert.equal(r.dtype, c.dtype);
      assert.deepEqual(r.dims, c.dims);
      assert.deepEqual(Buffer.from(r.data), Buffer.from(c.data), c.name);
      assert.equal(tensorToArray(r).length, tensorToArray(c).length);
    }
    await s.release();
  });
});
