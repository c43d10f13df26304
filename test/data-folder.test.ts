import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  BadImageError, DataError, DataLoader, FolderDataset, imageTransform, openDataset, randomResizedCrop, resizeCentreCrop, DataRng,
  scanFolder, type Batch,
} from '../lib/data/index.js';
import { pixelsToChw, NO_JITTER } from '../lib/data/augment.js';
import { limitDataset } from '../lib/data/subset.js';
import { removeDir, tempDir } from './fixtures/data.js';

// Raw RGB image of w x h with pixel (x, y) = f(x, y).
function rgb(w: number, h: number, f: (x: number, y: number) => [number, number, number]): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b.set(f(x, y), (y * w + x) * 3);
  return b;
}

async function writeImage(file: string, w: number, h: number, f: (x: number, y: number) => [number, number, number], format: 'png' | 'jpeg' | 'webp' = 'png') {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(rgb(w, h, f), { raw: { width: w, height: h, channels: 3 } }).toFormat(format).toFile(file);
}

const noise = (seed: number) => {
  const r = new DataRng(seed);
  return (): [number, number, number] => [r.int(256), r.int(256), r.int(256)];
};

// The paper's normalisation: (v - mean) * 0.0167, so outputs lie in [(0-124), (255-104)] * 0.0167.
const LO = (0 - 124) * 0.0167, HI = (255 - 104) * 0.0167;
const SMALL = { size: 24, resize: 28 };

async function readSample(ds: FolderDataset, i: number, seed: number): Promise<Float32Array> {
  const out = new Float32Array(3 * ds.transform.size ** 2);
  await ds.read(i, out, 0, new DataRng(seed));
  return out;
}

