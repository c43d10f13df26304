// Adversarial safetensors files and checkpoints: every damaged, edited or implausible input is refused
// with an error that names the problem (the tensor, the byte offset, the expected and found values).
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Session } from '../lib/engine/session.js';
import type { Preprocessing } from '../lib/data/dataset.js';
import {
  loadCheckpoint, MOMENTUM_PREFIX, removeStaleTempFiles, restoreSession, saveCheckpoint, type CheckpointMeta,
} from '../lib/train/checkpoint.js';
import { decodeSafetensors, encodeSafetensors, readSafetensors, SafetensorsError, type TensorToWrite } from '../lib/train/safetensors.js';

interface FakeParam { name: string; shape: number[]; trainable: boolean; data: number[] }

/**
 * The part of a Session that saveCheckpoint and restoreSession use, holding whatever values a test
 * wants saved (a compiled session would refuse NaN and could not hold a negative variance).
 */
function fakeSession(params: FakeParam[]) {
  const values = new Map(params.map((p) => [p.name, Float32Array.from(p.data)]));
  const momentum = new Map(params.map((p) => [p.name, Float32Array.from(p.data, (v) => v / 10)]));
  const session = {
    graph: { params: params.map(({ name, shape, trainable }) => ({ name, shape, trainable })) },
    parameterNames: () => params.map((p) => p.name),
    getParameter: (n: string) => Float32Array.from(values.get(n)!),
    getOptimizerState: (n: string) => Float32Array.from(momentum.get(n)!),
    setParameter: (n: string, d: Float32Array) => void values.set(n, Float32Array.from(d)),
    setOptimizerState: (n: string, d: Float32Array) => void momentum.set(n, Float32Array.from(d)),
    optimizerStateNames: ['momentum'],
    optimizer: { lr: 0.1 },
    updates: 0,
    lossScaler: () => undefined,
    isDisposed: false,
    device: 'cpu',
    batchSize: 4,
    precision: 'f32',
  };
  return { session: session as unknown as Session, values, momentum };
}

const PARAMS: FakeParam[] = [
  { name: 'conv.weight', shape: [2, 1, 1, 1], trainable: true, data: [0.5, -0.25] },
  { name: 'bn.weight', shape: [2], trainable: true, data: [1, 1] },
  { name: 'bn.running_mean', shape: [2], trainable: false, data: [0.1, -0.1] },
  { name: 'bn.running_var', shape: [2], trainable: false, data: [0.9, 1.1] },
  { name: 'fc.weight', shape: [3, 2], trainable: true, data: [1, 2, 3, 4, 5, 6] },
];

const META: CheckpointMeta = { model: { name: 'fake', options: {} }, epoch: 1, step: 10 };

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Re-encodes a checkpoint file with its tensors and 'crunet' metadata changed by `edit`, keeping both digests as they were. */
function rewrite(from: string, to: string, edit: (tensors: Map<string, TensorToWrite>, info: Record<string, unknown>) => void, rehashJson = true): void {
  const st = readSafetensors(from);
  const tensors = new Map<string, TensorToWrite>([...st.tensors].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]));
  const info = JSON.parse(st.metadata.crunet!) as Record<string, unknown>;
  edit(tensors, info);
  const json = JSON.stringify(info);
  fs.writeFileSync(to, encodeSafetensors(tensors, { ...st.metadata, crunet: json, crunet_sha256: rehashJson ? sha256(json) : st.metadata.crunet_sha256! }));
}

/** Changes the first tensor entry of dtype F32 in the header to `dtype` (same length, so the file stays well-formed). */
function editFirstDtype(file: string, dtype: string): string {
  const bytes = fs.readFileSync(file);
  const at = bytes.indexOf('"dtype":"F32"');
  assert.ok(at > 0);
  bytes.write(`"dtype":"${dtype}"`, at);
  fs.writeFileSync(file, bytes);
  const header = bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString();
  return Object.entries(JSON.parse(header) as Record<string, { dtype?: string }>).find(([, e]) => e.dtype === dtype)![0];
}

/** The digest checkpoints carried before the dtype was added (CheckpointInfo.sha256), computed as that writer did. */
function legacyDigest(file: string): string {
  const h = createHash('sha256');
  const st = readSafetensors(file);
  for (const name of [...st.tensors.keys()].sort()) {
    const t = st.tensors.get(name)!;
    h.update(`${name}\0${t.shape.join(',')}\0`);
    h.update(t.bytes);
  }
  return h.digest('hex');
}

