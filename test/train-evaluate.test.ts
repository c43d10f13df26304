import { strict as assert } from 'node:assert';
import { compile, GraphBuilder, type Session } from '../lib/index.js';
import { BadImageError, DataLoader, MemoryDataset, type Dataset } from '../lib/data/index.js';
import { Trainer, createSchedule, emptyScore, scoreLogits, type StepInfo } from '../lib/train/index.js';

describe('scoring and evaluation', () => {
  it('scoreLogits: cross-entropy in float64, top-1 and top-5 by rank with ties to the lower class', () => {
    const logits = Float32Array.from([1.5, -2, 0.25, 3, 3, 0.5]);
    const labels = Int32Array.from([2, 1]);
    const s = scoreLogits(emptyScore(), logits, labels, 2, 3);
    const ce = (row: number[], y: number) => Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[y]!;
    assert.ok(Math.abs(s.lossSum - ce([1.5, -2, 0.25], 2) - ce([3, 3, 0.5], 1)) < 1e-6);
    // Row 0: label 2 is second; row 1: label 1 ties with class 0 and ranks after it.
    assert.deepEqual([s.top1, s.top5, s.count], [0, 2, 2]);

    // A constant output is right for no label but the first: top-1 1 of 10, top-5 5 of 10.
    const classes = 10;
    const flat = scoreLogits(emptyScore(), new Float32Array(classes * classes), Int32Array.from({ length: classes }, (_, i) => i), classes, classes);
    assert.deepEqual([flat.top1, flat.top5, flat.count], [1, 5, 10]);
    assert.ok(Math.abs(flat.lossSum / classes - Math.log(classes)) < 1e-9);

    // A NaN for the label is wrong (and the loss says NaN), not "no logit is greater".
    const nan = scoreLogits(emptyScore(), Float32Array.from([NaN, 0, 0]), Int32Array.from([0]), 1, 3);
    assert.deepEqual([nan.top1, nan.top5, nan.count], [0, 0, 1]);
    assert.ok(Number.isNaN(nan.lossSum));

    // Rows in `skip` are left out entirely.
    const skipped = scoreLogits(emptyScore(), logits, labels, 2, 3, new Set([1]));
    assert.deepEqual([skipped.top1, skipped.top5, skipped.count], [0, 1, 1]);
    assert.ok(Math.abs(skipped.lossSum - ce([1.5, -2, 0.25], 2)) < 1e-6);
    assert.throws(() => scoreLogits(emptyScore(), logits, Int32Array.from([3, 0]), 2, 3), /label 3 of sample 0 is outside \[0, 3\)/);
  });

  it('evaluate leaves out the images a loader skipped as unreadable, and counts them', async () => {
    const g = new GraphBuilder();
    const x = g.input('images', [1, 4, 4]);
    const y = g.input('labels', [], 'i32');
    const logits = g.globalAvgPool(g.conv2d(x, { outChannels: 3, kernel: 4, bias: true, name: 'fc' }));
    const session = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 4, seed: 3 });
    const n = 10;
    const pixels = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 53) % 256);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const norm = { mean: [0.5], std: [0.5] };
    const all = new MemoryDataset({ name: 'all', classes: ['a', 'b', 'c'], shape: [1, 4, 4], pixels, labels, norm });
    // Samples 1, 4 and 9 cannot be decoded. A decoding data set reads asynchronously, as image folders do.
    const broken = new Set([1, 4, 9]);
    const flaky: Dataset = {
      name: 'flaky', length: n, labels, classes: all.classes, shape: all.shape, onBadImage: 'skip',
      read: async (i, out, off, rng) => {
        if (broken.has(i)) throw new BadImageError(`image ${i} is damaged`, `/data/${i}.png`);
        await all.read(i, out, off, rng);
      },
    };
    const good = [...Array(n).keys()].filter((i) => !broken.has(i));
    const readable = new MemoryDataset({
      name: 'readable', classes: all.classes, shape: all.shape, norm,
      pixels: Uint8Array.from(good.flatMap((i) => [...pixels.subarray(i * 16, (i + 1) * 16)])), labels: Int32Array.from(good.map((i) => labels[i]!)),
    });
    const trainer = new Trainer({ session, train: new DataLoader(all, { batchSize: 4 }), schedule: createSchedule({ type: 'constant', lr: 0 }), epochs: 0 });
    const reported: string[] = [];
    const loaders = [new DataLoader(flaky, { batchSize: 4, onSkip: (sk) => reported.push(sk.file) }), new DataLoader(readable, { batchSize: 4 })];
    try {
      const [withSkips, expected] = [await trainer.evaluate(loaders[0]!), await trainer.evaluate(loaders[1]!)];
      assert.equal(withSkips.images, good.length);
      assert.equal(withSkips.skipped, broken.size);
      assert.equal(expected.skipped, 0);
      assert.ok(Math.abs(withSkips.loss - expected.loss) < 1e-5, `${withSkips.loss} vs ${expected.loss}`);
      assert.equal(withSkips.top1, expected.top1);
      assert.equal(withSkips.top5, expected.top5);
      assert.deepEqual(reported, ['/data/1.png', '/data/4.png', '/data/9.png']);
    } finally {
      for (const l of loaders) await l.close();
      session.dispose();
    }
  });

  it('fit calls onEpochStart, onStep, then onEpochTrained before evaluating: a failing evaluation cannot cost the epoch', async () => {
    const g = new GraphBuilder();
    const x = g.input('images', [1, 4, 4]);
    const y = g.input('labels', [], 'i32');
    const logits = g.linear(g.globalAvgPool(x), { outFeatures: 2 });
    const session = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 2, optimizer: { lr: 0.1 } });
    const data = new MemoryDataset({
      name: 'd', classes: ['a', 'b'], shape: [1, 4, 4], pixels: Uint8Array.from({ length: 4 * 16 }, (_, i) => i), labels: Int32Array.from([0, 1, 0, 1]), norm: { mean: [0], std: [255] },
    });
    const loader = new DataLoader(data, { batchSize: 2 });
    const calls: string[] = [];
    const trainer = new Trainer({
      session, train: loader, schedule: createSchedule({ type: 'constant', lr: 0.1 }), epochs: 2,
      test: { epoch: async function* () { throw new Error('the test set is unreadable'); } },
      callbacks: {
        onEpochStart: (e) => void calls.push(`start ${e}`),
        onStep: (s) => void calls.push(`step ${s.step}`),
        onEpochTrained: (e) => void calls.push(`trained ${e.epoch} at step ${e.step}: ${e.train.images} images`),
        onEpochEnd: (e) => void calls.push(`end ${e.epoch}`),
      },
    });
    try {
      await assert.rejects(trainer.fit(), /the test set is unreadable/);
      assert.deepEqual(calls, ['start 0', 'step 0', 'step 1', 'trained 0 at step 2: 4 images']);
    } finally {
      await loader.close();
      session.dispose();
    }
  });

  it('steps the loss scaler skipped are counted and reported, and not in the epoch loss or accuracy', async () => {
    // A stand-in session whose second step reports skipped (what a scaled session does when its gradients
    // overflow; test/loss-scaler.test.ts covers the engine's side): the Trainer's accounting alone.
    const results = [{ loss: 1, correct: 2 }, { loss: 100, correct: 0, skipped: true }, { loss: 3, correct: 1 }];
    let calls = 0;
    const session = { batchSize: 2, step: async () => ({ skipped: false, lossScale: 8, ...results[calls++]! }) } as unknown as Session;
    const data = new MemoryDataset({
      name: 'd', classes: ['a', 'b'], shape: [1, 4, 4], pixels: Uint8Array.from({ length: 6 * 16 }, (_, i) => i), labels: Int32Array.from([0, 1, 0, 1, 1, 0]), norm: { mean: [0], std: [255] },
    });
    const loader = new DataLoader(data, { batchSize: 2 });
    const steps: StepInfo[] = [];
    const trainer = new Trainer({ session, train: loader, schedule: createSchedule({ type: 'constant', lr: 0.1 }), epochs: 1, callbacks: { onStep: (s) => void steps.push(s) } });
    try {
      const stats = await trainer.trainEpoch(0);
      assert.deepEqual(steps.map((s) => s.skipped), [false, true, false]);
      assert.deepEqual([stats.skippedSteps, stats.images, stats.loss, stats.acc], [1, 4, (1 * 2 + 3 * 2) / 4, 3 / 4]);
      assert.deepEqual(steps.map((s) => s.epochImages), [2, 2, 4]);
    } finally {
      await loader.close();
    }
  });

  it("onStep carries the epoch's running totals, and the last step's equal the epoch's statistics", async () => {
    const g = new GraphBuilder();
    const x = g.input('images', [1, 4, 4]);
    const y = g.input('labels', [], 'i32');
    const logits = g.linear(g.globalAvgPool(x), { outFeatures: 2 });
    const session = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 2, optimizer: { lr: 0.1 } });
    const data = new MemoryDataset({
      name: 'd', classes: ['a', 'b'], shape: [1, 4, 4], pixels: Uint8Array.from({ length: 6 * 16 }, (_, i) => i), labels: Int32Array.from([0, 1, 0, 1, 1, 0]), norm: { mean: [0], std: [255] },
    });
    const loader = new DataLoader(data, { batchSize: 2 });
    const steps: { loss: number; correct: number; size: number; epochImages: number; epochLoss: number; epochAcc: number }[] = [];
    const trainer = new Trainer({ session, train: loader, schedule: createSchedule({ type: 'constant', lr: 0.1 }), epochs: 1, callbacks: { onStep: (s) => void steps.push(s) } });
    try {
      const stats = await trainer.trainEpoch(0);
      assert.equal(steps.length, 3);
      let images = 0, lossSum = 0, correct = 0;
      for (const s of steps) {
        images += s.size;
        lossSum += s.loss * s.size;
        correct += s.correct;
        assert.equal(s.epochImages, images);
        assert.equal(s.epochLoss, lossSum / images);
        assert.equal(s.epochAcc, correct / images);
      }
      assert.equal(steps.at(-1)!.epochLoss, stats.loss);
      assert.equal(steps.at(-1)!.epochAcc, stats.acc);
    } finally {
      await loader.close();
      session.dispose();
    }
  });
});
