// Image folders (ImageNet / Places365 layout): every directory under the root that directly holds images
// is a class, named by its path relative to the root ('n01440764', or Places365's 'a/airfield'), classes
// sorted by name. Images are decoded with sharp; the transform is in augment.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  drawJitter, imageTransform, NO_JITTER, pixelsToChw, randomResizedCrop, resizeCentreCrop, type ImageTransform,
} from './augment.js';
import { BadImageError, DataError, type BadImagePolicy, type Dataset, type FolderRecipe, type Preprocessing, type SampleShape } from './dataset.js';
import { hash32, DataRng } from './rng.js';
import { loadSharp } from './sharp.js';

/** Extensions sharp decodes (its prebuilt libvips); compared lower-case. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'];

export interface FolderScan {
  classes: string[];
  /** Paths relative to the root, '/'-separated, sorted within each class. */
  files: string[];
  labels: Int32Array;
}

/** What a directory entry is, for messages about entries that are not regular files. */
function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/**
 * Finds every image under root. An image is a regular file (a symbolic link is followed) with an image
 * extension; an entry with an image extension that is anything else (a named pipe, a device, a dangling
 * link) is an error naming it, as reading it would hang or never end. A class folder (a directory with
 * no sub-directories) without a single image is an error too, as in torchvision's ImageFolder ("Found no
 * valid file for the classes ..."): a class silently missing would shift every label after it. With
 * `classes` (e.g. a validation folder checked against the training classes) every class found must be
 * one of them, and labels index into them.
 */
export async function scanFolder(root: string, classes?: readonly string[]): Promise<FolderScan> {
  if (!fs.existsSync(root)) throw new DataError(`directory ${root} does not exist (an image folder data set has one sub-folder of images per class)`, { file: root });
  const byClass = new Map<string, string[]>();
  const empty: { rel: string; others: number }[] = [];
  // `above`: the real paths of the directories on the way down, to stop a symbolic link back up a cycle.
  // `inClass`: an ancestor holds images, so an empty folder here is a class's stray sub-folder (say an
  // empty 'raw/'), not a class of its own that lost its images.
  const walk = async (rel: string, above: ReadonlySet<string>, inClass: boolean): Promise<void> => {
    const dir = path.join(root, rel);
    let entries: fs.Dirent[];
    let real: string;
    try {
      real = await fs.promises.realpath(dir);
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (e) {
      throw new DataError(`${dir}: cannot list: ${(e as Error).message}`, { file: dir, cause: e });
    }
    if (above.has(real)) throw new DataError(`${dir}: a symbolic link loops back to ${real}, which contains it`, { file: dir });
    const here = new Set(above).add(real);
    const images: string[] = [];
    const subdirs: string[] = [];
    let others = 0;
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = rel ? `${rel}/${e.name}` : e.name;
      const isImageName = IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase());
      // Regular files and directories are known from the listing; anything else needs a stat (which
      // follows symbolic links).
      const st = e.isFile() || e.isDirectory() ? undefined : await fs.promises.stat(path.join(root, p)).catch(() => null);
      if (e.isDirectory() || st?.isDirectory()) subdirs.push(p);
      else if (!isImageName) others++;
      else if (e.isFile() || st?.isFile()) images.push(p);
      else {
        const file = path.join(root, p);
        const what = st === null ? 'a symbolic link that cannot be followed (dangling or unreadable)' : kindOf(st!);
        throw new DataError(`${file}: has an image extension but is ${what}; only regular files are read as images. Remove it from the data set`, { file });
      }
    }
    if (images.length) {
      if (!rel) throw new DataError(`${root}: images directly in the root (${images[0]}, ...); put each class's images in its own sub-folder`, { file: root });
      byClass.set(rel, images.sort());
    } else if (rel && !subdirs.length && !inClass) {
      empty.push({ rel, others });
    }
    await Promise.all(subdirs.map((d) => walk(d, here, inClass || images.length > 0)));
  };
  await walk('', new Set(), false);
  if (empty.length) {
    empty.sort((a, b) => (a.rel < b.rel ? -1 : 1));
    const shown = empty.slice(0, 5).map((c) => `'${c.rel}' (${c.others ? `${c.others} file${c.others > 1 ? 's' : ''}, none an image` : 'empty'})`);
    const more = empty.length > 5 ? ` and ${empty.length - 5} more` : '';
    throw new DataError(
      `${root}: found no valid image for the class${empty.length > 1 ? 'es' : ''} ${shown.join(', ')}${more}. ` +
        `Supported extensions are ${IMAGE_EXTENSIONS.join(' ')}; add images to each class folder or remove it`,
      { file: path.join(root, empty[0].rel) },
    );
  }
  const found = [...byClass.keys()].sort();
  if (!found.length) {
    throw new DataError(`no images (${IMAGE_EXTENSIONS.join(' ')}) under ${root}; expected one sub-folder of images per class`, { file: root });
  }
  const names = classes ? [...classes] : found;
  const index = new Map(names.map((c, i) => [c, i]));
  const files: string[] = [];
  const labels: number[] = [];
  for (const c of found) {
    const label = index.get(c);
    if (label === undefined) throw new DataError(`${path.join(root, c)}: class '${c}' is not among the training classes (${names.length} of them, e.g. '${names[0]}')`, { file: path.join(root, c) });
    for (const f of byClass.get(c)!) {
      files.push(f);
      labels.push(label);
    }
  }
  return { classes: names, files, labels: Int32Array.from(labels) };
}

