// CPU threads for the commands that compute (train, eval, bench): how many (the wait policy is the engine's: lib/engine/native.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { setNumThreads } from '../engine/index.js';
import { intFlag } from './flags.js';

/**
 * The CPUs this process may really use: the affinity mask (os.availableParallelism() reads
 * sched_getaffinity) capped by a cgroup CPU quota (cgroup v2 cpu.max, or v1 cfs_quota_us / cfs_period_us),
 * rounded down and at least 1. A container limited to 1.5 CPUs on a 64-core host gets 1, not 64.
 */
export function availableCpus(root = '/sys/fs/cgroup'): number {
  const quota = cgroupCpuQuota(root);
  return Math.max(1, Math.min(os.availableParallelism(), quota === undefined ? Infinity : Math.floor(quota)));
}

/** The cgroup CPU quota in CPUs, or undefined when there is none (or no cgroup file system to read). */
export function cgroupCpuQuota(root = '/sys/fs/cgroup'): number | undefined {
  const read = (f: string) => {
    try {
      return fs.readFileSync(`${root}/${f}`, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const v2 = read('cpu.max')?.split(/\s+/); // "max 100000" or "150000 100000"
  if (v2 && v2[0] !== 'max') {
    const [q, p] = v2.map(Number);
    if (q! > 0 && p! > 0) return q! / p!;
  }
  const q1 = Number(read('cpu/cpu.cfs_quota_us') ?? read('cpu,cpuacct/cpu.cfs_quota_us'));
  const p1 = Number(read('cpu/cpu.cfs_period_us') ?? read('cpu,cpuacct/cpu.cfs_period_us'));
  if (q1 > 0 && p1 > 0) return q1 / p1;
  return undefined;
}

/** The most --threads accepted: OpenMP starts every thread it is asked for, and a typo such as 10000 would
 * exhaust the process's thread limit instead of failing as a usage error. */
export const MAX_THREADS = 1024;

/** --threads: the flag's value, else every CPU available to the process. Returns the count set. */
export function applyThreads(flag: string | number | undefined): number {
  const n = typeof flag === 'number' ? flag : intFlag(flag, '--threads', 1, MAX_THREADS) ?? availableCpus();
  setNumThreads(n);
  return n;
}

/** The --threads line of a command's help, its description starting at `column`. */
export function threadsHelp(column: number): string {
  const pad = ' '.repeat(column);
  return '--threads N'.padEnd(column - 2) + 'CPU threads for the kernels (default: the CPUs available to the process:\n' +
    `${pad}its affinity mask and cgroup CPU quota)`;
}
