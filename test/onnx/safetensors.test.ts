import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelFileError } from '../../src/errors.ts';
import type { Tensor } from '../../src/onnx/ir.ts';
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  readSafetensorsSync,
  writeSafetensors,
} from '../../src/onnx/safetensors.ts';
import { tensorToArray, tensorFromArray } from '../../src/onnx/tensor.ts';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tailor-st-test-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Builds a safetensors file byte by byte from the format description (not with the writer under test):
 * u64 LE header length, JSON header, space padding to a multiple of 8, raw data.
 */
function handMade(headerJson: string, data: number[], pad = true): Uint8Array {
  const json = Array.from(headerJson, (c) => c.charCodeAt(0)); // ASCII-only header in these fixtures
  while (pad && json.length % 8 !== 0) json.push(0x20);
  const n = json.length;
  const len = [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff, 0, 0, 0, 0];
  return Uint8Array.from([...len, ...json, ...data]);
}

// float32 1.0 = 00 00 80 3f, -2.5 = 00 00 20 c0; int64 -1 = ff x8; float16 1.0 = 00 3c; bf16 1.0 = 80 3f.
const FIXTURE_HEADER =
  '{"__metadata__":{"format":"pt"},' +
  '"base_model.model.query.lora_A.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},' +
  '"ids":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},' +
  '"half":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},' +
  '"brain":{"dtype":"BF16","shape":[],"data_offsets":[18,20]},' +
  '"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[20,23]},' +
  '"none":{"dtype":"F32","shape":[0,5],"data_offsets":[23,23]}}';
const FIXTURE_DATA = [
  0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x3c, 0x80, 0x3f, 1, 0, 1,
];

describe('safetensors: reading a hand-made file', () => {
  it('decodes every entry, dtype, shape and value', () => {
    const f = parseSafetensors(handMade(FIXTURE_HEADER, FIXTURE_DATA), 'adapter_model.safetensors');
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual(
      [...f.tensors.keys()],
      ['base_model.model.query.lora_A.weight', 'ids', 'half', 'brain', 'mask', 'none'],
    );
    const a = f.tensors.get('base_model.model.query.lora_A.weight')!;
    assert.equal(a.dtype, 'float32');
    assert.deepEqual(a.dims, [1, 2]);
    assert.deepEqual(Array.from(tensorToArray(a) as Float32Array), [1, -2.5]);
    assert.deepEqual(Array.from(tensorToArray(f.tensors.get('ids')!) as BigInt64Array), [-1n]);
    assert.deepEqual(Array.from(tensorToArray(f.tensors.get('half')!) as Uint16Array), [0x3c00]);
    const bf = f.tensors.get('brain')!;
    assert.equal(bf.dtype, 'bfloat16');
    assert.deepEqual(bf.dims, []);
    assert.deepEqual(Array.from(tensorToArray(bf) as Uint16Array), [0x3f80]);
    assert.deepEqual(Array.from(f.tensors.get('mask')!.data), [1, 0, 1]);
    assert.equal(f.tensors.get('none')!.data.byteLength, 0);
  });

  it('accepts an unpadded header and a header without metadata', () => {
    const f = parseSafetensors(handMade('{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', [7, 9], false));
    assert.deepEqual(f.metadata, {});
    assert.deepEqual(Array.from(f.tensors.get('w')!.data), [7, 9]);
  });
});

describe('safetensors: invalid files name the file and tensor', () => {
  const bad = (header: string, data: number[], pattern: RegExp): void => {
    assert.throws(
      () => parseSafetensors(handMade(header, data), 'a.safetensors'),
      (e: unknown) => {
        assert.ok(e instanceof ModelFileError, String(e));
        assert.match(e.message, pattern);
        return true;
      },
    );
  };
  it('overlapping offsets', () =>
    bad(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      new Array(8).fill(0),
      /^a\.safetensors: tensor 'b': data_offsets \[4, 8\] overlap tensor 'a' \[0, 8\]$/,
    ));
  it('offsets past the end', () =>
    bad(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
      [0, 0, 0, 0],
      /tensor 'a': data_offsets \[0, 8\] run past the end of the data \(4 bytes; file truncated\?\)/,
    ));
  it('size disagreeing with shape', () =>
    bad(
      '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',
      new Array(8).fill(0),
      /tensor 'a': F32\[3\] needs 12 bytes but data_offsets \[0, 8\] hold 8/,
    ));
  it('unknown dtype', () =>
    bad('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', [0], /tensor 'a': unsupported dtype "F8_E4M3"/));
  it('bad shape and offsets', () => {
    bad('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', [0, 0, 0, 0], /tensor 'a': invalid shape \[-1\]/);
    bad(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}',
      [0, 0, 0, 0],
      /tensor 'a': invalid data_offsets \[4,0\]/,
    );
  });
  it('non-string metadata', () => bad('{"__metadata__":{"n":1}}', [], /__metadata__ entry 'n' is not a string/));
  it('not JSON, garbage length, too short', () => {
    bad('not json at all!', [], /not valid UTF-8 JSON/);
    assert.throws(
      () => parseSafetensors(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2]), 'b.st'),
      /b\.st: not a safetensors file \(or truncated\): header length 4294967295/,
    );
    assert.throws(() => parseSafetensors(Uint8Array.of(1, 2, 3), 'c.st'), /c\.st: not a safetensors file: 3 bytes/);
    const png = fs.readFileSync(new URL(import.meta.url)); // any non-safetensors file
    assert.throws(() => parseSafetensors(png, 'd.st'), ModelFileError);
  });
  it('a missing file', async () => {
    await assert.rejects(
      readSafetensors(path.join(dir, 'none.safetensors')),
      /cannot read safetensors file .*none\.safetensors/,
    );
  });
});