describe('data: image folders', function () {
  let dir: string;

  before(async () => {
    dir = tempDir('folder');
    const t = path.join(dir, 'train'), v = path.join(dir, 'val');
    await writeImage(path.join(t, 'cat/a.png'), 64, 48, noise(1));
    await writeImage(path.join(t, 'cat/b.jpg'), 40, 90, noise(2), 'jpeg');
    await writeImage(path.join(t, 'cat/c.webp'), 33, 33, noise(3), 'webp');
    await writeImage(path.join(t, 'dog/a.png'), 50, 50, noise(4));
    await writeImage(path.join(t, 'dog/b.PNG'), 120, 30, noise(5));
    // Greyscale and RGBA files must come out as three channels. (Alpha is opaque: sharp resamples
    // premultiplied, which moves semi-transparent colours by a level or two.)
    await sharp(Buffer.alloc(30 * 20, 90), { raw: { width: 30, height: 20, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(t, 'dog/grey.png'));
    await sharp(Buffer.from(Buffer.alloc(30 * 20 * 4, 200).map((v, i) => (i % 4 === 3 ? 255 : v))), { raw: { width: 30, height: 20, channels: 4 } }).png().toFile(path.join(t, 'dog/alpha.png'));
    // Places365-style nested class folder, and files that are not images.
    await writeImage(path.join(t, 'z/zebra/a.jpeg'), 45, 45, noise(6), 'jpeg');
    fs.writeFileSync(path.join(t, 'cat/notes.txt'), 'not an image');
    fs.writeFileSync(path.join(t, 'dog/.hidden.png'), 'hidden');
    await writeImage(path.join(v, 'cat/v.png'), 40, 30, noise(7));
    await writeImage(path.join(v, 'z/zebra/v.png'), 30, 40, noise(8));
  });
  after(() => removeDir(dir));

  it('finds one class per image directory (sorted, nested names allowed) and pairs train with val', async () => {
    const { train, test } = await openDataset(`folder:${dir}`, { transform: SMALL });
    assert.deepEqual(train.classes, ['cat', 'dog', 'z/zebra']);
    assert.equal(train.length, 8);
    assert.deepEqual([...train.labels], [0, 0, 0, 1, 1, 1, 1, 2]);
    assert.deepEqual((train as FolderDataset).file(3), path.join(dir, 'train/dog/a.png'));
    assert.deepEqual(test.classes, train.classes);
    assert.deepEqual([...test.labels], [0, 2]);
    assert.equal((train as FolderDataset).transform.train, true);
    assert.equal((test as FolderDataset).transform.train, false);
    assert.deepEqual(train.shape, [3, 24, 24]);
  });

  it('training transform: shape, value range, deterministic in the seed, different across seeds', async () => {
    const ds = await FolderDataset.open(path.join(dir, 'train'), { train: true, transform: SMALL });
    for (let i = 0; i < ds.length; i++) {
      const a = await readSample(ds, i, 11);
      assert.equal(a.length, 3 * 24 * 24);
      for (const v of a) assert.ok(v >= LO - 1e-4 && v <= HI + 1e-4, `sample ${i}: ${v} outside [${LO}, ${HI}]`);
      assert.deepEqual(await readSample(ds, i, 11), a);
      assert.notDeepEqual(await readSample(ds, i, 12), a);
    }
    // Greyscale and RGBA decode to three channels (checked without the colour jitter).
    const plain = await FolderDataset.open(path.join(dir, 'train'), { train: true, transform: { ...SMALL, hsl: [0, 0, 0] } });
    const find = (name: string) => [...Array(plain.length).keys()].find((k) => plain.file(k).endsWith(name))!;
    const p = 24 * 24;
    for (const [name, v] of [['grey.png', 90], ['alpha.png', 200]] as const) {
      const g = await readSample(plain, find(name), 3);
      assert.ok([0, 1, 2].every((c) => Math.abs(g[c * p] - (v - [124, 117, 104][c]) * 0.0167) < 1e-4), `${name}: ${g[0]}, ${g[p]}, ${g[2 * p]}`);
    }
  });

  it('evaluation transform: shorter side to `resize`, centre crop of `size` (exact pixels)', async () => {
    const d = tempDir('geometry');
    try {
      // R = 4x, G = 8y: a 40x20 image whose shorter side already equals resize=20, so no resampling.
      await writeImage(path.join(d, 'c/land.png'), 40, 20, (x, y) => [4 * x, 8 * y, 77]);
      await writeImage(path.join(d, 'c/port.png'), 20, 40, (x, y) => [4 * x, 4 * y, 77]);
      const ds = await FolderDataset.open(d, { train: false, transform: { size: 10, resize: 20 } });
      const p = 100;
      const land = await readSample(ds, 0, 0);
      for (let y = 0; y < 10; y++)
        for (let x = 0; x < 10; x++) {
          assert.ok(Math.abs(land[y * 10 + x] - (4 * (x + 15) - 124) * 0.0167) < 1e-4, `land R at ${x},${y}`);
          assert.ok(Math.abs(land[p + y * 10 + x] - (8 * (y + 5) - 117) * 0.0167) < 1e-4, `land G at ${x},${y}`);
          assert.ok(Math.abs(land[2 * p + y * 10 + x] - (77 - 104) * 0.0167) < 1e-4);
        }
      const port = await readSample(ds, 1, 0);
      assert.ok(Math.abs(port[p + 0] - (4 * 15 - 117) * 0.0167) < 1e-4 && Math.abs(port[0] - (4 * 5 - 124) * 0.0167) < 1e-4);
      // Downscaled by 2 (80x40 -> 40x20): the crop's left column averages source columns 30 and 31.
      const d2 = tempDir('geometry2');
      await writeImage(path.join(d2, 'c/big.png'), 80, 40, (x) => [3 * x, 0, 0]);
      const ds2 = await FolderDataset.open(d2, { train: false, transform: { size: 10, resize: 20 } });
      const big = await readSample(ds2, 0, 0);
      for (let x = 0; x < 10; x++) {
        const want = (3 * (2 * (x + 15)) + 1.5 - 124) * 0.0167;
        assert.ok(Math.abs(big[5 * 10 + x] - want) < 2 * 0.0167, `downscaled R at ${x}: ${big[5 * 10 + x]} vs ${want}`);
      }
      removeDir(d2);
    } finally {
      removeDir(d);
    }
    assert.deepEqual(resizeCentreCrop(500, 375, 256, 224), { width: 341, height: 256, box: { left: 59, top: 16, width: 224, height: 224 } });
  });

  it("random resized crops stay inside the image, within the paper's area and aspect ranges", () => {
    const rng = new DataRng(5);
    for (let k = 0; k < 2000; k++) {
      const w = 20 + rng.int(400), h = 20 + rng.int(400);
      const b = randomResizedCrop(w, h, [0.08, 1], [3 / 4, 4 / 3], rng);
      assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= w && b.top + b.height <= h, JSON.stringify({ w, h, b }));
      const area = (b.width * b.height) / (w * h), aspect = b.width / b.height;
      // Rounding to whole pixels moves small crops a little outside the nominal ranges.
      assert.ok(area > 0.06 && area <= 1, `area ${area}`);
      assert.ok(aspect > 0.7 && aspect < 1.43 || b.width === w || b.height === h, `aspect ${aspect}`);
    }
    // A very wide image cannot hold a 4:3 crop of most areas; the fallback is a centred crop of the widest allowed aspect.
    const b = randomResizedCrop(1000, 10, [0.9, 1], [3 / 4, 4 / 3], new DataRng(1));
    assert.deepEqual(b, { left: 493, top: 0, width: 13, height: 10 });
  });

  it('HSL jitter follows MXNet: L and S offsets in 1/255, hue in 2-degree steps; mirror reverses rows', () => {
    const t = imageTransform(true, { size: 2 });
    const px = Uint8Array.from([128, 128, 128, 255, 0, 0, 10, 20, 30, 40, 50, 60]); // 2x2: grey, red / two others
    const out = new Float32Array(12);
    const un = (c: number, v: number) => v / 0.0167 + t.mean[c];
    pixelsToChw(px, 2, 2, out, 0, t, { flip: false, h: 0, s: 0, l: 50 });
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(un(c, out[c * 4]) - 178) < 1e-3, 'grey + 50 lightness');
    pixelsToChw(px, 2, 2, out, 0, t, { flip: false, h: 20, s: 0, l: 0 });
    assert.deepEqual([0, 1, 2].map((c) => Math.round(un(c, out[c * 4 + 1]))), [255, 170, 0], 'red rotated by 40 degrees');
    pixelsToChw(px, 2, 2, out, 0, t, { flip: false, h: 0, s: -255, l: 0 });
    const r = [0, 1, 2].map((c) => un(c, out[c * 4 + 1]));
    assert.ok(Math.abs(r[0] - 127.5) < 1e-3 && Math.abs(r[1] - 127.5) < 1e-3 && Math.abs(r[2] - 127.5) < 1e-3, 'red fully desaturated');
    pixelsToChw(px, 2, 2, out, 0, t, { ...NO_JITTER, flip: true });
    assert.ok(Math.abs(un(0, out[0]) - 255) < 1e-3 && Math.abs(un(0, out[1]) - 128) < 1e-3 && Math.abs(un(0, out[2]) - 40) < 1e-3);
  });

  it('holds out a seeded fraction of each class with valSplit', async () => {
    const { train, test } = await openDataset(`folder:${path.join(dir, 'train')}`, { valSplit: 0.34, seed: 3, transform: SMALL });
    assert.equal(train.length + test.length, 8);
    assert.deepEqual([...test.labels], [0, 1]);
    const again = await openDataset(`folder:${path.join(dir, 'train')}`, { valSplit: 0.34, seed: 3, transform: SMALL });
    assert.deepEqual((again.test as FolderDataset).file(0), (test as FolderDataset).file(0));
  });

  it('explains a missing layout, an empty folder and a validation class unknown to training', async () => {
    await assert.rejects(openDataset(`folder:${dir}/nowhere`), (e: DataError) => e instanceof DataError && /no directory .*nowhere.*PATH\/train and PATH\/val/.test(e.message));
    await assert.rejects(openDataset(`folder:${path.join(dir, 'train')}`), /valSplit/);
    const d = tempDir('empty');
    try {
      fs.mkdirSync(path.join(d, 'train/a'), { recursive: true });
      fs.mkdirSync(path.join(d, 'val'));
      await assert.rejects(openDataset(`folder:${d}`), (e: Error) => e instanceof DataError && e.message.includes(`no valid image for the class 'a' (empty)`) && e.message.includes(path.join(d, 'train')));
      await writeImage(path.join(d, 'train/a/x.png'), 8, 8, noise(1));
      await writeImage(path.join(d, 'val/b/x.png'), 8, 8, noise(1));
      await assert.rejects(openDataset(`folder:${d}`), (e: Error) => e instanceof DataError && e.message.includes(`class 'b' is not among the training classes`));
    } finally {
      removeDir(d);
    }
  });

  it('follows symbolic links to class folders, and refuses a link that loops back up', async () => {
    const d = tempDir('links');
    try {
      await writeImage(path.join(d, 'elsewhere/x.png'), 8, 8, noise(1));
      await writeImage(path.join(d, 'root/a/x.png'), 8, 8, noise(2));
      fs.symlinkSync(path.join(d, 'elsewhere'), path.join(d, 'root/b'));
      const scan = await scanFolder(path.join(d, 'root'));
      assert.deepEqual(scan.classes, ['a', 'b']);
      assert.deepEqual(scan.files, ['a/x.png', 'b/x.png']);
      fs.symlinkSync(path.join(d, 'root'), path.join(d, 'root/a/up'));
      await assert.rejects(scanFolder(path.join(d, 'root')), (e: Error) => e instanceof DataError && e.message.includes(`${path.join(d, 'root/a/up')}: a symbolic link loops back to`));
    } finally {
      removeDir(d);
    }
  });

  describe('unreadable images', () => {
    let bad: string;
    before(async () => {
      bad = tempDir('bad');
      for (let i = 0; i < 6; i++) await writeImage(path.join(bad, `ok/${i}.png`), 16, 16, noise(i));
      fs.writeFileSync(path.join(bad, 'ok/garbage.jpg'), 'this is not a JPEG');
      const jpeg = await sharp(rgb(32, 32, noise(9)), { raw: { width: 32, height: 32, channels: 3 } }).jpeg().toBuffer();
      fs.writeFileSync(path.join(bad, 'ok/truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));
    });
    after(() => removeDir(bad));

    it('read() throws a BadImageError naming the file', async () => {
      const ds = await FolderDataset.open(bad, { train: true, transform: SMALL });
      const i = [...Array(ds.length).keys()].find((k) => ds.file(k).endsWith('garbage.jpg'))!;
      await assert.rejects(readSample(ds, i, 1), (e: BadImageError) => e instanceof BadImageError && e.file === ds.file(i) && e.message.startsWith(ds.file(i)));
    });

    for (const workers of [0, 1]) {
      it(`onBadImage 'fail' ends the epoch with the path (workers: ${workers})`, async () => {
        const ds = await FolderDataset.open(bad, { train: false, transform: SMALL, onBadImage: 'fail' });
        const loader = new DataLoader(ds, { batchSize: 4, workers });
        try {
          await assert.rejects(async () => {
            for await (const b of loader.epoch(0)) void b;
          }, (e: Error) => e instanceof BadImageError && /(garbage|truncated)\.jpg: cannot decode/.test(e.message));
        } finally {
          await loader.close();
        }
      });

      it(`onBadImage 'skip' replaces them in their batch and counts them (workers: ${workers})`, async () => {
        const ds = await FolderDataset.open(bad, { train: true, transform: SMALL, onBadImage: 'skip' });
        const told: string[] = [];
        const loader = new DataLoader(ds, { batchSize: 4, workers, shuffle: true, seed: 2, onSkip: (s) => told.push(s.file) });
        try {
          for (let e = 0; e < 2; e++) {
            const sizes: number[] = [];
            let skipped = 0;
            for await (const b of loader.epoch(e)) {
              sizes.push(b.size);
              skipped += b.skipped.length;
              for (const s of b.skipped) {
                const j = [...b.indices].indexOf(s.index);
                // The replacement is a copy of another sample of the batch.
                const per = 3 * 24 * 24;
                const row = b.images.subarray(j * per, (j + 1) * per);
                assert.ok([...Array(b.size).keys()].some((k) => k !== j && row.every((v, q) => v === b.images[k * per + q])));
              }
            }
            assert.deepEqual(sizes, [4, 4]);
            assert.equal(skipped, 2);
          }
          assert.equal(loader.skippedCount, 4);
          assert.equal(told.length, 4);
          assert.deepEqual([...loader.badImages.keys()].sort(), [path.join(bad, 'ok/garbage.jpg'), path.join(bad, 'ok/truncated.jpg')]);
        } finally {
          await loader.close();
        }
      });
    }

    it('by default warns once per skipped file (process warning CRUNET_BAD_IMAGE)', async () => {
      const ds = await FolderDataset.open(bad, { train: false, transform: SMALL, onBadImage: 'skip' });
      const loader = new DataLoader(ds, { batchSize: 8, workers: 0 });
      const warned: string[] = [];
      const listen = (w: Error & { code?: string }) => w.code === 'CRUNET_BAD_IMAGE' && warned.push(w.message);
      process.on('warning', listen);
      try {
        for (let e = 0; e < 2; e++) for await (const b of loader.epoch(e)) void b;
        await new Promise((r) => setImmediate(r));
      } finally {
        process.off('warning', listen);
      }
      assert.equal(warned.length, 2);
      assert.ok(warned.some((m) => m.includes(path.join(bad, 'ok/garbage.jpg'))));
    });
  });

  it('a seeded subset keeps the chosen files and labels, and works in workers', async () => {
    const ds = await FolderDataset.open(path.join(dir, 'train'), { train: false, transform: SMALL });
    const sub = limitDataset(ds, 3, 4) as FolderDataset;
    assert.equal(sub.length, 3);
    const picked = [...Array(3).keys()].map((i) => sub.file(i));
    for (let i = 0; i < 3; i++) {
      const j = [...Array(ds.length).keys()].find((k) => ds.file(k) === picked[i])!;
      assert.ok(j !== undefined && sub.labels[i] === ds.labels[j]);
      assert.deepEqual(await readSample(sub, i, 0), await readSample(ds, j, 0));
    }
    const loader = new DataLoader(sub, { batchSize: 3, workers: 1 });
    try {
      for await (const b of loader.epoch(0)) assert.deepEqual(b.images.slice(0, 3 * 24 * 24), await readSample(ds, [...Array(ds.length).keys()].find((k) => ds.file(k) === picked[0])!, 0));
    } finally {
      await loader.close();
    }
  });

  it('a loader gives the same augmented batches with 0 or 2 workers', async () => {
    const ds = await FolderDataset.open(path.join(dir, 'train'), { train: true, transform: SMALL });
    const run = async (workers: number) => {
      const loader = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 9, workers });
      const out: Batch[] = [];
      try {
        for (let e = 0; e < 2; e++) for await (const b of loader.epoch(e)) out.push({ ...b, images: b.images.slice(), labels: b.labels.slice() });
      } finally {
        await loader.close();
      }
      return out;
    };
    const [a, b] = [await run(0), await run(2)];
    assert.equal(a.length, 6);
    assert.deepEqual(a.map((x) => x.images), b.map((x) => x.images));
    assert.deepEqual(a.map((x) => [...x.labels]), b.map((x) => [...x.labels]));
  });
});