/** Files larger than this are refused unread by default (FolderOptions.maxImageBytes). */
export const DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024;
/**
 * Images with more pixels (width x height, from the header, before decoding) are refused by default
 * (FolderOptions.maxImagePixels): Pillow's decompression-bomb limit, 2 x 89,478,485 pixels. A small
 * compressed file can otherwise claim, and decode into, gigabytes.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 178_956_970;

/** Limits on one image file, so a hostile or damaged file cannot exhaust memory. */
export interface ImageLimits {
  /** Default DEFAULT_MAX_IMAGE_BYTES (64 MiB). */
  maxImageBytes?: number;
  /** Default DEFAULT_MAX_IMAGE_PIXELS. */
  maxImagePixels?: number;
}

function checkLimit(name: string, v: number | undefined, def: number): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`expected ${name} to be a positive integer, but received ${JSON.stringify(v)}`);
  return v;
}

// O_NONBLOCK: opening a named pipe for reading would otherwise wait for a writer forever. It changes
// nothing for a regular file, and anything else is refused after fstat.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/**
 * Reads an image file whole, refusing anything that is not a regular file or is larger than maxBytes
 * before reading a byte of it. fstat on the open handle, so the file checked is the file read.
 */
export async function readImageFile(file: string, maxBytes: number): Promise<Buffer> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, OPEN_FLAGS);
  } catch (e) {
    throw new BadImageError(`${file}: cannot read: ${(e as Error).message}`, file, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BadImageError(`${file}: is ${kindOf(st)}, not an image file`, file);
    if (st.size === 0) throw new BadImageError(`${file}: is empty (0 bytes)`, file);
    if (st.size > maxBytes) {
      throw new BadImageError(`${file}: is ${st.size} bytes, over the limit of ${maxBytes} bytes for one image (maxImageBytes; crunet's --max-image-bytes)`, file);
    }
    // Exactly the size fstat gave: a file that grows while it is read cannot grow the buffer.
    const bytes = Buffer.allocUnsafe(st.size);
    for (let off = 0; off < st.size; ) {
      const { bytesRead } = await fh.read(bytes, off, st.size - off, off);
      if (bytesRead === 0) throw new BadImageError(`${file}: shrank while being read (${off} of ${st.size} bytes)`, file);
      off += bytesRead;
    }
    return bytes;
  } catch (e) {
    if (e instanceof BadImageError) throw e;
    throw new BadImageError(`${file}: cannot read: ${(e as Error).message}`, file, e);
  } finally {
    await fh.close();
  }
}

export interface FolderOptions extends ImageLimits {
  /** Training transform (random crop, mirror, HSL jitter) when true, evaluation transform when false. */
  train: boolean;
  /** Sizes, ranges and normalisation; defaults are the paper's (augment.ts). */
  transform?: Partial<ImageTransform>;
  /** 'fail' (default): an undecodable image ends the epoch with an error naming it; 'skip': it is replaced in its batch and counted. */
  onBadImage?: BadImagePolicy;
  name?: string;
}

// Paths are kept as one string, each path followed by '\0' (which cannot occur in a file name), plus
// start offsets: a million paths then cost one string, and a worker receives them in one cheap clone.

/** The packed form of a path list that FolderRecipe.files holds. */
export function packPaths(files: readonly string[]): string {
  return files.map((f) => f + '\0').join('');
}

/** The path list back from packPaths' string. */
export function unpackPaths(packed: string): string[] {
  const files = packed.split('\0');
  files.pop();
  return files;
}

