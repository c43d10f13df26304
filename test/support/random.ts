// A seeded pseudo-random generator for tests: the same seed gives the same tensors on every machine.
// TestRng (mulberry32 core; seeds mixed through splitmix32), and helpers that fill Float32Array /
// Float64Array / Int32Array with uniform, normal or integer values.

/** splitmix32's finaliser: spreads nearby seeds (1, 2, 3...) over the whole state space. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * mulberry32: 32-bit state, period 2^32, passes the usual small statistical tests; ample for test data. The
 * test-data generator: small seeds are mixed first, and it draws normals. Not the data pipeline's DataRng
 * (lib/data/rng.ts), whose streams checkpoints depend on and which must never change.
 */
export class TestRng {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = mix32(seed >>> 0);
  }

  /** Uniform in [0, 1), 32 bits of randomness. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return mean + std * z;
    }
    let u = this.next();
    while (u === 0) u = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(a);
    return mean + std * r * Math.cos(a);
  }

  /** Integer in [low, high] inclusive. */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low + 1));
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

export function uniform32(rng: TestRng, n: number, low = -1, high = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(low, high);
  return a;
}

export function uniform64(rng: TestRng, n: number, low = -1, high = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(low, high);
  return a;
}

export function normal32(rng: TestRng, n: number, mean = 0, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal(mean, std);
  return a;
}

export function normal64(rng: TestRng, n: number, mean = 0, std = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal(mean, std);
  return a;
}

/** Integers in [0, classes), e.g. labels. */
export function labels32(rng: TestRng, n: number, classes: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(0, classes - 1);
  return a;
}

/** A 32-bit seed from a string (FNV-1a), so that each named test case gets its own stream. */
export function seedFrom(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
