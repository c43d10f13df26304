// Error paths on a machine with a CUDA device: each is an Error naming the op or device and the cause,
// and the session (and the device) stay usable afterwards.
import { strict as assert } from 'node:assert';
import { buildInfo, compile, devices, GraphBuilder, type Session } from '../../lib/index.js';
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
    // Sized from the device's free memory, so that it runs out on any card: backward reads every conv's
    // input, so a training graph of L convolutions over 2^30-element tensors (4 GiB each, under cuDNN's
    // 2^31 elements) keeps L x 4 GiB alive at once, whatever the memory plan reuses.
    const warm = await compile(classifier(), { device: GPU, batchSize: 2 });  // a context, so free memory is known
    warm.dispose();
    const id = GPU === 'cuda' ? 'cuda:0' : GPU;
    const free = devices().find((d) => d.id === id)?.freeBytes;
    assert.ok(free !== undefined && free > 0, `devices() gives no freeBytes for ${id}: ${JSON.stringify(devices())}`);
    const tensor = 2 ** 32;  // bytes: [16, 16, 2048, 2048] f32
    const layers = Math.ceil(free / tensor) + 2;
    const g = new GraphBuilder();
    const x = g.input('images', [16, 2048, 2048]);
    const y = g.input('labels', [], 'i32');
    let t = x;
    for (let i = 0; i < layers; i++) t = g.relu(g.conv2d(t, { outChannels: 16, kernel: 1, name: `conv${i}` }));
    const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4 });
    const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    let s: Session | undefined;
    let error: Error | undefined;
    try {
      s = await compile(graph, { device: GPU, batchSize: 16 });
    } catch (e) {
      error = e as Error;
    } finally {
      s?.dispose();  // if it fit after all, give the memory back before failing
    }
    assert.ok(error, `compile of ${layers} layers of 4 GiB tensors succeeded with ${free} bytes free`);
    assert.match(error.message, /out of device memory on cuda:\d+: asked for \d+ bytes \([\d.]+ MiB\); \d+ bytes \([\d.]+ MiB\) free of \d+ bytes/);
    // The device is still usable.
    const again = await compile(classifier(), { device: GPU, batchSize: 2 });
    again.dispose();
  });

  it('refuses a tensor over cuDNN\'s 2^31 elements at compile, naming the node', async () => {
    const g = new GraphBuilder();
    const x = g.input('images', [16, 2048, 2048]);
    const y = g.input('labels', [], 'i32');
    const c = g.conv2d(x, { outChannels: 16, kernel: 1, name: 'wide' });
    const logits = g.linear(g.globalAvgPool(c), { outFeatures: 4 });
    const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    // 32 x 16 x 2048 x 2048 = 2^31 elements: one over the int32 limit.
    await rejects(compile(graph, { device: GPU, batchSize: 32 }),
      /node wide \(conv2d\): input \[32,16,2048,2048\] has 2147483648 elements, over the 2147483647 one tensor may have on /);
  });

  it('reports an out-of-range label with its sample, and the session goes on', async () => {
    const s = await compile(classifier(), { device: GPU, batchSize: 4 });
    try {
      const images = new Float32Array(4 * 3 * 64).fill(0.5);
      await rejects(s.step(images, Int32Array.of(0, 1, 7, 2)), /input labels: label 7 of sample 2 is outside \[0, 4\), the classes of node loss \(softmaxCrossEntropy\); nothing was computed/);
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
