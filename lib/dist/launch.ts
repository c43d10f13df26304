// Starts the workers of one machine of a distributed job, as torchrun does: N processes with RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT in their environment (lib/dist/env.ts),
// their output prefixed with their rank, and one rule: the job lives only while every worker does. A worker
// that exits with an error, is killed by a signal or stops sending heartbeats (worker-preload.ts) ends the
// job: the others are stopped (SIGTERM, then SIGKILL after a grace period) and the launcher names the rank,
// how it ended and its last lines. A signal to the launcher stops every worker the same way; a launcher that
// dies abruptly leaves workers that notice and exit (worker-preload.ts). README "Training on several
// processes / machines".
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { availableCpus } from '../cli/threads.js';
import { HEARTBEAT, ORPHAN_EXIT_CODE } from './heartbeat.js';

export interface LaunchOptions {
  /** Workers on this machine. */
  nprocPerNode: number;
  /** Machines in the job (default 1) and this one's index (default 0). */
  nnodes?: number;
  nodeRank?: number;
  /** Rank 0's machine and the rendezvous port (defaults 127.0.0.1 and 29500, torchrun's). */
  masterAddr?: string;
  masterPort?: number;
  /** What each worker runs: node's arguments, a script and its arguments (run by this node binary). */
  command: string[];
  /** A worker that sends no heartbeat for this long is taken as hung and ends the job (0: never; default 300 000). */
  hangTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when stopping workers (default 10 000). */
  graceMs?: number;
  /** Lines of each worker's output kept for the failure message (default 20). */
  tailLines?: number;
  /** The environment the workers inherit (default process.env); the launcher's variables go over it. */
  env?: NodeJS.ProcessEnv;
  /** Where the workers' prefixed output and the launcher's messages go (default process.stdout / stderr). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** Called with each worker's pid once all are started (tests: checking that none is left behind). */
  onStarted?: (pids: number[]) => void;
}

/**
 * How the job ended: the exit code for the launcher, and the failure that ended it, if any. A failed
 * worker's own exit code is passed through (a usage error's 2 stays 2), 128 + the signal's number for one
 * killed by a signal; 1 for a hang or a worker that could not start.
 */
export interface LaunchResult {
  code: number;
  failure?: { rank: number; reason: string };
}

export const DEFAULT_MASTER_PORT = 29500;
const DEFAULT_HANG_TIMEOUT_MS = 300_000;
const DEFAULT_GRACE_MS = 10_000;
const PIPE_WAIT_MS = 2000;

/**
 * CPU threads per worker: the CPUs available to the launcher shared out, at least 1 (torchrun sets
 * OMP_NUM_THREADS=1 for the same reason: N workers that each start a thread per CPU oversubscribe the
 * machine N times over). A user's OMP_NUM_THREADS is kept.
 */
export function threadsPerWorker(nprocPerNode: number, cpus = availableCpus()): number {
  return Math.max(1, Math.floor(cpus / nprocPerNode));
}

/** The preload module every worker loads first (heartbeats, parent-death), and how node must load it. */
function preloadArgs(): string[] {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, 'worker-preload' + ext);
  // From the TypeScript sources (tests, tsx), the workers need tsx's hook as well.
  return ext === '.ts' ? ['--require', require.resolve('tsx/cjs'), '--require', file] : ['--require', file];
}

/**
 * util-linux's setpriv, through which workers are started on Linux so that the kernel kills them
 * (PR_SET_PDEATHSIG, SIGKILL) when the launcher dies: the IPC disconnect that worker-preload.ts watches is
 * only noticed while a worker's JavaScript thread is free, and a worker spinning in a loop would outlive
 * a kill -9ed launcher. Undefined where there is none (then only the disconnect watch remains).
 */
function pdeathsigWrapper(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  return ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => fs.existsSync(f));
}

interface Worker {
  rank: number;
  localRank: number;
  child: ChildProcess;
  tail: string[];
  lastBeat: number;
  exited?: { code: number | null; signal: NodeJS.Signals | null };
  /** Set when the launcher asked it to stop: its exit is then not a failure of its own. */
  stopping: boolean;
  done: Promise<void>;
}

