// Comparison and finite-difference helpers shared by the reference, op and gradcheck tests.

import { strict as assert } from 'node:assert';

/**
 * Element-wise, as numpy.allclose and torch.testing.assert_close: |actual_i - expected_i| <= atol + rtol * |expected_i|,
 * plus, where a comparison passes one, a per-element bound on the rounding of a float32 sum (see sumBound).
 */
export interface Tolerance {
  /** Relative to each expected element. */
  rtol: number;
  /** Absolute, the same for every element. */
  atol: number;
}

export interface Mismatch {
  maxErr: number;
  index: number;
  actual: number;
  expected: number;
  /** What this element was allowed. */
  allowed: number;
}

/** Worst element of |actual - expected| - allowed; null when every element is within tolerance. */
export function findMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, bound?: ArrayLike<number>): Mismatch | null {
  let worst: Mismatch | null = null, worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = Math.abs(a - e);
    const allowed = tol.atol + tol.rtol * Math.abs(e) + (bound ? bound[i]! : 0);
    const excess = err - allowed;
    if (!(excess <= 0) && (worst === null || !(excess <= worstExcess))) {  // NaN counts as the worst
      worst = { maxErr: err, index: i, actual: a, expected: e, allowed };
      worstExcess = excess;
    }
  }
  return worst;
}

/**
 * Rounding bound of float32 sums: a sum of K terms accumulated in float32 (in any order or blocking) is
 * off by at most about sqrt(K) * u * sum |terms| in the typical case (u = 2^-24; the worst case is K * u),
 * so the bound needs the magnitudes of the summands, not the result, which cancellation can make small.
 * `absSums` holds sum |terms| per element (the reference op applied to absolute values); `factor` covers
 * the float32 rounding of the inputs to the sum and of several chained sums.
 */
export function sumBound(absSums: ArrayLike<number>, terms: number, factor = 8): Float64Array {
  const u = 2 ** -24;
  return Float64Array.from(absSums, (m) => factor * Math.sqrt(terms) * u * m);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Asserts closeness; the message names the tensor, the worst element, the error and the tolerance. */
export function assertClose(actual: ArrayLike<number> | undefined, expected: ArrayLike<number>, tol: Tolerance, what: string, bound?: ArrayLike<number>): void {
  assert.ok(actual, `${what}: missing (expected ${expected.length} values)`);
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length}, expected ${expected.length}`);
  if (bound) assert.equal(bound.length, expected.length, `${what}: ${bound.length} rounding bounds for ${expected.length} values`);
  const m = findMismatch(actual, expected, tol, bound);
  if (m) {
    assert.fail(
      `${what}: element ${m.index} is ${m.actual}, expected ${m.expected} (|err| ${m.maxErr.toExponential(3)}, allowed ` +
      `${m.allowed.toExponential(3)}: atol ${tol.atol} + rtol ${tol.rtol} x |expected|${bound ? ' + the sum\'s rounding bound' : ''}; ` +
      `max |err| over tensor ${maxAbsDiff(actual, expected).toExponential(3)})`,
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
export function closeMessage(actual: ArrayLike<number> | undefined, expected: ArrayLike<number>, tol: Tolerance, what: string, bound?: ArrayLike<number>): string | null {
  try {
    assertClose(actual, expected, tol, what, bound);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
