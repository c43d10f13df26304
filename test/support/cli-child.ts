// The crunet CLI in a child process (from the TypeScript sources, through tsx), for tests that need a
// process of its own: signals, kill -9, exit codes, OpenMP's environment. Every child is killed when its
// deadline passes and, whatever happens, after the test that started it (mocha's timeout does not kill a
// child, which would otherwise write into the next test's output).
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { childEnv } from './child-env.js';

const ROOT = path.resolve(__dirname, '..', '..');
const live = new Set<ChildProcess>();


afterEach(() => {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
});

export interface CliChild {
  child: ChildProcess;
  /** What it printed so far. */
  out(): string;
  err(): string;
  /** Resolves when it exits: its code (128 + signal number when a signal ended it) and output. */
  done: Promise<{ code: number; signal: NodeJS.Signals | null; out: string; err: string }>;
}

/**
 * Starts `crunet ARGS` in a child. `deadlineMs` (default 20 minutes: a bound on a hang, not a performance
 * limit) kills it with SIGKILL; its exit then says so in `err`.
 */
export function startCrunet(args: string[], opts: { env?: NodeJS.ProcessEnv; deadlineMs?: number } = {}): CliChild {
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', path.join(ROOT, 'test', 'support', 'cli-main.ts'), ...args], {
    cwd: ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const deadlineMs = opts.deadlineMs ?? 20 * 60_000;
  const timer = setTimeout(() => {
    err += `\n[test] killed after ${deadlineMs} ms\n`;
    child.kill('SIGKILL');
  }, deadlineMs);
  const done = new Promise<{ code: number; signal: NodeJS.Signals | null; out: string; err: string }>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code: code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 2), signal, out, err });
    });
  });
  return { child, out: () => out, err: () => err, done };
}

/** Runs `crunet ARGS` in a child to its end. */
export function runCrunet(args: string[], opts: { env?: NodeJS.ProcessEnv; deadlineMs?: number } = {}) {
  return startCrunet(args, opts).done;
}

/** Polls until `cond` holds (or the child exits, or `deadlineMs` passes: then it throws, with the child's output). */
export async function waitFor(c: CliChild, what: string, cond: () => boolean, deadlineMs = 20 * 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (c.child.exitCode !== null || c.child.signalCode !== null) throw new Error(`crunet exited before ${what}:\n${c.err()}`);
    if (Date.now() - t0 > deadlineMs) throw new Error(`no ${what} after ${deadlineMs} ms:\n${c.err()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
