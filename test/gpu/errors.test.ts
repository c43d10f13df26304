// Error paths on a machine with a CUDA device: each is an Error naming the op or device and the cause,
// and the session (and the device) stay usable afterwards.
import { strict as assert } from 'node:assert';
import { buildInfo, compile, GraphBuilder } from '../../lib/index.js';
import { GPU } from './compare.js';

function classifier(c = 3, hw = 8, k = 4) {
  const g = new GraphBuilder();
  const x = g.input('images', [c, hw, hw]);
  const y = g.input('labels', [], 'i32');
  const t = g.relu(g.batchNorm(g.conv2d(x, { outChannels: 16, kernel: 3, padding: 1, name: 'conv' }), { name: 'bn' }));
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: k, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y, { name: 'loss' }) });
}

async function rejects(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (e: Error) => {
    assert.match(e.message, re);
    return true;
  });
}

describe('CUDA error paths', () => {
  it('names a device index out of range', async () => {
    const n = buildInfo().cudaDevices;
    await rejects(compile(classifier(), { device: `cuda:${n}`, batchSize: 2 }), new RegExp(`^device 'cuda:${n}': device index ${n} out of range \\(${n} devices?`));
  });

  it('names the op, the bytes asked and the bytes free when device memory runs out', async () => {
    // A training graph keeping 24 activations of 7.5 GB (each under cuDNN's 2^31 elements): ~180 GB.
    const g = new GraphBuilder();
    const x = g.input('images', [64, 1024, 1024]);
    const y = g.input('labels', [], 'i32');
    let t = x;
    for (let i = 0; i < 12; i++) t = g.relu(g.conv2d(t, { outChannels: 64, kernel: 3, padding: 1, name: `conv${i}` }));
    const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4 });
    const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    await rejects(compile(graph, { device: GPU, batchSize: 28 }),
      /out of device memory on cuda:\d+: asked for \d+ bytes \([\d.]+ MiB\); \d+ bytes \([\d.]+ MiB\) free of \d+ bytes/);
    // The device is still usable.
    const s = await compile(classifier(), { device: GPU, batchSize: 2 });
    s.dispose();
  });

  it('reports an out-of-range label with its sample, and the session goes on', async () => {
    const s = await compile(classifier(), { device: GPU, batchSize: 4 });
    try {
      const images = new Float32Array(4 * 3 * 64).fill(0.5);
      await rejects(s.step(images, Int32Array.of(0, 1, 7, 2)), /node loss \(softmaxCrossEntropy\): label 7 of sample 2 is outside \[0, 4\)/);
      const r = await s.step(images, Int32Array.of(0, 1, 3, 2));
      assert.ok(Number.isFinite(r.loss));
    } finally {
      s.dispose();
    }
  });

  it('refuses NaN inputs before computing anything, as on the CPU', async () => {
    const s = await compile(classifier(), { device: GPU, batchSize: 2 });
    try {
      const before = s.getParameter('conv.weight');
      const images = new Float32Array(2 * 3 * 64);
      images[70] = NaN;
      await rejects(s.step(images, Int32Array.of(0, 1)), /input images: element 70 \(sample 0\) is NaN; nothing was computed or updated/);
      assert.deepEqual(s.getParameter('conv.weight'), before);
    } finally {
      s.dispose();
    }
  });
});
