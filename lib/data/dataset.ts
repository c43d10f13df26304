// The Dataset interface every data set implements, the recipe a worker thread rebuilds one from, and
// DataError (every bad-input message names the file and, where there is one, the byte offset).
import type { ImageTransform, SmallAugment } from './augment.js';
import type { DataRng } from './rng.js';

/** Channels, height, width of one sample as read (after any crop or resize). */
export type SampleShape = readonly [channels: number, height: number, width: number];

/** What to do with an image that cannot be decoded: drop it from its batch (and count it) or throw. */
export type BadImagePolicy = 'skip' | 'fail';

export interface Dataset {
  /** For messages, e.g. 'fashion-mnist/train'. */
  readonly name: string;
  readonly length: number;
  /** The class of every sample, 0 <= label < classes.length. */
  readonly labels: Int32Array;
  readonly classes: readonly string[];
  readonly shape: SampleShape;
  readonly onBadImage: BadImagePolicy;
  /** The normalisation and input geometry (the built-in data sets have it; see Preprocessing). */
  readonly preprocessing?: Preprocessing;
  /**
   * Writes sample i into out[offset, offset + C*H*W) as float32 CHW, normalised; rng drives augmentation
   * (a data set without augmentation ignores it). Synchronous for in-memory sets, a Promise for decoded
   * ones. A sample that cannot be read throws a DataError naming its file.
   */
  read(i: number, out: Float32Array, offset: number, rng: DataRng): void | Promise<void>;
  /**
   * A structured-cloneable description a worker thread rebuilds this data set from (worker.ts). Only
   * the built-in kinds have one; a data set without it is read on the main thread (workers: 0).
   */
  recipe?(): DatasetRecipe;
}

/**
 * How a data set turns stored pixels into the model's input, recorded so that a trained model can be
 * fed new images the same way (checkpoints store it): each 8-bit value v of channel c becomes
 * (v * scale - mean[c]) / std[c], in NCHW order.
 */
export interface Preprocessing {
  scale: number;
  mean: number[];
  std: number[];
  layout: 'NCHW';
  /** 1 (grey) or 3 (RGB, in that order). */
  channels: number;
  /** The input's [height, width]. */
  size: [number, number];
  /**
   * Image folders: evaluation resizes the shorter side to this with `kernel` and takes the centre
   * size crop, after compositing transparency onto `background` (RGB, 0-255).
   */
  resize?: number;
  kernel?: string;
  background?: [number, number, number];
}

/** Per-channel normalisation: out = (pixel / 255 - mean[c]) / std[c]. */
export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

export interface MemoryRecipe {
  kind: 'memory';
  name: string;
  classes: string[];
  shape: [number, number, number];
  /** Backed by a SharedArrayBuffer: workers read the same bytes, nothing is copied. */
  pixels: Uint8Array;
  labels: Int32Array;
  norm: Normalization;
  augment: SmallAugment | null;
}

export interface FolderRecipe {
  kind: 'folder';
  name: string;
  root: string;
  classes: string[];
  /** Paths relative to root, each followed by '\0' (folder.ts packPaths / unpackPaths): one string clones far faster than a million. */
  files: string;
  labels: Int32Array;
  transform: ImageTransform;
  onBadImage: BadImagePolicy;
  maxImageBytes: number;
  maxImagePixels: number;
}

export type DatasetRecipe = MemoryRecipe | FolderRecipe;

/** A data set that cannot be used as given: the message names the file and, where known, the byte offset. */
export class DataError extends Error {
  /** The file at fault (or the directory looked in). */
  readonly file?: string;
  /**
   * Byte offset where the problem was found: in the file, except for format errors inside a gzip file,
   * which count in its decompressed stream (the message says which).
   */
  readonly offset?: number;
  constructor(message: string, where: { file?: string; offset?: number; cause?: unknown } = {}) {
    super(message, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = 'DataError';
    if (where.file !== undefined) this.file = where.file;
    if (where.offset !== undefined) this.offset = where.offset;
  }
}

/** A sample that could not be decoded; under onBadImage 'skip' the loader drops it and counts it. */
export class BadImageError extends DataError {
  constructor(message: string, file: string, cause?: unknown) {
    super(message, { file, cause });
    this.name = 'BadImageError';
  }
}

/** Counts samples per class: the first check of any new data set. */
export function classHistogram(ds: Pick<Dataset, 'labels' | 'classes'>): number[] {
  const h = new Array<number>(ds.classes.length).fill(0);
  for (const l of ds.labels) h[l]++;
  return h;
}
