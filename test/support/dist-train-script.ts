// A user's training script for test/dist-train.test.ts, run alone (one process at the global batch) or by
// `crunet launch` (each rank at global / world size): the Trainer with sharded loaders and a process group
// from the environment. Rank 0 prints one JSON line: every epoch's training and evaluation statistics.
import { compile, data, dist, train } from '../../lib/index.js';
import { CLASSES, distNet, SIZE } from './dist-net.js';

function dataset(name: string, n: number, seed: number): data.MemoryDataset {
  const rng = new data.DataRng(seed);
  const pixels = Uint8Array.from({ length: n * 3 * SIZE * SIZE }, () => rng.int(256));
  const labels = Int32Array.from({ length: n }, (_, i) => (pixels[i * 3 * SIZE * SIZE]! + pixels[i * 3 * SIZE * SIZE + 1]!) % CLASSES);
  return new data.MemoryDataset({ name, classes: ['a', 'b', 'c', 'd'], shape: [3, SIZE, SIZE], pixels, labels, norm: { mean: [0.5, 0.5, 0.5], std: [0.3, 0.3, 0.3] }, augment: { pad: 1, flip: true } });
}

async function main(): Promise<void> {
  const globalBatch = Number(process.argv[2]);
  const group = dist.isDistributedEnv() ? await dist.initFromEnv({ timeoutMs: 60_000 }) : undefined;
  const worldSize = group?.worldSize ?? 1, rank = group?.rank ?? 0;
  const part = (tail: data.ShardTail) => (group ? { shard: { rank, worldSize, tail } } : {});
  const trainSet = dataset('train', 200, 1), testSet = dataset('test', 101, 2).withAugment(null);
  const loader = new data.DataLoader(trainSet, { batchSize: globalBatch / worldSize, shuffle: true, seed: 3, dropLast: true, ...part('drop') });
  const testLoader = new data.DataLoader(testSet, { batchSize: 16, ...part('uneven') });
  const session = await compile(distNet('plain'), {
    batchSize: globalBatch / worldSize, seed: 5, optimizer: { lr: 0.05, momentum: 0.9 }, ...(group ? { distributed: { group } } : {}),
  });
  const schedule = train.createSchedule({ type: 'constant', lr: 0.05 }, loader.batchesPerEpoch);
  const trainer = new train.Trainer({ session, train: loader, test: testLoader, schedule, epochs: 3, ...(group ? { group } : {}) });
  const { epochs } = await trainer.fit();
  if (rank === 0) console.log(JSON.stringify(epochs.map((e) => ({ train: { loss: e.train.loss, acc: e.train.acc, images: e.train.images }, test: e.test }))));
  await loader.close();
  await testLoader.close();
  session.dispose();
  group?.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
