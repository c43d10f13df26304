// Numeric command-line flags, parsed the same way by every command.
import { UsageError } from './errors.js';

/**
 * A numeric flag's value: undefined when the flag is absent, else a finite number (an integer when `int`)
 * of at least `min`. Anything else is a UsageError naming the flag and what it got.
 */
export function numberFlag(v: string | undefined, flag: string, o: { int?: boolean; min?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const { int = false, min = -Infinity } = o;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min) {
    const what = int ? 'an integer' : 'a number';
    throw new UsageError(`${flag} expects ${what}${min > -Infinity ? ` >= ${min}` : ''}, got '${v}'`);
  }
  return n;
}

/** An integer flag of at least `min`. */
export const intFlag = (v: string | undefined, flag: string, min = -Infinity) => numberFlag(v, flag, { int: true, min });
