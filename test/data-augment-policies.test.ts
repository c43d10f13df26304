// RandAugment / TrivialAugment (lib/data/autoaugment.ts) and mixup / cutmix (lib/data/mixup.ts,
// lib/train/mixed-source.ts). scripts/autoaugment-vs-torchvision.ts compares the ops with torchvision itself.
import assert from 'node:assert/strict';
import { applyOp, autoAugment, checkAutoAugment, magnitude, OPS, type OpName } from '../lib/data/autoaugment.js';
import { MemoryDataset } from '../lib/data/memory.js';
import { batchRng, checkMixOptions, cutmixBox, drawMix, mixBatch, sampleBeta } from '../lib/data/mixup.js';
import { DataRng, sampleRng } from '../lib/data/rng.js';
import { DataLoader } from '../lib/data/loader.js';
import { mixedBatches } from '../lib/train/mixed-source.js';
import { holdOut } from '../lib/data/subset.js';

/** A 1x4x4 grey image with bytes 0, 16, ..., 240 row by row. */
const ramp = () => Float32Array.from({ length: 16 }, (_, i) => i * 16);
const applyEq = (img: Float32Array) => {
  applyOp('Equalize', 0, img, 0, 1, 32, 32, new Float32Array(1024));
  return [...img];
};
const apply = (op: OpName, mag: number, img = ramp(), c = 1, h = 4, w = 4) => {
  applyOp(op, mag, img, 0, c, h, w, new Float32Array(c * h * w));
  return [...img];
};

