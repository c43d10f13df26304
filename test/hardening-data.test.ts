// Adversarial data files: image folders, IDX and CIFAR binary. Each case asserts an error that names the
// file and the problem (or, for images under onBadImage 'skip', that it is skipped and counted), and
// that nothing hangs or reads without bound.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import {
  BadImageError, DataError, DataLoader, DEFAULT_MAX_IMAGE_PIXELS, FolderDataset, loadIdx, openCifar10, openCifar100, openDataset, openIdx,
  parseCifar, parseIdx, DataRng, scanFolder,
} from '../lib/data/index.js';
import { cifarBytes, idxBytes, removeDir, tempDir, writeIdxSet } from './fixtures/data.js';

const SMALL = { size: 16, resize: 16 };

/** A uniform w x h image of `channels` channels, each pixel `value`, as PNG (16-bit when depth16). */
async function uniformPng(file: string, w: number, h: number, value: number[], depth16 = false): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const raw = Buffer.alloc(w * h * value.length);
  for (let i = 0; i < raw.length; i++) raw[i] = value[i % value.length]!;
  let img = sharp(raw, { raw: { width: w, height: h, channels: value.length as 1 | 2 | 3 | 4 } });
  if (value.length <= 2) img = img.toColourspace('b-w');
  if (depth16) img = img.toColourspace(value.length <= 2 ? 'grey16' : 'rgb16');
  await img.png().toFile(file);
}

