// The environment a distributed worker is started with, by `crunet launch` (lib/dist/launch.ts), by
// `crunet train --nproc-per-node N` or by a cluster scheduler: PyTorch's names, so that its users need no
// new habits (torchrun sets the same variables).

/** A worker's place in the job, as the launcher's environment says. */
export interface DistEnv {
  /** 0 .. worldSize - 1, unique in the job. */
  rank: number;
  worldSize: number;
  /** The worker's index on its machine: 0 .. localWorldSize - 1. */
  localRank: number;
  localWorldSize: number;
  /** Where rank 0 runs the rendezvous. */
  masterAddr: string;
  masterPort: number;
}

/** The variables readDistEnv() reads; the launcher sets every one. */
export const DIST_ENV_VARS = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;

/**
 * Whether this process was started as a distributed worker: the environment names both a rank and a world
 * size. WORLD_SIZE alone is not enough (container images export it for their own reasons), and a world of
 * one with no MASTER_ADDR is a plain run: there is nobody to meet.
 */
export function isDistributedEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.RANK === undefined || env.WORLD_SIZE === undefined) return false;
  return !(env.WORLD_SIZE.trim() === '1' && env.MASTER_ADDR === undefined);
}

/**
 * The worker's rank, world size, local rank and master from the environment. A missing variable is a
 * TypeError, a malformed or inconsistent one a RangeError, each naming the variable and what it holds.
 * LOCAL_RANK and LOCAL_WORLD_SIZE may be absent when a scheduler starts one process per machine: they then
 * default to 0 and 1.
 */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  const where = 'distributed environment';
  const raw = (name: string, required: boolean): string | undefined => {
    const v = env[name];
    if (v === undefined && required) {
      throw new TypeError(`${where}: expected ${name} to be set (crunet launch sets ${DIST_ENV_VARS.join(', ')}), but it is not set`);
    }
    return v;
  };
  const int = (name: string, min: number, max: number, fallback?: number): number => {
    const v = raw(name, fallback === undefined);
    if (v === undefined) return fallback!;
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new RangeError(`${where}: expected ${name} to be an integer in [${min}, ${max}], but received '${v}'`);
    }
    return n;
  };
  const worldSize = int('WORLD_SIZE', 1, 1 << 20);
  const rank = int('RANK', 0, worldSize - 1);
  const localWorldSize = int('LOCAL_WORLD_SIZE', 1, worldSize, 1);
  const localRank = int('LOCAL_RANK', 0, localWorldSize - 1, 0);
  const masterAddr = raw('MASTER_ADDR', true)!.trim();
  if (masterAddr === '') throw new RangeError(`${where}: expected MASTER_ADDR to be a host name or address, but received an empty string`);
  const masterPort = int('MASTER_PORT', 1, 65535);
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort };
}
