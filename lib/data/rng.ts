// Seeded random numbers for shuffling and augmentation. Every sample draws from its own generator,
// keyed on (seed, epoch, sample index), so what a sample looks like never depends on which thread read
// it, in which order, or how the data set was batched.

/** Murmur3's finaliser over a sequence of 32-bit words: a cheap, well-mixed key for a generator. */
export function hash32(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    h = Math.imul(h ^ (w | 0), 0x85ebca6b);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The data pipeline's generator (mulberry32, one 32-bit word of state): its state is the hash32 key of a
 * (seed, epoch[, index]) stream, used as given, so the shuffles and augmentations of existing runs and
 * checkpoints depend on it staying exactly as it is. Tests have their own generator (test/support/random.ts's
 * TestRng: small seeds mixed first, normals), which may change freely.
 */
export class DataRng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
}

// Stream tags keep the shuffle and the per-sample generators of one (seed, epoch) apart.
const SHUFFLE = 0x5348;
const SAMPLE = 0x414d;

export function sampleRng(seed: number, epoch: number, index: number): DataRng {
  return new DataRng(hash32(SAMPLE, seed, epoch, index));
}

/** The order of an epoch: Fisher-Yates under (seed, epoch), or 0..n-1 when not shuffling. */
export function epochOrder(n: number, seed: number, epoch: number, shuffle: boolean): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (!shuffle) return order;
  const rng = new DataRng(hash32(SHUFFLE, seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
