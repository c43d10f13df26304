// Assembling one batch: the same function runs on the main thread (workers: 0) and in worker threads,
// so a batch's contents never depend on where it was built.
import { BadImageError, DataError, type Dataset } from './dataset.js';
import { sampleRng } from './rng.js';

export interface SkippedImage {
  /** Sample index in the data set. */
  index: number;
  file: string;
  message: string;
}

export interface FillResult {
  skipped: SkippedImage[];
}

/** Decodes in flight per batch: enough to keep libuv's pool (where sharp decodes) busy, few enough to bound memory. */
const DECODES_IN_FLIGHT = 8;

/**
 * Reads samples `indices` into images (NCHW) and labels, each sample's augmentation drawn from
 * sampleRng(seed, epoch, index). Returns synchronously for in-memory data sets (no per-sample promise
 * cost), a Promise for decoded ones. Under onBadImage 'skip', an undecodable sample's place is filled
 * with a copy of another sample of the same batch (so the batch keeps its size) and reported.
 */
export function fillBatch(
  ds: Dataset, indices: Int32Array, epoch: number, seed: number, images: Float32Array, labels: Int32Array,
): FillResult | Promise<FillResult> {
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  for (let j = 0; j < indices.length; j++) labels[j] = ds.labels[indices[j]];
  for (let j = 0; j < indices.length; j++) {
    const r = ds.read(indices[j], images, j * per, sampleRng(seed, epoch, indices[j]));
    if (r) return fillAsync(ds, indices, epoch, seed, images, labels, per, j, r);
  }
  return { skipped: [] };
}

async function fillAsync(
  ds: Dataset, indices: Int32Array, epoch: number, seed: number, images: Float32Array, labels: Int32Array,
  per: number, first: number, firstRead: Promise<void>,
): Promise<FillResult> {
  const bad: { pos: number; error: BadImageError }[] = [];
  let failure: unknown;
  let next = first + 1;
  const settle = async (pos: number, read: Promise<void>) => {
    try {
      await read;
    } catch (e) {
      if (e instanceof BadImageError && ds.onBadImage === 'skip') bad.push({ pos, error: e });
      else failure ??= e;
    }
  };
  const lane = async (pos: number, read: Promise<void>) => {
    await settle(pos, read);
    // After a failure, start nothing new, but let reads in flight finish: they write into the batch
    // buffer, which must not go back to the pool while anything can still write to it.
    while (failure === undefined && next < indices.length) {
      const j = next++;
      await settle(j, Promise.resolve().then(() => ds.read(indices[j], images, j * per, sampleRng(seed, epoch, indices[j]))));
    }
  };
  const lanes = [lane(first, firstRead)];
  for (let k = 1; k < DECODES_IN_FLIGHT && next < indices.length; k++) {
    const j = next++;
    lanes.push(lane(j, Promise.resolve().then(() => ds.read(indices[j], images, j * per, sampleRng(seed, epoch, indices[j])))));
  }
  await Promise.all(lanes);
  if (failure !== undefined) throw failure;
  if (!bad.length) return { skipped: [] };
  bad.sort((a, b) => a.pos - b.pos);
  const badPos = new Set(bad.map((b) => b.pos));
  const good: number[] = [];
  for (let j = 0; j < indices.length; j++) if (!badPos.has(j)) good.push(j);
  if (!good.length) {
    throw new DataError(`all ${indices.length} images of a batch failed to decode, e.g. ${bad[0].error.message}`, { file: bad[0].error.file });
  }
  bad.forEach(({ pos }, k) => {
    const src = good[k % good.length];
    images.copyWithin(pos * per, src * per, (src + 1) * per);
    labels[pos] = labels[src];
  });
  return { skipped: bad.map(({ pos, error }) => ({ index: indices[pos], file: error.file ?? '', message: error.message })) };
}
