// createPredictor and `crunet predict`: images in, class names and probabilities out, by the checkpoint's
// preprocessing; and `crunet eval`'s progress on stderr.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { crunet } from './support/cli-capture.js';
import { compile, createPredictor, data, io, models, train, type Session } from '../lib/index.js';
import { writeIdxSet } from './fixtures/data.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';


const NORM = data.FASHION_MNIST_NORM;
const PRE = { scale: 1 / 255, mean: [...NORM.mean], std: [...NORM.std], layout: 'NCHW' as const, channels: 1, size: [28, 28] as [number, number] };

/** Grey 28x28 images with distinct content, as raw bytes and PNG files. */
async function images(dir: string, n: number): Promise<{ files: string[]; pixels: Uint8Array[] }> {
  const files: string[] = [], pixels: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const px = Uint8Array.from({ length: 28 * 28 }, (_, j) => (i * 53 + j * (i + 3) + ((j * j) % 17)) & 255);
    const file = path.join(dir, `img${i}.png`);
    await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(file);
    files.push(file);
    pixels.push(px);
  }
  return { files, pixels };
}

/** A crunet_small checkpoint with random weights (non-trivial BN statistics), and its session. */
async function checkpoint(dir: string, meta: Record<string, unknown> = {}): Promise<{ file: string; session: Session }> {
  const model = models.create('crunet_small');
  const session = await compile(model, { batchSize: 8, seed: 5 });
  for (const name of session.parameterNames()) {
    if (name.endsWith('running_mean')) session.setParameter(name, session.getParameter(name).map((_, i) => 0.1 * Math.sin(i)));
  }
  const file = path.join(dir, 'ckpt.safetensors');
  await train.saveCheckpoint(file, session, { model: model.toJSON(), epoch: 1, step: 10, preprocessing: PRE, classNames: data.FASHION_MNIST_CLASSES, ...meta });
  return { file, session };
}

