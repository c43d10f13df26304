// The Trainer's sums over ranks (TrainerOptions.group, lib/train/rank-sum.ts), with two ranks in this
// process joined by an in-memory group: each evaluates its uneven part of a test set (lib/data/shard.ts), and
// both must report exactly the counts of one process evaluating the whole set; the training statistics of
// an epoch likewise. The real process group's collectives are tested with it (test/dist-*.test.ts).
import { strict as assert } from 'node:assert';
import { compile, GraphBuilder, type Session } from '../lib/index.js';
import { DataLoader, MemoryDataset } from '../lib/data/index.js';
import { Trainer, createSchedule } from '../lib/train/index.js';
import type { RankSum } from '../lib/train/rank-sum.js';

/** `size` ranks in one process: an allreduce resolves once every rank has called it, with the sum. */
function memoryGroup(size: number): RankSum[] {
  let waiting: { values: Float64Array; resolve: () => void }[] = [];
  return Array.from({ length: size }, (_, rank) => ({
    rank, worldSize: size,
    allreduce: (values: Float64Array) => new Promise<void>((resolve) => {
      waiting.push({ values, resolve });
      if (waiting.length < size) return;
      const all = waiting;
      waiting = [];
      const sum = all[0]!.values.map((_, i) => all.reduce((s, w) => s + w.values[i]!, 0));
      for (const w of all) {
        w.values.set(sum);
        w.resolve();
      }
    }),
  }));
}

async function session(batchSize: number): Promise<Session> {
  const g = new GraphBuilder();
  const x = g.input('images', [1, 4, 4]);
  const y = g.input('labels', [], 'i32');
  const logits = g.linear(g.globalAvgPool(g.relu(g.conv2d(x, { outChannels: 6, kernel: 3, padding: 1, name: 'conv' }))), { outFeatures: 7, name: 'fc' });
  return compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize, seed: 5, optimizer: { lr: 0.1, momentum: 0 } });
}

function dataset(n: number): MemoryDataset {
  const pixels = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 97 + (i >> 4) * 31) % 256);
  return new MemoryDataset({
    name: 'test', classes: ['0', '1', '2', '3', '4', '5', '6'], shape: [1, 4, 4], pixels,
    labels: Int32Array.from({ length: n }, (_, i) => (i * 5) % 7), norm: { mean: [0.5], std: [0.3] },
  });
}

describe('Trainer: statistics summed over ranks', () => {
  const open: { dispose(): void }[] = [];
  const loaders: DataLoader[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) s.dispose();
    await Promise.all(loaders.splice(0).map((l) => l.close()));
  });
  const loader = (...a: ConstructorParameters<typeof DataLoader>) => {
    const l = new DataLoader(...a);
    loaders.push(l);
    return l;
  };
  const schedule = createSchedule({ type: 'constant', lr: 0.1 }, 1);

  it('two ranks evaluating uneven parts report the counts of one process evaluating the whole set', async () => {
    const test = dataset(45); // odd: rank 0 scores 23 samples, rank 1 22
    const single = await session(8);
    open.push(single);
    const whole = await new Trainer({ session: single, train: loader(test, { batchSize: 8 }), schedule, epochs: 0 }).evaluate(loader(test, { batchSize: 8 }));
    assert.equal(whole.images, 45);

    const group = memoryGroup(2);
    const ranks = await Promise.all(group.map(async (g) => {
      const s = await session(8);
      open.push(s);
      const part = loader(test, { batchSize: 8, shard: { rank: g.rank, worldSize: 2, tail: 'uneven' } });
      const train = loader(test, { batchSize: 8, dropLast: true, shard: { rank: g.rank, worldSize: 2, tail: 'drop' } });
      return new Trainer({ session: s, train, schedule, epochs: 0, group: g }).evaluate(part);
    }));
    for (const r of ranks) {
      assert.equal(r.images, 45);
      // The same images in other batches: the kernels' float32 sums may round a logit's last bit otherwise
      // (relative 1e-6 bounds that), the counts are equal.
      assert.equal(r.top1, whole.top1);
      assert.equal(r.top5, whole.top5);
      assert.ok(Math.abs(r.loss - whole.loss) < 1e-6 * whole.loss, `${r.loss} vs ${whole.loss}`);
    }
    // Not a mean of the ranks' means: with 23 and 22 samples those differ from the whole set's mean.
    const solo = await new Trainer({ session: single, train: loader(test, { batchSize: 8 }), schedule, epochs: 0 })
      .evaluate(loader(test, { batchSize: 8, shard: { rank: 0, worldSize: 2, tail: 'uneven' } }));
    assert.equal(solo.images, 23);
  });

  it("refuses a group's rank whose training source is unsharded or has an uneven tail", async () => {
    const s = await session(8);
    open.push(s);
    const [g] = memoryGroup(2);
    const data = dataset(45);
    assert.throws(() => new Trainer({ session: s, train: loader(data, { batchSize: 8, shard: { rank: 0, worldSize: 2, tail: 'uneven' } }), schedule, epochs: 1, group: g! }),
      (e: Error) => e instanceof RangeError && /sharded with tail 'drop' or 'pad' .*, but received tail 'uneven'/.test(e.message));
    assert.throws(() => new Trainer({ session: s, train: loader(data, { batchSize: 8 }), schedule, epochs: 1, group: g! }),
      (e: Error) => e instanceof TypeError && /rank 0 of 2 to read its part of the data .*, but received a source with no shard/.test(e.message));
  });

  it("an epoch's training loss, accuracy and images are the job's", async () => {
    const train = dataset(64);
    const group = memoryGroup(2);
    const stats = await Promise.all(group.map(async (g) => {
      const s = await session(8);
      open.push(s);
      const part = loader(train, { batchSize: 8, shuffle: true, seed: 1, dropLast: true, shard: { rank: g.rank, worldSize: 2, tail: 'drop' } });
      let local = { loss: 0, correct: 0, images: 0 };
      const t = new Trainer({
        session: s, train: part, schedule, epochs: 1, group: g,
        callbacks: { onStep: (i) => void (local = { loss: local.loss + i.loss * i.size, correct: local.correct + i.correct, images: local.images + i.size }) },
      });
      return { epoch: await t.trainEpoch(0), local };
    }));
    const images = stats[0]!.local.images + stats[1]!.local.images;
    const loss = (stats[0]!.local.loss + stats[1]!.local.loss) / images;
    const acc = (stats[0]!.local.correct + stats[1]!.local.correct) / images;
    assert.equal(images, 64);
    for (const { epoch } of stats) {
      assert.equal(epoch.images, 64);
      assert.ok(Math.abs(epoch.loss - loss) < 1e-12);
      assert.equal(epoch.acc, acc);
    }
  });
});
