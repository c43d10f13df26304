// IDX files (MNIST, Fashion-MNIST; gzipped or not) -> MemoryDataset. The format: bytes 0-1 zero, byte 2
// the element type (0x08: unsigned byte, the only one these sets use), byte 3 the number of dimensions,
// then each dimension as a big-endian uint32, then the data in row-major order.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { SmallAugment } from './augment.js';
import { DataError, type Normalization } from './dataset.js';
import { MemoryDataset, measureNormalization } from './memory.js';

const gunzip = promisify(zlib.gunzip);

/** Where Debian's dataset-fashion-mnist package installs the four files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
/** Training-set statistics on the 0-1 scale, as published with each set (and used by torchvision examples). */
export const FASHION_MNIST_NORM: Normalization = { mean: [0.286], std: [0.353] };
export const MNIST_NORM: Normalization = { mean: [0.1307], std: [0.3081] };

export interface IdxArray {
  file: string;
  dims: number[];
  /** The elements (after the header), a view into the file's bytes. */
  data: Uint8Array;
  /** Byte offsets in messages count in the decompressed stream. */
  gzipped: boolean;
}

/**
 * Parses one IDX file's bytes, checking the magic, the number of dimensions and the length.
 * gzipped: bytes is the decompressed stream of file (messages say so next to byte offsets).
 */
export function parseIdx(bytes: Uint8Array, file: string, ndims: number, gzipped = false): IdxArray {
  const where = gzipped ? ' of the decompressed data' : '';
  const at = (offset: number) => `at byte offset ${offset}${where}`;
  const fail = (msg: string, offset: number): never => {
    throw new DataError(`${file}: ${msg}`, { file, offset });
  };
  if (bytes.length < 4) fail(`truncated IDX header: the file has ${bytes.length} bytes, the magic number needs 4 ${at(0)}`, bytes.length);
  const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  const expected = 0x800 + ndims;
  const hex = (v: number) => '0x' + v.toString(16).padStart(8, '0');
  if (bytes[0] !== 0 || bytes[1] !== 0) fail(`not an IDX file: magic number ${hex(magic)} ${at(0)}, expected ${hex(expected)}`, 0);
  if (bytes[2] !== 0x08) {
    fail(`unsupported IDX element type 0x${bytes[2].toString(16).padStart(2, '0')} ${at(2)} (magic ${hex(magic)}): only unsigned bytes (0x08) are supported`, 2);
  }
  if (bytes[3] !== ndims) {
    fail(`wrong number of dimensions ${bytes[3]} ${at(3)} (magic ${hex(magic)}), expected ${ndims} (magic ${hex(expected)}) for ${ndims === 1 ? 'labels' : 'images'}`, 3);
  }
  const header = 4 + 4 * ndims;
  if (bytes.length < header) fail(`truncated IDX header: ${ndims} dimensions need ${header} bytes, the file ends ${at(bytes.length)}`, bytes.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) {
    const v = view.getUint32(4 + 4 * d);
    if (v === 0 && d > 0) fail(`dimension ${d} is 0 ${at(4 + 4 * d)}`, 4 + 4 * d);
    dims.push(v);
  }
  const size = dims.reduce((a, b) => a * b, 1);
  const end = header + size;
  // Past 2^53 the product is not even exact; no file is that large, so the header itself is damaged.
  if (!Number.isSafeInteger(end)) {
    fail(`dimensions [${dims.join(', ')}] ${at(4)} describe about ${size.toPrecision(3)} bytes of data, more than any file holds: the header is damaged or this is not an IDX file (the file has ${bytes.length} bytes)`, 4);
  }
  if (bytes.length < end) {
    const per = size / dims[0];
    fail(
      `truncated data: dimensions [${dims.join(', ')}] need ${end} bytes, the file ends ${at(bytes.length)} ` +
        `(item ${Math.floor((bytes.length - header) / per)} of ${dims[0]} is incomplete)`,
      bytes.length,
    );
  }
  if (bytes.length > end) fail(`${bytes.length - end} unexpected bytes after the data, from ${at(end).slice(3)}`, end);
  return { file, dims, data: bytes.subarray(header, end), gzipped };
}