function startsOf(packed: string): Int32Array {
  const starts = [0];
  for (let i = packed.indexOf('\0'); i >= 0; i = packed.indexOf('\0', i + 1)) starts.push(i + 1);
  return Int32Array.from(starts);
}

export class FolderDataset implements Dataset {
  readonly name: string;
  readonly root: string;
  readonly length: number;
  readonly labels: Int32Array;
  readonly classes: readonly string[];
  readonly shape: SampleShape;
  readonly onBadImage: BadImagePolicy;
  readonly transform: ImageTransform;
  readonly maxImageBytes: number;
  readonly maxImagePixels: number;
  readonly preprocessing: Preprocessing;
  private readonly joined: string;
  private readonly starts: Int32Array;

  constructor(root: string, scan: FolderScan | { classes: string[]; files: string; labels: Int32Array }, opts: FolderOptions) {
    this.root = root;
    this.classes = [...scan.classes];
    this.labels = scan.labels;
    this.joined = typeof scan.files === 'string' ? scan.files : packPaths(scan.files);
    if (this.joined && !this.joined.endsWith('\0')) throw new TypeError(`${root}: packed file list must end with '\\0' (use packPaths)`);
    this.starts = startsOf(this.joined);
    this.length = this.starts.length - 1;
    if (this.length !== this.labels.length) throw new RangeError(`${root}: ${this.length} files but ${this.labels.length} labels`);
    this.transform = imageTransform(opts.train, opts.transform);
    this.shape = [3, this.transform.size, this.transform.size];
    const t = this.transform;
    // (v - mean) * multiplier, in the (v * scale - mean) / std form every other data set uses.
    this.preprocessing = {
      scale: 1 / 255, mean: t.mean.map((m) => m / 255), std: t.mean.map(() => 1 / (255 * t.multiplier)), layout: 'NCHW', channels: 3,
      size: [t.size, t.size], resize: t.resize, kernel: t.kernel, background: [...t.background],
    };
    this.onBadImage = opts.onBadImage ?? 'fail';
    if (this.onBadImage !== 'skip' && this.onBadImage !== 'fail') {
      throw new RangeError(`expected onBadImage to be 'skip' or 'fail', but received ${JSON.stringify(this.onBadImage)}`);
    }
    this.maxImageBytes = checkLimit('maxImageBytes', opts.maxImageBytes, DEFAULT_MAX_IMAGE_BYTES);
    this.maxImagePixels = checkLimit('maxImagePixels', opts.maxImagePixels, DEFAULT_MAX_IMAGE_PIXELS);
    this.name = opts.name ?? root;
    loadSharp();
  }

  static async open(root: string, opts: FolderOptions & { classes?: readonly string[] }): Promise<FolderDataset> {
    return new FolderDataset(root, await scanFolder(root, opts.classes), opts);
  }

  /** The path of sample i. */
  file(i: number): string {
    return path.join(this.root, this.joined.slice(this.starts[i], this.starts[i + 1] - 1));
  }

  async read(i: number, out: Float32Array, offset: number, rng: DataRng): Promise<void> {
    if (!(i >= 0 && i < this.length)) throw new RangeError(`${this.name}: sample ${i} out of range [0, ${this.length})`);
    const file = this.file(i);
    const sharp = loadSharp();
    const t = this.transform;
    const bytes = await readImageFile(file, this.maxImageBytes);
    let pixels: Buffer;
    try {
      // EXIF orientation is ignored, as torchvision's PIL loader does: the pixels are used as stored.
      // metadata() reads the header only, so the pixel limit is checked before anything is decoded.
      const { width: w, height: h } = await sharp(bytes, { limitInputPixels: false }).metadata();
      if (!w || !h) throw new Error('no image size in the header');
      if (w * h > this.maxImagePixels) {
        throw new Error(`${w}x${h} is ${w * h} pixels, over the limit of ${this.maxImagePixels} (maxImagePixels; a decompression bomb, or raise the limit: crunet's --max-image-pixels)`);
      }
      // Alpha is flattened first, so that resampling never mixes in the colour of transparent pixels.
      let img = sharp(bytes, { limitInputPixels: this.maxImagePixels }).flatten({ background: { r: t.background[0], g: t.background[1], b: t.background[2] } });
      if (t.train) {
        img = img.extract(randomResizedCrop(w, h, t.scale, t.ratio, rng)).resize(t.size, t.size, { fit: 'fill', kernel: t.kernel });
      } else {
        const g = resizeCentreCrop(w, h, t.resize, t.size);
        img = img.resize(g.width, g.height, { fit: 'fill', kernel: t.kernel }).extract(g.box);
      }
      const { data, info } = await img.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 3 || info.width !== t.size || info.height !== t.size || data.length !== 3 * t.size * t.size) {
        throw new Error(`decoded to ${info.width}x${info.height}x${info.channels} (${data.length} bytes), expected ${t.size}x${t.size}x3 of 8 bits`);
      }
      pixels = data;
    } catch (e) {
      throw new BadImageError(`${file}: cannot decode: ${(e as Error).message}`, file, e);
    }
    pixelsToChw(pixels, t.size, t.size, out, offset, t, t.train ? drawJitter(t, rng) : NO_JITTER);
  }

  recipe(): FolderRecipe {
    return {
      kind: 'folder',
      name: this.name,
      root: this.root,
      classes: [...this.classes],
      files: this.joined,
      labels: this.labels,
      transform: this.transform,
      onBadImage: this.onBadImage,
      maxImageBytes: this.maxImageBytes,
      maxImagePixels: this.maxImagePixels,
    };
  }
}

