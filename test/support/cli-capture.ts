// `crunet` run in this process (lib/cli/main.ts), with what it prints to the console and to stderr (the
// progress bar writes there) captured instead of shown: for CLI tests that need no child process.
import { main } from '../../lib/cli/main.js';

export interface CliResult { code: number; out: string; err: string }

export async function crunet(...args: string[]): Promise<CliResult> {
  let out = '', err = '';
  const log = console.log, error = console.error, write = process.stderr.write;
  console.log = (...a: unknown[]) => void (out += a.join(' ') + '\n');
  console.error = (...a: unknown[]) => void (err += a.join(' ') + '\n');
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), out, err };
  } finally {
    console.log = log;
    console.error = error;
    process.stderr.write = write;
  }
}
