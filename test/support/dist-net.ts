// The networks and data of the data-parallel tests (test/dist-training.test.ts and its workers,
// test/support/dist-worker.ts), so that a worker and the single-process reference build the same things.
//   plain:  conv -> relu -> conv -> relu -> global pool -> linear, no batch norm
//   shared: one Parameter 'factor.weight' used by two convolutions (a CRU factor set's sharing), no batch norm
//   bn:     conv -> batch norm -> relu -> conv -> batch norm -> relu -> global pool -> linear
import { GraphBuilder, type Graph } from '../../lib/index.js';
import { labels32, normal32, TestRng } from './random.js';

export type DistModel = 'plain' | 'shared' | 'bn';
export const SIZE = 6, CLASSES = 4;

export function distNet(model: DistModel, width = 8): Graph {
  const g = new GraphBuilder();
  const x = g.input('images', [3, SIZE, SIZE]);
  const y = g.input('labels', [], 'i32');
  let t = model === 'bn' ? x : g.relu(g.conv2d(x, { outChannels: width, kernel: 3, padding: 1, name: 'conv1' }));
  if (model === 'bn') {
    t = g.relu(g.batchNorm(g.conv2d(x, { outChannels: width, kernel: 3, padding: 1, name: 'conv1' }), { name: 'bn1' }));
    t = g.relu(g.batchNorm(g.conv2d(t, { outChannels: width, kernel: 3, padding: 1, name: 'conv2' }), { name: 'bn2' }));
  } else if (model === 'shared') {
    const w = g.param('factor.weight', [width, width, 3, 3]);
    t = g.relu(g.conv2d(t, { outChannels: width, kernel: 3, padding: 1, weight: w, name: 'use1' }));
    t = g.relu(g.add(t, g.conv2d(t, { outChannels: width, kernel: 3, padding: 1, weight: w, name: 'use2' })));
  } else {
    t = g.relu(g.conv2d(t, { outChannels: width, kernel: 3, padding: 1, name: 'conv2' }));
  }
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: CLASSES, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}

/** The global batch of step `step`: `batch` images and labels, the same in every process. */
export function globalBatch(step: number, batch: number): { images: Float32Array; labels: Int32Array } {
  const rng = new TestRng(1000 + step);
  return { images: normal32(rng, batch * 3 * SIZE * SIZE), labels: labels32(rng, batch, CLASSES) };
}

/** Rank r's shard of a global batch: samples [r * per, (r + 1) * per). */
export function shard(b: { images: Float32Array; labels: Int32Array }, rank: number, per: number) {
  const n = 3 * SIZE * SIZE;
  return { images: b.images.slice(rank * per * n, (rank + 1) * per * n), labels: b.labels.slice(rank * per, (rank + 1) * per) };
}
