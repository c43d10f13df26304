// Numeric command-line flags, parsed the same way by every command.
import type { Precision } from '../engine/index.js';
import { UsageError } from './errors.js';

const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const satisfies readonly Precision[];

/**
 * A numeric flag's value: undefined when the flag is absent, else a finite number (an integer when `int`)
 * in [min, max]. Anything else is a UsageError naming the flag, the range and what it received.
 */
export function numberFlag(v: string | undefined, flag: string, o: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const { int = false, min = -Infinity, max = Infinity } = o;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max) {
    const what = int ? 'an integer' : 'a number';
    const range = max < Infinity ? ` in [${min}, ${max}]` : min > -Infinity ? ` >= ${min}` : '';
    throw new UsageError(`${flag}: expected ${what}${range}, but received '${v}'`);
  }
  return n;
}

/** --precision of train, eval and bench: undefined when absent; another name is a UsageError. */
export function precisionFlag(v: string | undefined): Precision | undefined {
  if (v === undefined) return undefined;
  if (!(PRECISIONS as readonly string[]).includes(v)) throw new UsageError(`--precision: expected fp32, bf16 or fp16, but received '${v}'`);
  return v as Precision;
}

/** --precision's line in a command's help, its description starting at `column`. */
export function precisionHelp(column: number): string {
  return '--precision P'.padEnd(column - 2) + 'fp32 (default), bf16 or fp16; a device that cannot compute in P is an error\n' +
    `${' '.repeat(column)}naming what it supports (today every device computes in fp32 only)`;
}

/** An integer flag in [min, max]. */
export const intFlag = (v: string | undefined, flag: string, min = -Infinity, max = Infinity) => numberFlag(v, flag, { int: true, min, max });

/**
 * The largest seed: the data pipeline hashes seeds as unsigned 32-bit integers (lib/data/rng.ts), so a
 * larger one would silently repeat a smaller one's shuffles and augmentations.
 */
export const MAX_SEED = 2 ** 32 - 1;