function checkOptions(o: LaunchOptions): Required<Pick<LaunchOptions, 'nnodes' | 'nodeRank' | 'masterAddr' | 'masterPort' | 'hangTimeoutMs' | 'graceMs' | 'tailLines'>> {
  const int = (name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw new RangeError(`launch: expected ${name} to be an integer in [${min}, ${max}], but received ${JSON.stringify(v)}`);
    return v as number;
  };
  int('nprocPerNode', o.nprocPerNode, 1, 1024);
  const nnodes = int('nnodes', o.nnodes ?? 1, 1);
  const nodeRank = int('nodeRank', o.nodeRank ?? 0, 0, nnodes - 1);
  const masterPort = int('masterPort', o.masterPort ?? DEFAULT_MASTER_PORT, 1, 65535);
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  if (typeof masterAddr !== 'string' || masterAddr.trim() === '') throw new TypeError(`launch: expected masterAddr to be a host name or address, but received ${JSON.stringify(masterAddr)}`);
  if (!Array.isArray(o.command) || o.command.length === 0 || !o.command.every((a) => typeof a === 'string')) {
    throw new TypeError(`launch: expected command to be a non-empty array of strings (a script and its arguments), but received ${JSON.stringify(o.command)}`);
  }
  return {
    nnodes, nodeRank, masterAddr, masterPort,
    hangTimeoutMs: int('hangTimeoutMs', o.hangTimeoutMs ?? DEFAULT_HANG_TIMEOUT_MS, 0),
    graceMs: int('graceMs', o.graceMs ?? DEFAULT_GRACE_MS, 0),
    tailLines: int('tailLines', o.tailLines ?? 20, 1),
  };
}

/** How a worker ended, in words. */
function describeExit(e: { code: number | null; signal: NodeJS.Signals | null }): string {
  if (e.signal) return `was killed by ${e.signal}`;
  if (e.code === ORPHAN_EXIT_CODE) return `exited with code ${e.code} (it lost its launcher)`;
  return `exited with code ${e.code}`;
}