describe('hardening: checkpoints', () => {
  let dir: string;
  let good: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-hard-ckpt-'));
    good = path.join(dir, 'good.safetensors');
    await saveCheckpoint(good, fakeSession(PARAMS).session, META);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const copy = (name: string) => {
    const p = path.join(dir, name);
    fs.copyFileSync(good, p);
    return p;
  };

  it('the digest covers the dtype: F32 edited to I32 in the header is refused at load', () => {
    const f = copy('dtype-edit.safetensors');
    const name = editFirstDtype(f, 'I32');
    assert.ok(readSafetensors(f).tensors.get(name)!.dtype === 'I32'); // well-formed: only the digest can tell
    assert.throws(() => loadCheckpoint(f), (e: Error) => e.message.includes(`${f} is damaged: its tensor data does not match the SHA-256`) && e.message.includes('dtype'));
  });

  it('the digest covers the shape: [3,2] edited to [2,3] is refused at load', () => {
    const f = copy('shape-edit.safetensors');
    const bytes = fs.readFileSync(f);
    const at = bytes.indexOf('"shape":[3,2]');
    bytes.write('"shape":[2,3]', at);
    fs.writeFileSync(f, bytes);
    assert.throws(() => loadCheckpoint(f), new RegExp(`${f} is damaged: its tensor data does not match the SHA-256`));
  });

  describe('checkpoints written before the dtype was in the digest (CheckpointInfo.sha256)', () => {
    const legacy = (name: string) => {
      const f = path.join(dir, name);
      rewrite(good, f, (_, info) => {
        delete info.tensorSha256;
        info.sha256 = legacyDigest(good);
      });
      return f;
    };

    it('load, checked by the old rule', () => {
      const f = legacy('legacy.safetensors');
      const ck = loadCheckpoint(f);
      assert.equal(ck.meta.tensorSha256, undefined);
      assert.deepEqual([...ck.tensors.get('fc.weight')!.data], [1, 2, 3, 4, 5, 6]);
      const bytes = fs.readFileSync(f);
      bytes[bytes.length - 1] ^= 0x40;
      fs.writeFileSync(f, bytes);
      assert.throws(() => loadCheckpoint(f), /is damaged: its tensor data does not match the SHA-256/);
    });

    it('an edited dtype passes the old digest, and restoreSession refuses it naming tensor, expected and found', () => {
      const f = legacy('legacy-dtype.safetensors');
      const name = editFirstDtype(f, 'I32');
      const ck = loadCheckpoint(f);
      const { session, values } = fakeSession(PARAMS);
      const before = new Map([...values].map(([n, v]) => [n, [...v]]));
      assert.throws(() => restoreSession(session, ck), (e: Error) => e.message.includes(`${name} has dtype I32 in the checkpoint, expected F32`) && e.message.includes('not changed'));
      assert.deepEqual(new Map([...values].map(([n, v]) => [n, [...v]])), before);
    });
  });

  const badValues: [string, (t: Map<string, { shape: number[]; data: Float32Array }>) => void, RegExp][] = [
    ['a NaN weight', (t) => (t.get('conv.weight')!.data[1] = NaN), /tensor 'conv\.weight' holds NaN at element 1 of 2/],
    ['an infinite weight', (t) => (t.get('fc.weight')!.data[4] = -Infinity), /tensor 'fc\.weight' holds -Infinity at element 4 of 6/],
    ['a NaN momentum buffer', (t) => (t.get(MOMENTUM_PREFIX + 'bn.weight')!.data[0] = NaN), /tensor 'optimizer\.momentum\.bn\.weight' holds NaN at element 0/],
    ['a negative running_var', (t) => (t.get('bn.running_var')!.data[1] = -0.5), /tensor 'bn\.running_var' holds a negative variance, -0\.5, at element 1 of 2/],
  ];
  for (const [what, edit, message] of badValues) {
    it(`refuses at load a checkpoint with ${what}, naming the tensor (digest intact: saved that way)`, async () => {
      // Saved by saveCheckpoint itself, so the digests match and only the values are wrong.
      const values = new Map<string, { shape: number[]; data: Float32Array }>(PARAMS.map((p) => [p.name, { shape: p.shape, data: Float32Array.from(p.data) }]));
      values.set(MOMENTUM_PREFIX + 'bn.weight', { shape: [2], data: new Float32Array(2) });
      edit(values);
      const { session, momentum } = fakeSession(PARAMS.map((p) => ({ ...p, data: [...values.get(p.name)!.data] })));
      momentum.set('bn.weight', Float32Array.from(values.get(MOMENTUM_PREFIX + 'bn.weight')!.data));
      const f = path.join(dir, `values-${what.replace(/\W+/g, '-')}.safetensors`);
      await saveCheckpoint(f, session, META);
      assert.throws(() => loadCheckpoint(f), (e: Error) => message.test(e.message) && e.message.includes(f));
    });
  }

  it('a tensor added to or removed from the file (digests kept) is refused as damaged', () => {
    const extra = path.join(dir, 'extra.safetensors');
    rewrite(good, extra, (t) => t.set('sneaky', { shape: [1], data: new Float32Array([1]) }));
    assert.throws(() => loadCheckpoint(extra), new RegExp(`${extra} is damaged: its tensor data does not match`));
    const missing = path.join(dir, 'missing.safetensors');
    rewrite(good, missing, (t) => t.delete('fc.weight'));
    assert.throws(() => loadCheckpoint(missing), new RegExp(`${missing} is damaged: its tensor data does not match`));
  });

  it('restoreSession names extra and missing tensors of a checkpoint of another model, and changes nothing', () => {
    const ck = loadCheckpoint(good);
    const other = [...PARAMS.filter((p) => p.name !== 'fc.weight'), { name: 'head.weight', shape: [3, 2], trainable: true, data: [0, 0, 0, 0, 0, 0] }];
    const { session } = fakeSession(other);
    assert.throws(() => restoreSession(session, ck), (e: Error) =>
      e.message.includes('head.weight is missing from the checkpoint') && e.message.includes('fc.weight is in the checkpoint but not in the session'));
  });

  it('stores a data set\'s preprocessing in the metadata, and refuses a malformed one', async () => {
    const pre: Preprocessing = { scale: 1 / 255, mean: [0.286], std: [0.353], layout: 'NCHW', channels: 1, size: [28, 28] };
    const f = path.join(dir, 'pre.safetensors');
    const saved = await saveCheckpoint(f, fakeSession(PARAMS).session, { ...META, preprocessing: pre });
    assert.deepEqual(saved.preprocessing, pre);
    assert.deepEqual(loadCheckpoint(f).meta.preprocessing, pre);
    await assert.rejects(
      saveCheckpoint(f, fakeSession(PARAMS).session, { ...META, preprocessing: { ...pre, std: [0] } }),
      /expected meta\.preprocessing to be a data set's preprocessing/,
    );
  });

  describe('temporary files a killed save left behind', () => {
    it('are removed by the next save of that file when older than this process; a newer one (a live write) is kept', async () => {
      const d = fs.mkdtempSync(path.join(dir, 'orphans-'));
      const target = path.join(d, 'checkpoint.safetensors');
      const orphan = path.join(d, '.checkpoint.safetensors.tmp-999999-0badf00d');
      const live = path.join(d, '.checkpoint.safetensors.tmp-999998-1234abcd');
      const otherTarget = path.join(d, '.best.safetensors.tmp-999999-0badf00d');
      const lookalike = path.join(d, '.checkpoint.safetensors.tmp-notes');
      for (const f of [orphan, live, otherTarget, lookalike]) fs.writeFileSync(f, 'partial');
      const longAgo = new Date(Date.now() - 3600e3 - process.uptime() * 1000);
      for (const f of [orphan, otherTarget, lookalike]) fs.utimesSync(f, longAgo, longAgo);
      await saveCheckpoint(target, fakeSession(PARAMS).session, META);
      assert.equal(fs.existsSync(orphan), false);
      assert.deepEqual(fs.readdirSync(d).sort(), [path.basename(live), path.basename(otherTarget), path.basename(lookalike), 'checkpoint.safetensors'].sort());
      assert.deepEqual(await removeStaleTempFiles(target), []);
    });
  });
});

