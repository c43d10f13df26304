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

/** The same samples without training augmentation: in-memory sets unaugmented, folders with the evaluation transform. */
function unaugmented(ds: Dataset): Dataset {
  const r = ds.recipe?.();
  if (r?.kind === 'memory') return fromRecipe({ ...r, augment: null });
  if (r?.kind === 'folder') return fromRecipe({ ...r, transform: { ...r.transform, train: false } });
  throw new TypeError(`validation split of ${ds.name}: expected a built-in data set (one with a recipe), whose augmentation can be turned off`);
}

/**
 * A seeded held-out part of a training set (the CLI's --validation): round(fraction x length) samples,
 * read without augmentation, and the rest for training; both keep the data set's order. Model selection
 * and early stopping use it, never the test set.
 */
export function holdOut(ds: Dataset, fraction: number, seed: number): { train: Dataset; validation: Dataset } {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`validation split: expected a fraction in (0, 1), but received ${fraction}`);
  const n = Math.round(fraction * ds.length);
  if (n < 1 || n >= ds.length) throw new RangeError(`validation split: a fraction ${fraction} of ${ds.length} samples leaves ${n} for validation and ${ds.length - n} for training; each needs at least 1`);
  // Its own stream (epoch VALIDATION of the seed's shuffles), apart from --limit-train's (epoch 0).
  const order = epochOrder(ds.length, seed, VALIDATION, true);
  const sorted = (a: Int32Array) => a.slice().sort();
  return { train: subsetOf(ds, sorted(order.subarray(n))), validation: unaugmented(subsetOf(ds, sorted(order.subarray(0, n)))) };
}

const VALIDATION = 0x56414c;
