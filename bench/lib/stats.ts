// Small statistics helpers shared by the suites.
import { median } from '../../lib/cli/bench.js';

export { median };

export function min(xs: readonly number[]): number {
  return xs.length ? Math.min(...xs) : NaN;
}

/** Relative spread of a sample: (max - min) / median. */
export function spread(xs: readonly number[]): number {
  return xs.length ? (Math.max(...xs) - Math.min(...xs)) / median(xs) : NaN;
}

export const round = (x: number, digits = 3): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);
export const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;
export const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
