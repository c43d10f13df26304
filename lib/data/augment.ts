// Transforms: the small-image crop/mirror for in-memory sets (done while normalising, so a sample is
// touched once), and the ImageNet-style transforms of the paper (docs/MODELS.md section 5) for decoded images:
// the geometry is computed here and run by sharp, the pixel work (mirror, HSL jitter, normalisation)
// is one pass in pixelsToChw.
import { autoAugment, type AutoAugment } from './autoaugment.js';
import type { DataRng } from './rng.js';

/**
 * Augmentation for small in-memory images: random crop after zero padding, then a random mirror, then
 * (optionally) RandAugment or TrivialAugment, then (optionally) random erasing.
 */
export interface SmallAugment {
  /** Pixels of zero padding on each side before a random crop back to the original size; 0: no crop. */
  pad: number;
  /** Mirror left-right with probability 1/2. */
  flip: boolean;
  /**
   * Random erasing (Zhong et al. 2017) with this probability (default 0: off): a rectangle of 2 %-40 % of
   * the area, aspect 0.3-3.3, filled with random pixel values.
   */
  erase?: number;
  /** RandAugment (n, m) or TrivialAugment after crop and mirror (lib/data/autoaugment.ts); default none. */
  auto?: AutoAugment;
}

/** out = lut[c][byte]: normalisation costs one table look-up per value. */
export function normalizationTables(mean: readonly number[], std: readonly number[]): Float32Array[] {
  return mean.map((m, c) => {
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = (v / 255 - m) / std[c];
    return t;
  });
}

/**
 * Copies one CHW uint8 sample into out as normalised float32, applying torchvision's RandomCrop(padding)
 * then RandomHorizontalFlip, then RandAugment / TrivialAugment, then random erasing, when aug is given.
 * Padding is black (byte 0), as in torchvision. The generator is drawn from in that order, so turning
 * erasing or an auto-augment policy on leaves crops and mirrors as they were.
 */
export function copySmall(
  src: Uint8Array, srcOffset: number, c: number, h: number, w: number,
  luts: Float32Array[], out: Float32Array, offset: number, aug: SmallAugment | null, rng: DataRng,
): void {
  if (aug?.auto) {
    // The policy works on byte values: crop and mirror into a scratch of bytes (as float32), augment, normalise.
    const n = c * h * w;
    if (autoScratch.length < 2 * n) autoScratch = new Float32Array(2 * n);
    const bytes = autoScratch.subarray(0, n);
    cropAndMirror(src, srcOffset, c, h, w, new Array<Float32Array>(c).fill(IDENTITY_LUT), bytes, 0, aug, rng);
    autoAugment(aug.auto, bytes, 0, c, h, w, rng, autoScratch.subarray(n, 2 * n));
    for (let ch = 0, i = 0; ch < c; ch++) {
      const lut = luts[ch];
      for (const end = i + h * w; i < end; i++) out[offset + i] = lut[bytes[i]];
    }
  } else if (!aug || (aug.pad === 0 && !aug.flip)) {
    // Planes are contiguous in both, so this is the whole copy.
    for (let ch = 0, o = offset, s = srcOffset; ch < c; ch++) {
      const lut = luts[ch];
      for (const end = o + h * w; o < end; ) out[o++] = lut[src[s++]];
    }
  } else {
    cropAndMirror(src, srcOffset, c, h, w, luts, out, offset, aug, rng);
  }
  if (aug?.erase && rng.next() < aug.erase) randomErase(c, h, w, luts, out, offset, rng);
}

/** Byte value -> itself, for cropping into byte values. */
const IDENTITY_LUT = Float32Array.from({ length: 256 }, (_, v) => v);
let autoScratch = new Float32Array(0);

