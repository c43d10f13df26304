// The environment of the processes tests start: the test runner's, without what would change a child's behaviour.
/**
 * Variables of the environment the tests run in that would change what a child does (its threads, or a
 * plain run taken for a rank of a job): removed from every child's environment unless a test sets them.
 */
export const CLEARED_ENV = ['OMP_NUM_THREADS', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;

/** process.env without CLEARED_ENV, with `extra` over it. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of CLEARED_ENV) delete env[k];
  return { ...env, ...extra };
}
