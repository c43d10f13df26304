// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on whole batches, with timm's semantics (its Mixup
// class in 'batch' mode): one lambda per batch from Beta(alpha, alpha), each sample mixed with the sample at
// the mirrored position of the batch (timm's x.flip(0)), cutmix's lambda corrected to the pasted box's area.
// The targets are the mixed one-hot labels; label smoothing is left to the loss (compile's labelSmoothing),
// which gives exactly timm's mixup_target: (1 - e) (lam a + (1 - lam) b) + e / K.
// Every batch draws from its own generator keyed on (seed, epoch, batch), as samples do (rng.ts).
import { DataRng, hash32 } from './rng.js';

export interface MixOptions {
  /** Mixup's Beta(alpha, alpha); 0: no mixup (timm's default is 1). */
  mixupAlpha: number;
  /** CutMix's Beta(alpha, alpha); 0: no cutmix. */
  cutmixAlpha: number;
  /** Probability that a batch is mixed at all (timm's mix_prob, default 1). */
  prob: number;
  /** With both on: probability of cutmix rather than mixup for a mixed batch (timm's switch_prob, default 0.5). */
  switchProb: number;
}

export const MIX_DEFAULTS: Readonly<MixOptions> = Object.freeze({ mixupAlpha: 0, cutmixAlpha: 0, prob: 1, switchProb: 0.5 });

/** Rows [top, bottom) and columns [left, right) that cutmix pastes from the partner sample. */
export interface CutBox {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/** What one batch gets: lam = 1 leaves it as it was. */
export interface MixDraw {
  lam: number;
  /** Set for cutmix: the box, with lam already corrected to 1 - its area / the image's. */
  box?: CutBox;
}

/** Checks the options, naming the field and its valid range. */
export function checkMixOptions(o: MixOptions, where = 'mixup'): MixOptions {
  const bad = (what: string, range: string, v: unknown): never => {
    throw new RangeError(`${where}: expected ${what} to be ${range}, but received ${v}`);
  };
  if (!(Number.isFinite(o.mixupAlpha) && o.mixupAlpha >= 0)) bad('mixupAlpha', 'a finite number >= 0', o.mixupAlpha);
  if (!(Number.isFinite(o.cutmixAlpha) && o.cutmixAlpha >= 0)) bad('cutmixAlpha', 'a finite number >= 0', o.cutmixAlpha);
  if (!(o.prob >= 0 && o.prob <= 1)) bad('prob', 'in [0, 1]', o.prob);
  if (!(o.switchProb >= 0 && o.switchProb <= 1)) bad('switchProb', 'in [0, 1]', o.switchProb);
  return o;
}

export function mixEnabled(o: MixOptions): boolean {
  return o.prob > 0 && (o.mixupAlpha > 0 || o.cutmixAlpha > 0);
}

// Stream tag of the batch generators, apart from rng.ts's shuffle and sample streams.
const MIX = 0x4d58;

export function batchRng(seed: number, epoch: number, batch: number): DataRng {
  return new DataRng(hash32(MIX, seed, epoch, batch));
}

/** Standard normal by Box-Muller (one value per call: the generator's stream stays simple to follow). */
function normal(rng: DataRng): number {
  const u = 1 - rng.next(); // (0, 1]
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Gamma(a, 1) by Marsaglia and Tsang (2000), with their boost for a < 1. */
function gamma(a: number, rng: DataRng): number {
  if (a < 1) return gamma(a + 1, rng) * Math.pow(1 - rng.next(), 1 / a);
  const d = a - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.next();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) as X / (X + Y) of two gammas. */
export function sampleBeta(a: number, b: number, rng: DataRng): number {
  const x = gamma(a, rng), y = gamma(b, rng);
  return x + y > 0 ? x / (x + y) : 0.5;
}

/**
 * timm's rand_bbox + cutmix_bbox_and_lam (correct_lam): a box of sides int(H sqrt(1 - lam)) and
 * int(W sqrt(1 - lam)) centred on a uniform pixel, clipped to the image; lam becomes 1 - box area / image area.
 */
export function cutmixBox(h: number, w: number, lam: number, rng: DataRng): MixDraw {
  const ratio = Math.sqrt(1 - lam);
  const ch = Math.trunc(h * ratio), cw = Math.trunc(w * ratio);
  const cy = rng.int(h), cx = rng.int(w);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  const box = {
    top: clip(cy - Math.floor(ch / 2), h), bottom: clip(cy + Math.floor(ch / 2), h),
    left: clip(cx - Math.floor(cw / 2), w), right: clip(cx + Math.floor(cw / 2), w),
  };
  return { lam: 1 - ((box.bottom - box.top) * (box.right - box.left)) / (h * w), box };
}

/** timm's _params_per_batch, then the box for cutmix. */
export function drawMix(o: MixOptions, h: number, w: number, rng: DataRng): MixDraw {
  if (!mixEnabled(o) || !(rng.next() < o.prob)) return { lam: 1 };
  let cutmix: boolean;
  if (o.mixupAlpha > 0 && o.cutmixAlpha > 0) cutmix = rng.next() < o.switchProb;
  else cutmix = o.cutmixAlpha > 0;
  const alpha = cutmix ? o.cutmixAlpha : o.mixupAlpha;
  const lam = sampleBeta(alpha, alpha, rng);
  return cutmix ? cutmixBox(h, w, lam, rng) : { lam };
}

/**
 * Mixes the first n samples of an NCHW batch in place as `d` says, and returns their soft targets
 * [n, classes]: lam onehot(label[i]) + (1 - lam) onehot(label[n - 1 - i]).
 */
export function mixBatch(
  images: Float32Array, labels: Int32Array, n: number, shape: readonly number[], classes: number, d: MixDraw,
): Float32Array {
  const [c, h, w] = shape as [number, number, number];
  const per = c * h * w;
  const targets = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    targets[i * classes + labels[i]!] += d.lam;
    targets[i * classes + labels[n - 1 - i]!] += 1 - d.lam;
  }
  if (d.lam === 1) return targets;
  // The partners' pixels as they were before any sample of the batch was changed.
  const before = images.slice(0, n * per);
  for (let i = 0; i < n; i++) {
    const o = i * per, p = (n - 1 - i) * per;
    if (d.box) {
      const { top, bottom, left, right } = d.box;
      for (let ch = 0; ch < c; ch++) {
        for (let y = top; y < bottom; y++) {
          const row = ch * h * w + y * w;
          for (let x = left; x < right; x++) images[o + row + x] = before[p + row + x]!;
        }
      }
    } else {
      const lam = d.lam, rest = 1 - d.lam;
      for (let k = 0; k < per; k++) images[o + k] = before[o + k]! * lam + before[p + k]! * rest;
    }
  }
  return targets;
}
