// One rank's part of an epoch in a data-parallel job, as PyTorch's DistributedSampler cuts it: every rank
// computes the same epoch order from (seed, epoch) (rng.ts's epochOrder), and rank r takes the positions
// r, r + W, r + 2W, ... of it (W ranks). The ranks' parts are disjoint and, together, the whole order; the
// batches that rank r forms from its part, put side by side across the ranks, are exactly the batches of
// one process at W times the batch size. What happens to the n mod W samples at the end:
//
// - 'pad' (DistributedSampler's default): the order is extended by wrapping around to its start until
//   every rank has ceil(n / W) samples; a few samples are seen twice an epoch.
// - 'drop' (drop_last=True): the order is cut to floor(n / W) x W samples; every rank has floor(n / W), the
//   last n mod W samples of this epoch's order are not seen (they are others in other epochs when shuffled).
// - 'uneven': no sample added or left out; the first n mod W ranks have one sample more. For evaluation,
//   where every sample must count exactly once (the ranks' counts are then summed, lib/train/trainer.ts).
//
// A sample's augmentation is keyed on (seed, epoch, sample index) (rng.ts), so it is the same whichever
// rank reads it.

export type ShardTail = 'pad' | 'drop' | 'uneven';

export interface ShardOptions {
  /** This process's rank, in [0, worldSize). */
  rank: number;
  worldSize: number;
  /** What the samples left over by an uneven split become (default 'pad', as DistributedSampler). */
  tail?: ShardTail;
}

/** The options checked, with their default: a RangeError or TypeError naming the bad field. */
export function checkShard(s: ShardOptions, where: string): Required<ShardOptions> {
  if (!s || typeof s !== 'object') throw new TypeError(`${where}: expected shard to be {rank, worldSize, tail?}, but received ${JSON.stringify(s)}`);
  const { rank, worldSize, tail = 'pad' } = s;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`${where}: expected shard.worldSize to be a positive integer, but received ${JSON.stringify(worldSize)}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`${where}: expected shard.rank to be an integer in [0, ${worldSize - 1}], but received ${JSON.stringify(rank)}`);
  if (tail !== 'pad' && tail !== 'drop' && tail !== 'uneven') throw new RangeError(`${where}: expected shard.tail 'pad', 'drop' or 'uneven', but received ${JSON.stringify(tail)}`);
  return { rank, worldSize, tail };
}

/** How many samples of n a rank gets. */
export function shardLength(n: number, s: Required<ShardOptions>): number {
  const { rank, worldSize: w, tail } = s;
  if (tail === 'pad') return Math.ceil(n / w);
  if (tail === 'drop') return Math.floor(n / w);
  return Math.floor(n / w) + (rank < n % w ? 1 : 0);
}

/** Rank s.rank's part of an epoch's order (see the top of this file). */
export function shardOrder(order: Int32Array, s: Required<ShardOptions>): Int32Array {
  const n = order.length, { rank, worldSize: w } = s;
  const out = new Int32Array(shardLength(n, s));
  // Position rank + k W of the (padded or cut) order; a padded position p >= n wraps to p mod n.
  for (let k = 0; k < out.length; k++) out[k] = order[(rank + k * w) % n]!;
  return out;
}
