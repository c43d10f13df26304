// CIFAR-10 / CIFAR-100 binary version -> MemoryDataset. Each record is its label byte(s) (CIFAR-100: coarse
// then fine) followed by 3072 pixel bytes, already CHW: 1024 red, 1024 green, 1024 blue, rows of 32.
// The format has no header, so a damaged file shows as a length that is not a whole number of records
// or a label byte out of range.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SmallAugment } from './augment.js';
import { DataError, type Normalization } from './dataset.js';
import { MemoryDataset } from './memory.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
/** Per-channel RGB statistics of the training sets on the 0-1 scale, as commonly published. */
export const CIFAR10_NORM: Normalization = { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] };
export const CIFAR100_NORM: Normalization = { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] };
/** The usual CIFAR training augmentation: 4 pixels of padding, random 32x32 crop, random mirror. */
export const CIFAR_AUGMENT: SmallAugment = { pad: 4, flip: true };

const PIXELS = 3 * 32 * 32;

export interface CifarFile {
  file: string;
  /** Number of label bytes before each image: 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine). */
  labelBytes: 1 | 2;
  /** Class count per label byte, e.g. [20, 100] for CIFAR-100. */
  classCounts: number[];
}

/** Parses one file: returns its pixels and, for each record, every label byte. */
export function parseCifar(bytes: Uint8Array, spec: CifarFile): { pixels: Uint8Array; labels: Uint8Array[] } {
  const { file, labelBytes, classCounts } = spec;
  const record = labelBytes + PIXELS;
  if (bytes.length === 0) throw new DataError(`${file}: empty file, expected records of ${record} bytes`, { file, offset: 0 });
  // The archive's own name ends in .tar.gz, but a renamed or half-extracted one is a common mistake.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    throw new DataError(`${file}: is gzip-compressed (magic 0x1f8b at byte offset 0), not CIFAR binary records: extract the archive (tar xzf cifar-*-binary.tar.gz) and point at the .bin files`, { file, offset: 0 });
  }
  const n = Math.floor(bytes.length / record);
  if (n * record !== bytes.length) {
    throw new DataError(
      `${file}: truncated: ${bytes.length} bytes is not a whole number of ${record}-byte records; record ${n} ` +
        `at byte offset ${n * record} has only ${bytes.length - n * record} bytes`,
      { file, offset: n * record },
    );
  }
  const pixels = new Uint8Array(n * PIXELS);
  const labels = classCounts.map(() => new Uint8Array(n));
  for (let i = 0, at = 0; i < n; i++, at += record) {
    for (let k = 0; k < labelBytes; k++) {
      const v = bytes[at + k];
      if (v >= classCounts[k]) {
        const what = labelBytes === 1 ? 'label' : k === 0 ? 'coarse label' : 'fine label';
        throw new DataError(`${file}: ${what} ${v} of record ${i} at byte offset ${at + k} is not below ${classCounts[k]} (a corrupt file, or not CIFAR binary data)`, { file, offset: at + k });
      }
      labels[k][i] = v;
    }
    pixels.set(bytes.subarray(at + labelBytes, at + record), i * PIXELS);
  }
  return { pixels, labels };
}

export interface CifarOptions {
  /** CIFAR-100 only: which label to train on (default 'fine', 100 classes). */
  label?: 'fine' | 'coarse';
  /** Training-set augmentation; default CIFAR_AUGMENT (pad 4, mirror). null turns it off. */
  augment?: SmallAugment | null;
  norm?: Normalization;
}

/** The directory holding the files: dir itself, or the folder the official archive extracts to inside it. */
function locate(dir: string, first: string, sub: string, describe: string): string {
  for (const d of [dir, path.join(dir, sub)]) if (fs.existsSync(path.join(d, first))) return d;
  const where = fs.existsSync(dir) ? `no ${first} in ${dir} or ${path.join(dir, sub)}` : `directory ${dir} does not exist`;
  throw new DataError(`${where}. ${describe}`, { file: dir });
}

