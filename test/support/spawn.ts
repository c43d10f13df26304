// Child processes for the tests that run the shipped artefacts: always with a timeout that kills the
// child (SIGKILL, so a hung addon cannot outlive the test), and the failure names the command.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childEnv } from './child-env.js';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface Ran { code: number; out: string; err: string }

/** Runs `node args...` in the repository root; a child that outlives `timeoutMs` is killed and the test fails. */
export function node(args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Ran {
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', env: childEnv(env),
  });
  const what = `node ${args.join(' ')}`;
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.signal) throw new Error(`${what}: killed by ${r.signal}${r.signal === 'SIGKILL' ? ` (still running after ${timeoutMs} ms)` : ''}\n${r.stderr}`);
  return { code: r.status!, out: r.stdout, err: r.stderr };
}

/** Fails, naming the file, when dist/ is missing or older than a source in lib/: the test would run old code. */
export function assertDistCurrent(): void {
  const entry = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run 'npm run build:ts' first`);
  const built = fs.statSync(entry).mtimeMs;
  const newer = (dir: string): string | undefined => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const found = e.isDirectory() ? newer(p) : p.endsWith('.ts') && fs.statSync(p).mtimeMs > built ? p : undefined;
      if (found) return found;
    }
    return undefined;
  };
  const stale = newer(path.join(ROOT, 'lib'));
  if (stale) throw new Error(`dist/ is older than ${stale}: run 'npm run build:ts' first`);
}
