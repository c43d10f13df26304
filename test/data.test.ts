import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import {
  CIFAR10_CLASSES, CIFAR10_NORM, classHistogram, DataError, FASHION_MNIST_DIR, MemoryDataset, measureNormalization,
  openCifar10, openCifar100, openDataset, openIdx, parseDatasetSpec, parseIdx, readIdx, DataRng,
} from '../lib/data/index.js';
import { cifarBytes, cifarPixel, idxBytes, idxPixel, removeDir, tempDir, writeIdxSet } from './fixtures/data.js';

/** Asserts that p rejects with a DataError whose message matches every pattern. */
async function rejectsWith(p: Promise<unknown> | (() => unknown), ...patterns: (string | RegExp)[]): Promise<DataError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DataError, `expected a DataError, got ${err}`);
  for (const pat of patterns) {
    if (typeof pat === 'string') assert.ok(err.message.includes(pat), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(pat)}`);
    else assert.match(err.message, pat);
  }
  return err;
}

function readAll(ds: MemoryDataset, i: number, seed = 1): Float32Array {
  const out = new Float32Array(ds.shape[0] * ds.shape[1] * ds.shape[2]);
  ds.read(i, out, 0, new DataRng(seed));
  return out;
}

describe('data: IDX', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('idx')));
  afterEach(() => removeDir(dir));

  for (const gz of [false, true]) {
    it(`reads a generated ${gz ? 'gzipped' : 'raw'} set: counts, labels, normalised pixels`, async () => {
      const set = writeIdxSet(dir, { n: 25, m: 7, h: 5, w: 4, gz });
      const { train, test } = await openIdx(dir, { flavour: 'mnist' });
      assert.equal(train.length, 25);
      assert.equal(test.length, 7);
      assert.deepEqual(train.shape, [1, 5, 4]);
      assert.equal(train.classes.length, 10);
      assert.deepEqual([...train.labels], [...set.trainLabels]);
      const x = readAll(test, 3);
      for (let j = 0; j < 20; j++) assert.ok(Math.abs(x[j] - (idxPixel(3, j) / 255 - 0.1307) / 0.3081) < 1e-5);
    });
  }

  it('accepts the dotted file names some mirrors use', async () => {
    writeIdxSet(dir, { n: 3, m: 2, h: 2, w: 2, dots: true });
    const { train } = await openIdx(dir);
    assert.equal(train.length, 3);
  });

  it("'idx:' measures the normalisation on the training images and uses it for the test split", async () => {
    const set = writeIdxSet(dir, { n: 12, m: 4, h: 3, w: 3 });
    const { train, test } = await openDataset(`idx:${dir}`);
    const norm = measureNormalization(set.trainImages, 1, 9);
    assert.deepEqual((train as MemoryDataset).norm, norm);
    assert.deepEqual((test as MemoryDataset).norm, norm);
    let sum = 0;
    for (let i = 0; i < train.length; i++) sum += readAll(train as MemoryDataset, i).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum / (12 * 9)) < 1e-5, 'normalised training pixels have mean 0');
  });

  describe('bad files name the file and the byte offset', () => {
    const write = (name: string, bytes: Uint8Array) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, bytes);
      return f;
    };
    const images = () => idxBytes([2, 3, 3], new Uint8Array(18));

    it('a wrong magic number', async () => {
      const b = images();
      b[0] = 0x12;
      const f = write('x.idx', b);
      const e = await rejectsWith(readIdx(f, 3), f, 'not an IDX file', 'byte offset 0', '0x12000803');
      assert.equal(e.file, f);
      assert.equal(e.offset, 0);
    });
    it('an element type other than unsigned bytes', async () => {
      const f = write('x.idx', idxBytes([2, 3, 3], new Uint8Array(18), 0x0d));
      await rejectsWith(readIdx(f, 3), f, 'element type 0x0d', 'byte offset 2');
    });
    it('the wrong number of dimensions (labels where images were expected)', async () => {
      const f = write('x.idx', idxBytes([4], new Uint8Array(4)));
      await rejectsWith(readIdx(f, 3), f, 'wrong number of dimensions 1', 'byte offset 3', 'expected 3');
    });
    it('a zero image dimension', async () => {
      const f = write('x.idx', idxBytes([2, 0, 3], new Uint8Array(0)));
      await rejectsWith(readIdx(f, 3), f, 'dimension 1 is 0', 'byte offset 8');
    });
    it('a truncated header', async () => {
      const f = write('x.idx', images().subarray(0, 10));
      await rejectsWith(readIdx(f, 3), f, 'truncated IDX header', 'byte offset 10');
    });
    it('truncated data', async () => {
      const f = write('x.idx', images().subarray(0, 16 + 11));
      const e = await rejectsWith(readIdx(f, 3), f, 'truncated data', 'need 34 bytes', 'byte offset 27', 'item 1 of 2');
      assert.equal(e.offset, 27);
    });
    it('truncated data inside a gzip file (offsets count decompressed bytes)', async () => {
      const f = write('x.gz', zlib.gzipSync(images().subarray(0, 30)));
      await rejectsWith(readIdx(f, 3), f, 'truncated data', 'byte offset 30 of the decompressed data');
    });
    it('bytes after the data', async () => {
      const f = write('x.idx', Buffer.concat([images(), Buffer.alloc(3)]));
      await rejectsWith(readIdx(f, 3), f, '3 unexpected bytes', 'byte offset 34');
    });
    it('a damaged gzip stream', async () => {
      const gz = zlib.gzipSync(images());
      const f = write('x.gz', gz.subarray(0, gz.length - 12));
      const cut = await rejectsWith(readIdx(f, 3), f, 'gzip error', 'truncated', `the ${gz.length - 12}-byte file ends before the gzip stream does`);
      assert.equal(cut.offset, gz.length - 12);
      const g = Buffer.from(gz);
      g[12] ^= 0xff;
      g[13] ^= 0xff;
      const f2 = write('y.gz', g);
      const bad = await rejectsWith(readIdx(f2, 3), f2, 'gzip error', /damaged compressed data at byte offset \d+ of the \d+-byte file/);
      // zlib notices a damaged block at or after the damage, and before the end of the file.
      assert.ok(bad.offset! >= 12 && bad.offset! < gz.length, `offset ${bad.offset}`);
      // Damage that still inflates is caught by the checksum at the end.
      const h = Buffer.from(gz);
      h[h.length - 6] ^= 0x01;
      const f3 = write('z.gz', h);
      await rejectsWith(readIdx(f3, 3), f3, 'gzip error', `the checksum at byte offset ${gz.length - 8} of the ${gz.length}-byte file does not match`);
    });
    it('label and image counts that differ', async () => {
      writeIdxSet(dir, { n: 5, m: 2, h: 2, w: 2 });
      const labels = path.join(dir, 'train-labels-idx1-ubyte');
      fs.writeFileSync(labels, idxBytes([4], Uint8Array.from([0, 1, 2, 3])));
      await rejectsWith(openIdx(dir), labels, '4 labels', 'byte offset 4', 'train-images-idx3-ubyte has 5 images');
    });
    it('a label beyond the classes', async () => {
      writeIdxSet(dir, { n: 5, m: 2, h: 2, w: 2 });
      const labels = path.join(dir, 't10k-labels-idx1-ubyte');
      fs.writeFileSync(labels, idxBytes([2], Uint8Array.from([3, 12])));
      await rejectsWith(openIdx(dir, { flavour: 'fashion-mnist' }), labels, 'label 12 of item 1', 'byte offset 9', 'number of classes (10)');
    });
    it('a missing file lists the expected names and the directory', async () => {
      writeIdxSet(dir, { n: 5, m: 2, h: 2, w: 2 });
      fs.rmSync(path.join(dir, 't10k-images-idx3-ubyte'));
      await rejectsWith(openDataset(`mnist:${dir}`), `no t10k-images-idx3-ubyte[.gz] in ${dir}`, 'train-images-idx3-ubyte, train-labels-idx1-ubyte');
    });
  });

  it('a missing Fashion-MNIST says how to install it', async () => {
    const e = await rejectsWith(openDataset(`fashion-mnist:${dir}/none`), `${dir}/none does not exist`, 'apt-get install dataset-fashion-mnist', 't10k-labels-idx1-ubyte');
    assert.equal(e.file, `${dir}/none`);
    await rejectsWith(openIdx('/nonexistent/fashion', { flavour: 'fashion-mnist' }), 'apt-get install dataset-fashion-mnist');
  });

  const haveFashion = fs.existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  (haveFashion ? it : it.skip)("reads Debian's Fashion-MNIST (skipped without dataset-fashion-mnist)", async () => {
    const { train, test } = await openDataset('fashion-mnist');
    assert.equal(train.length, 60000);
    assert.equal(test.length, 10000);
    assert.deepEqual(train.shape, [1, 28, 28]);
    assert.equal(train.classes.length, 10);
    assert.equal(train.classes[9], 'Ankle boot');
    assert.deepEqual(classHistogram(train), new Array(10).fill(6000));
    assert.deepEqual(classHistogram(test), new Array(10).fill(1000));
    // The published statistics are those of these very files.
    const m = measureNormalization((train as MemoryDataset).pixels, 1, 784);
    assert.ok(Math.abs(m.mean[0] - 0.286) < 5e-4 && Math.abs(m.std[0] - 0.353) < 5e-4, JSON.stringify(m));
  });
});

describe('data: CIFAR', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('cifar')));
  afterEach(() => removeDir(dir));

  function writeCifar10(root: string) {
    const d = path.join(root, 'cifar-10-batches-bin');
    fs.mkdirSync(d, { recursive: true });
    for (let b = 1; b <= 5; b++) fs.writeFileSync(path.join(d, `data_batch_${b}.bin`), cifarBytes(b, [[b], [9 - b], [0]]));
    fs.writeFileSync(path.join(d, 'test_batch.bin'), cifarBytes(0, [[7], [3]]));
    fs.writeFileSync(path.join(d, 'batches.meta.txt'), CIFAR10_CLASSES.join('\n') + '\n\n');
    return d;
  }

  it('reads CIFAR-10 (from the directory the archive extracts to, or its parent)', async () => {
    const d = writeCifar10(dir);
    for (const p of [dir, d]) {
      const { train, test } = await openCifar10(p, { augment: null });
      assert.equal(train.length, 15);
      assert.equal(test.length, 2);
      assert.deepEqual(train.shape, [3, 32, 32]);
      assert.deepEqual(train.classes, CIFAR10_CLASSES);
      assert.deepEqual([...train.labels].slice(0, 6), [1, 8, 0, 2, 7, 0]);
      assert.deepEqual([...test.labels], [7, 3]);
      // Sample 4 is record 1 of data_batch_2; planes are R, G, B.
      const x = readAll(train, 4);
      for (const j of [0, 1023, 1024, 2047, 2048, 3071]) {
        const c = Math.floor(j / 1024);
        assert.ok(Math.abs(x[j] - (cifarPixel(2, 1, j) / 255 - CIFAR10_NORM.mean[c]) / CIFAR10_NORM.std[c]) < 1e-5);
      }
    }
  });

  it('augments the CIFAR training split by default (pad 4, mirror) and never the test split', async () => {
    writeCifar10(dir);
    const { train, test } = await openDataset(`cifar10:${dir}`);
    assert.deepEqual((train as MemoryDataset).augment, { pad: 4, flip: true });
    assert.equal((test as MemoryDataset).augment, null);
    const { train: plain } = await openDataset(`cifar10:${dir}`, { augment: false });
    assert.equal((plain as MemoryDataset).augment, null);
  });

  it('reads CIFAR-100 with fine or coarse labels', async () => {
    const d = path.join(dir, 'cifar-100-binary');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'train.bin'), cifarBytes(1, [[3, 42], [19, 99], [0, 0]]));
    fs.writeFileSync(path.join(d, 'test.bin'), cifarBytes(2, [[5, 7]]));
    const fine = await openCifar100(dir);
    assert.equal(fine.train.classes.length, 100);
    assert.deepEqual([...fine.train.labels], [42, 99, 0]);
    assert.deepEqual([...fine.test.labels], [7]);
    const coarse = await openDataset(`cifar100:${dir}`, { label: 'coarse' });
    assert.equal(coarse.train.classes.length, 20);
    assert.deepEqual([...coarse.train.labels], [3, 19, 0]);
    const x = readAll(fine.test, 0);
    assert.ok(Math.abs(x[5] - (cifarPixel(2, 0, 5) / 255 - 0.5071) / 0.2673) < 1e-5);
  });

  it('a truncated file names the file and the offset of the incomplete record', async () => {
    const d = writeCifar10(dir);
    const f = path.join(d, 'data_batch_3.bin');
    fs.writeFileSync(f, cifarBytes(3, [[1], [2]]).subarray(0, 3073 + 100));
    const e = await rejectsWith(openCifar10(dir), f, 'truncated', 'record 1', 'byte offset 3073', 'only 100 bytes');
    assert.equal(e.offset, 3073);
  });

  it('a label out of range names the record and its byte offset', async () => {
    const d = writeCifar10(dir);
    const f = path.join(d, 'test_batch.bin');
    fs.writeFileSync(f, cifarBytes(0, [[7], [10]]));
    await rejectsWith(openCifar10(dir), f, 'label 10 of record 1', 'byte offset 3073');
    const d100 = path.join(dir, 'c100');
    fs.mkdirSync(d100);
    fs.writeFileSync(path.join(d100, 'train.bin'), cifarBytes(1, [[3, 42], [20, 1]]));
    fs.writeFileSync(path.join(d100, 'test.bin'), cifarBytes(1, [[3, 42]]));
    await rejectsWith(openCifar100(d100), 'coarse label 20 of record 1', 'byte offset 3074');
  });

  it('missing files say which files are expected where', async () => {
    await rejectsWith(openCifar10(dir), `no data_batch_1.bin in ${dir}`, 'cifar-10-batches-bin', 'test_batch.bin');
    const d = writeCifar10(dir);
    fs.rmSync(path.join(d, 'test_batch.bin'));
    await rejectsWith(openCifar10(dir), `no test_batch.bin in ${d}`);
    await rejectsWith(openCifar100(dir), 'train.bin', 'cifar-100-binary');
  });
});

describe('data: small-image augmentation', () => {
  const h = 6, w = 5;
  const pixels = Uint8Array.from({ length: 2 * h * w }, (_, i) => 1 + i);
  const ds = new MemoryDataset({
    name: 't', classes: ['a'], shape: [2, h, w], pixels, labels: new Int32Array(1),
    norm: { mean: [0, 0], std: [1 / 255, 1 / 255] }, augment: { pad: 2, flip: true },
  });

  /** The crop of the zero-padded image at offset (dy, dx), mirrored or not: torchvision's RandomCrop + flip. */
  function expected(dy: number, dx: number, flip: boolean): number[] {
    const out: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const sy = y + dy, sx = (flip ? w - 1 - x : x) + dx;
          out.push(sy < 0 || sy >= h || sx < 0 || sx >= w ? 0 : pixels[c * h * w + sy * w + sx]);
        }
    return out;
  }

  it('every output is a padded crop of the input, mirrored or not; all offsets and both mirrors occur', () => {
    const seen = new Set<string>();
    for (let s = 0; s < 400; s++) {
      const x = [...readAll(ds, 0, s)].map(Math.round);
      let match: string | undefined;
      for (let dy = -2; dy <= 2 && !match; dy++)
        for (let dx = -2; dx <= 2 && !match; dx++)
          for (const flip of [false, true]) if (!match && expected(dy, dx, flip).every((v, i) => v === x[i])) match = `${dy},${dx},${flip}`;
      assert.ok(match, `seed ${s}: output is no padded crop`);
      seen.add(match);
    }
    assert.equal(seen.size, 50);
  });

  it('is deterministic in the generator and off without augment', () => {
    assert.deepEqual(readAll(ds, 0, 7), readAll(ds, 0, 7));
    assert.deepEqual([...readAll(ds.withAugment(null), 0, 7)].map(Math.round), expected(0, 0, false));
  });
});

describe('data: random erasing', () => {
  const side = 28;
  // A gradient image, so that a crop of it is recognisable and erased pixels differ from what was there.
  const pixels = Uint8Array.from({ length: side * side }, (_, i) => 40 + ((i * 7) % 150));
  const make = (augment: { pad: number; flip: boolean; erase?: number }) => new MemoryDataset({
    name: 'e', classes: ['a'], shape: [1, side, side], pixels, labels: new Int32Array(1),
    norm: { mean: [0], std: [1 / 255] }, augment,
  });

  /** The bounding box of the pixels where a and b differ, or null where they are equal. */
  function changed(a: Float32Array, b: Float32Array): { h: number; w: number; n: number } | null {
    let y0 = side, y1 = -1, x0 = side, x1 = -1, n = 0;
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++)
        if (a[y * side + x] !== b[y * side + x]) (n++, (y0 = Math.min(y0, y)), (y1 = Math.max(y1, y)), (x0 = Math.min(x0, x)), (x1 = Math.max(x1, x)));
    return n ? { h: y1 - y0 + 1, w: x1 - x0 + 1, n } : null;
  }

  it('erases one rectangle of 2 %-40 % of the area after the same crop and mirror, with random values', () => {
    const plain = make({ pad: 2, flip: true }), erased = make({ pad: 2, flip: true, erase: 1 });
    const values = new Set<number>();
    let hits = 0;
    for (let s = 0; s < 300; s++) {
      const a = readAll(plain, 0, s), b = readAll(erased, 0, s);
      const box = changed(a, b);
      if (!box) continue; // all 10 draws missed the image (rare at 28x28)
      hits++;
      // The changed pixels lie in one rectangle no larger than 40 % of the image (the box of changes can
      // be smaller than the rectangle where a random value equals the old one, never larger).
      assert.ok(box.h * box.w <= Math.ceil(0.4 * side * side * 1.2), `seed ${s}: ${box.h}x${box.w} is more than 40 % of the image`);
      assert.ok(box.n >= 0.5 * box.h * box.w, `seed ${s}: changes fill their box (${box.n} of ${box.h * box.w})`);
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) values.add(Math.round(b[i]));
    }
    assert.ok(hits >= 290, `erasing happened in ${hits} of 300 samples at probability 1`);
    assert.ok(values.size > 200, `erased pixels take random byte values (${values.size} distinct)`);
  });

  it('erases with the given probability and leaves erase: 0 identical to no erasing', () => {
    const plain = make({ pad: 2, flip: true }), half = make({ pad: 2, flip: true, erase: 0.5 }), off = make({ pad: 2, flip: true, erase: 0 });
    let hits = 0;
    for (let s = 0; s < 400; s++) {
      if (changed(readAll(plain, 0, s), readAll(half, 0, s))) hits++;
      assert.deepEqual(readAll(off, 0, s), readAll(plain, 0, s));
    }
    // Binomial(400, 0.5): mean 200, sd 10; 150..250 is five sd.
    assert.ok(hits > 150 && hits < 250, `${hits} of 400 erased at probability 0.5`);
  });

  it('refuses a probability outside [0, 1]', () => {
    assert.throws(() => make({ pad: 0, flip: false, erase: 1.5 }), /augment.erase is a probability in \[0, 1\], but received 1.5/);
    assert.throws(() => make({ pad: 0, flip: false, erase: NaN }), /augment.erase/);
  });
});

describe('data: dataset specs', () => {
  it('parses every kind', () => {
    assert.deepEqual(parseDatasetSpec('fashion-mnist'), { kind: 'fashion-mnist', path: undefined });
    assert.deepEqual(parseDatasetSpec('mnist:/d/m'), { kind: 'mnist', path: '/d/m' });
    assert.deepEqual(parseDatasetSpec('idx:rel/dir'), { kind: 'idx', path: 'rel/dir' });
    assert.deepEqual(parseDatasetSpec('CIFAR10:/c'), { kind: 'cifar10', path: '/c' });
    assert.deepEqual(parseDatasetSpec('cifar100:/c'), { kind: 'cifar100', path: '/c' });
    assert.deepEqual(parseDatasetSpec('folder:/a:b'), { kind: 'folder', path: '/a:b' });
    assert.deepEqual(parseDatasetSpec('imagenet:/i'), { kind: 'folder', path: '/i' });
  });
  it('rejects unknown kinds and missing paths, listing what is accepted', () => {
    assert.throws(() => parseDatasetSpec('svhn:/x'), /unknown kind 'svhn'.*'cifar10:PATH'/);
    assert.throws(() => parseDatasetSpec('cifar10'), /'cifar10' needs a directory: 'cifar10:PATH'/);
    assert.throws(() => parseDatasetSpec('mnist:'), /empty path/);
  });
});
