// RandAugment (Cubuk et al. 2020) and TrivialAugment (Müller and Hutter 2021, torchvision's
// TrivialAugmentWide) for the small in-memory images (28x28, 32x32; grey or RGB), as torchvision defines
// them on uint8 tensors: the same 14 ops, magnitude tables (31 bins) and draws. The image is CHW float32
// holding byte values 0..255 (after crop and mirror, before normalisation); each op leaves whole bytes, as
// torchvision's uint8 casts do (truncation toward zero). Geometric ops sample the nearest pixel, as
// torchvision's default InterpolationMode.NEAREST, and fill with 0 (black), as its default fill.
import type { DataRng } from './rng.js';

/** Which policy, and RandAugment's (num_ops, magnitude); torchvision's defaults are n 2, m 9. */
export type AutoAugment = { policy: 'randaugment'; n: number; m: number } | { policy: 'trivialaugment' };

export const OPS = [
  'Identity', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate', 'Brightness', 'Color', 'Contrast',
  'Sharpness', 'Posterize', 'Solarize', 'AutoContrast', 'Equalize',
] as const;
export type OpName = (typeof OPS)[number];

/** torchvision's num_magnitude_bins for both policies. */
export const BINS = 31;

/** The ops whose magnitude gets a random sign. */
export const SIGNED: ReadonlySet<OpName> = new Set(['ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate', 'Brightness', 'Color', 'Contrast', 'Sharpness']);

const linspace = (lo: number, hi: number, i: number) => lo + ((hi - lo) * i) / (BINS - 1);

/**
 * The magnitude of bin i (0..30) of an op, as torchvision's _augmentation_space tables: RandAugment's
 * (wide: false) or TrivialAugmentWide's (wide: true). Translations are in pixels, rotation in degrees,
 * shear a tangent, the colour ops a factor offset (the factor is 1 + magnitude), posterize the bits kept,
 * solarize the threshold in bytes.
 */