describe('RandAugment and TrivialAugment ops (torchvision semantics on bytes)', () => {
  // Expected values: what torchvision 0.29's _apply_op gives for the same uint8 image (checked once by hand
  // with it; scripts/autoaugment-vs-torchvision.ts compares many random images).
  it('geometry: translate, shear and rotate move pixels and fill with 0', () => {
    assert.deepEqual(apply('TranslateX', 1), [0, 0, 16, 32, 0, 64, 80, 96, 0, 128, 144, 160, 0, 192, 208, 224]);
    assert.deepEqual(apply('TranslateY', -1.7), [64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 0, 0, 0, 0], 'int(m) truncates toward zero');
    // shear x by 1 about the top-left corner: pixel (x, y) reads column round-half-even(x + y + 0.5)
    assert.deepEqual(apply('ShearX', 1), [0, 32, 32, 0, 96, 96, 0, 0, 160, 0, 0, 0, 0, 0, 0, 0]);
    // 90 degrees counter-clockwise: the top row becomes the left column, read upwards
    assert.deepEqual(apply('Rotate', 90), [48, 112, 176, 240, 32, 96, 160, 224, 16, 80, 144, 208, 0, 64, 128, 192]);
  });

  it('colour: brightness, contrast, posterize, solarize, autocontrast, equalize', () => {
    assert.deepEqual(apply('Brightness', 0.5).slice(0, 4), [0, 24, 48, 72]);
    assert.deepEqual(apply('Brightness', 0.5).slice(-2), [255, 255], 'clamped to 255');
    const mean = 120; // of the ramp
    assert.deepEqual(apply('Contrast', -1), new Array(16).fill(mean), 'factor 0: the mean everywhere');
    assert.deepEqual(apply('Posterize', 2).slice(0, 6), [0, 0, 0, 0, 64, 64]);
    assert.deepEqual(apply('Solarize', 128).slice(6, 10), [96, 112, 127, 111]);
    assert.deepEqual(apply('AutoContrast', 0, Float32Array.from({ length: 16 }, (_, i) => 100 + i)).slice(0, 3), [0, 17, 34]);
    // A low-contrast image (0..41): torchvision computes scale = 255 / (max - min) as torch does a number
    // over a tensor, the float32 reciprocal times 255, then (v - min) scale in float32, truncated; here the
    // scale rounds down, so the top value 41 becomes 254, not 255 (as torchvision 0.29 gives).
    const f32 = (x: number) => new Float32Array([x])[0]!;
    const scale = f32(f32(1 / 41) * 255);
    const low = Float32Array.from({ length: 42 }, (_, i) => i);
    const expected = [...low].map((v) => Math.trunc(f32(v * scale)));
    assert.equal(expected[41], 254);
    assert.deepEqual(apply('AutoContrast', 0, low, 1, 6, 7), expected);
    const flat = Float32Array.from({ length: 16 }, () => 7);
    assert.deepEqual(apply('AutoContrast', 0, flat.slice()), [...flat], 'a constant image is left alone');
    const four = Float32Array.from({ length: 1024 }, (_, i) => 100 + (i % 4)); // 32x32, four levels
    assert.deepEqual(applyEq(four).slice(0, 4), [0, 85, 171, 255]);
    assert.deepEqual(apply('Equalize', 0), [...ramp()], 'too few pixels to spread: left alone');
    assert.deepEqual(apply('Identity', 0), [...ramp()]);
  });

  it('Color changes an RGB image towards grey and leaves a grey image as it is; Sharpness keeps the border', () => {
    const rgb = Float32Array.from([200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 3x2x2: one red pixel
    assert.deepEqual(apply('Color', -1, rgb, 3, 2, 2), [59, 0, 0, 0, 59, 0, 0, 0, 59, 0, 0, 0]);
    assert.deepEqual(apply('Color', 0.5), [...ramp()]);
    const img = Float32Array.from({ length: 25 }, (_, i) => (i === 12 ? 130 : 0)); // 5x5, a bright centre
    const sharp = apply('Sharpness', -1, img, 1, 5, 5);
    assert.equal(sharp[12], 50, 'the centre becomes its smoothed value round(5 130 / 13)');
    assert.equal(sharp[6], 10, 'a neighbour gets round(130 / 13)');
    assert.equal(sharp[0], 0, 'the border is kept');
  });

  it("magnitudes follow torchvision's tables (31 bins)", () => {
    assert.equal(magnitude('Rotate', 30, 32, 32, false), 30);
    assert.equal(magnitude('Rotate', 30, 32, 32, true), 135);
    assert.ok(Math.abs(magnitude('TranslateX', 9, 28, 28, false) - ((150 / 331) * 28 * 9) / 30) < 1e-12);
    assert.equal(magnitude('TranslateX', 30, 28, 28, true), 32);
    assert.equal(magnitude('Posterize', 0, 28, 28, false), 8);
    assert.equal(magnitude('Posterize', 30, 28, 28, false), 4);
    assert.equal(magnitude('Posterize', 30, 28, 28, true), 2);
    assert.equal(magnitude('Solarize', 30, 28, 28, false), 0);
    assert.equal(OPS.length, 14);
  });

  it('a policy is deterministic per generator and differs between samples', () => {
    const run = (seed: number, policy: 'randaugment' | 'trivialaugment') => {
      const img = Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => (i * 37) % 256);
      autoAugment(policy === 'randaugment' ? { policy, n: 2, m: 9 } : { policy }, img, 0, 3, 32, 32, sampleRng(1, 0, seed), new Float32Array(3 * 32 * 32));
      return img;
    };
    for (const p of ['randaugment', 'trivialaugment'] as const) {
      assert.deepEqual(run(5, p), run(5, p));
      const distinct = new Set(Array.from({ length: 8 }, (_, i) => run(i, p).join()));
      assert.ok(distinct.size >= 4, `${p}: ${distinct.size} distinct results of 8 samples`);
    }
  });

  it('refuses bad settings, naming the field and range', () => {
    assert.throws(() => checkAutoAugment({ policy: 'randaugment', n: 0, m: 9 }, 'x'), /expected RandAugment's n \(ops per image\) to be an integer in \[1, 16\], but received 0/);
    assert.throws(() => checkAutoAugment({ policy: 'randaugment', n: 2, m: 31 }, 'x'), /m \(magnitude bin\) to be an integer in \[0, 30\], but received 31/);
  });

  it('MemoryDataset applies the policy after crop and mirror, before normalisation; same (seed, epoch, index), same sample', () => {
    const pixels = Uint8Array.from({ length: 4 * 28 * 28 }, (_, i) => (i * 13) % 256);
    const base = { name: 'd', classes: ['a', 'b'], shape: [1, 28, 28] as const, pixels, labels: Int32Array.of(0, 1, 0, 1), norm: { mean: [0.5], std: [0.25] } };
    const plain = new MemoryDataset({ ...base, augment: { pad: 2, flip: true } });
    const ra = new MemoryDataset({ ...base, augment: { pad: 2, flip: true, auto: { policy: 'randaugment', n: 2, m: 9 } } });
    const read = (ds: MemoryDataset, i: number, epoch: number) => {
      const out = new Float32Array(28 * 28);
      ds.read(i, out, 0, sampleRng(3, epoch, i));
      return out;
    };
    assert.deepEqual(read(ra, 1, 0), read(ra, 1, 0));
    let changed = 0;
    for (let i = 0; i < 4; i++) if (read(ra, i, 0).join() !== read(plain, i, 0).join()) changed++;
    assert.ok(changed >= 2, `${changed} of 4 samples changed`);
    // Every value is still a normalised byte: (v / 255 - 0.5) / 0.25 for a whole v.
    for (const x of read(ra, 2, 1)) {
      const v = (x * 0.25 + 0.5) * 255;
      assert.ok(Math.abs(v - Math.round(v)) < 1e-3 && v > -1e-3 && v < 255.001, `value ${x} is not a normalised byte`);
    }
    assert.throws(() => new MemoryDataset({ ...base, augment: { pad: 0, flip: false, auto: { policy: 'randaugment', n: 2, m: -1 } } }), /augment.auto: expected RandAugment's m/);
  });
});

describe('mixup and cutmix (timm semantics, batch mode)', () => {
  it('Beta(a, a) draws have the right mean and variance', () => {
    const rng = new DataRng(99);
    for (const a of [0.2, 1, 2]) {
      const xs = Array.from({ length: 20000 }, () => sampleBeta(a, a, rng));
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
      assert.ok(Math.abs(mean - 0.5) < 0.01, `alpha ${a}: mean ${mean}`);
      assert.ok(Math.abs(v - 1 / (4 * (2 * a + 1))) < 0.01, `alpha ${a}: variance ${v} vs ${1 / (4 * (2 * a + 1))}`);
      assert.ok(xs.every((x) => x >= 0 && x <= 1));
    }
  });

  it("cutmix's lambda is 1 - the clipped box's area over the image's", () => {
    const rng = new DataRng(7);
    let clipped = 0;
    for (let i = 0; i < 200; i++) {
      const d = cutmixBox(28, 32, rng.next(), rng);
      const b = d.box!;
      assert.ok(b.top >= 0 && b.bottom <= 28 && b.left >= 0 && b.right <= 32 && b.top <= b.bottom && b.left <= b.right);
      assert.equal(d.lam, 1 - ((b.bottom - b.top) * (b.right - b.left)) / (28 * 32));
      if (b.top === 0 || b.left === 0 || b.bottom === 28 || b.right === 32) clipped++;
    }
    assert.ok(clipped > 0, 'some boxes were clipped at the border');
  });

  it('mixes each sample with its mirror position; targets sum to 1 with lam on the own label', () => {
    const n = 4, shape = [1, 2, 2], per = 4;
    const images = Float32Array.from({ length: n * per }, (_, i) => Math.floor(i / per)); // sample i is all i
    const labels = Int32Array.of(0, 1, 2, 1);
    const t = mixBatch(images, labels, n, shape, 3, { lam: 0.75 });
    assert.deepEqual([...images.subarray(0, 4)], [0.75, 0.75, 0.75, 0.75].map((v) => 0 * v + 3 * 0.25));
    assert.deepEqual([...images.subarray(4, 8)], new Array(4).fill(1 * 0.75 + 2 * 0.25));
    assert.deepEqual([...t.subarray(0, 3)], [0.75, 0.25, 0]); // own label 0, partner (sample 3) label 1
    assert.deepEqual([...t.subarray(3, 6)], [0, 0.75, 0.25]);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(t.subarray(i * 3, i * 3 + 3).reduce((a, b) => a + b, 0) - 1) < 1e-6);
    const cut = Float32Array.from({ length: n * per }, (_, i) => Math.floor(i / per));
    const tc = mixBatch(cut, labels, n, shape, 3, { lam: 0.75, box: { top: 0, bottom: 1, left: 1, right: 2 } });
    assert.deepEqual([...cut.subarray(0, 4)], [0, 3, 0, 0], 'one pixel pasted from the partner');
    assert.deepEqual([...tc.subarray(0, 3)], [0.75, 0.25, 0]);
  });

  it('draws per timm: prob, switch prob, mixup alone, cutmix alone', () => {
    const draws = (o: Parameters<typeof drawMix>[0]) => Array.from({ length: 400 }, (_, b) => drawMix(o, 32, 32, batchRng(1, 0, b)));
    const off = draws({ mixupAlpha: 1, cutmixAlpha: 0, prob: 0, switchProb: 0.5 });
    assert.ok(off.every((d) => d.lam === 1 && !d.box));
    const mix = draws({ mixupAlpha: 1, cutmixAlpha: 0, prob: 1, switchProb: 0.5 });
    assert.ok(mix.every((d) => !d.box && d.lam > 0 && d.lam < 1));
    const cut = draws({ mixupAlpha: 0, cutmixAlpha: 1, prob: 1, switchProb: 0.5 });
    assert.ok(cut.every((d) => d.box));
    const both = draws({ mixupAlpha: 1, cutmixAlpha: 1, prob: 0.5, switchProb: 0.5 });
    const unmixed = both.filter((d) => d.lam === 1 && !d.box).length, boxes = both.filter((d) => d.box).length;
    assert.ok(unmixed > 150 && unmixed < 250, `${unmixed} of 400 unmixed at prob 0.5`);
    assert.ok(boxes > 60 && boxes < 140, `${boxes} of 400 cutmix at prob 0.5, switch 0.5`);
    assert.deepEqual(draws({ mixupAlpha: 1, cutmixAlpha: 1, prob: 1, switchProb: 0.5 }), draws({ mixupAlpha: 1, cutmixAlpha: 1, prob: 1, switchProb: 0.5 }));
  });

  it('refuses options out of range, naming them', () => {
    assert.throws(() => checkMixOptions({ mixupAlpha: -0.1, cutmixAlpha: 0, prob: 1, switchProb: 0.5 }), /expected mixupAlpha to be a finite number >= 0, but received -0.1/);
    assert.throws(() => checkMixOptions({ mixupAlpha: 1, cutmixAlpha: 0, prob: 1.5, switchProb: 0.5 }), /expected prob to be in \[0, 1\], but received 1.5/);
  });

  it('mixedBatches gives the same batches and targets for the same (seed, epoch), whatever the worker count', async () => {
    const ds = new MemoryDataset({
      name: 'd', classes: ['a', 'b', 'c'], shape: [1, 4, 4], pixels: Uint8Array.from({ length: 12 * 16 }, (_, i) => (i * 7) % 256),
      labels: Int32Array.from({ length: 12 }, (_, i) => i % 3), norm: { mean: [0], std: [1] }, augment: { pad: 1, flip: true },
    });
    const collect = async (workers: number) => {
      const loader = new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 5, dropLast: true, workers });
      const src = mixedBatches(loader, { mixupAlpha: 0.4, cutmixAlpha: 1, prob: 1, switchProb: 0.5, seed: 5, classes: 3 });
      const out: string[] = [];
      for await (const b of src.epoch(2)) {
        for (let i = 0; i < b.size; i++) assert.ok(Math.abs(b.targets!.subarray(i * 3, i * 3 + 3).reduce((a, v) => a + v, 0) - 1) < 1e-6);
        out.push([...b.images].join() + '|' + [...b.targets!].join());
      }
      await loader.close();
      return out;
    };
    const a = await collect(0);
    assert.equal(a.length, 3);
    assert.deepEqual(await collect(1), a);
  });
});

