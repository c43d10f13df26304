// `crunet train` as one rank of a data-parallel job (README "Training on several processes / machines"):
// the process joins the job when its environment names one (lib/dist/env.ts), trains on its part of every
// batch (lib/data/shard.ts), and leaves the run directory to rank 0.
//
// --batch-size is each process's batch, PyTorch's convention: W processes at batch B train on global batches
// of W x B, the samples one process at W x B would take (shard.ts). A checkpoint records the world size, so
// that a run resumed on another one keeps its global batch: each process then takes W_old x B_old / W_new.
import type { CheckpointInfo } from '../train/checkpoint.js';
import { isDistributedEnv, readDistEnv } from '../dist/env.js';
import { initFromEnv } from '../dist/init-env.js';
import type { ProcessGroup } from '../dist/process-group.js';
import { usage, UsageError } from './errors.js';

export interface TrainRank {
  group: ProcessGroup;
  rank: number;
  worldSize: number;
  /** Rank 0: the one that prints, logs and writes checkpoints. */
  root: boolean;
}

/**
 * This process's place in a job, joined; undefined when the environment names no job (a plain run).
 * `timeoutMs`: the group's collective timeout (--dist-timeout; the process group's default when undefined).
 */
export async function joinJobFromEnv(timeoutMs?: number): Promise<TrainRank | undefined> {
  if (!isDistributedEnv()) return undefined;
  const e = usage(() => readDistEnv());
  const group = await initFromEnv(timeoutMs !== undefined ? { timeoutMs } : {});
  return { group, rank: e.rank, worldSize: e.worldSize, root: e.rank === 0 };
}

/**
 * A launched worker's CPU threads when neither --threads nor a checkpoint says: the launcher's share
 * (OMP_NUM_THREADS, lib/dist/launch.ts); undefined for a plain run.
 */
export function launchedThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (!isDistributedEnv(env) || env.OMP_NUM_THREADS === undefined) return undefined;
  const n = Number(env.OMP_NUM_THREADS);
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

/** The world size a checkpoint's run had (1 for one written by a single process). */
export function storedWorldSize(meta: CheckpointInfo): number {
  return typeof meta.worldSize === 'number' ? meta.worldSize : 1;
}

/**
 * The thread count a resumed run takes from its checkpoint: the recorded one only on the world size it was
 * recorded on (what makes the run continue bit for bit). On another world size the results differ anyway,
 * and a count chosen for W_old processes on the machine would oversubscribe it with more: the launcher's
 * share (launchedThreads) or the plain default applies instead.
 */
export function resumedThreads(recorded: number | undefined, meta: CheckpointInfo, worldSize: number): number | undefined {
  return storedWorldSize(meta) === worldSize ? recorded : undefined;
}

/**
 * Each process's batch for a run resumed on `worldSize` processes: the checkpoint's global batch shared
 * out (a UsageError when it does not divide). The same world size keeps the batch as it was.
 */
export function resumedBatchSize(meta: CheckpointInfo, ckptPath: string, batchSize: number, worldSize: number): number {
  const was = storedWorldSize(meta);
  if (was === worldSize) return batchSize;
  const global = batchSize * was;
  if (global % worldSize !== 0) {
    throw new UsageError(`--resume: ${ckptPath} is from a run of ${was} process${was > 1 ? 'es' : ''} at batch ${batchSize} (global batch ${global}), ` +
      `which ${worldSize} processes cannot share equally: resume it on a world size that divides ${global}`);
  }
  return global / worldSize;
}
