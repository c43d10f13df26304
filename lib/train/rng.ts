// A small seedable PRNG whose whole state is four 32-bit words, so it can be saved in a checkpoint and
// restored for a resumed run to shuffle exactly as the original would have.
//
// Algorithm: xoshiro128** 1.1 (Blackman and Vigna, https://prng.di.unimi.it/xoshiro128starstar.c),
// seeded through SplitMix32 as its authors recommend; period 2^128 - 1, fine for shuffling and
// augmentation (not for cryptography).

export interface RngState {
  algorithm: 'xoshiro128**';
  /** The four state words, unsigned 32-bit. */
  s: [number, number, number, number];
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** SplitMix32 (the 32-bit finaliser of MurmurHash3 over a Weyl sequence). */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s = new Uint32Array(4);

  /** Seeds from any safe integer (both 32-bit halves count). */
  constructor(seed = 0) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng: seed must be a safe integer, but received ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    const sm = splitmix32(lo ^ Math.imul(hi, 0x27d4eb2d) ^ (seed < 0 ? 0x5bd1e995 : 0));
    for (let i = 0; i < 4; i++) this.s[i] = sm();
    if (!this.s.some((w) => w !== 0)) this.s[0] = 1; // the all-zero state is a fixed point
  }

  /** A generator continuing from a saved state. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.restore(state);
    return r;
  }

  /** The state as plain JSON. */
  state(): RngState {
    return { algorithm: 'xoshiro128**', s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!] };
  }

  restore(state: RngState): void {
    const ok =
      state?.algorithm === 'xoshiro128**' &&
      Array.isArray(state.s) &&
      state.s.length === 4 &&
      state.s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) &&
      state.s.some((w) => w !== 0);
    if (!ok) throw new TypeError(`Rng.restore: expected {algorithm: 'xoshiro128**', s: four unsigned 32-bit words, not all 0}, but received ${JSON.stringify(state)}`);
    this.s.set(state.s);
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2] ^= s[0]!;
    s[3] ^= s[1]!;
    s[1] ^= s[2]!;
    s[0] ^= s[3]!;
    s[2] ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** A float in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5, b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** A uniform integer in [0, n), n <= 2^32, without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], but received ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n); // accept draws below the largest multiple of n
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** A normal deviate (Box-Muller; no cached spare, so the state alone says what comes next). */
  normal(mean = 0, std = 1): number {
    const u = 1 - this.random(); // (0, 1]
    const v = this.random();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles in place (Fisher-Yates) and returns the array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** An independent-looking generator seeded from this one (e.g. one per epoch or per worker). */
  split(): Rng {
    const r = new Rng(0);
    const sm = splitmix32(this.nextUint32() ^ rotl(this.nextUint32(), 16));
    r.s.set([sm(), sm(), sm(), sm()]);
    if (!r.s.some((w) => w !== 0)) r.s[0] = 1;
    return r;
  }
}
