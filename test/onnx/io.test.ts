import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import onnxProto from 'onnx-proto';
import { ModelFileError, GraphError } from '../../src/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { modelFromGraph, type ModelProto, type Tensor, type Graph } from '../../src/onnx/ir.ts';
import { readModel, readModelSync, writeModel, writeHooks } from '../../src/onnx/io.ts';
import { encodeModel, decodeModel } from '../../src/onnx/serialize.ts';
import { Session, ort } from '../../src/runtime/session.ts';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-io-test-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Deterministic bytes (a simple LCG) so tensors hold varied bit patterns, including NaN/inf floats. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function raw(name: string, dtype: Tensor['dtype'], dims: number[], bpe: number, seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = bytes(n * bpe, seed);
  if (dtype === 'bool') for (let i = 0; i < data.length; i++) data[i] &= 1;
  return { name, dtype, dims, data };
}

/** A model with one initializer of every dtype real models use, and a graph that runs y = relu(x @ w + b). */
function allDtypesModel(): ModelProto {
  const b = new GraphBuilder('all_dtypes');
  const x = b.input('x', 'float32', ['batch', 4]);
  const w = b.initializer(
    'w',
    'float32',
    Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 4),
    [4, 3],
  );
  const bias = b.initializer('b', 'float32', Float32Array.of(0.5, -0.25, 1), [3]);
  b.output(b.relu(b.add(b.matmul(x, w), bias)), 'float32', ['batch', 3]);
  const g = b.graph;
  const extra: [string, Tensor['dtype'], number[], number][] = [
    ['f16', 'float16', [3, 5], 2],
    ['f64', 'float64', [7], 8],
    ['i64', 'int64', [2, 2, 2], 8],
    ['i32', 'int32', [9], 4],
    ['i8', 'int8', [5, 3], 1],
    ['u8', 'uint8', [2000], 1],
    ['bool', 'bool', [6], 1],
    ['i16', 'int16', [4], 2],
    ['u16', 'uint16', [3], 2],
    ['u32', 'uint32', [3], 4],
    ['u64', 'uint64', [2], 8],
    ['bf16', 'bfloat16', [600], 2],
    ['big_f32', 'float32', [64, 300], 4],
    ['scalar_i64', 'int64', [], 8],
    ['empty_f32', 'float32', [0, 4], 4],
  ];
  extra.forEach(([name, dt, dims, bpe], i) => g.initializers.set(name, raw(name, dt, dims, bpe, i + 1)));
  g.initializers.set('strs', {
    name: 'strs',
    dtype: 'string',
    dims: [2],
    data: new Uint8Array(),
    strings: ['héllo', ''],
  });
  const m = modelFromGraph(g);
  m.metadata = { source: 'test', 'tailor.version': '1' };
  m.docString = 'round trip fixture';
  return m;
}

/** The parts of a model that must survive a round trip, with tensor bytes as plain arrays for deepEqual. */
function canonical(m: ModelProto): unknown {
  const g = (graph: Graph): unknown => ({
    name: graph.name,
    nodes: graph.nodes,
    inputs: graph.inputs,
    outputs: graph.outputs,
    valueInfo: [...graph.valueInfo.values()],
    initializers: [...graph.initializers.values()].map((t) => ({
      name: t.name,
      dtype: t.dtype,
      dims: t.dims,
      data: Buffer.from(t.data).toString('hex'),
      strings: t.strings,
    })),
  });
  return {
    graph: g(m.graph),
    opsets: m.opsetImports,
    ir: m.irVersion,
    producer: [m.producerName, m.producerVersion],
    metadata: m.metadata,
    doc: m.docString,
  };
}

function rawProto(file: string): onnxProto.onnx.ModelProto {
  return onnxProto.onnx.ModelProto.decode(fs.readFileSync(file));
}

function externalEntries(file: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const t of rawProto(file).graph?.initializer ?? []) {
    if (t.dataLocation === onnxProto.onnx.TensorProto.DataLocation.EXTERNAL) {
      out.set(t.name ?? '', Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? ''])));
    }
  }
  return out;
}

function tempLeftovers(d: string): string[] {
  return fs.readdirSync(d).filter((f) => /\.(tmp|bak)-/.test(f));
}

