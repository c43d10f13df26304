export { checkProcessGroupOptions, initProcessGroup } from './process-group.js';
export type { Backend, ProcessGroup, ProcessGroupOptions, ReduceOp } from './process-group.js';
export { DIST_ENV_VARS, isDistributedEnv, readDistEnv } from './env.js';
export type { DistEnv } from './env.js';
export { initFromEnv } from './init-env.js';
export { DEFAULT_MASTER_PORT, launch, threadsPerWorker } from './launch.js';
export type { LaunchOptions, LaunchResult } from './launch.js';
