// Reference batch normalisation (PyTorch's nn.BatchNorm2d / BatchNorm1d), float64.
// x is [N,C,H,W] (spatial = H*W) or [N,F] (spatial = 1); statistics are per channel over N and spatial.
//
// Training:  mean, var = batch mean and BIASED variance (divide by m = N*spatial);
//            y = gamma * (x - mean) / sqrt(var + eps) + beta;
//            running_mean = (1 - momentum) * running_mean + momentum * mean;
//            running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (UNBIASED).
// Inference: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
// PyTorch's momentum (default 0.1) is 1 - MXNet's momentum (default 0.9).

export interface BatchNormGeometry {
  n: number;
  c: number;
  /** H*W for rank-4 input, 1 for [N,F]. */
  spatial: number;
}

export interface BatchNormTrainResult {
  y: Float64Array;
  /** Batch mean and biased variance per channel (what backward needs, with invStd). */
  mean: Float64Array;
  variance: Float64Array;
  invStd: Float64Array;
  runningMean: Float64Array;
  runningVar: Float64Array;
}

const at = (g: BatchNormGeometry, b: number, ch: number, s: number) => (b * g.c + ch) * g.spatial + s;

export function batchNormTrainForward(
  x: Float64Array, gamma: Float64Array, beta: Float64Array, runningMean: Float64Array, runningVar: Float64Array,
  g: BatchNormGeometry, momentum: number, eps: number,
): BatchNormTrainResult {
  const { n, c, spatial } = g;
  const m = n * spatial;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(c), variance = new Float64Array(c), invStd = new Float64Array(c);
  const rm = new Float64Array(c), rv = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let s1 = 0;
    for (let b = 0; b < n; b++) for (let s = 0; s < spatial; s++) s1 += x[at(g, b, ch, s)]!;
    const mu = s1 / m;
    let s2 = 0;
    for (let b = 0; b < n; b++) for (let s = 0; s < spatial; s++) s2 += (x[at(g, b, ch, s)]! - mu) ** 2;
    const v = s2 / m;
    const is = 1 / Math.sqrt(v + eps);
    mean[ch] = mu; variance[ch] = v; invStd[ch] = is;
    for (let b = 0; b < n; b++) {
      for (let s = 0; s < spatial; s++) {
        const i = at(g, b, ch, s);
        y[i] = gamma[ch]! * (x[i]! - mu) * is + beta[ch]!;
      }
    }
    rm[ch] = (1 - momentum) * runningMean[ch]! + momentum * mu;
    // PyTorch raises for m == 1 in training; the unbiased estimate is undefined there.
    rv[ch] = (1 - momentum) * runningVar[ch]! + momentum * (m > 1 ? (v * m) / (m - 1) : NaN);
  }
  return { y, mean, variance, invStd, runningMean: rm, runningVar: rv };
}

export function batchNormInferForward(
  x: Float64Array, gamma: Float64Array, beta: Float64Array, runningMean: Float64Array, runningVar: Float64Array,
  g: BatchNormGeometry, eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let b = 0; b < g.n; b++) {
    for (let ch = 0; ch < g.c; ch++) {
      const is = 1 / Math.sqrt(runningVar[ch]! + eps);
      for (let s = 0; s < g.spatial; s++) {
        const i = at(g, b, ch, s);
        y[i] = gamma[ch]! * (x[i]! - runningMean[ch]!) * is + beta[ch]!;
      }
    }
  }
  return y;
}

/**
 * Vector-Jacobian product of batchNormTrainForward (batch statistics depend on x), with
 * xhat = (x - mean) * invStd and dxhat = dy * gamma:
 *   dbeta = sum dy;  dgamma = sum dy * xhat;
 *   dx = invStd / m * (m * dxhat - sum dxhat - xhat * sum(dxhat * xhat))
 */
export function batchNormTrainBackward(
  x: Float64Array, gamma: Float64Array, dy: Float64Array, mean: Float64Array, invStd: Float64Array, g: BatchNormGeometry,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { n, c, spatial } = g;
  const m = n * spatial;
  const dx = new Float64Array(x.length), dgamma = new Float64Array(c), dbeta = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let sdy = 0, sdyx = 0;
    for (let b = 0; b < n; b++) {
      for (let s = 0; s < spatial; s++) {
        const i = at(g, b, ch, s);
        sdy += dy[i]!;
        sdyx += dy[i]! * (x[i]! - mean[ch]!) * invStd[ch]!;
      }
    }
    dbeta[ch] = sdy;
    dgamma[ch] = sdyx;
    const gm = gamma[ch]!, is = invStd[ch]!;
    for (let b = 0; b < n; b++) {
      for (let s = 0; s < spatial; s++) {
        const i = at(g, b, ch, s);
        const xhat = (x[i]! - mean[ch]!) * is;
        dx[i] = ((gm * is) / m) * (m * dy[i]! - sdy - xhat * sdyx);
      }
    }
  }
  return { dx, dgamma, dbeta };
}

/** Vector-Jacobian product of batchNormInferForward (running statistics are constants). */
export function batchNormInferBackward(
  x: Float64Array, gamma: Float64Array, dy: Float64Array, runningMean: Float64Array, runningVar: Float64Array,
  g: BatchNormGeometry, eps: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const dx = new Float64Array(x.length), dgamma = new Float64Array(g.c), dbeta = new Float64Array(g.c);
  for (let b = 0; b < g.n; b++) {
    for (let ch = 0; ch < g.c; ch++) {
      const is = 1 / Math.sqrt(runningVar[ch]! + eps);
      for (let s = 0; s < g.spatial; s++) {
        const i = at(g, b, ch, s);
        dx[i] = dy[i]! * gamma[ch]! * is;
        dgamma[ch] += dy[i]! * (x[i]! - runningMean[ch]!) * is;
        dbeta[ch] += dy[i]!;
      }
    }
  }
  return { dx, dgamma, dbeta };
}
