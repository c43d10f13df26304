// MemoryDataset: a whole data set decoded once into bytes (IDX and CIFAR end up here). The bytes live in
// a SharedArrayBuffer so worker threads read them without a copy.
import { copySmall, normalizationTables, type SmallAugment } from './augment.js';
import { checkAutoAugment } from './autoaugment.js';
import type { Dataset, MemoryRecipe, Normalization, Preprocessing, SampleShape } from './dataset.js';
import type { DataRng } from './rng.js';

export interface MemoryDatasetInit {
  name: string;
  classes: readonly string[];
  shape: SampleShape;
  /** length * C*H*W bytes, each sample CHW. Copied into a SharedArrayBuffer unless already in one. */
  pixels: Uint8Array;
  labels: Int32Array;
  norm: Normalization;
  augment?: SmallAugment | null;
}

function sharedBytes(a: Uint8Array): Uint8Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = new Uint8Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

function sharedInts(a: Int32Array): Int32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = new Int32Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

export class MemoryDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly labels: Int32Array;
  readonly classes: readonly string[];
  readonly shape: SampleShape;
  readonly onBadImage = 'fail' as const;
  readonly pixels: Uint8Array;
  readonly norm: Normalization;
  readonly augment: SmallAugment | null;
  readonly preprocessing: Preprocessing;
  private readonly luts: Float32Array[];
  private readonly sampleBytes: number;

  constructor(init: MemoryDatasetInit) {
    const [c, h, w] = init.shape;
    this.sampleBytes = c * h * w;
    if (init.labels.length * this.sampleBytes !== init.pixels.length) {
      throw new RangeError(`${init.name}: expected ${init.labels.length * this.sampleBytes} pixel bytes for ${init.labels.length} labels, but received ${init.pixels.length}`);
    }
    if (init.norm.mean.length !== c || init.norm.std.length !== c) {
      throw new RangeError(`${init.name}: expected ${c} means and stds for normalisation, but received ${init.norm.mean.length} and ${init.norm.std.length}`);
    }
    if (init.augment && (!Number.isInteger(init.augment.pad) || init.augment.pad < 0 || init.augment.pad >= Math.min(h, w))) {
      throw new RangeError(`${init.name}: expected augment.pad to be an integer in [0, ${Math.min(h, w)}), but received ${init.augment.pad}`);
    }
    const erase = init.augment?.erase;
    if (erase !== undefined && !(erase >= 0 && erase <= 1)) {
      throw new RangeError(`${init.name}: augment.erase is a probability in [0, 1], but received ${erase}`);
    }
    this.name = init.name;
    this.classes = [...init.classes];
    this.shape = [c, h, w];
    this.pixels = sharedBytes(init.pixels);
    this.labels = sharedInts(init.labels);
    this.length = this.labels.length;
    this.norm = { mean: [...init.norm.mean], std: [...init.norm.std] };
    const a = init.augment;
    if (a?.auto) checkAutoAugment(a.auto, `${init.name}: augment.auto`);
    this.augment = a ? { pad: a.pad, flip: !!a.flip, ...(a.erase ? { erase: a.erase } : {}), ...(a.auto ? { auto: { ...a.auto } } : {}) } : null;
    this.luts = normalizationTables(this.norm.mean, this.norm.std);
    this.preprocessing = { scale: 1 / 255, mean: [...this.norm.mean], std: [...this.norm.std], layout: 'NCHW', channels: c, size: [h, w] };
  }

  /** The same samples (no copy) with other augmentation, e.g. a training view of a test set. */
  withAugment(augment: SmallAugment | null): MemoryDataset {
    const { name, classes, shape, pixels, labels, norm } = this;
    return new MemoryDataset({ name, classes, shape, pixels, labels, norm, augment });
  }

  read(i: number, out: Float32Array, offset: number, rng: DataRng): void {
    if (!(i >= 0 && i < this.length)) throw new RangeError(`${this.name}: sample ${i} out of range [0, ${this.length})`);
    copySmall(this.pixels, i * this.sampleBytes, this.shape[0], this.shape[1], this.shape[2], this.luts, out, offset, this.augment, rng);
  }

  recipe(): MemoryRecipe {
    return {
      kind: 'memory',
      name: this.name,
      classes: [...this.classes],
      shape: [...this.shape],
      pixels: this.pixels,
      labels: this.labels,
      norm: { mean: [...this.norm.mean], std: [...this.norm.std] },
      augment: this.augment,
    };
  }
}

/** Per-channel mean and std of the bytes (0-1 scale), for a data set without published statistics. */
export function measureNormalization(pixels: Uint8Array, channels: number, plane: number): Normalization {
  const hist = Array.from({ length: channels }, () => new Float64Array(256));
  const sample = channels * plane;
  for (let s = 0; s < pixels.length; s += sample) {
    for (let c = 0; c < channels; c++) {
      const hc = hist[c];
      for (let i = s + c * plane, end = i + plane; i < end; i++) hc[pixels[i]]++;
    }
  }
  const mean: number[] = [], std: number[] = [];
  for (const hc of hist) {
    let n = 0, sum = 0, sq = 0;
    for (let v = 0; v < 256; v++) {
      n += hc[v];
      sum += hc[v] * (v / 255);
      sq += hc[v] * (v / 255) ** 2;
    }
    const m = n ? sum / n : 0;
    mean.push(m);
    // A constant image set would divide by zero; 1 leaves it merely centred.
    std.push(Math.sqrt(Math.max(0, n ? sq / n - m * m : 0)) || 1);
  }
  return { mean, std };
}
