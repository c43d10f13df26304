import { strict as assert } from 'node:assert';
import { DataLoader, MemoryDataset, DataRng, type Batch, type Dataset } from '../lib/data/index.js';
import { compile, GraphBuilder } from '../lib/index.js';

const N = 103;

/** Sample i of shape [1, 2, 2] holds bytes [i & 255, i >> 8, 7, 9]; with std 1/255 the floats are those bytes. */
function indexDataset(n = N): MemoryDataset {
  const pixels = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) pixels.set([i & 255, i >> 8, 7, 9], i * 4);
  return new MemoryDataset({
    name: 'index', classes: ['0', '1', '2', '3', '4', '5', '6'], shape: [1, 2, 2], pixels,
    labels: Int32Array.from({ length: n }, (_, i) => i % 7), norm: { mean: [0], std: [1 / 255] },
  });
}

function decode(b: Batch): number[] {
  const ids: number[] = [];
  for (let j = 0; j < b.size; j++) ids.push(Math.round(b.images[j * 4]) + 256 * Math.round(b.images[j * 4 + 1]));
  return ids;
}

/** Copies of every batch of an epoch (the loader reuses its buffers). */
async function collect(loader: DataLoader, epoch: number): Promise<{ ids: number[][]; images: Float32Array[]; labels: number[][] }> {
  const r = { ids: [] as number[][], images: [] as Float32Array[], labels: [] as number[][] };
  for await (const b of loader.epoch(epoch)) {
    r.ids.push(decode(b));
    r.images.push(b.images.slice());
    r.labels.push([...b.labels]);
  }
  return r;
}