describe('readModel/writeModel round trips', () => {
  it('inline: every dtype, graph and metadata identical after write -> read -> write -> read', async () => {
    const m = allDtypesModel();
    const f1 = path.join(dir, 'inline.onnx');
    const r1 = await writeModel(m, f1);
    assert.equal(r1.dataFile, undefined);
    assert.equal(r1.dataBytes, 0);
    const back = await readModel(f1);
    assert.deepEqual(canonical(back), canonical(m));
    const f2 = path.join(dir, 'inline2.onnx');
    await writeModel(back, f2);
    assert.deepEqual(fs.readFileSync(f2), fs.readFileSync(f1), 'second write is byte-identical to the first');
    assert.deepEqual(canonical(readModelSync(f2)), canonical(m));
  });

  it('external data: large tensors go to model.onnx_data at aligned offsets, small ones stay inline', async () => {
    const m = allDtypesModel();
    const sub = fs.mkdtempSync(path.join(dir, 'ext-'));
    const file = path.join(sub, 'model.onnx');
    const res = await writeModel(m, file, { externalData: true });
    assert.equal(res.dataFile, path.join(sub, 'model.onnx_data'));
    const entries = externalEntries(file);
    // Default threshold 1024 bytes: u8 (2000 B), bf16 (1200 B) and big_f32 (76800 B) are external; the rest inline.
    assert.deepEqual([...entries.keys()].sort(), ['bf16', 'big_f32', 'u8']);
    for (const [name, e] of entries) {
      assert.equal(e.location, 'model.onnx_data');
      assert.equal(Number(e.offset) % 16, 0, `${name} offset ${e.offset} is 16-byte aligned`);
      assert.equal(Number(e.length), m.graph.initializers.get(name)!.data.byteLength);
    }
    assert.equal(Number(entries.get('big_f32')!.offset) % 4096, 0, 'tensors >= 64 KiB start on a page');
    assert.equal(fs.statSync(res.dataFile!).size, res.dataBytes);
    const back = await readModel(file);
    assert.deepEqual(canonical(back), canonical(m));
    assert.deepEqual(back.graph.initializers.get('u8')!.external, {
      location: 'model.onnx_data',
      offset: Number(entries.get('u8')!.offset),
      length: 2000,
    });
    // Read external -> write inline -> read: still identical.
    const inline = path.join(sub, 'inline.onnx');
    await writeModel(back, inline, { externalData: false });
    assert.equal(externalEntries(inline).size, 0);
    assert.deepEqual(canonical(await readModel(inline)), canonical(m));
    assert.deepEqual(tempLeftovers(sub), []);
  });

  it('external data options: threshold, location and alignment', async () => {
    const m = allDtypesModel();
    const sub = fs.mkdtempSync(path.join(dir, 'extopt-'));
    const file = path.join(sub, 'm.onnx');
    await writeModel(m, file, { externalData: { threshold: 1, location: 'm.onnx.data', align: 64 } });
    const entries = externalEntries(file);
    // Every non-empty, non-string tensor (threshold 1 byte) goes out; the empty one and the strings stay inline.
    assert.ok(!entries.has('strs') && !entries.has('empty_f32'));
    assert.ok(entries.has('scalar_i64') && entries.has('bool'));
    for (const e of entries.values()) {
      assert.equal(e.location, 'm.onnx.data');
      assert.equal(Number(e.offset) % 64, 0);
    }
    assert.deepEqual(canonical(await readModel(file)), canonical(m));
    await assert.rejects(writeModel(m, file, { externalData: { location: '../escape.bin' } }), ModelFileError);
  });

  it('ONNX Runtime loads and runs a model written with external data', async () => {
    const m = allDtypesModel();
    const sub = fs.mkdtempSync(path.join(dir, 'ort-'));
    const file = path.join(sub, 'model.onnx');
    await writeModel(m, file, { externalData: { threshold: 16 } });
    assert.ok(externalEntries(file).has('w'), 'the weight matrix is external');
    const s = await Session.create(file);
    const x = Float32Array.of(1, 2, 3, 4, -1, 0, 1, 0.5);
    const out = await s.run({ x: new ort.Tensor('float32', x, [2, 4]) });
    const w = Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 4);
    const bias = [0.5, -0.25, 1];
    const expected: number[] = [];
    for (let r = 0; r < 2; r++)
      for (let c = 0; c < 3; c++) {
        let acc = bias[c];
        for (let k = 0; k < 4; k++) acc += x[r * 4 + k] * w[k * 3 + c];
        expected.push(Math.max(0, acc));
      }
    const y = out[s.outputNames[0]].data as Float32Array;
    assert.deepEqual(
      Array.from(y).map((v) => +v.toFixed(5)),
      expected.map((v) => +v.toFixed(5)),
    );
    await s.release();
  });

  it("reads another writer's external layout: gaps, unaligned offsets, a second file in a subfolder", async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'foreign-'));
    fs.mkdirSync(path.join(sub, 'weights'));
    const b = new GraphBuilder('foreign');
    const x = b.input('x', 'float32', [3]);
    const w = b.initializer('w', 'float32', Float32Array.of(1.5, -2, 0.25), [3]);
    b.initializer('k', 'int64', BigInt64Array.of(7n, -9n), [2]);
    b.initializer('h', 'float16', Uint16Array.of(0x3c00, 0xc000, 0x7e00), [3]);
    b.output(b.mul(x, w), 'float32', [3]);
    const m = modelFromGraph(b.graph);
    const locs: Record<string, { location: string; offset: number; length: number }> = {
      w: { location: 'data.bin', offset: 5, length: 12 }, // unaligned, after a 5-byte gap
      k: { location: 'data.bin', offset: 100, length: 16 }, // gap of junk before it
      h: { location: 'weights/half.bin', offset: 0, length: 6 }, // another file, in a subfolder
    };
    fs.writeFileSync(path.join(sub, 'model.onnx'), encodeModel(m, { externalize: (t) => locs[t.name] }));
    // Lay the data files out by hand, junk in the gaps.
    const data = new Uint8Array(130).fill(0xee);
    const dv = new DataView(data.buffer);
    [1.5, -2, 0.25].forEach((v, i) => dv.setFloat32(5 + 4 * i, v, true));
    dv.setBigInt64(100, 7n, true);
    dv.setBigInt64(108, -9n, true);
    fs.writeFileSync(path.join(sub, 'data.bin'), data);
    const half = new Uint8Array(6);
    [0x3c00, 0xc000, 0x7e00].forEach((v, i) => new DataView(half.buffer).setUint16(2 * i, v, true));
    fs.writeFileSync(path.join(sub, 'weights', 'half.bin'), half);

    const back = await readModel(path.join(sub, 'model.onnx'));
    assert.deepEqual(canonical(back), canonical(m));
    assert.deepEqual(back.graph.initializers.get('w')!.external, locs.w);
    // ORT reads the same layout and agrees.
    const s = await Session.create(path.join(sub, 'model.onnx'));
    const y = await s.run({ x: new ort.Tensor('float32', Float32Array.of(2, 3, 4), [3]) });
    assert.deepEqual(Array.from(y[s.outputNames[0]].data as Float32Array), [3, -6, 1]);
    await s.release();
  });
});