/** Reads and parses an IDX file, gunzipping it when it starts with the gzip magic (whatever its name). */
export async function readIdx(file: string, ndims: number): Promise<IdxArray> {
  let raw: Uint8Array;
  try {
    raw = await fs.promises.readFile(file);
  } catch (e) {
    throw new DataError(`${file}: cannot read: ${(e as Error).message}`, { file, cause: e });
  }
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return parseIdx(raw, file, ndims);
  let bytes: Uint8Array;
  try {
    bytes = await gunzip(raw);
  } catch (e) {
    const offset = firstBadGzipByte(raw);
    const what = offset === raw.length
      ? `the stream is truncated: the ${raw.length}-byte file ends before the gzip stream does ` +
        `(it decompresses to ${zlib.gunzipSync(raw, SYNC_FLUSH).length} bytes)`
      : offset >= raw.length - 8 // the trailer: CRC-32 and length of the data
        ? `the checksum at byte offset ${raw.length - 8} of the ${raw.length}-byte file does not match the data: damaged before it`
        : `damaged compressed data at byte offset ${offset} of the ${raw.length}-byte file`;
    throw new DataError(`${file}: gzip error: ${(e as Error).message}: ${what}`, { file, offset, cause: e });
  }
  return parseIdx(bytes, file, ndims, true);
}

/** Inflating with a sync flush at the end accepts a stream that merely stops early (a truncated file). */
const SYNC_FLUSH = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/**
 * Where zlib first rejects a gzip file: the length of its longest prefix that inflates without an error
 * (raw.length when only the end is missing). Prefixes past a damaged byte all fail, so a binary search
 * finds it; only run on files that already failed, so the ~25 inflations cost nothing in the good case.
 */
function firstBadGzipByte(raw: Uint8Array): number {
  const inflates = (n: number) => {
    try {
      zlib.gunzipSync(raw.subarray(0, n), SYNC_FLUSH);
      return true;
    } catch {
      return false;
    }
  };
  if (inflates(raw.length)) return raw.length;
  let ok = 0, bad = raw.length; // the prefix of length ok inflates, that of length bad does not
  while (bad - ok > 1) {
    const mid = (ok + bad) >>> 1;
    if (inflates(mid)) ok = mid;
    else bad = mid;
  }
  return ok;
}

export interface IdxOptions {
  /** For messages and the data set's name. */
  name?: string;
  /** Class names; their count bounds the labels. Default: '0', '1', ... up to the largest label. */
  classes?: readonly string[];
  /** Default: measured from the images. */
  norm?: Normalization;
  augment?: SmallAugment | null;
}

/** One split from an images file and a labels file, checked against each other. */
export async function loadIdx(imagesFile: string, labelsFile: string, opts: IdxOptions = {}): Promise<MemoryDataset> {
  const [images, labels] = await Promise.all([readIdx(imagesFile, 3), readIdx(labelsFile, 1)]);
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) {
    throw new DataError(`${labelsFile}: ${labels.dims[0]} labels (count at byte offset 4) but ${imagesFile} has ${n} images`, { file: labelsFile, offset: 4 });
  }
  const lab = new Int32Array(new SharedArrayBuffer(n * 4));
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = labels.data[i];
    lab[i] = v;
    if (v > max) max = v;
  }
  const classes = opts.classes ?? Array.from({ length: max + 1 }, (_, i) => String(i));
  if (max >= classes.length) {
    const i = lab.findIndex((v) => v >= classes.length);
    throw new DataError(`${labelsFile}: label ${lab[i]} of item ${i} at byte offset ${8 + i}${labels.gzipped ? ' of the decompressed data' : ''} is not below the number of classes (${classes.length})`, { file: labelsFile, offset: 8 + i });
  }
  return new MemoryDataset({
    name: opts.name ?? path.basename(imagesFile).replace(/[-.]images.*$/, ''),
    classes,
    shape: [1, h, w],
    pixels: images.data,
    labels: lab,
    norm: opts.norm ?? measureNormalization(images.data, 1, h * w),
    augment: opts.augment ?? null,
  });
}

