// The distributed sampler (lib/data/shard.ts) and the DataLoader's `shard` option: each rank's part of an
// epoch, against PyTorch's DistributedSampler written out here from its definition (pad by repeating the
// list, or cut it, then take every W-th element from the rank's position).
import { strict as assert } from 'node:assert';
import { DataLoader, MemoryDataset, epochOrder, shardOrder, type ShardTail } from '../lib/data/index.js';
import { TestRng } from './support/random.js';

/** torch.utils.data.DistributedSampler.__iter__ after its permutation, as list operations. */
function pytorchShard(order: number[], rank: number, w: number, dropLast: boolean): number[] {
  const n = order.length;
  const numSamples = dropLast && n % w !== 0 ? Math.ceil((n - w) / w) : Math.ceil(n / w);
  const total = numSamples * w;
  let indices = [...order];
  if (!dropLast) {
    const padding = total - n;
    if (padding <= n) indices = indices.concat(indices.slice(0, padding));
    else indices = indices.concat(Array.from({ length: Math.ceil(padding / n) }, () => order).flat().slice(0, padding));
  } else indices = indices.slice(0, total);
  return indices.filter((_, i) => i >= rank && (i - rank) % w === 0);
}

const shards = (order: Int32Array, w: number, tail: ShardTail) => Array.from({ length: w }, (_, rank) => [...shardOrder(order, { rank, worldSize: w, tail })]);

describe('data: distributed sampler (shardOrder)', () => {
  const sizes = [1, 2, 3, 5, 7, 64, 101];
  it("is PyTorch's DistributedSampler for pad (drop_last=False) and drop (drop_last=True)", () => {
    for (const n of sizes) {
      for (const w of [1, 2, 3, 4, 8]) {
        const order = epochOrder(n, 11, 2, true);
        for (let rank = 0; rank < w; rank++) {
          assert.deepEqual([...shardOrder(order, { rank, worldSize: w, tail: 'pad' })], pytorchShard([...order], rank, w, false), `n ${n} w ${w} rank ${rank} pad`);
          assert.deepEqual([...shardOrder(order, { rank, worldSize: w, tail: 'drop' })], pytorchShard([...order], rank, w, true), `n ${n} w ${w} rank ${rank} drop`);
        }
      }
    }
  });

  it('gives disjoint parts that cover the epoch: equal counts (pad, drop), each sample once (uneven)', () => {
    for (const n of sizes) {
      for (const w of [1, 2, 3, 4]) {
        const order = epochOrder(n, 3, 0, true);
        const pad = shards(order, w, 'pad');
        assert.ok(pad.every((p) => p.length === Math.ceil(n / w)));
        // Padding repeats the order's first samples, only to fill the ranks' equal counts.
        assert.deepEqual(new Set(pad.flat()), new Set(order));
        assert.equal(pad.flat().length - n, Math.ceil(n / w) * w - n);
        const drop = shards(order, w, 'drop');
        assert.ok(drop.every((p) => p.length === Math.floor(n / w)));
        assert.equal(new Set(drop.flat()).size, drop.flat().length, 'drop: disjoint');
        assert.deepEqual(drop.flat().sort((a, b) => a - b), [...order.subarray(0, Math.floor(n / w) * w)].sort((a, b) => a - b));
        const uneven = shards(order, w, 'uneven');
        assert.deepEqual(uneven.flat().sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'uneven: every sample exactly once');
        assert.ok(Math.max(...uneven.map((p) => p.length)) - Math.min(...uneven.map((p) => p.length)) <= 1);
      }
    }
  });

  it('is the whole order, unchanged, for one rank; and the same on every rank for the same seed and epoch', () => {
    const order = epochOrder(37, 5, 4, true);
    for (const tail of ['pad', 'drop', 'uneven'] as const) assert.deepEqual(shardOrder(order, { rank: 0, worldSize: 1, tail }), order);
    assert.notDeepEqual(epochOrder(37, 5, 5, true), order, 'another epoch, another order');
  });
});

