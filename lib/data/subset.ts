// A seeded random subset of a data set (the CLI's --limit-train / --limit-test). Built-in data sets are
// rebuilt from a cut-down recipe, so worker threads still work; others are wrapped.
import type { Dataset, DatasetRecipe } from './dataset.js';
import { packPaths, unpackPaths } from './folder.js';
import { epochOrder } from './rng.js';
import { fromRecipe } from './worker.js';

/** The samples of `ds` at `indices`, in that order. */
export function subsetOf(ds: Dataset, indices: Int32Array): Dataset {
  for (const i of indices) {
    if (!(i >= 0 && i < ds.length)) throw new RangeError(`subset of ${ds.name}: index ${i} is outside [0, ${ds.length})`);
  }
  const r = ds.recipe?.();
  const labels = Int32Array.from(indices, (i) => ds.labels[i]!);
  const name = `${ds.name}[${indices.length}]`;
  if (r?.kind === 'memory') {
    const size = r.shape[0] * r.shape[1] * r.shape[2];
    const pixels = new Uint8Array(new SharedArrayBuffer(indices.length * size));
    indices.forEach((i, k) => pixels.set(r.pixels.subarray(i * size, (i + 1) * size), k * size));
    return fromRecipe({ ...r, name, pixels, labels } satisfies DatasetRecipe);
  }
  if (r?.kind === 'folder') {
    const files = unpackPaths(r.files);
    return fromRecipe({ ...r, name, files: packPaths(Array.from(indices, (i) => files[i]!)), labels } satisfies DatasetRecipe);
  }
  return {
    name, length: indices.length, labels, classes: ds.classes, shape: ds.shape, onBadImage: ds.onBadImage, preprocessing: ds.preprocessing,
    read: (i, out, offset, rng) => ds.read(indices[i]!, out, offset, rng),
  };
}

/** At most n samples of `ds`, drawn without replacement in a seeded order (class folders are sorted, so no prefix). */
export function limitDataset(ds: Dataset, n: number | undefined, seed: number): Dataset {
  if (n === undefined || n >= ds.length) return ds;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`limit: expected a positive integer number of samples, but received ${n}`);
  return subsetOf(ds, epochOrder(ds.length, seed, 0, true).slice(0, n));
}
