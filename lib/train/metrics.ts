// Classification metrics computed from logits in TypeScript: evaluation runs once per epoch over at most
// a few hundred thousand logits, so this is not a hot path (training steps get theirs from native code).

export interface Score {
  /** Summed cross-entropy over the samples (divide by count for the mean). */
  lossSum: number;
  top1: number;
  top5: number;
  count: number;
}

export function emptyScore(): Score {
  return { lossSum: 0, top1: 0, top5: 0, count: 0 };
}

/**
 * Adds the first n rows of logits [n, classes] to `into`, less the rows in `skip`: softmax cross-entropy
 * (log-sum-exp with the max subtracted), top-1 and top-5. Ties rank to the lower class index, as the native
 * loss's argmax does, so top-1 is exactly rank 0 and a constant output is not "correct" for every label; a
 * NaN logit for the label counts as wrong. (The native loss's own top-k count, step()'s topkCorrect, still
 * lets ties favour the label.)
 */
export function scoreLogits(into: Score, logits: Float32Array, labels: Int32Array, n: number, classes: number, skip?: ReadonlySet<number>): Score {
  for (let i = 0; i < n; i++) {
    if (skip?.has(i)) continue;
    const row = i * classes;
    const label = labels[i]!;
    if (!(label >= 0 && label < classes)) throw new RangeError(`score: label ${label} of sample ${i} is outside [0, ${classes})`);
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, logits[row + k]!);
    let sum = 0;
    let rank = 0;
    const mine = logits[row + label]!;
    for (let k = 0; k < classes; k++) {
      const v = logits[row + k]!;
      sum += Math.exp(v - max);
      if (v > mine || (v === mine && k < label)) rank++;
    }
    into.lossSum += Math.log(sum) + max - mine;
    if (!Number.isNaN(mine)) {
      if (rank === 0) into.top1++;
      if (rank < 5) into.top5++;
    }
    into.count++;
  }
  return into;
}

/**
 * Test-time augmentation's combination: the log of the mean softmax over several views' logits
 * (each [n, classes]). Log-probabilities are themselves logits, so the result goes to scoreLogits.
 */
export function meanSoftmaxLogits(views: readonly Float32Array[], n: number, classes: number): Float32Array {
  const out = new Float32Array(n * classes);
  const p = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    p.fill(0);
    for (const logits of views) {
      const row = i * classes;
      let max = -Infinity, sum = 0;
      for (let k = 0; k < classes; k++) max = Math.max(max, logits[row + k]!);
      for (let k = 0; k < classes; k++) sum += Math.exp(logits[row + k]! - max);
      for (let k = 0; k < classes; k++) p[k] += Math.exp(logits[row + k]! - max) / sum / views.length;
    }
    for (let k = 0; k < classes; k++) out[i * classes + k] = Math.log(p[k]!);
  }
  return out;
}