/** The two spellings in circulation (yann.lecun.com's dashes, some mirrors' dots), each raw or gzipped. */
function candidates(split: 'train' | 't10k', kind: 'images' | 'labels'): string[] {
  const base = kind === 'images' ? 'idx3-ubyte' : 'idx1-ubyte';
  const names = [`${split}-${kind}-${base}`, `${split}-${kind}.${base}`];
  return names.flatMap((n) => [n, n + '.gz']);
}

export const IDX_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

/** The path of one of the four files in dir, or a DataError saying what was looked for and how to get it. */
export function findIdxFile(dir: string, split: 'train' | 't10k', kind: 'images' | 'labels', howToGet: string): string {
  for (const name of candidates(split, kind)) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  const where = fs.existsSync(dir) ? `no ${candidates(split, kind)[0]}[.gz] in ${dir}` : `directory ${dir} does not exist`;
  throw new DataError(
    `${where}. An IDX data set directory holds ${IDX_FILES.join(', ')} (each raw or .gz). ${howToGet}`,
    { file: dir },
  );
}

export interface IdxSetOptions {
  flavour?: 'fashion-mnist' | 'mnist' | 'idx';
  /** Training-set augmentation; off unless given. */
  augment?: SmallAugment | null;
  /** Overrides the published (or measured) statistics. */
  norm?: Normalization;
}

/** Train and test splits of the IDX set in dir. For 'idx', normalisation is measured on the training images. */
export async function openIdx(dir: string, opts: IdxSetOptions = {}): Promise<{ train: MemoryDataset; test: MemoryDataset }> {
  const flavour = opts.flavour ?? 'idx';
  const howToGet =
    flavour === 'fashion-mnist'
      ? dir === FASHION_MNIST_DIR
        ? 'Install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (Debian), or pass fashion-mnist:PATH.'
        : 'Debian installs Fashion-MNIST in ' + FASHION_MNIST_DIR + ' (`apt-get install dataset-fashion-mnist`).'
      : 'Download the four files (e.g. MNIST from yann.lecun.com or a mirror) into that directory.';
  const files = {
    trainImages: findIdxFile(dir, 'train', 'images', howToGet),
    trainLabels: findIdxFile(dir, 'train', 'labels', howToGet),
    testImages: findIdxFile(dir, 't10k', 'images', howToGet),
    testLabels: findIdxFile(dir, 't10k', 'labels', howToGet),
  };
  const classes = flavour === 'fashion-mnist' ? FASHION_MNIST_CLASSES : flavour === 'mnist' ? MNIST_CLASSES : undefined;
  const train = await loadIdx(files.trainImages, files.trainLabels, {
    name: `${flavour}/train`,
    classes,
    norm: opts.norm ?? (flavour === 'fashion-mnist' ? FASHION_MNIST_NORM : flavour === 'mnist' ? MNIST_NORM : undefined),
    augment: opts.augment ?? null,
  });
  const test = await loadIdx(files.testImages, files.testLabels, { name: `${flavour}/test`, classes: classes ?? train.classes, norm: train.norm });
  if (test.shape[1] !== train.shape[1] || test.shape[2] !== train.shape[2]) {
    throw new DataError(`${files.testImages}: images are ${test.shape[1]}x${test.shape[2]} but ${files.trainImages} has ${train.shape[1]}x${train.shape[2]}`, { file: files.testImages, offset: 8 });
  }
  return { train, test };
}
