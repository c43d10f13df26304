// TensorBoard event files (lib/train/tensorboard.ts): the TFRecord framing and masked CRC-32C, checked
// without Python against published check values; scripts/tensorboard-read.py reads a file with TensorBoard.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32c, maskedCrc32c, scalarEvent, TensorBoardWriter, tfRecord } from '../lib/train/tensorboard.js';

/** Splits a TFRecord stream, checking every length and CRC. */
function records(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length; ) {
    const len = Number(buf.readBigUInt64LE(o));
    assert.equal(buf.readUInt32LE(o + 8), maskedCrc32c(buf.subarray(o, o + 8)), `length CRC at ${o}`);
    const data = buf.subarray(o + 12, o + 12 + len);
    assert.equal(buf.readUInt32LE(o + 12 + len), maskedCrc32c(data), `data CRC at ${o}`);
    out.push(data);
    o += 16 + len;
  }
  return out;
}

describe('TensorBoard event files', () => {
  it('CRC-32C matches its check values (RFC 3720 B.4 and the usual "123456789")', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it("masks as TensorFlow's crc32c::Mask: rotate right 15, add 0xa282ead8", () => {
    const c = crc32c(Buffer.from('123456789'));
    assert.equal(maskedCrc32c(Buffer.from('123456789')), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
    // An empty record, by hand: length 0 (8 zero bytes), its masked CRC, no data, the masked CRC of nothing.
    const r = tfRecord(new Uint8Array(0));
    assert.equal(r.length, 16);
    assert.equal(r.readUInt32LE(8), maskedCrc32c(new Uint8Array(8)));
    assert.equal(r.readUInt32LE(12), 0xa282ead8);
  });

  it('encodes a scalar Event as protobuf: wall_time, step, summary { value { tag, simple_value } }', () => {
    const e = Buffer.from(scalarEvent(300, { 'test/loss': 0.5 }, 1.5));
    const expected = Buffer.concat([
      Buffer.from([0x09]), Buffer.from(new Float64Array([1.5]).buffer), // wall_time, double
      Buffer.from([0x10, 0xac, 0x02]), // step 300 as a varint
      Buffer.from([0x2a, 0x12, 0x0a, 0x10, 0x0a, 0x09]) /* summary (18 bytes) { value (16) { tag (9) */, Buffer.from('test/loss'), Buffer.from([0x15]), Buffer.from(new Float32Array([0.5]).buffer),
    ]);
    assert.deepEqual(e, expected);
    assert.equal(Buffer.from(scalarEvent(1, { a: NaN, b: Infinity }, 0)).length, 1 + 8 + 2 + 2, 'non-finite values are left out');
  });

  it('writes a file of valid records: the version event, a resume marker, the scalars', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-tb-'));
    try {
      const w = new TensorBoardWriter(dir, { resumeAtStep: 40, now: () => 1_700_000_000_000 });
      w.scalars(50, { 'train/loss': 1.25, 'train/lr': 0.1 });
      w.close();
      assert.match(path.basename(w.file), /^events\.out\.tfevents\.1700000000\./);
      const rs = records(fs.readFileSync(w.file));
      assert.equal(rs.length, 3);
      assert.ok(rs[0]!.includes(Buffer.from('brain.Event:2')));
      assert.deepEqual([...rs[1]!.subarray(9)], [0x10, 40, 0x3a, 0x02, 0x08, 0x01], 'step 40, session_log (field 7) { status: START }');
      assert.ok(rs[2]!.includes(Buffer.from('train/lr')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two writers in one second and process get files of their own, the later sorting after the earlier', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-tb-'));
    try {
      const now = () => 1_700_000_000_500;
      const a = new TensorBoardWriter(dir, { now });
      a.scalars(1, { x: 1 });
      a.close();
      const b = new TensorBoardWriter(dir, { resumeAtStep: 1, now });
      b.scalars(2, { x: 2 });
      b.close();
      assert.notEqual(b.file, a.file);
      assert.equal(b.file, `${a.file}.1`);
      assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(a.file), path.basename(b.file)]);
      assert.equal(records(fs.readFileSync(a.file)).length, 2, 'the first file holds only its own events');
      assert.equal(records(fs.readFileSync(b.file)).length, 3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