async function readAll(files: CifarFile[]): Promise<{ pixels: Uint8Array; labels: Uint8Array[] }> {
  const parts = await Promise.all(
    files.map(async (f) => {
      let bytes: Uint8Array;
      try {
        bytes = await fs.promises.readFile(f.file);
      } catch (e) {
        throw new DataError(`${f.file}: cannot read: ${(e as Error).message}`, { file: f.file, cause: e });
      }
      return parseCifar(bytes, f);
    }),
  );
  const n = parts.reduce((a, p) => a + p.labels[0].length, 0);
  const pixels = new Uint8Array(new SharedArrayBuffer(n * PIXELS));
  const labels = files[0].classCounts.map(() => new Uint8Array(n));
  let at = 0;
  for (const p of parts) {
    pixels.set(p.pixels, at * PIXELS);
    p.labels.forEach((l, k) => labels[k].set(l, at));
    at += p.labels[0].length;
  }
  return { pixels, labels };
}

function classNames(file: string, count: number): string[] {
  try {
    const names = fs.readFileSync(file, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (names.length === count) return names;
  } catch {
    // The names are a convenience; numbers serve when the file is absent.
  }
  return Array.from({ length: count }, (_, i) => String(i));
}

const CIFAR10_FILES = 'CIFAR-10 binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) extracts to cifar-10-batches-bin/ with data_batch_1.bin ... data_batch_5.bin and test_batch.bin.';
const CIFAR100_FILES = 'CIFAR-100 binary version (cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) extracts to cifar-100-binary/ with train.bin and test.bin.';

export async function openCifar10(dir: string, opts: CifarOptions = {}): Promise<{ train: MemoryDataset; test: MemoryDataset }> {
  const d = locate(dir, 'data_batch_1.bin', 'cifar-10-batches-bin', CIFAR10_FILES);
  const spec = (name: string): CifarFile => {
    const file = path.join(d, name);
    if (!fs.existsSync(file)) throw new DataError(`no ${name} in ${d}. ${CIFAR10_FILES}`, { file: d });
    return { file, labelBytes: 1, classCounts: [10] };
  };
  const trainFiles = [1, 2, 3, 4, 5].map((i) => spec(`data_batch_${i}.bin`));
  const testFiles = [spec('test_batch.bin')];
  const classes = classNames(path.join(d, 'batches.meta.txt'), 10);
  const norm = opts.norm ?? CIFAR10_NORM;
  const make = async (files: CifarFile[], split: string, augment: SmallAugment | null) => {
    const { pixels, labels } = await readAll(files);
    return new MemoryDataset({ name: `cifar10/${split}`, classes, shape: [3, 32, 32], pixels, labels: Int32Array.from(labels[0]), norm, augment });
  };
  const [train, test] = await Promise.all([make(trainFiles, 'train', opts.augment === undefined ? CIFAR_AUGMENT : opts.augment), make(testFiles, 'test', null)]);
  return { train, test };
}

export async function openCifar100(dir: string, opts: CifarOptions = {}): Promise<{ train: MemoryDataset; test: MemoryDataset }> {
  const d = locate(dir, 'train.bin', 'cifar-100-binary', CIFAR100_FILES);
  const testFile = path.join(d, 'test.bin');
  if (!fs.existsSync(testFile)) throw new DataError(`no test.bin in ${d}. ${CIFAR100_FILES}`, { file: d });
  const which = opts.label ?? 'fine';
  if (which !== 'fine' && which !== 'coarse') throw new RangeError(`cifar100: expected label to be 'fine' or 'coarse', but received ${JSON.stringify(which)}`);
  const k = which === 'fine' ? 1 : 0;
  const classes = classNames(path.join(d, `${which}_label_names.txt`), which === 'fine' ? 100 : 20);
  const norm = opts.norm ?? CIFAR100_NORM;
  const make = async (file: string, split: string, augment: SmallAugment | null) => {
    const { pixels, labels } = await readAll([{ file, labelBytes: 2, classCounts: [20, 100] }]);
    return new MemoryDataset({ name: `cifar100/${split}`, classes, shape: [3, 32, 32], pixels, labels: Int32Array.from(labels[k]), norm, augment });
  };
  const [train, test] = await Promise.all([
    make(path.join(d, 'train.bin'), 'train', opts.augment === undefined ? CIFAR_AUGMENT : opts.augment),
    make(testFile, 'test', null),
  ]);
  return { train, test };
}