function cropAndMirror(
  src: Uint8Array, srcOffset: number, c: number, h: number, w: number,
  luts: Float32Array[], out: Float32Array, offset: number, aug: SmallAugment, rng: DataRng,
): void {
  const p = aug.pad;
  const dy = p > 0 ? rng.int(2 * p + 1) - p : 0;
  const dx = p > 0 ? rng.int(2 * p + 1) - p : 0;
  const flip = aug.flip && rng.next() < 0.5;
  for (let ch = 0; ch < c; ch++) {
    const lut = luts[ch], black = lut[0], plane = srcOffset + ch * h * w;
    let o = offset + ch * h * w;
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      if (sy < 0 || sy >= h) {
        for (let x = 0; x < w; x++) out[o + x] = black;
        o += w;
        continue;
      }
      const row = plane + sy * w;
      // Output columns [x0, x1) read inside the image; the rest is padding. Bounds hoisted out of the loop.
      const x0 = flip ? Math.max(0, dx) : Math.max(0, -dx);
      const x1 = flip ? Math.min(w, w + dx) : Math.min(w, w - dx);
      for (let x = 0; x < x0; x++) out[o + x] = black;
      if (flip) for (let x = x0, s = row + w - 1 - x0 + dx; x < x1; x++, s--) out[o + x] = lut[src[s]];
      else for (let x = x0, s = row + x0 + dx; x < x1; x++, s++) out[o + x] = lut[src[s]];
      for (let x = x1; x < w; x++) out[o + x] = black;
      o += w;
    }
  }
}

/** A copy of NCHW images with every row of `width` values reversed: each image's mirror image. */
export function mirrorRows(images: Float32Array, width: number): Float32Array {
  const out = new Float32Array(images.length);
  for (let r = 0; r < images.length; r += width) {
    for (let x = 0; x < width; x++) out[r + x] = images[r + width - 1 - x]!;
  }
  return out;
}

/** Random erasing's ranges (Zhong et al. 2017, section 3.1; torchvision's RandomErasing defaults). */
export const ERASE_AREA = [0.02, 0.4] as const;
export const ERASE_ASPECT = [0.3, 1 / 0.3] as const;

/**
 * Fills a random rectangle of the (already normalised) sample with random pixel values, each channel of
 * each pixel an independent byte in [0, 255] put through the channel's normalisation. Like torchvision,
 * gives up after 10 draws that do not fit (the sample is then left as it was).
 */
