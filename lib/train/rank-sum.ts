// Sums of statistics over the ranks of a data-parallel job, for the Trainer: each rank scores its own part
// of the data, and the job's loss and accuracy are the sums of the parts' counts and loss x count divided
// once at the end (a mean of the ranks' means would weigh a rank with fewer samples as much as the others).
/** What the Trainer needs of a process group (crunet.dist's ProcessGroup has it). */
export interface RankSum {
  readonly rank: number;
  readonly worldSize: number;
  /** Sums `values` over the ranks, in place. */
  allreduce(values: Float64Array, op?: 'sum'): Promise<void>;
}

/**
 * The element-wise sums of `values` over every rank (each rank passes its own, in the same order). In
 * float64: counts up to 2^53 stay exact.
 */
export async function sumOverRanks(group: RankSum, values: number[]): Promise<number[]> {
  const buf = Float64Array.from(values);
  await group.allreduce(buf, 'sum');
  return Array.from(buf);
}
