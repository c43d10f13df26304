// The safetensors reader and writer as the public API has them (crunet.io): what a user writes reads back
// with its dtypes, shapes and metadata, and a damaged file is refused naming it.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { io } from '../lib/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

describe('crunet.io safetensors', () => {
  afterEach(removeTestTempDirs);

  it('writes and reads back tensors of each writable dtype with metadata', async () => {
    const file = path.join(testTempDir('st'), 'w.safetensors');
    const n = await io.writeSafetensors(file, {
      'fc.weight': { shape: [2, 3], data: Float32Array.of(1, -2, 3.5, 0, 1e-8, -0) },
      'bn.num_batches_tracked': { shape: [], data: BigInt64Array.of(42n) },
      mask: { shape: [4], data: Uint8Array.of(0, 1, 255, 7) },
      steps: { shape: [2], data: Int32Array.of(-1, 123456) },
      x64: { shape: [1], data: Float64Array.of(0.1) },
    }, { note: 'made by a test' });
    assert.equal(fs.statSync(file).size, n);
    const r = io.readSafetensors(file);
    assert.deepEqual(r.metadata, { note: 'made by a test' });
    const t = (k: string) => r.tensors.get(k)!;
    assert.deepEqual([t('fc.weight').dtype, t('fc.weight').shape, [...t('fc.weight').data]], ['F32', [2, 3], [1, -2, 3.5, 0, Math.fround(1e-8), -0]]);
    assert.deepEqual([t('bn.num_batches_tracked').dtype, t('bn.num_batches_tracked').shape, [...t('bn.num_batches_tracked').data]], ['I64', [], [42]]);
    assert.deepEqual([t('mask').dtype, [...t('mask').bytes]], ['U8', [0, 1, 255, 7]]);
    assert.deepEqual([t('steps').dtype, [...t('steps').data]], ['I32', [-1, 123456]]);
    assert.deepEqual([t('x64').dtype, t('x64').data[0]], ['F64', Math.fround(0.1)]);
    assert.deepEqual(io.readSafetensorsHeader(file).tensors.map((e) => e.name).sort(), [...r.tensors.keys()].sort());
    // In memory, the same bytes.
    assert.deepEqual(io.decodeSafetensors('mem', fs.readFileSync(file)).tensors.get('steps')!.data, t('steps').data);
  });

  it('refuses a truncated file, naming it and the offset', async () => {
    const file = path.join(testTempDir('st'), 'cut.safetensors');
    fs.writeFileSync(file, io.encodeSafetensors({ w: { shape: [4], data: new Float32Array(4) } }).subarray(0, -3));
    assert.throws(() => io.readSafetensors(file), (e: Error) => e instanceof io.SafetensorsError && e.message.startsWith(`safetensors ${file}:`) && /truncated/.test(e.message));
  });
});