describe('data: DataLoader with a shard', () => {
  const loaders: DataLoader[] = [];
  afterEach(async () => {
    await Promise.all(loaders.splice(0).map((l) => l.close()));
  });
  /** 8x8 grey images, random pixels, with crop and mirror augmentation: the batches depend on the seed, epoch and index. */
  function dataset(n: number): MemoryDataset {
    const rng = new TestRng(9);
    const pixels = Uint8Array.from({ length: n * 64 }, () => Math.floor(rng.next() * 256));
    return new MemoryDataset({
      name: 'random', classes: ['a', 'b', 'c'], shape: [1, 8, 8], pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 3),
      norm: { mean: [0.5], std: [0.25] }, augment: { pad: 2, flip: true },
    });
  }
  const batches = async (l: DataLoader, epoch: number) => {
    loaders.push(l);
    const out: { images: Float32Array; labels: Int32Array; indices: Int32Array }[] = [];
    for await (const b of l.epoch(epoch)) out.push({ images: b.images.slice(), labels: b.labels.slice(), indices: b.indices.slice() });
    return out;
  };

  it("two ranks' batches side by side are one process's at twice the batch size, augmentation included", async () => {
    const ds = dataset(70);
    for (const epoch of [0, 3]) {
      const one = await batches(new DataLoader(ds, { batchSize: 16, shuffle: true, seed: 7, dropLast: true }), epoch);
      const ranks = await Promise.all([0, 1].map((rank) => batches(new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 7, dropLast: true, shard: { rank, worldSize: 2, tail: 'drop' } }), epoch)));
      assert.equal(one.length, 4);
      assert.deepEqual(ranks.map((r) => r.length), [4, 4]);
      for (let b = 0; b < one.length; b++) {
        const [r0, r1] = [ranks[0]![b]!, ranks[1]![b]!];
        // Sample j of the global batch is rank (j mod 2)'s sample floor(j / 2).
        for (let j = 0; j < 16; j++) {
          const r = j % 2 === 0 ? r0 : r1, k = j >> 1;
          assert.equal(r.indices[k], one[b]!.indices[j]);
          assert.equal(r.labels[k], one[b]!.labels[j]);
          assert.deepEqual(r.images.subarray(k * 64, (k + 1) * 64), one[b]!.images.subarray(j * 64, (j + 1) * 64), `epoch ${epoch} batch ${b} sample ${j}`);
        }
      }
    }
  });

  it('counts an uneven shard\'s samples, and refuses a bad shard naming the field', () => {
    const ds = dataset(5);
    const l = new DataLoader(ds, { batchSize: 2, shard: { rank: 2, worldSize: 3, tail: 'uneven' } });
    loaders.push(l);
    assert.equal(l.length, 1);
    assert.equal(l.batchesPerEpoch, 1);
    const empty = new DataLoader(dataset(1), { batchSize: 2, shard: { rank: 1, worldSize: 2, tail: 'uneven' } });
    loaders.push(empty);
    assert.equal(empty.batchesPerEpoch, 0, 'a rank with no sample of a small test set evaluates nothing');
    assert.throws(() => new DataLoader(ds, { batchSize: 2, shard: { rank: 3, worldSize: 3 } }), /DataLoader: expected shard.rank to be an integer in \[0, 2\], but received 3/);
    assert.throws(() => new DataLoader(ds, { batchSize: 2, shard: { rank: 0, worldSize: 0 } }), /expected shard.worldSize to be a positive integer, but received 0/);
    assert.throws(() => new DataLoader(ds, { batchSize: 2, shard: { rank: 0, worldSize: 2, tail: 'wrap' as ShardTail } }), /expected shard.tail 'pad', 'drop' or 'uneven', but received "wrap"/);
    assert.throws(() => new DataLoader(ds, { batchSize: 4, dropLast: true, shard: { rank: 0, worldSize: 2 } }), /5 samples \(3 on rank 0 of 2\), fewer than one batch of 4 with dropLast/);
  });
});