export interface FolderSetOptions extends ImageLimits {
  /** Training-set augmentation (default true); the test set always gets the evaluation transform. */
  augment?: boolean;
  transform?: Partial<ImageTransform>;
  onBadImage?: BadImagePolicy;
  /** Without PATH/val: hold out this fraction of each class (0 < f < 1) as the test set. */
  valSplit?: number;
  /** Seeds which images valSplit holds out. */
  seed?: number;
}

/**
 * Train and test sets from PATH/train and PATH/val (or PATH/validation), or, with valSplit, a split
 * of PATH/train (or of PATH itself when it holds the class folders).
 */
export async function openFolder(dir: string, opts: FolderSetOptions = {}): Promise<{ train: FolderDataset; test: FolderDataset }> {
  const common = { transform: opts.transform, onBadImage: opts.onBadImage, maxImageBytes: opts.maxImageBytes, maxImagePixels: opts.maxImagePixels };
  const trainDir = fs.existsSync(path.join(dir, 'train')) ? path.join(dir, 'train') : undefined;
  const valDir = ['val', 'validation'].map((v) => path.join(dir, v)).find((p) => fs.existsSync(p));
  const augment = opts.augment ?? true;
  if (trainDir && valDir && opts.valSplit === undefined) {
    const train = await FolderDataset.open(trainDir, { ...common, train: augment, name: `${dir}/train` });
    const test = await FolderDataset.open(valDir, { ...common, train: false, classes: train.classes, name: `${dir}/${path.basename(valDir)}` });
    return { train, test };
  }
  const f = opts.valSplit;
  if (f === undefined) {
    const found = fs.existsSync(dir) ? (trainDir ? `${trainDir} but no ${path.join(dir, 'val')}` : `neither ${path.join(dir, 'train')} nor ${path.join(dir, 'val')}`) : `no directory ${dir}`;
    throw new DataError(`folder data set: found ${found}. Expected PATH/train and PATH/val, each with one sub-folder of images per class; or pass valSplit to hold out part of the training images.`, { file: dir });
  }
  if (!(f > 0 && f < 1)) throw new RangeError(`expected valSplit to be a fraction in (0, 1), but received ${f}`);
  const root = trainDir ?? dir;
  const scan = await scanFolder(root);
  // Hold out round(f * n) images of each class, chosen by a seeded shuffle within the class.
  const rng = new DataRng(hash32(0x53504c54, opts.seed ?? 0));
  const keep: number[] = [], hold: number[] = [];
  const byClass: number[][] = scan.classes.map(() => []);
  scan.labels.forEach((c, i) => byClass[c].push(i));
  for (const members of byClass) {
    for (let i = members.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [members[i], members[j]] = [members[j], members[i]];
    }
    const nHold = Math.round(members.length * f);
    hold.push(...members.slice(0, nHold));
    keep.push(...members.slice(nHold));
  }
  const part = (ids: number[]) => {
    ids.sort((a, b) => a - b);
    return { classes: scan.classes, files: ids.map((i) => scan.files[i]), labels: Int32Array.from(ids, (i) => scan.labels[i]) };
  };
  const train = new FolderDataset(root, part(keep), { ...common, train: augment, name: `${root} (train split)` });
  const test = new FolderDataset(root, part(hold), { ...common, train: false, name: `${root} (held-out split)` });
  return { train, test };
}
