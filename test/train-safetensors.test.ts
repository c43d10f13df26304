import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
  jsonErrorPosition,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  writeSafetensorsTo,
  type TensorToWrite,
} from '../lib/train/safetensors.js';

/** A file built by hand from the spec: u64 LE header length, JSON header padded with spaces, data. */
function handMade(header: string | Buffer | object, data: number[] | Uint8Array, opts: { pad?: boolean; length?: bigint } = {}): Buffer {
  let json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  if (opts.pad ?? true) json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.length ?? BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data instanceof Uint8Array ? data : Uint8Array.from(data))]);
}

function f32le(...xs: number[]): number[] {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeFloatLE(x, 4 * i));
  return [...b];
}

describe('safetensors', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-st-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, bytes?: Uint8Array) => {
    const p = path.join(dir, name);
    if (bytes) fs.writeFileSync(p, bytes);
    return p;
  };

  it('round-trips shapes, values, dtypes and metadata', async () => {
    const tensors: Record<string, TensorToWrite> = {
      'conv.weight': { shape: [2, 1, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => Math.sin(i) * 1e-3) },
      'scalar': { shape: [], data: new Float32Array([Math.PI]) },
      'empty': { shape: [0, 4], data: new Float32Array(0) },
      'ids': { shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) },
      'f64': { shape: [2], data: new Float64Array([1 / 3, -1e300]) },
      'bytes': { shape: [3], data: new Uint8Array([0, 7, 255]) },
      'big': { shape: [1], data: new BigInt64Array([-(2n ** 40n)]) },
    };
    const p = file('rt.safetensors');
    const n = await writeSafetensors(p, tensors, { note: 'hé ✓', epoch: '3' });
    assert.equal(n, fs.statSync(p).size);
    const r = readSafetensors(p);
    assert.deepEqual(r.metadata, { note: 'hé ✓', epoch: '3' });
    assert.deepEqual([...r.tensors.keys()].sort(), Object.keys(tensors).sort());
    assert.deepEqual(r.tensors.get('conv.weight')!.shape, [2, 1, 3, 3]);
    assert.deepEqual(r.tensors.get('conv.weight')!.data, tensors['conv.weight']!.data);
    assert.equal(r.tensors.get('conv.weight')!.dtype, 'F32');
    assert.deepEqual(r.tensors.get('scalar')!.shape, []);
    assert.equal(r.tensors.get('scalar')!.data[0], Math.fround(Math.PI));
    assert.deepEqual(r.tensors.get('empty')!.shape, [0, 4]);
    assert.equal(r.tensors.get('empty')!.data.length, 0);
    assert.equal(r.tensors.get('ids')!.dtype, 'I32');
    assert.deepEqual([...r.tensors.get('ids')!.data], [-1, 0, 2 ** 31]); // float32 rounds 2^31-1
    assert.equal(r.tensors.get('f64')!.dtype, 'F64');
    assert.deepEqual(new Float64Array(new Uint8Array(r.tensors.get('f64')!.bytes).buffer), tensors.f64!.data);
    assert.deepEqual([...r.tensors.get('bytes')!.data], [0, 7, 255]);
    assert.equal(r.tensors.get('big')!.data[0], -(2 ** 40));
    // Header length is a multiple of 8 and every tensor starts aligned to its element size.
    const h = readSafetensorsHeader(p);
    assert.equal(h.dataStart % 8, 0);
    for (const t of h.tensors) assert.equal(t.fileOffset % { F64: 8, I64: 8, F32: 4, I32: 4, U8: 1 }[t.dtype as 'F32'], 0, t.name);
    assert.deepEqual(encodeSafetensors(tensors, { note: 'hé ✓', epoch: '3' }), fs.readFileSync(p));
  });

  it('reads a file written by hand from the spec, and writes the same bytes (the reference layout)', () => {
    // The reference writer's layout: metadata first, then tensors by dtype and name.
    const header = { __metadata__: { format: 'pt' }, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, w: { dtype: 'F32', shape: [2, 2], data_offsets: [8, 24] } };
    const bytes = handMade(header, [...f32le(7, -0), ...f32le(1, -2, 0.5, 3e-8)]);
    const json = JSON.stringify(header);
    assert.equal(bytes.readBigUInt64LE(0), BigInt(Math.ceil(json.length / 8) * 8));
    assert.equal(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString().trimEnd(), json);
    const r = decodeSafetensors('hand.safetensors', bytes);
    assert.deepEqual(r.metadata, { format: 'pt' });
    assert.deepEqual([...r.tensors.get('w')!.data], [1, -2, 0.5, Math.fround(3e-8)]);
    assert.deepEqual(r.tensors.get('w')!.shape, [2, 2]);
    assert.ok(Object.is(r.tensors.get('b')!.data[1], -0));
    const ours = encodeSafetensors([['w', { shape: [2, 2], data: new Float32Array([1, -2, 0.5, 3e-8]) }], ['b', { shape: [2], data: new Float32Array([7, -0]) }]], { format: 'pt' });
    assert.deepEqual(ours, bytes);
  });

  it('writes byte for byte what the reference implementation (Python safetensors 0.8) writes, and reads it', () => {
    // safetensors.numpy.save({'layer.weight': f32 [[1,-2],[0.5,3e-8]], 'layer.bias': f32 [7,-0], 'step': i64 [12345678901],
    //   'ids': i32 [-1,2], 'x': f64 scalar 0.1}, metadata={'format': 'pt', 'note': 'é'})
    const reference = Buffer.from(
      '58010000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074222c226e6f7465223a22c3a922' +
      '7d2c2273746570223a7b226474797065223a22493634222c227368617065223a5b315d2c22646174615f6f66667365747322' +
      '3a5b302c385d7d2c2278223a7b226474797065223a22463634222c227368617065223a5b5d2c22646174615f6f6666736574' +
      '73223a5b382c31365d7d2c226c617965722e62696173223a7b226474797065223a22463332222c227368617065223a5b325d' +
      '2c22646174615f6f666673657473223a5b31362c32345d7d2c226c617965722e776569676874223a7b226474797065223a22' +
      '463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b32342c34305d7d2c22696473223a7b' +
      '226474797065223a22493332222c227368617065223a5b325d2c22646174615f6f666673657473223a5b34302c34385d7d7d' +
      '2020351cdcdf020000009a9999999999b93f0000e040000000800000803f000000c00000003f59d90033ffffffff02000000',
      'hex',
    );
    const ours = encodeSafetensors(
      {
        'layer.weight': { shape: [2, 2], data: new Float32Array([1, -2, 0.5, 3e-8]) },
        'layer.bias': { shape: [2], data: new Float32Array([7, -0]) },
        step: { shape: [1], data: new BigInt64Array([12345678901n]) },
        ids: { shape: [2], data: new Int32Array([-1, 2]) },
        x: { shape: [], data: new Float64Array([0.1]) },
      },
      { format: 'pt', note: 'é' },
    );
    assert.deepEqual(ours, reference);
    const r = decodeSafetensors('reference.safetensors', reference);
    assert.deepEqual(r.metadata, { format: 'pt', note: 'é' });
    assert.deepEqual([...r.tensors.get('layer.weight')!.data], [1, -2, 0.5, Math.fround(3e-8)]);
    assert.deepEqual([...r.tensors.get('step')!.data], [Math.fround(12345678901)]);
    assert.equal(new DataView(r.tensors.get('step')!.bytes.buffer, r.tensors.get('step')!.bytes.byteOffset).getBigInt64(0, true), 12345678901n);
    assert.deepEqual(r.tensors.get('x')!.shape, []);
  });

  it('reads F16, BF16, F64, I32 and I64 as float32', () => {
    const d = Buffer.alloc(10 + 4 + 8 + 8 + 16);
    [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00].forEach((h, i) => d.writeUInt16LE(h, 2 * i)); // 1, -2, 65504, 2^-24, inf
    [0x3f80, 0xc040].forEach((h, i) => d.writeUInt16LE(h, 10 + 2 * i)); // 1, -3
    d.writeDoubleLE(0.1, 14);
    d.writeInt32LE(-7, 22);
    d.writeInt32LE(123456, 26);
    d.writeBigInt64LE(-5n, 30);
    d.writeBigInt64LE(2n ** 40n, 38);
    // Unaligned on purpose: the reader copies what it cannot view.
    const header = {
      h: { dtype: 'F16', shape: [5], data_offsets: [0, 10] },
      bf: { dtype: 'BF16', shape: [2], data_offsets: [10, 14] },
      d: { dtype: 'F64', shape: [], data_offsets: [14, 22] },
      i: { dtype: 'I32', shape: [2], data_offsets: [22, 30] },
      l: { dtype: 'I64', shape: [2, 1], data_offsets: [30, 46] },
    };
    const r = decodeSafetensors('mixed', handMade(header, d));
    assert.deepEqual([...r.tensors.get('h')!.data], [1, -2, 65504, 2 ** -24, Infinity]);
    assert.deepEqual([...r.tensors.get('bf')!.data], [1, -3]);
    assert.deepEqual([...r.tensors.get('d')!.data], [Math.fround(0.1)]);
    assert.deepEqual([...r.tensors.get('i')!.data], [-7, 123456]);
    assert.deepEqual([...r.tensors.get('l')!.data], [-5, 2 ** 40]);
    assert.ok(Number.isNaN(halfToFloat(0x7e00)));
    assert.equal(halfToFloat(0x8000), -0);
  });

  it('streams: the header, then each tensor straight from its own buffer (no concatenation)', async () => {
    const a = new Float32Array(1000).fill(1), b = new Float32Array(10).fill(2);
    const chunks: Uint8Array[] = [];
    await writeSafetensorsTo({ write: async (c) => void chunks.push(c) }, { a: { shape: [1000], data: a }, b: { shape: [10], data: b } });
    assert.equal(chunks.length, 3);
    assert.equal(chunks[1]!.buffer, a.buffer); // a view, not a copy
    assert.equal(chunks[2]!.buffer, b.buffer);
  });

  it('refuses bad tensors to write, naming them', async () => {
    const sink = { write: async () => {} };
    await assert.rejects(writeSafetensorsTo(sink, { w: { shape: [2, 2], data: new Float32Array(3) } }), /tensor 'w': expected 4 elements for shape \[2,2\], but received 3/);
    await assert.rejects(writeSafetensorsTo(sink, { w: { shape: [1], data: [1] as unknown as Float32Array } }), /tensor 'w': expected a Float32Array.*received Array/);
    await assert.rejects(writeSafetensorsTo(sink, { __metadata__: { shape: [0], data: new Float32Array(0) } }), /expected a tensor name other than '__metadata__'/);
    await assert.rejects(writeSafetensorsTo(sink, {}, { n: 3 as unknown as string }), /expected metadata 'n' to be a string, but received number/);
  });

  describe('refuses damaged files, naming the file and the byte offset', () => {
    const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    const data = f32le(1, 2, 3);
    /** The absolute offset of byte x of the data section of handMade(header). */
    const at = (header: object, x: number) => 8 + Math.ceil(JSON.stringify(header).length / 8) * 8 + x;
    const ends = { a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } };
    const size = { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } };
    const overlap = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } };
    const hole = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    const trailing = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
    const cases: [string, () => Buffer, RegExp][] = [
      ['a file shorter than 8 bytes', () => Buffer.from([1, 2, 3]), /the file is 3 bytes long, too short for the 8-byte header length \(at byte offset 0\)/],
      ['a header length past the end of the file', () => handMade(ok, data, { length: 4096n }), /the header length 4096 runs past the end of the file \(\d+ bytes, so at most \d+\); the file is truncated or not safetensors \(at byte offset 0\)/],
      ['a huge header length', () => handMade(ok, data, { length: 2n ** 60n }), /the header length 1152921504606846976 runs past the end of the file.*\(at byte offset 0\)/],
      ['a header not starting with {', () => handMade(' [1]', []), /does not start with '\{' .*\(at byte offset 8\)/],
      ['invalid JSON, at the offending character', () => handMade('{"a":{"dtype":"F32",}}', []), /the header is not valid JSON: .* \(at byte offset 28\)/],
      ['invalid JSON without a position in the V8 message', () => handMade('{"a":}', []), /not valid JSON: Unexpected token .* \(at byte offset 13\)/],
      ['a header that is not UTF-8', () => handMade(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), []), /the header is not valid UTF-8 \(at byte offset 10\)/],
      ['an unknown dtype', () => handMade({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, f32le(1)), /tensor 'a': unknown dtype "F33" \(known: BOOL, .*\) \(at byte offset 9\)/],
      ['an entry that is not an object', () => handMade({ x: 1, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32le(1)), /tensor 'x': its entry is not an object \(at byte offset 9\)/],
      ['a fractional dimension', () => handMade({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32le(1)), /tensor 'a': shape \[1\.5\] is not a list of non-negative integers \(at byte offset 9\)/],
      ['a negative dimension', () => handMade({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32le(1)), /tensor 'a': shape \[-1\] is not a list of non-negative integers/],
      ['data_offsets that are not a pair', () => handMade({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32le(1)), /tensor 'a': data_offsets \[0\] is not a pair/],
      ['offsets that end before they begin', () => handMade(ends, f32le(1)), new RegExp(`data_offsets \\[4, 0\\] end before they begin \\(at byte offset ${at(ends, 4)}\\)`)],
      ['a size that does not match the shape', () => handMade(size, f32le(1, 2)), new RegExp(`tensor 'a': holds 8 bytes but F32 of shape \\[3\\] needs 12 \\(at byte offset ${at(size, 0)}\\)`)],
      ['overlapping tensors', () => handMade(overlap, f32le(1, 2)), new RegExp(`tensor 'b' \\[4, 8\\] overlaps tensor 'a' \\[0, 8\\] \\(at byte offset ${at(overlap, 4)}\\)`)],
      ['a hole between tensors', () => handMade(hole, f32le(1, 2, 3)), new RegExp(`4 bytes of the data section before tensor 'b' belong to no tensor \\(at byte offset ${at(hole, 4)}\\)`)],
      ['bytes after the last tensor', () => handMade(trailing, f32le(1, 2)), new RegExp(`the data section has 4 bytes after the last tensor that belong to no tensor \\(at byte offset ${at(trailing, 4)}\\)`)],
      ['metadata that is not all strings', () => handMade({ __metadata__: { epoch: 3 } }, []), /__metadata__\.epoch is a number, expected a string \(at byte offset 9\)/],
    ];
    for (const [what, make, re] of cases) {
      it(what, () => {
        const p = file(what.replace(/\W+/g, '-') + '.safetensors', make());
        assert.throws(() => readSafetensors(p), (e: Error) => {
          assert.match(e.message, new RegExp(`^safetensors ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
          assert.match(e.message, /\(at byte offset \d+\)$/);
          assert.match(e.message, re);
          return true;
        });
      });
    }

    it('a truncated file, from the header alone', async () => {
      const p = file('full.safetensors');
      await writeSafetensors(p, { w: { shape: [100], data: new Float32Array(100) } });
      const bytes = fs.readFileSync(p);
      const cut = file('cut.safetensors', bytes.subarray(0, bytes.length - 10));
      const dataStart = readSafetensorsHeader(p).dataStart;
      const re = new RegExp(`tensor 'w': data_offsets \\[0, 400\\] run past the end of the data section \\(390 bytes from offset ${dataStart}\\); the file is truncated \\(at byte offset ${dataStart + 390}\\)`);
      assert.throws(() => readSafetensorsHeader(cut), re);
      assert.throws(() => readSafetensors(cut), re);
      // Cut inside the header.
      const cutHeader = file('cut-header.safetensors', bytes.subarray(0, 20));
      assert.throws(() => readSafetensorsHeader(cutHeader), /the header length \d+ runs past the end of the file \(20 bytes/);
    });
  });

  it('jsonErrorPosition agrees with V8 where V8 gives a position', () => {
    for (const s of ['{"a":1,}', '{"a":1', '{"a" 1}', '{"a":"x\u0001"}', '{"a":[1,2,]}', '{"a":01}', '{"a":1} x']) {
      let v8 = -1;
      try {
        JSON.parse(s);
      } catch (e) {
        v8 = Number(/position (\d+)/.exec((e as Error).message)?.[1] ?? -1);
      }
      if (v8 >= 0) assert.equal(jsonErrorPosition(s), v8, s);
    }
    assert.equal(jsonErrorPosition('{"a":tru}'), 8);
    assert.equal(jsonErrorPosition('{"a":{"b":[1e5,-0.5,"\\u12G4"]}}'), 25);
  });
});
