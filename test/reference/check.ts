// Comparison and finite-difference helpers shared by the reference, op and gradcheck tests.

import { strict as assert } from 'node:assert';

export interface Tolerance {
  /** Relative to each expected element. */
  rtol: number;
  /** Absolute, multiplied by max(1, max |expected|) so that a large tensor's rounding is scaled with it. */
  atol: number;
}

export interface Mismatch {
  maxErr: number;
  index: number;
  actual: number;
  expected: number;
  scale: number;
}

/** Worst element of |actual - expected| - allowed; null when every element is within tolerance. */
export function findMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): Mismatch | null {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  const abs = tol.atol * Math.max(1, scale);
  let worst: Mismatch | null = null, worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = Math.abs(a - e);
    const excess = err - (abs + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst === null || !(excess <= worstExcess))) {  // NaN counts as the worst
      worst = { maxErr: err, index: i, actual: a, expected: e, scale };
      worstExcess = excess;
    }
  }
  return worst;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Asserts closeness; the message names the tensor, the worst element, the error and the tolerance. */
export function assertClose(actual: ArrayLike<number> | undefined, expected: ArrayLike<number>, tol: Tolerance, what: string): void {
  assert.ok(actual, `${what}: missing (expected ${expected.length} values)`);
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length}, expected ${expected.length}`);
  const m = findMismatch(actual, expected, tol);
  if (m) {
    assert.fail(
      `${what}: element ${m.index} is ${m.actual}, expected ${m.expected} (|err| ${m.maxErr.toExponential(3)}; ` +
      `max |err| over tensor ${maxAbsDiff(actual, expected).toExponential(3)}; max |expected| ${m.scale.toExponential(3)}; ` +
      `rtol ${tol.rtol}, atol ${tol.atol} x max(1, max |expected|))`,
    );
  }
}

/**
 * Central finite differences of the scalar f at x, for every element (or the given indices):
 * (f(x + h e_i) - f(x - h e_i)) / 2h. x is restored afterwards.
 */
export function numericalGradient(f: () => number, x: Float64Array, h: number, indices?: number[]): Float64Array {
  const g = new Float64Array(x.length);
  for (const i of indices ?? x.keys()) {
    const v = x[i]!;
    x[i] = v + h;
    const fp = f();
    x[i] = v - h;
    const fm = f();
    x[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export const to64 = (a: ArrayLike<number>) => Float64Array.from(a);
export const to32 = (a: ArrayLike<number>) => Float32Array.from(a);

/** Like assertClose, but returns the failure message (or null), so one case can report every bad tensor. */
export function closeMessage(actual: ArrayLike<number> | undefined, expected: ArrayLike<number>, tol: Tolerance, what: string): string | null {
  try {
    assertClose(actual, expected, tol, what);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