/**
 * Runs the workers of this machine to the end of the job. Resolves with exit code 0 when every worker
 * exited with 0; the failed worker's code when one failed (LaunchResult), 1 when one hung (the others then
 * stopped); 128 + the signal's number when a
 * SIGINT or SIGTERM to this process stopped the job. Never rejects for a worker's failure.
 */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const c = checkOptions(o);
  const out = o.stdout ?? process.stdout, err = o.stderr ?? process.stderr;
  const baseEnv = o.env ?? process.env;
  const worldSize = c.nnodes * o.nprocPerNode;
  const threads = baseEnv.OMP_NUM_THREADS ?? String(threadsPerWorker(o.nprocPerNode));
  const say = (s: string) => err.write(`crunet launch: ${s}\n`);
  const wrapper = pdeathsigWrapper();

  const workers: Worker[] = [];
  let failure: LaunchResult['failure'];
  let stoppedBy: NodeJS.Signals | undefined;
  let stopAll: ((why: string) => void) | undefined;

  for (let localRank = 0; localRank < o.nprocPerNode; localRank++) {
    const rank = c.nodeRank * o.nprocPerNode + localRank;
    const env: NodeJS.ProcessEnv = {
      ...baseEnv,
      RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(localRank), LOCAL_WORLD_SIZE: String(o.nprocPerNode),
      GROUP_RANK: String(c.nodeRank), MASTER_ADDR: c.masterAddr, MASTER_PORT: String(c.masterPort), OMP_NUM_THREADS: threads, CRUNET_LAUNCHED: '1',
      // worker-preload.ts compares it with its parent's pid: a launcher that died before the wrapper set
      // the parent-death signal has left the worker to init already.
      CRUNET_LAUNCHER_PID: String(process.pid),
    };
    // Its own process group (detached), so that stopping it reaches whatever it started; the terminal's
    // Ctrl-C reaches the launcher, which stops every worker in order.
    const argv = [process.execPath, ...preloadArgs(), ...o.command];
    const child = wrapper
      ? spawn(wrapper, ['--pdeathsig', 'KILL', '--', ...argv], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true })
      : spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true });
    const w: Worker = { rank, localRank, child, tail: [], lastBeat: Date.now(), stopping: false, done: Promise.resolve() };
    const pipe = (stream: NodeJS.ReadableStream, to: NodeJS.WritableStream) => {
      // readline also ends a line at a lone \r (a progress bar redrawing itself): each redraw is then a
      // line of its own, prefixed like any other.
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (line) => {
        to.write(`[rank${rank}]: ${line}\n`);
        w.tail.push(line);
        if (w.tail.length > c.tailLines) w.tail.shift();
      });
      return new Promise<void>((resolve) => lines.on('close', resolve));
    };
    const piped = Promise.all([pipe(child.stdout!, out), pipe(child.stderr!, err)]);
    child.on('message', (m) => {
      if (m === HEARTBEAT) w.lastBeat = Date.now();
    });
    w.done = new Promise<void>((resolve) => {
      child.on('error', (e) => {
        // Not started (or not signalable): a failure of the job like any other.
        if (!w.exited) w.exited = { code: 127, signal: null };
        if (!failure && !stoppedBy) failure = { rank, reason: `could not be started: ${e.message}` };
        stopAll?.(`rank ${rank} could not be started`);
        resolve();
      });
      child.on('exit', (code, signal) => {
        w.exited = { code, signal };
        // The first rank to fail is the one named: the others often fail after it (a peer gone mid-collective).
        if (!w.stopping && !failure && !stoppedBy && (code !== 0 || signal)) {
          failure = { rank, reason: describeExit(w.exited) };
          stopAll?.(`rank ${rank} ${failure.reason}`);
        }
        // The output of an exited worker is complete once its pipes close: only then is its tail whole. A
        // process it left behind may hold them open: its tail is then what came within PIPE_WAIT_MS.
        void Promise.race([piped, new Promise((r) => setTimeout(r, PIPE_WAIT_MS).unref())]).then(() => resolve());
      });
    });
    workers.push(w);
  }
  o.onStarted?.(workers.map((w) => w.child.pid!).filter((p) => p !== undefined));

  // The worker's whole process group, also once the worker itself has exited: what it started there
  // (a shell's sleep, a data-loading helper) must not outlive the job.
  const signalGroup = (w: Worker, sig: NodeJS.Signals) => {
    if (w.child.pid === undefined) return;
    try {
      process.kill(-w.child.pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return; // the group is empty
      if (w.exited) return;
      try {
        w.child.kill(sig);
      } catch {
        // already gone
      }
    }
  };
  let killTimer: NodeJS.Timeout | undefined;
  stopAll = (why: string) => {
    const live = workers.filter((w) => !w.exited && !w.stopping);
    if (!live.length) return;
    say(`${why}: stopping rank${live.length > 1 ? 's' : ''} ${live.map((w) => w.rank).join(', ')}`);
    for (const w of live) {
      w.stopping = true;
      signalGroup(w, 'SIGTERM');
    }
    killTimer ??= setTimeout(() => {
      for (const w of workers) signalGroup(w, 'SIGKILL');
    }, c.graceMs);
  };

  const onSignal = (sig: NodeJS.Signals) => {
    if (stoppedBy || failure) {
      // A second signal, or one during a failure's grace period: no grace period.
      const live = workers.filter((w) => !w.exited);
      if (live.length) say(`${sig}: killing rank${live.length > 1 ? 's' : ''} ${live.map((w) => w.rank).join(', ')} now`);
      for (const w of workers) signalGroup(w, 'SIGKILL');
      return;
    }
    stoppedBy = sig;
    stopAll!(`${sig}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // The last resort: whatever ends this process synchronously (an uncaught error) still kills the workers.
  const onExit = () => {
    for (const w of workers) signalGroup(w, 'SIGKILL');
  };
  process.on('exit', onExit);

  const hangCheck = c.hangTimeoutMs > 0 ? setInterval(() => {
    if (failure || stoppedBy) return;
    const now = Date.now();
    const hung = workers.find((w) => !w.exited && !w.stopping && now - w.lastBeat > c.hangTimeoutMs);
    if (hung) {
      failure = { rank: hung.rank, reason: `sent no heartbeat for ${((now - hung.lastBeat) / 1000).toFixed(0)} s (--hang-timeout ${c.hangTimeoutMs / 1000} s): its JavaScript thread is stuck` };
      stopAll!(`rank ${hung.rank} ${failure.reason}`);
    }
  }, Math.min(1000, c.hangTimeoutMs)) : undefined;

  try {
    await Promise.all(workers.map((w) => w.done));
  } finally {
    // Whatever a worker left running in its process group ends with the job.
    for (const w of workers) signalGroup(w, 'SIGKILL');
    if (hangCheck) clearInterval(hangCheck);
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('exit', onExit);
    // Pipes a worker's leftover process still holds would keep this process alive.
    for (const w of workers) {
      w.child.stdout?.destroy();
      w.child.stderr?.destroy();
    }
  }

  if (failure) {
    const w = workers.find((x) => x.rank === failure!.rank)!;
    const others = workers.filter((x) => x !== w && x.exited).map((x) => `rank ${x.rank} ${describeExit(x.exited!)}`);
    say(`the job failed: rank ${w.rank} (local rank ${w.localRank} on ${os.hostname()}, pid ${w.child.pid}) ${failure.reason}` +
      (others.length ? `; then ${others.join(', ')}` : ''));
    say(w.tail.length ? `rank ${w.rank}'s last ${w.tail.length === 1 ? 'line' : `${w.tail.length} lines`}:\n${w.tail.map((l) => `  ${l}`).join('\n')}` : `rank ${w.rank} printed nothing`);
    const e = w.exited;
    const code = failure.reason.startsWith('sent no heartbeat') || failure.reason.startsWith('could not be started') || !e ? 1
      : e.signal ? 128 + (os.constants.signals[e.signal] ?? 0) : e.code || 1;
    return { code, failure };
  }
  if (stoppedBy) {
    say(`stopped by ${stoppedBy}: ${workers.map((w) => `rank ${w.rank} ${describeExit(w.exited!)}`).join(', ')}`);
    return { code: 128 + os.constants.signals[stoppedBy] };
  }
  return { code: 0 };
}
