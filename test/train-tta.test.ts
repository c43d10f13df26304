import { strict as assert } from 'node:assert';
import { compile, GraphBuilder } from '../lib/index.js';
import { DataLoader, MemoryDataset } from '../lib/data/index.js';
import { Trainer, createSchedule, emptyScore, meanSoftmaxLogits, mirrorRows, scoreLogits } from '../lib/train/index.js';

describe('test-time augmentation', () => {
  it('mirrorRows reverses each row of every plane and is its own inverse', () => {
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual([...mirrorRows(x, 3)], [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
    assert.deepEqual(mirrorRows(mirrorRows(x, 4), 4), x);
  });

  it('meanSoftmaxLogits gives the log of the mean of the views\' softmax', () => {
    const a = Float32Array.from([2, 0, -1, 0.5, 0.5, 3]);
    const b = Float32Array.from([-1, 4, 0, 1, 0, 0]);
    const softmax = (v: number[]) => v.map((x) => Math.exp(x) / v.reduce((s, y) => s + Math.exp(y), 0));
    const got = meanSoftmaxLogits([a, b], 2, 3);
    for (let i = 0; i < 2; i++) {
      const pa = softmax([...a.subarray(3 * i, 3 * i + 3)]), pb = softmax([...b.subarray(3 * i, 3 * i + 3)]);
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(got[3 * i + k]! - Math.log((pa[k]! + pb[k]!) / 2)) < 1e-6);
    }
    // One view: scoring the result is scoring the logits themselves.
    const labels = Int32Array.from([0, 2]);
    const one = scoreLogits(emptyScore(), meanSoftmaxLogits([a], 2, 3), labels, 2, 3);
    const direct = scoreLogits(emptyScore(), a, labels, 2, 3);
    assert.ok(Math.abs(one.lossSum - direct.lossSum) < 1e-6);
    assert.equal(one.top1, direct.top1);
  });

  it("evaluate({tta: 'flip'}) scores the mean of each image and its mirror image", async () => {
    // A linear classifier on 1x4x4 images (a 4x4 convolution over the whole image, then pooling its 1x1
    // output away), with random weights, which are not mirror-symmetric: the mirror view changes the logits.
    const g = new GraphBuilder();
    const x = g.input('images', [1, 4, 4]);
    const y = g.input('labels', [], 'i32');
    const logits = g.globalAvgPool(g.conv2d(x, { outChannels: 3, kernel: 4, bias: true, name: 'fc' }));
    const session = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 4, seed: 5 });
    const n = 6;
    const pixels = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 37) % 256);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const data = new MemoryDataset({ name: 'm', classes: ['a', 'b', 'c'], shape: [1, 4, 4], pixels, labels, norm: { mean: [0.5], std: [0.5] } });
    const loader = new DataLoader(data, { batchSize: 4 });
    const trainer = new Trainer({ session, train: loader, schedule: createSchedule({ type: 'constant', lr: 0 }), epochs: 0 });

    // The expectation, computed here from the weights in float64.
    const w = session.getParameter('fc.weight'), bias = session.getParameter('fc.bias');
    let loss = 0, plainLoss = 0;
    for (let i = 0; i < n; i++) {
      const img = Array.from({ length: 16 }, (_, j) => (pixels[i * 16 + j]! / 255 - 0.5) / 0.5);
      const mir = img.map((_, j) => img[Math.floor(j / 4) * 4 + 3 - (j % 4)]!);
      const probs = (v: number[]) => {
        const z = [0, 1, 2].map((k) => bias[k]! + v.reduce((s, xv, j) => s + xv * w[k * 16 + j]!, 0));
        const m = Math.max(...z), e = z.map((t) => Math.exp(t - m)), s = e.reduce((a, b) => a + b, 0);
        return e.map((t) => t / s);
      };
      const p = probs(img), q = probs(mir);
      loss -= Math.log((p[labels[i]!]! + q[labels[i]!]!) / 2);
      plainLoss -= Math.log(p[labels[i]!]!);
    }
    const flip = await trainer.evaluate(loader, 0, { tta: 'flip' });
    const plain = await trainer.evaluate(loader);
    assert.equal(flip.images, n);
    assert.ok(Math.abs(flip.loss - loss / n) < 1e-4, `tta loss ${flip.loss} vs ${loss / n}`);
    assert.ok(Math.abs(plain.loss - plainLoss / n) < 1e-4, `plain loss ${plain.loss} vs ${plainLoss / n}`);
    assert.ok(Math.abs(flip.loss - plain.loss) > 1e-3, 'the mirror view changed the result');
    await assert.rejects(trainer.evaluate({ epoch: () => loader.epoch(0) }, 0, { tta: 'flip' }), /expected a source with dataset.shape \[C, H, W\] for tta 'flip'/);
    await loader.close();
    session.dispose();
  });
});