async function until(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('data: DataLoader', () => {
  const loaders: DataLoader[] = [];
  const make = (ds: Dataset, opts: ConstructorParameters<typeof DataLoader>[1]) => {
    const l = new DataLoader(ds, opts);
    loaders.push(l);
    return l;
  };
  afterEach(async () => {
    await Promise.all(loaders.splice(0).map((l) => l.close()));
  });

  for (const workers of [0, 2]) {
    it(`visits every sample exactly once per epoch, with matching labels and indices (workers: ${workers})`, async () => {
      const loader = make(indexDataset(), { batchSize: 10, shuffle: true, seed: 4, workers });
      for (let e = 0; e < 3; e++) {
        const seen: number[] = [];
        let batches = 0;
        for await (const b of loader.epoch(e)) {
          const ids = decode(b);
          assert.deepEqual(ids, [...b.indices]);
          assert.deepEqual([...b.labels], ids.map((i) => i % 7));
          assert.equal(b.images.length, b.size * 4);
          assert.equal(b.index, batches++);
          assert.equal(b.epoch, e);
          seen.push(...ids);
        }
        assert.equal(batches, 11);
        assert.deepEqual(seen.slice().sort((a, b) => a - b), [...Array(N).keys()]);
        assert.notDeepEqual(seen, [...Array(N).keys()], 'shuffled');
      }
    });
  }

  it('drops the last partial batch with dropLast, and keeps it otherwise', async () => {
    const keep = await collect(make(indexDataset(), { batchSize: 10 }), 0);
    assert.deepEqual(keep.ids.map((b) => b.length), [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
    assert.deepEqual(keep.ids.flat(), [...Array(N).keys()], 'unshuffled by default, in order');
    const drop = make(indexDataset(), { batchSize: 10, dropLast: true, shuffle: true });
    assert.equal(drop.batchesPerEpoch, 10);
    const d = await collect(drop, 0);
    assert.deepEqual(d.ids.map((b) => b.length), new Array(10).fill(10));
    assert.deepEqual(d.ids.flat().sort((a, b) => a - b), [...drop.order(0).slice(0, 100)].sort((a, b) => a - b));
  });

  it('is deterministic: same seed, same batches; another epoch or seed, another order', async () => {
    const a = await collect(make(indexDataset(), { batchSize: 8, shuffle: true, seed: 1 }), 2);
    const b = await collect(make(indexDataset(), { batchSize: 8, shuffle: true, seed: 1, prefetch: 5 }), 2);
    assert.deepEqual(a, b);
    const l = make(indexDataset(), { batchSize: 8, shuffle: true, seed: 1 });
    assert.notDeepEqual((await collect(l, 3)).ids, a.ids);
    assert.notDeepEqual((await collect(make(indexDataset(), { batchSize: 8, shuffle: true, seed: 2 }), 2)).ids, a.ids);
  });

  it('gives the same augmented batches whatever the worker count, batch order or prefetch depth', async () => {
    const rng = new DataRng(3);
    const n = 40;
    const ds = new MemoryDataset({
      name: 'aug', classes: ['a', 'b'], shape: [3, 8, 8], pixels: Uint8Array.from({ length: n * 192 }, () => rng.int(256)),
      labels: Int32Array.from({ length: n }, (_, i) => i % 2), norm: { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] },
      augment: { pad: 2, flip: true },
    });
    const ref = await collect(make(ds, { batchSize: 6, shuffle: true, seed: 5, workers: 0 }), 1);
    for (const [workers, prefetch] of [[1, 1], [2, 4], [3, 2]]) {
      assert.deepEqual(await collect(make(ds, { batchSize: 6, shuffle: true, seed: 5, workers, prefetch }), 1), ref, `workers ${workers}`);
    }
    // Each sample's augmentation depends on (seed, epoch, index) only, not on the batch it lands in.
    const bySample = (c: typeof ref, bs: number) => {
      const m = new Map<number, string>();
      c.images.forEach((im, k) => {
        const order = make(ds, { batchSize: bs, shuffle: true, seed: 5 }).order(1);
        for (let j = 0; j < im.length / 192; j++) m.set(order[k * bs + j], im.subarray(j * 192, (j + 1) * 192).join());
      });
      return m;
    };
    const other = await collect(make(ds, { batchSize: 7, shuffle: true, seed: 5 }), 1);
    assert.deepEqual(bySample(other, 7), bySample(ref, 6));
  });

  /** An in-memory set read asynchronously (a timer per sample), like a decoded one, but usable without workers. */
  function slowDataset(n: number) {
    const base = indexDataset(n);
    const ds: Dataset = {
      name: 'slow', length: n, labels: base.labels, classes: base.classes, shape: base.shape, onBadImage: 'fail',
      read: (i, out, off, rng) => {
        return new Promise<void>((r) => setTimeout(r, 1)).then(() => base.read(i, out, off, rng));
      },
    };
    return { ds };
  }

  for (const workers of [0, 1]) {
    it(`fills the next batches while the consumer holds one (workers: ${workers})`, async () => {
      const ds = workers ? indexDataset(60) : slowDataset(60).ds;
      const loader = make(ds, { batchSize: 5, prefetch: 3, workers });
      const it = loader.epoch(0);
      const first = await it.next();
      assert.equal(first.done, false);
      // Nothing more is requested; the prefetch must still fill three batches.
      await until(() => loader.ready === 3, 'three prefetched batches');
      assert.equal(loader.ready, 3);
      const second = await it.next();
      assert.deepEqual(decode(second.value as Batch), [5, 6, 7, 8, 9]);
      await until(() => loader.ready === 3, 'the prefetch to top up');
      await it.return(undefined);
      assert.equal(loader.ready, 0);
    });
  }

  it('reuses prefetch + 1 buffers', async () => {
    const loader = make(indexDataset(), { batchSize: 10, prefetch: 2 });
    const buffers: ArrayBufferLike[] = [];
    for await (const b of loader.epoch(0)) buffers.push(b.images.buffer);
    assert.equal(new Set(buffers).size, 3);
    assert.equal(buffers[0], buffers[3]);
    for await (const b of loader.epoch(1)) assert.ok(buffers.includes(b.images.buffer), 'the next epoch reuses them too');
  });

  it('hands out plain (not shared) ArrayBuffers, which the native addon requires', async () => {
    for (const workers of [0, 1]) {
      for await (const b of make(indexDataset(), { batchSize: 50, workers }).epoch(0)) {
        assert.ok(b.images.buffer instanceof ArrayBuffer && b.labels.buffer instanceof ArrayBuffer);
      }
    }
  });

  it('can break out of an epoch and start another; refuses two epochs at once', async () => {
    const loader = make(indexDataset(), { batchSize: 10, shuffle: true });
    for await (const b of loader.epoch(0)) if (b.index === 2) break;
    const it = loader.epoch(1);
    await it.next();
    await assert.rejects(loader.epoch(2).next(), /another epoch is being iterated/);
    await it.return(undefined);
    assert.equal((await collect(loader, 1)).ids.length, 11);
    // Iterating the loader itself runs the epoch after the last one started.
    let count = 0;
    for await (const b of loader) count += b.epoch === 2 ? 1 : 0;
    assert.equal(count, 11);
  });

  it('passes a failed read on to the consumer and recovers for the next epoch', async () => {
    const base = indexDataset();
    let failOn = 57;
    const ds: Dataset = {
      name: 'flaky', length: N, labels: base.labels, classes: base.classes, shape: base.shape, onBadImage: 'skip',
      read: (i, out, off, rng) => {
        if (i === failOn) throw new RangeError(`sample ${i} is broken`);
        base.read(i, out, off, rng);
      },
    };
    const loader = make(ds, { batchSize: 10 });
    // Only BadImageErrors are skipped, whatever onBadImage says.
    await assert.rejects(collect(loader, 0), /sample 57 is broken/);
    failOn = -1;
    assert.equal((await collect(loader, 1)).ids.flat().length, N);
  });

  it('feeds a compiled session: batches go straight into step() (workers: 0 and 1)', async () => {
    const rng = new DataRng(8);
    const n = 48;
    const ds = new MemoryDataset({
      name: 'tiny', classes: ['a', 'b', 'c'], shape: [1, 6, 6], pixels: Uint8Array.from({ length: n * 36 }, () => rng.int(256)),
      labels: Int32Array.from({ length: n }, (_, i) => i % 3), norm: { mean: [0.5], std: [0.25] }, augment: { pad: 1, flip: true },
    });
    const g = new GraphBuilder();
    const x = g.input('images', [1, 6, 6]), y = g.input('labels', [], 'i32');
    const logits = g.linear(g.globalAvgPool(g.relu(g.conv2d(x, { outChannels: 4, kernel: 3, padding: 1 }))), { outFeatures: 3 });
    const session = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 8, optimizer: { lr: 0.1 } });
    try {
      for (const workers of [0, 1]) {
        const loader = make(ds, { batchSize: 8, shuffle: true, dropLast: true, workers });
        let steps = 0;
        for await (const b of loader.epoch(0)) {
          const r = await session.step(b.images, b.labels);
          assert.ok(Number.isFinite(r.loss));
          steps++;
        }
        assert.equal(steps, 6);
      }
    } finally {
      session.dispose();
    }
  });

  it('rejects bad options, naming them', () => {
    assert.throws(() => new DataLoader(indexDataset(), { batchSize: 0 }), /expected batchSize to be a positive integer/);
    assert.throws(() => new DataLoader(indexDataset(), { batchSize: 4, workers: -1 }), /expected workers to be an integer >= 0, but received -1/);
    assert.throws(() => new DataLoader(indexDataset(), { batchSize: 4, prefetch: 0 }), /expected prefetch to be an integer >= 1, but received 0/);
    assert.throws(() => new DataLoader(indexDataset(5), { batchSize: 8, dropLast: true }), /fewer than one batch/);
    assert.throws(() => new DataLoader(slowDataset(5).ds, { batchSize: 2, workers: 1 }), /needs a built-in data set/);
  });

  it('refuses to run after close()', async () => {
    const loader = new DataLoader(indexDataset(), { batchSize: 10, workers: 1 });
    await collect(loader, 0);
    await loader.close();
    await assert.rejects(loader.epoch(1).next(), /after close/);
  });
});