/** A w x h PNG of noise (incompressible: about 3 * w * h bytes). */
async function noisePng(file: string, w: number, h: number): Promise<void> {
  const r = new DataRng(w * h);
  await sharp(Buffer.from(Array.from({ length: w * h * 3 }, () => r.int(256))), { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

/** A PNG that is only a header claiming w x h (metadata reads it; decoding would need w * h bytes). */
function pngHeaderOnly(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (grey), no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The 0-255 RGB of the centre pixel of a decoded sample, undoing the transform's normalisation. */
function centreRgb(ds: FolderDataset, out: Float32Array): number[] {
  const t = ds.transform, plane = t.size * t.size, centre = (t.size >> 1) * t.size + (t.size >> 1);
  return [0, 1, 2].map((c) => out[c * plane + centre]! / t.multiplier + t.mean[c]!);
}

async function read(ds: FolderDataset, name: string): Promise<Float32Array> {
  const i = [...Array(ds.length).keys()].find((k) => ds.file(k).endsWith(`/${name}`));
  assert.ok(i !== undefined, `no ${name} in the data set`);
  const out = new Float32Array(3 * ds.transform.size ** 2);
  await ds.read(i, out, 0, new DataRng(1));
  return out;
}

describe('hardening: image folders', function () {
  let dir: string;
  before(() => (dir = tempDir('hard-folder')));
  after(() => removeDir(dir));

  /** A fresh root with one good class 'a'; `bad` adds the case's entries. */
  async function root(name: string, bad: (r: string) => void | Promise<void>): Promise<string> {
    const r = path.join(dir, name);
    await uniformPng(path.join(r, 'a/good.png'), 16, 16, [10, 20, 30]);
    await bad(r);
    return r;
  }

  describe('found while scanning: a DataError naming the entry', () => {
    const cases: [string, (r: string) => void, (r: string) => string, RegExp][] = [
      ['a named pipe with an image name', (r) => execFileSync('mkfifo', [path.join(r, 'a/pipe.jpg')]), (r) => path.join(r, 'a/pipe.jpg'), /is a named pipe \(FIFO\); only regular files are read as images/],
      ['a symbolic link to /dev/zero', (r) => fs.symlinkSync('/dev/zero', path.join(r, 'a/zero.png')), (r) => path.join(r, 'a/zero.png'), /is a character device; only regular files/],
      ['a dangling symbolic link', (r) => fs.symlinkSync(path.join(r, 'nowhere.png'), path.join(r, 'a/gone.png')), (r) => path.join(r, 'a/gone.png'), /cannot be followed \(dangling or unreadable\)/],
      ['a class folder with only unsupported files', (r) => {
        fs.mkdirSync(path.join(r, 'b'));
        fs.writeFileSync(path.join(r, 'b/readme.txt'), 'x');
        fs.writeFileSync(path.join(r, 'b/image.bmp'), 'x');
      }, (r) => path.join(r, 'b'), /no valid image for the class 'b' \(2 files, none an image\)\. Supported extensions are \.jpg/],
      ['an empty class folder', (r) => fs.mkdirSync(path.join(r, 'b')), (r) => path.join(r, 'b'), /no valid image for the class 'b' \(empty\)/],
      ['two empty nested class folders', (r) => {
        fs.mkdirSync(path.join(r, 'x/b'), { recursive: true });
        fs.mkdirSync(path.join(r, 'x/c'));
      }, (r) => path.join(r, 'x/b'), /no valid image for the classes 'x\/b' \(empty\), 'x\/c' \(empty\)/],
    ];
    for (const [what, make, file, message] of cases) {
      it(what, async () => {
        const r = await root(what.replace(/\W+/g, '-'), make);
        await assert.rejects(scanFolder(r), (e: Error) => {
          assert.ok(e instanceof DataError, String(e));
          assert.match(e.message, message);
          assert.equal(e.file, file(r));
          assert.ok(e.message.includes(file(r)) || e.message.includes(r), e.message);
          return true;
        });
      });
    }
  });

  it('an empty folder inside a class folder (a stray raw/) is not a class and not an error', async () => {
    const r = await root('stray-subfolder', (r) => void fs.mkdirSync(path.join(r, 'a/raw/empty'), { recursive: true }));
    const scan = await scanFolder(r);
    assert.deepEqual(scan.classes, ['a']);
  });

  describe('found while reading: a BadImageError naming the file, skipped and counted under onBadImage skip', () => {
    // [file name, how to make it, message, dataset options]
    const cases: [string, (f: string) => void | Promise<void>, RegExp, { maxImageBytes?: number; maxImagePixels?: number }][] = [
      ['empty.png', (f) => fs.writeFileSync(f, ''), /: is empty \(0 bytes\)/, {}],
      ['text.jpg', (f) => fs.writeFileSync(f, 'this is not a JPEG\n'), /: cannot decode: .*unsupported image format/, {}],
      ['truncated.jpg', async (f) => {
        const jpeg = await sharp(Buffer.alloc(64 * 64 * 3, 77), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer();
        fs.writeFileSync(f, jpeg.subarray(0, jpeg.length >> 1));
      }, /: cannot decode: /, {}],
      ['truncated.png', async (f) => {
        const png = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7) & 255)), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
        fs.writeFileSync(f, png.subarray(0, png.length >> 1));
      }, /: cannot decode: /, {}],
      ['big.png', (f) => noisePng(f, 64, 64), /: is \d+ bytes, over the limit of 4096 bytes for one image \(maxImageBytes; crunet's --max-image-bytes\)/, { maxImageBytes: 4096 }],
      ['bomb.png', (f) => fs.writeFileSync(f, pngHeaderOnly(20000, 20000)), new RegExp(`: cannot decode: 20000x20000 is 400000000 pixels, over the limit of ${DEFAULT_MAX_IMAGE_PIXELS} \\(maxImagePixels`), {}],
      ['wide.png', (f) => uniformPng(f, 64, 32, [1, 2, 3]), /: cannot decode: 64x32 is 2048 pixels, over the limit of 1000 \(maxImagePixels/, { maxImagePixels: 1000 }],
    ];
    for (const [name, make, message, limits] of cases) {
      it(name, async () => {
        const r = await root(`read-${name}`, (rr) => make(path.join(rr, 'a', name)));
        const ds = await FolderDataset.open(r, { train: false, transform: SMALL, ...limits });
        await assert.rejects(read(ds, name), (e: Error) => {
          assert.ok(e instanceof BadImageError, String(e));
          assert.equal(e.file, path.join(r, 'a', name));
          assert.ok(e.message.startsWith(path.join(r, 'a', name)), e.message);
          assert.match(e.message, message);
          return true;
        });
        await read(ds, 'good.png'); // the limits leave a uniform 16x16 PNG (about a hundred bytes) alone
      });
    }

    it('all of them together under onBadImage skip: each skipped and counted, the epoch completes', async () => {
      const r = path.join(dir, 'skip-all');
      for (let k = 0; k < 3; k++) await uniformPng(path.join(r, `a/good${k}.png`), 16, 16, [10, 20, 30]);
      for (const [name, make] of cases.filter(([, , , l]) => !Object.keys(l).length)) await make(path.join(r, 'a', name));
      const ds = await FolderDataset.open(r, { train: false, transform: SMALL, onBadImage: 'skip' });
      const loader = new DataLoader(ds, { batchSize: 8, workers: 0, onSkip: () => {} });
      try {
        let images = 0;
        for await (const b of loader.epoch(0)) images += b.size;
        assert.equal(images, ds.length);
        assert.deepEqual([...loader.badImages.keys()].map((f) => path.basename(f)).sort(), ['bomb.png', 'empty.png', 'text.jpg', 'truncated.jpg', 'truncated.png']);
      } finally {
        await loader.close();
      }
    });

    for (const [what, swap, message] of [
      ['a named pipe', (f: string) => execFileSync('mkfifo', [f]), /is a named pipe \(FIFO\), not an image file/],
      ['a link to /dev/zero', (f: string) => fs.symlinkSync('/dev/zero', f), /is a character device, not an image file/],
    ] as const) {
      it(`a file replaced by ${what} after the scan is refused when read, without hanging or reading without end`, async () => {
        const r = await root(`swap-${what.replace(/\W+/g, '-')}`, (rr) => uniformPng(path.join(rr, 'a/later.png'), 16, 16, [1, 2, 3]));
        const ds = await FolderDataset.open(r, { train: false, transform: SMALL });
        fs.unlinkSync(path.join(r, 'a/later.png'));
        swap(path.join(r, 'a/later.png'));
        await assert.rejects(read(ds, 'later.png'), (e: Error) => e instanceof BadImageError && message.test(e.message) && e.message.startsWith(path.join(r, 'a/later.png')));
      });
    }
  });

  describe('colour: every layout decodes to the right RGB', () => {
    // [file, channel values stored, 16-bit, expected RGB]
    const cases: [string, number[], boolean, number[]][] = [
      ['grey.png', [90], false, [90, 90, 90]],
      ['grey-alpha-opaque.png', [90, 255], false, [90, 90, 90]],
      ['rgb.png', [200, 100, 50], false, [200, 100, 50]],
      ['rgba-opaque.png', [200, 100, 50, 255], false, [200, 100, 50]],
      ['rgb16.png', [200, 100, 50], true, [200, 100, 50]],
      // Transparency is composited onto the background (white by default), not dropped to the stored colour.
      ['transparent.png', [0, 0, 0, 0], false, [255, 255, 255]],
      ['half-transparent-red.png', [255, 0, 0, 128], false, [255, 127, 127]],
      ['half-transparent-grey.png', [0, 128], false, [127, 127, 127]],
    ];
    cases.push(['palette.png', [], false, [200, 100, 50]]); // written in before(): a PNG with a colour table
    let ds: FolderDataset;
    before(async () => {
      const r = path.join(dir, 'colour');
      for (const [name, value, d16] of cases) if (value.length) await uniformPng(path.join(r, 'a', name), 24, 20, value, d16);
      await sharp(Buffer.alloc(24 * 20 * 3, 0).map((_, i) => [200, 100, 50][i % 3]!), { raw: { width: 24, height: 20, channels: 3 } }).png({ palette: true }).toFile(path.join(r, 'a/palette.png'));
      ds = await FolderDataset.open(r, { train: false, transform: SMALL });
    });
    for (const [name, , , want] of cases) {
      it(`${name} -> rgb(${want.join(', ')})`, async () => {
        const got = centreRgb(ds, await read(ds, name));
        got.forEach((v, c) => assert.ok(Math.abs(v - want[c]!) <= 1.5, `${name}: got rgb(${got.map((x) => x.toFixed(1)).join(', ')}), expected rgb(${want.join(', ')})`));
      });
    }

    it('the background is configurable, and the training transform flattens too', async () => {
      const r = path.join(dir, 'colour');
      const blue = await FolderDataset.open(r, { train: false, transform: { ...SMALL, background: [0, 0, 255] } });
      assert.deepEqual(centreRgb(blue, await read(blue, 'transparent.png')).map((v) => Math.round(v) || 0), [0, 0, 255]);
      const train = await FolderDataset.open(r, { train: true, transform: { ...SMALL, hsl: [0, 0, 0], flip: false } });
      assert.deepEqual(centreRgb(train, await read(train, 'transparent.png')).map((v) => Math.round(v) || 0), [255, 255, 255]);
      assert.throws(() => new FolderDataset(r, { classes: ['a'], files: [], labels: new Int32Array() }, { train: false, transform: { background: [0, 0] as never } }), /expected background to be three values/);
    });
  });

  it('limits must be positive integers', () => {
    const scan = { classes: ['a'], files: [], labels: new Int32Array() };
    assert.throws(() => new FolderDataset(dir, scan, { train: false, maxImageBytes: 0 }), /expected maxImageBytes to be a positive integer, but received 0/);
    assert.throws(() => new FolderDataset(dir, scan, { train: false, maxImagePixels: 1.5 }), /expected maxImagePixels to be a positive integer, but received 1.5/);
  });
});

describe('hardening: IDX files', () => {
  let dir: string;
  before(() => (dir = tempDir('hard-idx')));
  after(() => removeDir(dir));

  const pixels = (n: number) => new Uint8Array(n).map((_, i) => i & 255);
  const big = 0xffffffff;
  // [case, bytes of an images file (3 dimensions), message, offset]
  const cases: [string, () => Uint8Array, RegExp, number][] = [
    ['wrong magic (a PNG)', () => Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]), /not an IDX file: magic number 0x89504e47 at byte offset 0, expected 0x00000803/, 0],
    ['an element type other than bytes', () => idxBytes([1, 2, 2], pixels(16), 0x0d), /unsupported IDX element type 0x0d at byte offset 2/, 2],
    ['a labels file where images belong', () => idxBytes([4], pixels(4)), /wrong number of dimensions 1 at byte offset 3 .* expected 3/, 3],
    ['truncated in the magic number', () => Buffer.from([0, 0, 8]), /truncated IDX header: the file has 3 bytes, the magic number needs 4/, 3],
    ['truncated in the dimensions', () => idxBytes([2, 4, 4], new Uint8Array()).subarray(0, 10), /truncated IDX header: 3 dimensions need 16 bytes, the file ends at byte offset 10/, 10],
    ['truncated in the data', () => idxBytes([2, 4, 4], pixels(20)), /truncated data: dimensions \[2, 4, 4\] need 48 bytes, the file ends at byte offset 36 \(item 1 of 2 is incomplete\)/, 36],
    ['bytes after the data', () => idxBytes([2, 4, 4], pixels(37)), /5 unexpected bytes after the data, from byte offset 48/, 48],
    ['dimensions whose product overflows', () => idxBytes([big, big, big], pixels(16)), /dimensions \[4294967295, 4294967295, 4294967295\] at byte offset 4 describe about 7\.92e\+28 bytes of data, more than any file holds: the header is damaged/, 4],
    ['a zero image dimension', () => idxBytes([2, 0, 4], new Uint8Array()), /dimension 1 is 0 at byte offset 8/, 8],
  ];
  for (const [what, bytes, message, offset] of cases) {
    it(`${what}: a DataError naming the file, the problem and the offset`, () => {
      assert.throws(() => parseIdx(bytes(), 'imgs.idx', 3), (e: Error) => {
        assert.ok(e instanceof DataError, String(e));
        assert.match(e.message, /^imgs\.idx: /);
        assert.match(e.message, message);
        assert.equal(e.offset, offset);
        return true;
      });
    });
  }

  it('label count differing from the image count', async () => {
    fs.writeFileSync(path.join(dir, 'i'), idxBytes([2, 4, 4], pixels(32)));
    fs.writeFileSync(path.join(dir, 'l'), idxBytes([3], Uint8Array.of(0, 1, 2)));
    await assert.rejects(loadIdx(path.join(dir, 'i'), path.join(dir, 'l')), new RegExp(`${path.join(dir, 'l')}: 3 labels \\(count at byte offset 4\\) but ${path.join(dir, 'i')} has 2 images`));
  });

  it('a label out of range of the classes, in a gzipped file', async () => {
    fs.writeFileSync(path.join(dir, 'i'), idxBytes([2, 4, 4], pixels(32)));
    fs.writeFileSync(path.join(dir, 'l.gz'), zlib.gzipSync(idxBytes([2], Uint8Array.of(3, 10))));
    await assert.rejects(loadIdx(path.join(dir, 'i'), path.join(dir, 'l.gz'), { classes: 'abcdefghij'.split('') }),
      /l\.gz: label 10 of item 1 at byte offset 9 of the decompressed data is not below the number of classes \(10\)/);
  });

  it('a truncated gzip stream', async () => {
    const gz = zlib.gzipSync(idxBytes([2, 4, 4], pixels(32)));
    fs.writeFileSync(path.join(dir, 'cut.gz'), gz.subarray(0, gz.length - 6));
    await assert.rejects(loadIdx(path.join(dir, 'cut.gz'), path.join(dir, 'l.gz')), /cut\.gz: gzip error: .*the stream is truncated/);
  });

  it('test images of another size than the training images', async () => {
    const d = path.join(dir, 'sizes');
    writeIdxSet(d, { n: 2, m: 2, h: 4, w: 4 });
    fs.writeFileSync(path.join(d, 't10k-images-idx3-ubyte'), idxBytes([2, 5, 5], pixels(50)));
    await assert.rejects(openIdx(d), /t10k-images-idx3-ubyte: images are 5x5 but .*train-images-idx3-ubyte has 4x4/);
  });

  it('a missing file: says which, where, and how to get it', async () => {
    const d = path.join(dir, 'missing');
    writeIdxSet(d, { n: 2, m: 2, h: 4, w: 4 });
    fs.unlinkSync(path.join(d, 't10k-labels-idx1-ubyte'));
    await assert.rejects(openDataset(`mnist:${d}`), /no t10k-labels-idx1-ubyte\[\.gz\] in .*missing\. An IDX data set directory holds/);
  });
});

describe('hardening: CIFAR binary files', () => {
  let dir: string;
  before(() => (dir = tempDir('hard-cifar')));
  after(() => removeDir(dir));

  const c10 = { file: 'data_batch_1.bin', labelBytes: 1 as const, classCounts: [10] };
  const c100 = { file: 'train.bin', labelBytes: 2 as const, classCounts: [20, 100] };
  // [case, bytes, spec, message, offset]
  const cases: [string, () => Uint8Array, typeof c10 | typeof c100, RegExp, number][] = [
    ['an empty file', () => new Uint8Array(), c10, /data_batch_1\.bin: empty file, expected records of 3073 bytes/, 0],
    ['a truncated record', () => cifarBytes(1, [[1], [2]]).subarray(0, 3073 + 100), c10, /truncated: 3173 bytes is not a whole number of 3073-byte records; record 1 at byte offset 3073 has only 100 bytes/, 3073],
    ['a CIFAR-10 label out of range', () => cifarBytes(1, [[1], [10]]), c10, /label 10 of record 1 at byte offset 3073 is not below 10/, 3073],
    ['a CIFAR-100 coarse label out of range', () => cifarBytes(1, [[20, 5]]), c100, /coarse label 20 of record 0 at byte offset 0 is not below 20/, 0],
    ['a CIFAR-100 fine label out of range', () => cifarBytes(1, [[2, 5], [3, 100]]), c100, /fine label 100 of record 1 at byte offset 3075 is not below 100/, 3075],
    ['CIFAR-100 records read as CIFAR-10', () => cifarBytes(1, [[2, 5], [3, 7], [4, 9]]), c10, /truncated: 9222 bytes is not a whole number of 3073-byte records/, 9219],
    ['the gzipped archive in place of a batch', () => zlib.gzipSync(cifarBytes(1, [[1], [2]])), c10, /is gzip-compressed \(magic 0x1f8b at byte offset 0\), not CIFAR binary records: extract the archive/, 0],
  ];
  for (const [what, bytes, spec, message, offset] of cases) {
    it(`${what}: a DataError naming the file, the problem and the offset`, () => {
      assert.throws(() => parseCifar(bytes(), spec), (e: Error) => {
        assert.ok(e instanceof DataError, String(e));
        assert.ok(e.message.startsWith(`${spec.file}: `), e.message);
        assert.match(e.message, message);
        assert.equal(e.offset, offset);
        return true;
      });
    });
  }

  it('the Python version of CIFAR-10 where the binary version belongs', async () => {
    const d = path.join(dir, 'py/cifar-10-batches-py');
    fs.mkdirSync(d, { recursive: true });
    for (const f of ['data_batch_1', 'test_batch', 'batches.meta']) fs.writeFileSync(path.join(d, f), 'pickle');
    await assert.rejects(openCifar10(path.join(dir, 'py')), /no data_batch_1\.bin in .*py .*CIFAR-10 binary version/);
  });

  it('CIFAR-100 without its test file', async () => {
    const d = path.join(dir, 'c100');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'train.bin'), cifarBytes(1, [[1, 2]]));
    await assert.rejects(openCifar100(d), /no test\.bin in .*c100\. CIFAR-100 binary version/);
  });
});

describe('preprocessing is recorded on the data set', () => {
  let dir: string;
  before(() => (dir = tempDir('hard-pre')));
  after(() => removeDir(dir));

  it('IDX (Fashion-MNIST): (x/255 - 0.286) / 0.353, one channel', async () => {
    writeIdxSet(dir, { n: 2, m: 2, h: 4, w: 3 });
    const { train, test } = await openDataset(`fashion-mnist:${dir}`);
    assert.deepEqual(train.preprocessing, { scale: 1 / 255, mean: [0.286], std: [0.353], layout: 'NCHW', channels: 1, size: [4, 3] });
    assert.deepEqual(test.preprocessing, train.preprocessing);
    // It describes what read() does: byte v of the first sample becomes (v * scale - mean) / std.
    const out = new Float32Array(12);
    await train.read(0, out, 0, new DataRng(0));
    const p = train.preprocessing!;
    const first = (train as unknown as { pixels: Uint8Array }).pixels.subarray(0, 12);
    first.forEach((v, k) => assert.ok(Math.abs(out[k]! - (v * p.scale - p.mean[0]!) / p.std[0]!) < 1e-5));
  });

  it('image folders: the transform\'s (v - mean) * multiplier, in the same form, with the evaluation geometry', async () => {
    await uniformPng(path.join(dir, 'f/a/x.png'), 20, 20, [200, 100, 50]);
    const ds = await FolderDataset.open(path.join(dir, 'f'), { train: false, transform: SMALL });
    const p = ds.preprocessing;
    assert.equal(p.channels, 3);
    assert.deepEqual(p.size, [16, 16]);
    assert.equal(p.resize, 16);
    assert.deepEqual(p.background, [255, 255, 255]);
    const out = await read(ds, 'x.png');
    [200, 100, 50].forEach((v, c) => assert.ok(Math.abs(out[c * 256 + 8 * 16 + 8]! - (v * p.scale - p.mean[c]!) / p.std[c]!) < 0.02));
  });
});