describe('bad model files', () => {
  function small(): ModelProto {
    const b = new GraphBuilder('small');
    const x = b.input('x', 'float32', [2]);
    const w = b.initializer(
      'weight',
      'float32',
      Float32Array.from({ length: 300 }, (_, i) => i),
      [300],
    );
    b.output(b.add(x, b.op('ReduceSum', [w], { keepdims: 1 })), 'float32', [2]);
    return modelFromGraph(b.graph);
  }

  async function rejectsWith(
    p: Promise<unknown>,
    cls: typeof ModelFileError | typeof GraphError,
    pattern: RegExp,
  ): Promise<void> {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(
        e instanceof cls,
        `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`,
      );
      assert.match((e as Error).message, pattern);
      return true;
    });
  }

  it('a truncated file is a ModelFileError at every cut point', async () => {
    const full = encodeModel(small());
    const f = path.join(dir, 'trunc.onnx');
    let checked = 0;
    for (let cut = 0; cut < full.byteLength; cut += 13) {
      fs.writeFileSync(f, full.subarray(0, cut));
      await rejectsWith(readModel(f), ModelFileError, /trunc\.onnx/);
      checked++;
    }
    assert.ok(checked > 50);
  });

  it('non-ONNX files (text, PNG, JSON, empty) are ModelFileErrors naming the file', async () => {
    const png = Uint8Array.from([
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 1, 0, 0, 0, 1, 0, 8, 6,
      0, 0, 0,
    ]);
    const cases: [string, Uint8Array | string][] = [
      ['notes.txt', 'hello world, this is not a model\n'.repeat(20)],
      ['image.png', png],
      ['config.json', '{"model_type": "bert", "hidden_size": 768}'],
      ['empty.onnx', ''],
    ];
    for (const [name, content] of cases) {
      const f = path.join(dir, name);
      fs.writeFileSync(f, content);
      await rejectsWith(
        readModel(f),
        ModelFileError,
        new RegExp(`${name.replace('.', '\\.')}.*not a valid ONNX model`),
      );
    }
    await rejectsWith(readModel(path.join(dir, 'nope.onnx')), ModelFileError, /nope\.onnx: no such file/);
  });

  it('decodeModel detects garbage that protobuf happily skips', () => {
    // A lone varint field 30 (unknown to ModelProto): valid protobuf, but not a model.
    assert.throws(
      () => decodeModel(Uint8Array.of(0xf0, 0x01, 0x05), { file: 'x.onnx' }),
      /x\.onnx is not a valid ONNX model: it has no graph/,
    );
    const noOpset = onnxProto.onnx.ModelProto.encode({ irVersion: 8, graph: { name: 'g' } }).finish();
    assert.throws(
      () => decodeModel(noOpset, { file: 'y.onnx' }),
      /y\.onnx is not a valid ONNX model: it has no opset imports/,
    );
    const badIr = onnxProto.onnx.ModelProto.encode({
      irVersion: 999,
      graph: { name: 'g' },
      opsetImport: [{ domain: '', version: 17 }],
    }).finish();
    assert.throws(() => decodeModel(badIr, { file: 'z.onnx' }), /IR version 999/);
  });

  it('missing external data file names the model, the tensor and the data file', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'missing-'));
    await writeModel(small(), path.join(sub, 'model.onnx'), { externalData: true });
    fs.rmSync(path.join(sub, 'model.onnx_data'));
    await rejectsWith(
      readModel(path.join(sub, 'model.onnx')),
      ModelFileError,
      /model\.onnx: tensor 'weight' is stored in external data file 'model\.onnx_data', which does not exist/,
    );
  });

  it('external data shorter than offset+length is a ModelFileError with the sizes', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'short-'));
    await writeModel(small(), path.join(sub, 'model.onnx'), { externalData: true });
    fs.truncateSync(path.join(sub, 'model.onnx_data'), 1000);
    await rejectsWith(
      readModel(path.join(sub, 'model.onnx')),
      ModelFileError,
      /tensor 'weight' needs bytes 0\.\.1200 of external data file 'model\.onnx_data', but that file has only 1000 bytes/,
    );
  });

  it('external data locations outside the model folder are refused', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'escape-'));
    const bytesOut = encodeModel(small(), {
      externalize: (t) => (t.name === 'weight' ? { location: '../../etc/passwd', offset: 0, length: 1200 } : undefined),
    });
    fs.writeFileSync(path.join(sub, 'model.onnx'), bytesOut);
    await rejectsWith(
      readModel(path.join(sub, 'model.onnx')),
      ModelFileError,
      /'\.\.\/\.\.\/etc\/passwd' outside the model's folder/,
    );
  });

  it('an initializer whose bytes disagree with its shape names the tensor', async () => {
    const m = small();
    const t = m.graph.initializers.get('weight')!;
    m.graph.initializers.set('weight', { ...t, dims: [301] });
    const f = path.join(dir, 'badsize.onnx');
    fs.writeFileSync(f, encodeModel(m));
    await rejectsWith(
      readModel(f),
      ModelFileError,
      /badsize\.onnx: tensor 'weight' \(float32\[301\]\) should hold 1204 bytes but has 1200/,
    );
    // The same with external data whose recorded length disagrees with the shape.
    const sub = fs.mkdtempSync(path.join(dir, 'badlen-'));
    fs.writeFileSync(
      path.join(sub, 'model.onnx'),
      encodeModel(m, {
        externalize: (x) => (x.name === 'weight' ? { location: 'd.bin', offset: 0, length: 1200 } : undefined),
      }),
    );
    fs.writeFileSync(path.join(sub, 'd.bin'), new Uint8Array(1200));
    await rejectsWith(
      readModel(path.join(sub, 'model.onnx')),
      ModelFileError,
      /tensor 'weight' \(float32\[301\]\) should hold 1204 bytes but has 1200/,
    );
  });

  it('unknown ops and cycles are GraphErrors naming the file and node', async () => {
    const m = small();
    m.graph.nodes[0] = { ...m.graph.nodes[0], opType: 'ReduceSumm' };
    const f = path.join(dir, 'unknown-op.onnx');
    fs.writeFileSync(f, encodeModel(m));
    await rejectsWith(
      readModel(f),
      GraphError,
      /unknown-op\.onnx: node 'ReduceSum' has unknown op 'ReduceSumm' for domain 'ai\.onnx' at opset 17/,
    );
    // validate: false reads it anyway (for tools that repair graphs).
    assert.equal((await readModel(f, { validate: false })).graph.nodes[0].opType, 'ReduceSumm');

    const b = new GraphBuilder('cyclic');
    const x = b.input('x', 'float32', [2]);
    b.node('Add', [x, 'c'], {}, { outputs: ['a'], name: 'first' });
    b.node('Relu', ['a'], {}, { outputs: ['c'], name: 'second' });
    b.output('a', 'float32', [2]);
    const cyc = path.join(dir, 'cycle.onnx');
    fs.writeFileSync(cyc, encodeModel(modelFromGraph(b.graph)));
    await rejectsWith(readModel(cyc), GraphError, /cycle\.onnx: graph 'cyclic' has a cycle: first -> second -> first$/);
  });
});

