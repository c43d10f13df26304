// Joining a job from the environment a launcher gives its workers (torchrun's init_method env://).
import { readDistEnv } from './env.js';
import { initProcessGroup, type Backend, type ProcessGroup } from './process-group.js';

/**
 * The process group of this worker's job, from RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (set by
 * `crunet launch`, `crunet train --nproc-per-node` or a scheduler; lib/dist/env.ts names a missing or bad
 * variable). readDistEnv() gives the rest of the worker's place (its local rank: which device to take).
 */
export async function initFromEnv(opts: { backend?: Backend; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessGroup> {
  const e = readDistEnv(opts.env ?? process.env);
  return initProcessGroup({
    rank: e.rank, worldSize: e.worldSize, masterAddr: e.masterAddr, masterPort: e.masterPort,
    ...(opts.backend !== undefined ? { backend: opts.backend } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
}