function randomErase(c: number, h: number, w: number, luts: Float32Array[], out: Float32Array, offset: number, rng: DataRng): void {
  const logLo = Math.log(ERASE_ASPECT[0]), logHi = Math.log(ERASE_ASPECT[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = rng.uniform(ERASE_AREA[0], ERASE_AREA[1]) * h * w;
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const eh = Math.round(Math.sqrt(area * aspect)), ew = Math.round(Math.sqrt(area / aspect));
    if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
    const y0 = rng.int(h - eh + 1), x0 = rng.int(w - ew + 1);
    for (let ch = 0; ch < c; ch++) {
      const lut = luts[ch];
      for (let y = y0; y < y0 + eh; y++) {
        const row = offset + ch * h * w + y * w;
        for (let x = x0; x < x0 + ew; x++) out[row + x] = lut[rng.int(256)];
      }
    }
    return;
  }
}

/** sharp's resampling kernels that make sense for training data. */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos3';

/** The whole transform of a decoded image, plain data so it crosses to worker threads. */
export interface ImageTransform {
  /** true: random resized crop, mirror, HSL jitter; false: resize shorter side, centre crop. */
  train: boolean;
  /** Output side in pixels (the paper: 224). */
  size: number;
  /** Evaluation: the shorter side is resized to this before the centre crop (the paper: 256). */
  resize: number;
  /** Training crop area as a fraction of the image (the paper: 8 % to 100 %). */
  scale: [number, number];
  /** Training crop aspect ratio w/h, drawn log-uniformly (the paper: 3/4 to 4/3). */
  ratio: [number, number];
  /** Training: mirror left-right with probability 1/2. */
  flip: boolean;
  /**
   * Training: maximum offsets of hue, saturation, lightness in OpenCV's 8-bit HLS units as MXNet's
   * random_h/s/l (hue in steps of 2 degrees, S and L out of 255); [0, 0, 0] turns the jitter off.
   */
  hsl: [number, number, number];
  /** Subtracted from 0-255 RGB (the paper: 124, 117, 104) ... */
  mean: [number, number, number];
  /** ... then multiplied by this (the paper: 0.0167). */
  multiplier: number;
  kernel: ResizeKernel;
  /**
   * RGB (0-255) that images with an alpha channel are composited onto before any resampling (default
   * white, as a browser shows them). Dropping the alpha instead would keep whatever colour the
   * transparent pixels happen to store, usually black.
   */
  background: [number, number, number];
}

/** The paper's training transform (docs/MODELS.md section 5). */
export const PAPER_TRAIN_TRANSFORM: ImageTransform = Object.freeze({
  train: true,
  size: 224,
  resize: 256,
  scale: [0.08, 1] as [number, number],
  ratio: [3 / 4, 4 / 3] as [number, number],
  flip: true,
  hsl: [20, 40, 50] as [number, number, number],
  mean: [124, 117, 104] as [number, number, number],
  multiplier: 0.0167,
  // Bilinear with antialiasing, as torchvision's default; libvips' 'linear' also reduces properly.
  kernel: 'linear' as ResizeKernel,
  background: [255, 255, 255] as [number, number, number],
});

/** The paper's evaluation transform: shorter side 256, centre crop 224. */
export const PAPER_EVAL_TRANSFORM: ImageTransform = Object.freeze({ ...PAPER_TRAIN_TRANSFORM, train: false });

/** Fills in and checks a transform, naming the bad field. */
export function imageTransform(train: boolean, opts: Partial<ImageTransform> = {}): ImageTransform {
  const t: ImageTransform = { ...PAPER_TRAIN_TRANSFORM, ...opts, train };
  const bad = (what: string, v: unknown): never => {
    throw new RangeError(`image transform: expected ${what}, but received ${JSON.stringify(v)}`);
  };
  if (!Number.isInteger(t.size) || t.size < 1) bad('size to be a positive integer', t.size);
  if (!Number.isInteger(t.resize) || t.resize < t.size) bad(`resize to be an integer >= size (${t.size})`, t.resize);
  if (!(t.scale[0] > 0 && t.scale[0] <= t.scale[1] && t.scale[1] <= 1)) bad('scale to be [lo, hi] with 0 < lo <= hi <= 1', t.scale);
  if (!(t.ratio[0] > 0 && t.ratio[0] <= t.ratio[1])) bad('ratio to be [lo, hi] with 0 < lo <= hi', t.ratio);
  if (t.hsl.length !== 3 || t.hsl.some((v) => !(v >= 0))) bad('hsl to be three non-negative offsets', t.hsl);
  if (t.mean.length !== 3) bad('mean to have three values (R, G, B)', t.mean);
  if (t.background.length !== 3 || t.background.some((v) => !(v >= 0 && v <= 255))) bad('background to be three values (R, G, B) in [0, 255]', t.background);
  if (!['nearest', 'linear', 'cubic', 'mitchell', 'lanczos3'].includes(t.kernel)) bad('kernel to be a sharp kernel', t.kernel);
  return t;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** torchvision's RandomResizedCrop.get_params: ten tries at a box of random area and aspect, then a centre crop. */
export function randomResizedCrop(w: number, h: number, scale: readonly number[], ratio: readonly number[], rng: DataRng): Box {
  const area = w * h;
  const lo = Math.log(ratio[0]), hi = Math.log(ratio[1]);
  for (let i = 0; i < 10; i++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(lo, hi));
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
      return { left: rng.int(w - cw + 1), top: rng.int(h - ch + 1), width: cw, height: ch };
    }
  }
  let cw = w, ch = h;
  if (w / h < ratio[0]) ch = Math.max(1, Math.round(w / ratio[0]));
  else if (w / h > ratio[1]) cw = Math.max(1, Math.round(h * ratio[1]));
  return { left: Math.floor((w - cw) / 2), top: Math.floor((h - ch) / 2), width: cw, height: ch };
}

/** Evaluation geometry (torchvision Resize(resize) + CenterCrop(size)): the resized size and the crop in it. */
export function resizeCentreCrop(w: number, h: number, resize: number, size: number): { width: number; height: number; box: Box } {
  const width = w <= h ? resize : Math.max(resize, Math.floor((w * resize) / h));
  const height = w <= h ? Math.max(resize, Math.floor((h * resize) / w)) : resize;
  return {
    width,
    height,
    box: { left: Math.round((width - size) / 2), top: Math.round((height - size) / 2), width: size, height: size },
  };
}