describe('validation split (holdOut)', () => {
  it('splits a training set into disjoint seeded parts; the validation part is read without augmentation', () => {
    const n = 50;
    const pixels = Uint8Array.from({ length: n * 16 }, (_, i) => Math.floor(i / 16)); // sample i is all i
    const ds = new MemoryDataset({
      name: 'd', classes: ['a', 'b'], shape: [1, 4, 4], pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 2), norm: { mean: [0], std: [1 / 255] },
      augment: { pad: 2, flip: true, erase: 1 },
    });
    const { train, validation } = holdOut(ds, 0.2, 7);
    assert.equal(validation.length, 10);
    assert.equal(train.length, 40);
    const first = (d: typeof train, i: number) => {
      const out = new Float32Array(16);
      void d.read(i, out, 0, sampleRng(1, 0, i));
      return out;
    };
    const ids = (d: typeof train) => Array.from({ length: d.length }, (_, i) => first(d, i)).map((o) => o.every((v) => v === o[0]) ? o[0] : -1);
    const v = ids(validation);
    assert.ok(v.every((x) => x >= 0), 'validation samples are unaugmented (each still all one value)');
    assert.deepEqual([...v].sort((a, b) => a - b), v, 'in the data set order');
    const plain = holdOut(ds.withAugment(null), 0.2, 7);
    assert.deepEqual(ids(plain.validation), v, 'the split does not depend on the augmentation');
    assert.deepEqual([...ids(plain.train), ...v].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'disjoint, and together the whole set');
    assert.deepEqual(holdOut(ds, 0.2, 7).validation.labels, validation.labels, 'seeded');
    assert.notDeepEqual(ids(holdOut(ds, 0.2, 8).validation), v, 'another seed, another split');
    assert.throws(() => holdOut(ds, 0, 7), /validation split: expected a fraction in \(0, 1\), but received 0/);
    assert.throws(() => holdOut(ds, 0.001, 7), /leaves 0 for validation/);
  });
});