export function magnitude(op: OpName, i: number, h: number, w: number, wide: boolean): number {
  switch (op) {
    case 'ShearX': case 'ShearY': return linspace(0, wide ? 0.99 : 0.3, i);
    case 'TranslateX': return linspace(0, wide ? 32 : (150 / 331) * w, i);
    case 'TranslateY': return linspace(0, wide ? 32 : (150 / 331) * h, i);
    case 'Rotate': return linspace(0, wide ? 135 : 30, i);
    case 'Brightness': case 'Color': case 'Contrast': case 'Sharpness': return linspace(0, wide ? 0.99 : 0.9, i);
    // 8 - round(i / ((bins - 1) / 4 or 6)); torch rounds half to even, which these quotients never hit but at .5
    case 'Posterize': return 8 - roundHalfEven(i / ((BINS - 1) / (wide ? 6 : 4)));
    case 'Solarize': return linspace(255, 0, i);
    default: return 0;
  }
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Checks an AutoAugment setting, naming the field and its range. */
export function checkAutoAugment(a: AutoAugment, where: string): AutoAugment {
  if (a.policy === 'trivialaugment') return a;
  if (a.policy !== 'randaugment') throw new RangeError(`${where}: expected policy 'randaugment' or 'trivialaugment', but received ${JSON.stringify((a as { policy: unknown }).policy)}`);
  if (!Number.isInteger(a.n) || a.n < 1 || a.n > 16) throw new RangeError(`${where}: expected RandAugment's n (ops per image) to be an integer in [1, 16], but received ${a.n}`);
  if (!Number.isInteger(a.m) || a.m < 0 || a.m >= BINS) throw new RangeError(`${where}: expected RandAugment's m (magnitude bin) to be an integer in [0, ${BINS - 1}], but received ${a.m}`);
  return a;
}

/**
 * Applies the policy to img (CHW bytes as float32, at offset) in place, drawing as torchvision does:
 * RandAugment n times (op, then a sign for signed ops); TrivialAugment once (op, magnitude bin, sign).
 */
export function autoAugment(a: AutoAugment, img: Float32Array, offset: number, c: number, h: number, w: number, rng: DataRng, scratch: Float32Array): void {
  const rounds = a.policy === 'randaugment' ? a.n : 1;
  for (let r = 0; r < rounds; r++) {
    const op = OPS[rng.int(OPS.length)]!;
    const scalar = op === 'Identity' || op === 'AutoContrast' || op === 'Equalize'; // no magnitude, nothing drawn
    const bin = a.policy === 'randaugment' || scalar ? (a.policy === 'randaugment' ? a.m : 0) : rng.int(BINS);
    let mag = magnitude(op, bin, h, w, a.policy === 'trivialaugment');
    if (SIGNED.has(op) && rng.int(2)) mag = -mag;
    applyOp(op, mag, img, offset, c, h, w, scratch);
  }
}

/** One op at a signed magnitude; scratch holds at least c*h*w values. */
export function applyOp(op: OpName, mag: number, img: Float32Array, offset: number, c: number, h: number, w: number, scratch: Float32Array): void {
  const plane = h * w, n = c * plane;
  const px = img.subarray(offset, offset + n);
  switch (op) {
    case 'Identity': return;
    // The inverse maps torchvision's _get_inverse_affine_matrix gives, about the image centre.
    // F.affine(shear=[degrees(atan(m)), 0], center=[0, 0]): output (x, y) reads (x + m y, y), y from the top.
    case 'ShearX': return warp(px, c, h, w, scratch, [1, mag, (mag * h) / 2, 0, 1, 0]);
    case 'ShearY': return warp(px, c, h, w, scratch, [1, 0, 0, mag, 1, (mag * w) / 2]);
    // F.affine(translate=[int(m), 0]): output x reads x - int(m).
    case 'TranslateX': return warp(px, c, h, w, scratch, [1, 0, -Math.trunc(mag), 0, 1, 0]);
    case 'TranslateY': return warp(px, c, h, w, scratch, [1, 0, 0, 0, 1, -Math.trunc(mag)]);
    case 'Rotate': {
      // F.rotate(m degrees, counter-clockwise).
      const t = (mag * Math.PI) / 180, cos = Math.cos(t), sin = Math.sin(t);
      return warp(px, c, h, w, scratch, [cos, -sin, 0, sin, cos, 0]);
    }
    case 'Brightness': return blend(px, 1 + mag, () => 0);
    case 'Color': {
      if (c !== 3) return; // adjust_saturation leaves a grey image as it is
      const grey = greyscale(px, plane, scratch);
      return blend(px, 1 + mag, (i) => grey[i % plane]!);
    }
    case 'Contrast': {
      let mean = 0;
      if (c === 3) {
        const grey = greyscale(px, plane, scratch);
        for (let i = 0; i < plane; i++) mean += grey[i]!;
      } else {
        for (let i = 0; i < n; i++) mean += px[i]!;
      }
      mean /= c === 3 ? plane : n;
      return blend(px, 1 + mag, () => mean);
    }
    case 'Sharpness': {
      // The degenerate image: a 3x3 smoothing (centre 5, others 1, /13), rounded, borders kept.
      const deg = scratch.subarray(0, n);
      deg.set(px);
      for (let ch = 0; ch < c; ch++) {
        const p = ch * plane;
        for (let y = 1; y < h - 1; y++) {
          for (let x = 1; x < w - 1; x++) {
            const i = p + y * w + x;
            const s = px[i - w - 1]! + px[i - w]! + px[i - w + 1]! + px[i - 1]! + 5 * px[i]! + px[i + 1]! + px[i + w - 1]! + px[i + w]! + px[i + w + 1]!;
            deg[i] = roundHalfEven(s / 13);
          }
        }
      }
      return blend(px, 1 + mag, (i) => deg[i]!);
    }
    case 'Posterize': {
      const step = 2 ** (8 - mag);
      for (let i = 0; i < n; i++) px[i] = px[i]! - (px[i]! % step);
      return;
    }
    case 'Solarize':
      for (let i = 0; i < n; i++) if (px[i]! >= mag) px[i] = 255 - px[i]!;
      return;
    case 'AutoContrast':
      for (let ch = 0; ch < c; ch++) {
        const p = px.subarray(ch * plane, (ch + 1) * plane);
        let lo = 255, hi = 0;
        for (const v of p) lo = Math.min(lo, v), hi = Math.max(hi, v);
        if (hi === lo) continue;
        // In float32, as torchvision: its scale 255 / (max - min) is torch's reciprocal times 255, and where
        // that rounds down the top value lands a hair under 255 and truncates to 254 (max - min = 41, say).
        const f = Math.fround, scale = f(f(1 / (hi - lo)) * 255);
        for (let i = 0; i < plane; i++) p[i] = Math.trunc(Math.min(255, Math.max(0, f((p[i]! - lo) * scale))));
      }
      return;
    case 'Equalize':
      for (let ch = 0; ch < c; ch++) equalize(px.subarray(ch * plane, (ch + 1) * plane));
      return;
  }
}

/**
 * Nearest-neighbour inverse warp by m = [a, b, c, d, e, f]: the output pixel whose centre is (x, y),
 * measured from the image centre, reads the source point (a x + b y + c, d x + e y + f); outside the image
 * reads 0. Computed as torchvision's affine grid and grid_sample (nearest, align_corners false) compute it,
 * in float32, so that points landing half-way between pixels round the same way (to even).
 */
function warp(px: Float32Array, c: number, h: number, w: number, scratch: Float32Array, m: readonly number[]): void {
  const f = Math.fround, plane = h * w;
  const hw = f(0.5 * w), hh = f(0.5 * h);
  const [a, b, cc, d, e, ff] = m.map(f) as [number, number, number, number, number, number];
  const ra = f(a / hw), rb = f(b / hw), rc = f(cc / hw), rd = f(d / hh), re = f(e / hh), rf = f(ff / hh);
  const from = new Int32Array(plane);
  for (let y = 0; y < h; y++) {
    const gy0 = -h / 2 + 0.5 + y;
    for (let x = 0; x < w; x++) {
      const gx0 = -w / 2 + 0.5 + x;
      const gx = f(f(f(gx0 * ra) + f(gy0 * rb)) + rc), gy = f(f(f(gx0 * rd) + f(gy0 * re)) + rf);
      const ix = roundHalfEven(f(f(f(f(gx + 1) * w) - 1) / 2)), iy = roundHalfEven(f(f(f(f(gy + 1) * h) - 1) / 2));
      from[y * w + x] = ix >= 0 && ix < w && iy >= 0 && iy < h ? iy * w + ix : -1;
    }
  }
  const out = scratch.subarray(0, c * plane);
  for (let ch = 0; ch < c; ch++) {
    const p = ch * plane;
    for (let i = 0; i < plane; i++) out[p + i] = from[i]! < 0 ? 0 : px[p + from[i]!]!;
  }
  px.set(out);
}

/**
 * torchvision's _blend for uint8: ratio img + (1 - ratio) other, clamped to [0, 255], truncated; in float32
 * arithmetic as torch does it, so that values landing on a whole byte truncate the same way.
 */
function blend(px: Float32Array, ratio: number, other: (i: number) => number): void {
  const f = Math.fround, r = f(ratio), q = f(1 - ratio);
  for (let i = 0; i < px.length; i++) {
    const v = f(f(r * px[i]!) + f(q * other(i)));
    px[i] = Math.trunc(v < 0 ? 0 : v > 255 ? 255 : v);
  }
}

/** rgb_to_grayscale for uint8 (0.2989 R + 0.587 G + 0.114 B, truncated), into the end of scratch. */
function greyscale(px: Float32Array, plane: number, scratch: Float32Array): Float32Array {
  const grey = scratch.subarray(scratch.length - plane);
  for (let i = 0; i < plane; i++) grey[i] = Math.trunc(0.2989 * px[i]! + 0.587 * px[plane + i]! + 0.114 * px[2 * plane + i]!);
  return grey;
}

/** torchvision's _scale_channel: histogram equalisation of one channel. */
function equalize(p: Float32Array): void {
  const hist = new Float64Array(256);
  for (const v of p) hist[v]++;
  let last = 255;
  while (last > 0 && hist[last] === 0) last--;
  let total = 0;
  for (let v = 0; v < 256; v++) total += hist[v]!;
  // step: the pixels outside the last non-empty bin, per output level
  const step = Math.floor((total - hist[last]!) / 255);
  if (step === 0) return;
  const lut = new Float64Array(256);
  let cum = 0;
  for (let v = 0; v < 256; v++) {
    lut[v] = Math.min(255, Math.floor((cum + Math.floor(step / 2)) / step));
    cum += hist[v]!;
  }
  for (let i = 0; i < p.length; i++) p[i] = lut[p[i]!]!;
}
