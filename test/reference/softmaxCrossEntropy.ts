// Reference softmax cross-entropy (PyTorch's F.cross_entropy with reduction='mean'), float64.
// logits[N,K], labels i32[N] -> loss = mean over n of (logsumexp(logits[n]) - logits[n, label]).
// Label smoothing e (PyTorch's label_smoothing): the target is (1 - e) onehot(label) + e / K, so
// loss = mean over n of (logsumexp(logits[n]) - (1 - e) logits[n, label] - e mean_j logits[n, j]).
//
// Soft targets t[N,K] (PyTorch's F.cross_entropy with probability targets, e.g. mixup's): the target is
// t' = (1 - e) t + e / K and loss = mean over n of -sum_j t'_j log softmax(logits[n])_j; the labels still
// give the counts. Its gradient is (softmax sum_j t'_j - t') / N.
//
// Counts, as step() reports them:
//   correct:     argmax(logits[n]) == label, the argmax taking the LOWEST index among ties;
//   topkCorrect: fewer than k logits are strictly greater than the label's logit (ties favour the label).

export interface CrossEntropyResult {
  loss: number;
  correct: number;
  topkCorrect: number;
  /** softmax(logits), [N,K]: what backward needs. */
  probs: Float64Array;
}

export function softmaxCrossEntropyForward(
  logits: Float64Array, labels: Int32Array, n: number, k: number, topk = 0, smoothing = 0, targets?: Float64Array,
): CrossEntropyResult {
  const probs = new Float64Array(n * k);
  let loss = 0, correct = 0, topkCorrect = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, (i + 1) * k);
    const label = labels[i]!;
    if (!(label >= 0 && label < k)) throw new Error(`softmaxCrossEntropy reference: label ${label} out of [0,${k})`);
    let max = -Infinity, argmax = 0;
    for (let j = 0; j < k; j++) if (row[j]! > max) { max = row[j]!; argmax = j; }
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(row[j]! - max);
    for (let j = 0; j < k; j++) probs[i * k + j] = Math.exp(row[j]! - max) / sum;
    let mean = 0;
    for (let j = 0; j < k; j++) mean += row[j]! / k;
    if (targets) {
      for (let j = 0; j < k; j++) {
        const t = (1 - smoothing) * targets[i * k + j]! + smoothing / k;
        if (t !== 0) loss -= t * (row[j]! - max - Math.log(sum));
      }
    } else {
      loss += max + Math.log(sum) - (1 - smoothing) * row[label]! - smoothing * mean;
    }
    if (argmax === label) correct++;
    let greater = 0;
    for (let j = 0; j < k; j++) if (row[j]! > row[label]!) greater++;
    if (topk > 0 && greater < topk) topkCorrect++;
  }
  return { loss: loss / n, correct, topkCorrect, probs };
}

/**
 * dlogits = (softmax - target) / N * seed, target = (1 - e) onehot(label) + e / K, where seed is
 * dL_total/dloss (1 for a plain loss).
 */
export function softmaxCrossEntropyBackward(
  probs: Float64Array, labels: Int32Array, n: number, k: number, seed = 1, smoothing = 0, targets?: Float64Array,
): Float64Array {
  const d = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const target = (j: number) => (1 - smoothing) * (targets ? targets[i * k + j]! : j === labels[i] ? 1 : 0) + smoothing / k;
    let total = 0;
    for (let j = 0; j < k; j++) total += target(j);
    for (let j = 0; j < k; j++) d[i * k + j] = ((probs[i * k + j]! * total - target(j)) / n) * seed;
  }
  return d;
}