/** The random part of a training transform that is not geometry, drawn after the crop. */
export interface PixelJitter {
  flip: boolean;
  /** Offsets in OpenCV 8-bit HLS units, truncated to integers as MXNet did. */
  h: number;
  s: number;
  l: number;
}

export function drawJitter(t: ImageTransform, rng: DataRng): PixelJitter {
  const flip = t.flip && rng.next() < 0.5;
  const [mh, ms, ml] = t.hsl;
  // MXNet draws uniform(-max, max) and converts to int (truncation toward zero).
  const h = Math.trunc(rng.uniform(-mh, mh)), s = Math.trunc(rng.uniform(-ms, ms)), l = Math.trunc(rng.uniform(-ml, ml));
  return { flip, h, s, l };
}

export const NO_JITTER: PixelJitter = Object.freeze({ flip: false, h: 0, s: 0, l: 0 });

/**
 * Interleaved 8-bit RGB (w x h) -> normalised float32 CHW at out[offset], with the mirror and the HSL
 * jitter applied on the way. The jitter follows MXNet's image_aug_default.cc (RGB -> HLS, add integer
 * offsets, clamp S and L, back to RGB), except that it stays in floating point instead of rounding to
 * 8-bit HLS, and hue wraps around the colour circle where MXNet clamped it to [0, 180].
 */
export function pixelsToChw(
  src: Uint8Array, w: number, h: number, out: Float32Array, offset: number, t: ImageTransform, j: PixelJitter,
): void {
  const plane = w * h;
  const k = t.multiplier, m0 = t.mean[0], m1 = t.mean[1], m2 = t.mean[2];
  const jitter = j.h !== 0 || j.s !== 0 || j.l !== 0;
  // Hue is kept in sextants (60 degrees) so the round trip needs no division by 60 and no modulo.
  const dh = (j.h * 2) / 60, ds = j.s / 255, dl = j.l / 255;
  for (let y = 0; y < h; y++) {
    let o = offset + y * w;
    for (let x = 0; x < w; x++, o++) {
      const p = (y * w + (j.flip ? w - 1 - x : x)) * 3;
      let r = src[p], g = src[p + 1], b = src[p + 2];
      if (jitter) {
        r /= 255;
        g /= 255;
        b /= 255;
        const max = r > g ? (r > b ? r : b) : g > b ? g : b;
        const min = r < g ? (r < b ? r : b) : g < b ? g : b;
        const d = max - min;
        let l = (max + min) / 2;
        let s = 0, hue = 0;
        if (d > 0) {
          s = l < 0.5 ? d / (max + min) : d / (2 - max - min);
          hue = max === r ? (g - b) / d : max === g ? 2 + (b - r) / d : 4 + (r - g) / d;
        }
        hue += dh;
        while (hue < 0) hue += 6;
        while (hue >= 6) hue -= 6;
        l = l + dl < 0 ? 0 : l + dl > 1 ? 1 : l + dl;
        s = s + ds < 0 ? 0 : s + ds > 1 ? 1 : s + ds;
        const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
        const pp = 2 * l - q;
        r = 255 * sextantToChannel(pp, q, hue + 2);
        g = 255 * sextantToChannel(pp, q, hue);
        b = 255 * sextantToChannel(pp, q, hue - 2);
      }
      out[o] = (r - m0) * k;
      out[o + plane] = (g - m1) * k;
      out[o + 2 * plane] = (b - m2) * k;
    }
  }
}

/** One channel of HLS -> RGB, hue in sextants (any value in [-2, 8)). */
function sextantToChannel(p: number, q: number, hue: number): number {
  if (hue < 0) hue += 6;
  else if (hue >= 6) hue -= 6;
  if (hue < 1) return p + (q - p) * hue;
  if (hue < 3) return q;
  if (hue < 4) return p + (q - p) * (4 - hue);
  return p;
}
