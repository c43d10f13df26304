/** A mistake in the command line: printed with the command's usage hint, exit code 2. */
export class UsageError extends Error {}

/** A settings check of the library's (a RangeError or TypeError) turned into a usage error of the command. */
export function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) throw new UsageError(e.message);
    throw e;
  }
}
