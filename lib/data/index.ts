// crunet's data layer: datasets (IDX, CIFAR binary, image folders), transforms, DataLoader.
export { BadImageError, classHistogram, DataError } from './dataset.js';
export type { BadImagePolicy, Dataset, DatasetRecipe, Normalization, Preprocessing, SampleShape } from './dataset.js';
export { MemoryDataset, measureNormalization } from './memory.js';
export type { MemoryDatasetInit } from './memory.js';
export {
  FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_NORM, MNIST_CLASSES, MNIST_NORM, loadIdx, openIdx, parseIdx, readIdx,
} from './idx.js';
export type { IdxArray, IdxOptions, IdxSetOptions } from './idx.js';
export { CIFAR10_CLASSES, CIFAR10_NORM, CIFAR100_NORM, CIFAR_AUGMENT, openCifar10, openCifar100, parseCifar } from './cifar.js';
export type { CifarOptions } from './cifar.js';
export {
  DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, FolderDataset, IMAGE_EXTENSIONS, openFolder, packPaths, readImageFile, scanFolder, unpackPaths,
} from './folder.js';
export type { FolderOptions, FolderScan, FolderSetOptions, ImageLimits } from './folder.js';
export {
  PAPER_EVAL_TRANSFORM, PAPER_TRAIN_TRANSFORM, imageTransform, mirrorRows, randomResizedCrop, resizeCentreCrop,
} from './augment.js';
export type { Box, ImageTransform, ResizeKernel, SmallAugment } from './augment.js';
export { DataLoader } from './loader.js';
export type { Batch, LoaderOptions } from './loader.js';
export type { SkippedImage } from './batch.js';
export { DataRng, epochOrder, sampleRng } from './rng.js';
export { checkShard, shardLength, shardOrder } from './shard.js';
export type { ShardOptions, ShardTail } from './shard.js';
export { holdOut, limitDataset, subsetOf } from './subset.js';
export { applyOp, autoAugment, checkAutoAugment, magnitude as autoAugmentMagnitude } from './autoaugment.js';
export type { AutoAugment } from './autoaugment.js';
export { batchRng, checkMixOptions, cutmixBox, drawMix, MIX_DEFAULTS, mixBatch, mixEnabled, sampleBeta } from './mixup.js';
export type { CutBox, MixDraw, MixOptions } from './mixup.js';
export { DATASET_SPECS, openDataset, parseDatasetSpec } from './spec.js';
export type { DatasetKind, OpenOptions } from './spec.js';