describe('atomic writes', () => {
  function tiny(v: number): ModelProto {
    const b = new GraphBuilder('tiny');
    const x = b.input('x', 'float32', [256]);
    const w = b.initializer('w', 'float32', new Float32Array(256).fill(v), [256]);
    b.output(b.add(x, w), 'float32', [256]);
    return modelFromGraph(b.graph);
  }

  const w0 = (m: ModelProto): number => new Float32Array(m.graph.initializers.get('w')!.data.slice().buffer)[0];

  it('a failure at the last step (model rename) restores the previous model and data file, no temp files left', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const file = path.join(sub, 'model.onnx');
    await writeModel(tiny(1), file, { externalData: true });
    const before = [fs.readFileSync(file), fs.readFileSync(path.join(sub, 'model.onnx_data'))];
    writeHooks.beforeModelRename = () => {
      throw new Error('injected: disk full');
    };
    try {
      await assert.rejects(
        writeModel(tiny(2), file, { externalData: true }),
        (e: unknown) =>
          e instanceof ModelFileError &&
          /cannot write model .*model\.onnx: injected: disk full/.test((e as Error).message),
      );
    } finally {
      writeHooks.beforeModelRename = undefined;
    }
    assert.deepEqual([fs.readFileSync(file), fs.readFileSync(path.join(sub, 'model.onnx_data'))], before);
    assert.deepEqual(tempLeftovers(sub), []);
    assert.equal(w0(await readModel(file)), 1);
    // Without the fault the same write goes through.
    await writeModel(tiny(2), file, { externalData: true });
    assert.equal(w0(await readModel(file)), 2);
    assert.deepEqual(tempLeftovers(sub), []);
  });

  it('a failure before the model is in place leaves no new files (fresh folder)', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic1-'));
    writeHooks.beforeModelRename = () => {
      throw new Error('injected');
    };
    try {
      await assert.rejects(writeModel(tiny(1), path.join(sub, 'model.onnx'), { externalData: true }), ModelFileError);
    } finally {
      writeHooks.beforeModelRename = undefined;
    }
    assert.deepEqual(fs.readdirSync(sub), []);
  });

  it('a target that is a directory is refused before anything is written', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic2-'));
    await writeModel(tiny(1), path.join(sub, 'model.onnx'));
    const before = fs.readFileSync(path.join(sub, 'model.onnx'));
    fs.mkdirSync(path.join(sub, 'model.onnx_data'));
    await assert.rejects(
      writeModel(tiny(3), path.join(sub, 'model.onnx'), { externalData: true }),
      /model\.onnx_data exists and is not a regular file/,
    );
    fs.mkdirSync(path.join(sub, 'dir.onnx'));
    await assert.rejects(writeModel(tiny(3), path.join(sub, 'dir.onnx')), /dir\.onnx exists and is not a regular file/);
    assert.deepEqual(fs.readFileSync(path.join(sub, 'model.onnx')), before);
    assert.deepEqual(tempLeftovers(sub), []);
  });

  it('writing into a missing folder fails with a ModelFileError and creates nothing', async () => {
    const target = path.join(dir, 'no-such-dir', 'model.onnx');
    await assert.rejects(
      writeModel(tiny(1), target, { externalData: true }),
      (e: unknown) => e instanceof ModelFileError && e.context.file === target,
    );
    assert.ok(!fs.existsSync(path.join(dir, 'no-such-dir')));
  });
});