/** A valid two-tensor file, built by hand from the format so each case can change one thing. */
function stFile(header: object | string, data: Uint8Array, length?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

const DATA = new Uint8Array(24 + 16).map((_, i) => i);
const A = { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] };
const B = { dtype: 'I32', shape: [4], data_offsets: [24, 40] };
const VALID = { a: A, b: B };

describe('hardening: safetensors mutation table', () => {
  it('the unmutated file reads', () => {
    const st = decodeSafetensors('ok.safetensors', stFile(VALID, DATA));
    assert.deepEqual([...st.tensors.keys()].sort(), ['a', 'b']);
  });

  const bigShape = [2 ** 31, 2 ** 31, 2 ** 31];
  // [case, bytes, message, byte offset]
  const cases: [string, () => Buffer, RegExp, number][] = [
    ['shorter than the length prefix', () => Buffer.from([1, 0, 0]), /the file is 3 bytes long, too short for the 8-byte header length/, 0],
    ['header length huge (2^64 - 1)', () => stFile(VALID, DATA, 2n ** 64n - 1n), /the header length 18446744073709551615 runs past the end of the file/, 0],
    ['header length zero', () => stFile(VALID, DATA, 0n), /the header length 0 is too short for a JSON object/, 0],
    ['header length one byte beyond the file', () => stFile(VALID, DATA, BigInt(JSON.stringify(VALID).length + DATA.length + 1)), /runs past the end of the file/, 0],
    ['header not UTF-8', () => stFile('{"x":1}', new Uint8Array()).fill(0xff, 10, 11), /the header is not valid UTF-8/, 10],
    ['malformed JSON', () => stFile(JSON.stringify(VALID).slice(0, -1), DATA), /the header is not valid JSON/, 8 + JSON.stringify(VALID).length - 1],
    ['header a JSON array', () => stFile([VALID], DATA), /the header does not start with '\{'/, 8],
    ['unknown dtype', () => stFile({ a: { ...A, dtype: 'F33' }, b: B }, DATA), /tensor 'a': unknown dtype "F33"/, 9],
    ['negative dimension', () => stFile({ a: { ...A, shape: [-2, -3] }, b: B }, DATA), /tensor 'a': shape \[-2,-3\] is not a list of non-negative integers/, 9],
    ['data_offsets not a pair', () => stFile({ a: { ...A, data_offsets: [0] }, b: B }, DATA), /tensor 'a': data_offsets \[0\] is not a pair of non-negative integers/, 9],
    ['offsets ending before they begin', () => stFile({ a: { ...A, data_offsets: [24, 0] }, b: B }, DATA), /data_offsets \[24, 0\] end before they begin/, -1],
    ['offsets out of range', () => stFile({ a: A, b: { ...B, data_offsets: [24, 4000] } }, DATA), /tensor 'b': data_offsets \[24, 4000\] run past the end of the data section \(40 bytes/, -1],
    ['overlapping offsets', () => stFile({ a: A, b: { ...B, data_offsets: [20, 36] } }, DATA.subarray(0, 36)), /tensor 'b' \[20, 36\] overlaps tensor 'a' \[0, 24\]/, -1],
    ['a hole between tensors', () => stFile({ a: A, b: { ...B, shape: [3], data_offsets: [28, 40] } }, DATA), /4 bytes of the data section before tensor 'b' belong to no tensor/, -1],
    ['bytes after the last tensor', () => stFile(VALID, Buffer.concat([DATA, Buffer.alloc(3)])), /the data section has 3 bytes after the last tensor/, -1],
    ['dtype and shape that disagree with the byte count', () => stFile({ a: { ...A, dtype: 'F64' }, b: B }, DATA), /tensor 'a': holds 24 bytes but F64 of shape \[2,3\] needs 48/, -1],
    ['a shape whose element count overflows', () => stFile({ a: { ...A, shape: bigShape }, b: B }, DATA), /tensor 'a': shape \[2147483648,2147483648,2147483648\] has about 9\.90e\+27 elements, more bytes than any file can hold/, 9],
    ['a dimension past 2^53', () => stFile({ a: { ...A, shape: [2 ** 60, 0] }, b: B }, DATA), /tensor 'a': shape \[1152921504606847000,0\] is not a list of non-negative integers/, 9],
    ['truncated in the data', () => stFile(VALID, DATA.subarray(0, 30)), /tensor 'b': data_offsets \[24, 40\] run past the end of the data section \(30 bytes.*truncated/, -1],
    ['truncated in the header', () => stFile(VALID, DATA).subarray(0, 20), /the header length \d+ runs past the end of the file \(20 bytes/, 0],
    ['metadata that is not all strings', () => stFile({ __metadata__: { epoch: 3 }, ...VALID }, DATA), /__metadata__\.epoch is a number, expected a string/, 9],
  ];
  for (const [what, bytes, message, offset] of cases) {
    it(`${what}: a SafetensorsError naming the problem and its offset`, () => {
      assert.throws(() => decodeSafetensors('x.safetensors', bytes()), (e: Error) => {
        assert.ok(e instanceof SafetensorsError, `${e}`);
        assert.match(e.message, message);
        assert.match(e.message, /^safetensors x\.safetensors: .* \(at byte offset \d+\)$/);
        if (offset >= 0) assert.equal(e.offset, offset);
        return true;
      });
    });
  }
});
