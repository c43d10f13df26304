// openDataset: the CLI's dataset spec ('fashion-mnist', 'cifar10:PATH', 'folder:PATH', ...) -> {train, test}.
import type { ImageTransform } from './augment.js';
import { openCifar10, openCifar100 } from './cifar.js';
import type { SmallAugment } from './augment.js';
import type { BadImagePolicy, Dataset, Normalization } from './dataset.js';
import { openFolder } from './folder.js';
import { FASHION_MNIST_DIR, openIdx } from './idx.js';

export type DatasetKind = 'fashion-mnist' | 'mnist' | 'idx' | 'cifar10' | 'cifar100' | 'folder';

const KINDS: Record<string, DatasetKind> = {
  'fashion-mnist': 'fashion-mnist',
  fashionmnist: 'fashion-mnist',
  mnist: 'mnist',
  idx: 'idx',
  cifar10: 'cifar10',
  'cifar-10': 'cifar10',
  cifar100: 'cifar100',
  'cifar-100': 'cifar100',
  folder: 'folder',
  imagenet: 'folder',
  places365: 'folder',
};

export const DATASET_SPECS =
  "'fashion-mnist' (Debian's dataset-fashion-mnist), 'fashion-mnist:PATH', 'mnist:PATH', 'idx:PATH', " +
  "'cifar10:PATH', 'cifar100:PATH', 'folder:PATH' (also 'imagenet:PATH', 'places365:PATH')";

export interface OpenOptions {
  /**
   * Training augmentation. IDX: off by default; true means pad 2 + random crop, plus a mirror for
   * Fashion-MNIST (never for digits). CIFAR: pad 4 + crop + mirror by default. An object sets pad, flip and
   * erase (random erasing's probability; off unless given).
   * Folders: the paper's augmentation by default; false gives the training set the evaluation transform.
   */
  augment?: boolean | Partial<SmallAugment>;
  /** Image folders: sizes, ranges, normalisation (augment.ts; defaults are the paper's). */
  transform?: Partial<ImageTransform>;
  /** Image folders: what an undecodable image does (default 'fail'). */
  onBadImage?: BadImagePolicy;
  /** Image folders: the largest file read as an image (default 64 MiB; folder.ts). */
  maxImageBytes?: number;
  /** Image folders: the most pixels (width x height) an image may have (default Pillow's bomb limit; folder.ts). */
  maxImagePixels?: number;
  /** Image folders without PATH/val: hold out this fraction of each class as the test set. */
  valSplit?: number;
  /** Seeds valSplit's choice. */
  seed?: number;
  /** CIFAR-100: 'fine' (100 classes, default) or 'coarse' (20). */
  label?: 'fine' | 'coarse';
  /** IDX / CIFAR: replaces the published (or, for 'idx:', measured) statistics. */
  norm?: Normalization;
}

export function parseDatasetSpec(spec: string): { kind: DatasetKind; path?: string } {
  if (typeof spec !== 'string' || !spec) throw new TypeError(`dataset: expected a spec string, one of ${DATASET_SPECS}, but received ${JSON.stringify(spec)}`);
  const colon = spec.indexOf(':');
  const name = (colon < 0 ? spec : spec.slice(0, colon)).toLowerCase();
  const p = colon < 0 ? undefined : spec.slice(colon + 1);
  const kind = KINDS[name];
  if (!kind) throw new RangeError(`dataset: unknown kind '${name}' in ${JSON.stringify(spec)}; expected ${DATASET_SPECS}`);
  if (p === '') throw new RangeError(`dataset: empty path in ${JSON.stringify(spec)}`);
  if (p === undefined && kind !== 'fashion-mnist') throw new RangeError(`dataset: '${name}' needs a directory: '${name}:PATH'`);
  return { kind, path: p };
}

function smallAugment(a: OpenOptions['augment'], byDefault: SmallAugment | null, onTrue: SmallAugment): SmallAugment | null {
  if (a === undefined) return byDefault;
  if (a === false) return null;
  if (a === true) return onTrue;
  return { pad: a.pad ?? onTrue.pad, flip: a.flip ?? onTrue.flip, ...(a.erase !== undefined ? { erase: a.erase } : {}) };
}

/** Opens the train and test splits a spec names. Missing or damaged files throw a DataError saying which and how to get them. */
export async function openDataset(spec: string, opts: OpenOptions = {}): Promise<{ train: Dataset; test: Dataset }> {
  const { kind, path: p } = parseDatasetSpec(spec);
  switch (kind) {
    case 'fashion-mnist':
    case 'mnist':
    case 'idx': {
      const onTrue = { pad: 2, flip: kind === 'fashion-mnist' };
      return openIdx(p ?? FASHION_MNIST_DIR, { flavour: kind, augment: smallAugment(opts.augment, null, onTrue), norm: opts.norm });
    }
    case 'cifar10':
    case 'cifar100': {
      const open = kind === 'cifar10' ? openCifar10 : openCifar100;
      const def = { pad: 4, flip: true };
      return open(p!, { augment: smallAugment(opts.augment, def, def), norm: opts.norm, label: opts.label });
    }
    case 'folder': {
      if (typeof opts.augment === 'object') throw new TypeError("dataset: for image folders, augment is a boolean; set sizes and ranges with 'transform'");
      return openFolder(p!, { augment: opts.augment, transform: opts.transform, onBadImage: opts.onBadImage, valSplit: opts.valSplit, seed: opts.seed,
        maxImageBytes: opts.maxImageBytes, maxImagePixels: opts.maxImagePixels,
      });
    }
  }
}