function softmax(z: Float32Array): number[] {
  const m = Math.max(...z);
  const e = Array.from(z, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('predict', function () {
  this.timeout(300_000);
  afterEach(removeTestTempDirs);

  it("createPredictor: files and buffers in batches give the softmax of the model's logits for the normalised pixels, named", async () => {
    const dir = testTempDir('predict');
    const { file, session } = await checkpoint(dir);
    const { files, pixels } = await images(dir, 5);
    const p = await createPredictor(file, { batchSize: 2 });
    try {
      assert.deepEqual(p.classes, data.FASHION_MNIST_CLASSES);
      const x = new Float32Array(5 * 784);
      pixels.forEach((px, i) => px.forEach((v, j) => (x[i * 784 + j] = (v / 255 - NORM.mean[0]!) / NORM.std[0]!)));
      const logits = await session.forward(x);
      const got = await p.predict(files, { topK: 3 });
      const fromBuffers = await p.predict(files.map((f) => fs.readFileSync(f)), { topK: 3 });
      assert.equal(got.length, 5);
      got.forEach((r, i) => {
        const want = softmax(logits.subarray(i * 10, (i + 1) * 10));
        r.probabilities.forEach((v, k) => assert.ok(Math.abs(v - want[k]!) < 1e-5, `image ${i} class ${k}: ${v} vs ${want[k]}`));
        assert.equal(r.source, files[i]);
        assert.equal(r.top.length, 3);
        const best = want.indexOf(Math.max(...want));
        assert.deepEqual([r.top[0]!.index, r.top[0]!.name], [best, data.FASHION_MNIST_CLASSES[best]]);
        assert.ok(r.top[0]!.probability >= r.top[1]!.probability && r.top[1]!.probability >= r.top[2]!.probability);
        assert.deepEqual(fromBuffers[i]!.probabilities, r.probabilities);
        assert.match(fromBuffers[i]!.source, new RegExp(`^image ${i} \\(a buffer of \\d+ bytes\\)$`));
      });
      // Another size and colour: resized, centre-cropped and made grey; still a distribution.
      const rgb = path.join(dir, 'big.jpg');
      await sharp(Buffer.alloc(60 * 40 * 3, 200), { raw: { width: 60, height: 40, channels: 3 } }).jpeg().toFile(rgb);
      const [big] = await p.predict([rgb]);
      assert.ok(Math.abs(big!.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    } finally {
      p.dispose();
      session.dispose();
    }
  });

  it('turns an image into the input its data set would give: an image folder (alpha, resize, centre crop) and an in-memory grey set', async () => {
    const dir = testTempDir('predict');
    fs.mkdirSync(path.join(dir, 'cls'));
    const file = path.join(dir, 'cls', 'x.png');
    await sharp(Uint8Array.from({ length: 50 * 37 * 4 }, (_, i) => (i * 97 + (i >> 5)) & 255), { raw: { width: 50, height: 37, channels: 4 } }).png().toFile(file);
    const folder = await data.FolderDataset.open(dir, { train: false, transform: { size: 16, resize: 20 } });
    const want = new Float32Array(3 * 16 * 16), got = new Float32Array(3 * 16 * 16);
    await folder.read(0, want, 0, new data.DataRng(0));
    await io.preprocessImage(file, 0, folder.preprocessing, got, 0);
    want.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4, `value ${i}: the folder data set reads ${v}, predict ${got[i]}`));

    const px = Uint8Array.from({ length: 28 * 28 }, (_, j) => (j * 13) & 255);
    const mem = new data.MemoryDataset({ name: 'm', classes: ['a', 'b'], shape: [1, 28, 28], pixels: px, labels: Int32Array.of(0), norm: NORM });
    const png = await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
    const w2 = new Float32Array(784), g2 = new Float32Array(784);
    mem.read(0, w2, 0, new data.DataRng(0));
    await io.preprocessImage(png, 0, mem.preprocessing, g2, 0);
    w2.forEach((v, i) => assert.ok(Math.abs(v - g2[i]!) < 1e-5, `value ${i}: the data set reads ${v}, predict ${g2[i]}`));
  });

  it('names an image that cannot be decoded, a checkpoint without preprocessing and one for another model; indices without class names', async () => {
    const dir = testTempDir('predict');
    const { file, session } = await checkpoint(dir);
    const { files } = await images(dir, 2);
    const broken = path.join(dir, 'broken.png');
    fs.writeFileSync(broken, 'not a png at all');
    const p = await createPredictor(file);
    try {
      await assert.rejects(p.predict([files[0]!, broken]), (e: Error) => e.name === 'BadImageError' && e.message.startsWith(`${broken}: cannot decode`));
      await assert.rejects(p.predict([Buffer.from('nope')]), /image 0 \(a buffer of 4 bytes\): cannot decode/);
      await assert.rejects(p.predict([path.join(dir, 'missing.png')]), /missing\.png: cannot read/);
    } finally {
      p.dispose();
    }
    const noPre = path.join(dir, 'nopre.safetensors');
    await train.saveCheckpoint(noPre, session, { model: models.create('crunet_small').toJSON(), epoch: 0, step: 0 });
    await assert.rejects(createPredictor(noPre), (e: Error) => e.message.includes(noPre) && /records no preprocessing/.test(e.message));
    const q = await createPredictor(noPre, { preprocessing: PRE });
    try {
      assert.deepEqual(q.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      assert.equal((await q.predict([files[0]!]))[0]!.top[0]!.name, String((await q.predict([files[0]!]))[0]!.top[0]!.index));
    } finally {
      q.dispose();
    }
    const other = path.join(dir, 'other.safetensors');
    await train.saveCheckpoint(other, session, { model: models.create('resnet_small').toJSON(), epoch: 0, step: 0, preprocessing: PRE });
    await assert.rejects(createPredictor(other), (e: Error) => e.message.includes(other) && /holds model 'resnet_small'.*does not fit model 'resnet_small'/.test(e.message));
    session.dispose();
  });

  it('crunet predict prints the top-k names and probabilities, --json one line per image, and names a bad image', async () => {
    const dir = testTempDir('predict');
    const { file, session } = await checkpoint(dir);
    session.dispose();
    const { files } = await images(dir, 3);
    const text = await crunet('predict', '--checkpoint', file, '--top-k', '2', ...files);
    assert.equal(text.code, 0, text.err);
    const lines = text.out.trim().split('\n');
    assert.equal(lines.length, 9);
    assert.equal(lines[0], files[0]);
    for (const l of [lines[1], lines[2]]) assert.match(l!, /^  \S.*\s+\d+\.\d\d%$/);
    const json = await crunet('predict', '--checkpoint', file, '--json', '--top-k', '3', '--batch-size', '2', ...files);
    assert.equal(json.code, 0, json.err);
    const rows = json.out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => r.file), files);
    for (const r of rows) {
      assert.equal(r.top.length, 3);
      assert.ok(data.FASHION_MNIST_CLASSES.includes(r.top[0].name));
    }
    const broken = path.join(dir, 'broken.png');
    fs.writeFileSync(broken, 'not a png');
    const bad = await crunet('predict', '--checkpoint', file, files[0]!, broken);
    assert.equal(bad.code, 1);
    assert.ok(bad.err.includes(`${broken}: cannot decode`), bad.err);
    const usage = await crunet('predict', files[0]!);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--checkpoint CKPT is required/);
  });

  it('crunet eval shows progress on stderr and keeps --json on stdout to one line', async () => {
    const dir = testTempDir('eval');
    const idx = writeIdxSet(path.join(dir, 'idx'), { n: 32, m: 48, h: 28, w: 28 }).dir;
    const out = path.join(dir, 'run');
    const t = await crunet('train', '--dataset', `mnist:${idx}`, '--epochs', '1', '--batch-size', '16', '--model', 'resnet_small', '--model-options', '{"width":4}', '--out', out, '--json');
    assert.equal(t.code, 0, t.err);
    const e = await crunet('eval', '--checkpoint', out, '--batch-size', '8', '--json');
    assert.equal(e.code, 0, e.err);
    assert.equal(e.out.trim().split('\n').length, 1);
    assert.equal(JSON.parse(e.out).images, 48);
    // Not a TTY here: a line at each quarter of the 6 batches, then the closing line.
    assert.match(e.err, /eval resnet_small step \d\/6 \(\d+%\)/);
    assert.match(e.err, /evaluated 48 images in \d+\.\d s/);
  });
});
