// A training source whose batches are mixed (mixup / cutmix, lib/data/mixup.ts) and carry soft targets,
// for a session compiled with softTargets. Batch b of epoch e draws from batchRng(seed, e, b), so a resumed
// run mixes its batches exactly as the uninterrupted run did.
import { batchRng, checkMixOptions, drawMix, mixBatch, type MixOptions } from '../data/mixup.js';
import type { BatchSource, TrainBatch } from './trainer.js';

export function mixedBatches(source: BatchSource, o: MixOptions & { seed: number; classes: number }): BatchSource {
  checkMixOptions(o);
  const shape = source.dataset?.shape;
  if (!shape || shape.length !== 3) throw new TypeError('mixedBatches: expected a source with dataset.shape [C, H, W]');
  return {
    dataset: source.dataset,
    ...(source.shard ? { shard: source.shard } : {}),
    async *epoch(e: number): AsyncIterable<TrainBatch> {
      let b = 0;
      for await (const batch of source.epoch(e)) {
        const draw = drawMix(o, shape[1]!, shape[2]!, batchRng(o.seed, e, b++));
        const targets = mixBatch(batch.images, batch.labels, batch.size, shape, o.classes, draw);
        yield { ...batch, targets };
      }
    },
  };
}