describe('safetensors: writing', () => {
  const tensors = (): Tensor[] => [
    tensorFromArray('z.bias', 'float32', Float32Array.of(0.5, -1), [2]),
    tensorFromArray('a.ids', 'int64', BigInt64Array.of(3n, -4n, 5n), [3]),
    tensorFromArray('m.flag', 'bool', Uint8Array.of(1, 0), [2]),
    tensorFromArray('h.half', 'float16', Uint16Array.of(0x3c00), [1, 1]),
    tensorFromArray('d.dbl', 'float64', Float64Array.of(Math.PI), []),
    tensorFromArray('i.i8', 'int8', Int8Array.of(-128, 127), [2]),
    tensorFromArray('b.bf', 'bfloat16', Uint16Array.of(0x3f80, 0xbf80), [2]),
  ];

  it('follows the layout: padded header, offsets by alignment then name, contiguous data', () => {
    const bytes = encodeSafetensors(tensors(), { format: 'pt' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(headerText, / *$/);
    const header = JSON.parse(headerText) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] }
    >;
    assert.deepEqual(header.__metadata__, { format: 'pt' });
    const order = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
      .map(([k]) => k);
    assert.deepEqual(order, ['a.ids', 'd.dbl', 'z.bias', 'b.bf', 'h.half', 'i.i8', 'm.flag']);
    assert.deepEqual(header['a.ids'], { dtype: 'I64', shape: [3], data_offsets: [0, 24] });
    assert.deepEqual(header['d.dbl'], { dtype: 'F64', shape: [], data_offsets: [24, 32] });
    assert.deepEqual(header['z.bias'], { dtype: 'F32', shape: [2], data_offsets: [32, 40] });
    assert.deepEqual(header['m.flag'], { dtype: 'BOOL', shape: [2], data_offsets: [48, 50] });
    assert.equal(bytes.byteLength, 8 + n + 50);
    // Little-endian float32 0.5 at data offset 32.
    assert.deepEqual(Array.from(bytes.subarray(8 + n + 32, 8 + n + 36)), [0, 0, 0, 0x3f]);
  });

  it('round trips through a file, byte-identical data and metadata', async () => {
    const file = path.join(dir, 'adapter_model.safetensors');
    await writeSafetensors(file, tensors(), { format: 'pt', note: 'ünïcode' });
    const back = await readSafetensors(file);
    assert.deepEqual(back.metadata, { format: 'pt', note: 'ünïcode' });
    for (const t of tensors()) {
      const r = back.tensors.get(t.name)!;
      assert.equal(r.dtype, t.dtype);
      assert.deepEqual(r.dims, t.dims);
      assert.deepEqual(Buffer.from(r.data), Buffer.from(t.data), t.name);
    }
    const again = path.join(dir, 'again.safetensors');
    await writeSafetensors(again, back.tensors, back.metadata);
    assert.deepEqual(fs.readFileSync(again), fs.readFileSync(file));
    assert.equal(readSafetensorsSync(again).tensors.size, 7);
  });

  it('refuses bad tensors and fails atomically', async () => {
    assert.throws(
      () => encodeSafetensors([{ name: 'x', dtype: 'float32', dims: [3], data: new Uint8Array(8) }]),
      /tensor 'x' \(float32\[3\]\) should hold 12 bytes but has 8/,
    );
    assert.throws(
      () =>
        encodeSafetensors([
          tensorFromArray('x', 'int8', Int8Array.of(1), [1]),
          tensorFromArray('x', 'int8', Int8Array.of(1), [1]),
        ]),
      /duplicate tensor name 'x'/,
    );
    const file = path.join(dir, 'keep.safetensors');
    await writeSafetensors(file, tensors());
    const before = fs.readFileSync(file);
    await assert.rejects(
      writeSafetensors(file, [{ name: 'x', dtype: 'float32', dims: [3], data: new Uint8Array(8) }]),
      (e: unknown) => e instanceof ModelFileError && e.message.startsWith(`${file}: tensor 'x'`),
    );
    await assert.rejects(writeSafetensors(path.join(dir, 'missing', 'x.safetensors'), tensors()), ModelFileError);
    assert.deepEqual(fs.readFileSync(file), before);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      [],
    );
  });
});
