import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { compile, GraphBuilder } from '../lib/index.js';
import { DataLoader, MemoryDataset } from '../lib/data/index.js';
import { Trainer, createSchedule, loadCheckpoint, restoreSession, saveCheckpoint } from '../lib/train/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

// A learnable toy problem: the class is the brightest quadrant of an 8x8 image.
function toyData(n: number, seed: number): MemoryDataset {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
  const pixels = new Uint8Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const cls = Math.floor(rand() * 4);
    labels[i] = cls;
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const q = (y >= 4 ? 2 : 0) + (x >= 4 ? 1 : 0);
        pixels[i * 64 + y * 8 + x] = Math.min(255, Math.floor(rand() * 80 + (q === cls ? 150 : 0)));
      }
    }
  }
  return new MemoryDataset({ name: 'toy', classes: ['a', 'b', 'c', 'd'], shape: [1, 8, 8], pixels, labels, norm: { mean: [0.4], std: [0.25] }, augment: { pad: 1, flip: false } });
}

function toyNet() {
  const g = new GraphBuilder();
  const x = g.input('images', [1, 8, 8]);
  const y = g.input('labels', [], 'i32');
  let t = g.relu(g.batchNorm(g.conv2d(x, { outChannels: 8, kernel: 3, padding: 1, name: 'conv1' }), { name: 'bn1' }));
  t = g.conv2d(t, { outChannels: 8, kernel: 3, padding: 1, groups: 8, name: 'conv2' });
  const logits = g.linear(g.globalAvgPool(g.relu(g.batchNorm(t, { name: 'bn2' }))), { outFeatures: 4, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}

describe('Trainer: resume', () => {
  afterEach(removeTestTempDirs);
  const train = toyData(256, 1);
  const test = toyData(96, 2);
  const optimizer = { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 };
  const scheduleConfig = { type: 'cosine' as const, lr: 0.1, epochs: 3, warmup: { steps: 3 } };

  async function run(epochs: [number, number], session: Awaited<ReturnType<typeof compile>>, startStep = 0) {
    const losses: number[] = [];
    const loader = new DataLoader(train, { batchSize: 32, shuffle: true, seed: 9, dropLast: true });
    const trainer = new Trainer({
      session, train: loader, test: new DataLoader(test, { batchSize: 32 }), schedule: createSchedule(scheduleConfig, 8),
      epochs: epochs[1], startEpoch: epochs[0], startStep, callbacks: { onStep: (s) => void losses.push(s.loss) },
    });
    const r = await trainer.fit();
    await loader.close();
    return { losses, r, trainer };
  }

  it('a run resumed from a checkpoint reproduces the uninterrupted run exactly', async () => {
    const whole = await compile(toyNet(), { batchSize: 32, seed: 3, optimizer });
    const straight = await run([0, 3], whole);
    assert.equal(straight.losses.length, 24);
    assert.ok(straight.r.epochs[2]!.test!.top1 > 0.5, `the toy problem is learnt (top-1 ${straight.r.epochs[2]!.test!.top1})`);

    const dir = testTempDir('resume');
    const first = await compile(toyNet(), { batchSize: 32, seed: 3, optimizer });
    const a = await run([0, 1], first);
    const file = path.join(dir, 'ckpt.safetensors');
    await saveCheckpoint(file, first, { model: { name: 'toy' }, epoch: 1, step: a.trainer.step });
    first.dispose();

    const second = await compile(toyNet(), { batchSize: 32, seed: 77, optimizer }); // other initial weights
    const ckpt = loadCheckpoint(file);
    restoreSession(second, ckpt);
    const b = await run([ckpt.meta.epoch, 3], second, ckpt.meta.step);
    assert.deepEqual([...a.losses, ...b.losses], straight.losses);
    assert.deepEqual(b.r.epochs.at(-1)!.test, { ...straight.r.epochs.at(-1)!.test!, seconds: b.r.epochs.at(-1)!.test!.seconds });
    for (const name of whole.parameterNames()) assert.deepEqual(second.getParameter(name), whole.getParameter(name), name);
    whole.dispose();
    second.dispose();
  });
});
