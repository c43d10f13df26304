// Reference pooling (PyTorch's max_pool2d / avg_pool2d with ceil_mode=false, and adaptive_avg_pool2d(1)),
// float64, NCHW. Forward and backward side by side.
//
// maxPool: padding counts as -inf; the gradient goes to the FIRST maximum of the window in row-major
//   order (PyTorch's CPU kernel replaces the running max only on a strictly greater value).
// avgPool: count_include_pad=true divides by kh*kw (padding counts as zeros); false divides by the
//   number of real input elements in the window.
// globalAvgPool: [N,C,H,W] -> [N,C], the mean over H*W.

export interface PoolGeometry {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number;
  oh: number; ow: number;
}

export interface PoolOptions {
  kernel: number | [number, number];
  /** Defaults to the kernel, as in PyTorch. */
  stride?: number | [number, number];
  padding?: number | [number, number];
}

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

export function poolGeometry(n: number, c: number, h: number, w: number, opts: PoolOptions): PoolGeometry {
  const [kh, kw] = pair(opts.kernel);
  const [sh, sw] = pair(opts.stride ?? opts.kernel);
  const [ph, pw] = pair(opts.padding ?? 0);
  if (2 * ph > kh || 2 * pw > kw) throw new Error('pool reference: padding must be at most half the kernel');
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (oh <= 0 || ow <= 0) throw new Error('pool reference: input too small for the kernel');
  return { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow };
}

/** x[N,C,H,W] -> y[N,C,OH,OW] and, per output, the flat index into x of the chosen maximum. */
export function maxPoolForward(x: Float64Array, g: PoolGeometry): { y: Float64Array; argmax: Int32Array } {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = g;
  const y = new Float64Array(n * c * oh * ow);
  const argmax = new Int32Array(y.length);
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let best = -Infinity, where = -1;
        for (let ki = 0; ki < kh; ki++) {
          const yi = i * sh - ph + ki;
          if (yi < 0 || yi >= h) continue;
          for (let kj = 0; kj < kw; kj++) {
            const xj = j * sw - pw + kj;
            if (xj < 0 || xj >= w) continue;
            const idx = (p * h + yi) * w + xj;
            if (x[idx]! > best || where < 0) { best = x[idx]!; where = idx; }
          }
        }
        const out = (p * oh + i) * ow + j;
        y[out] = best;
        argmax[out] = where;
      }
    }
  }
  return { y, argmax };
}

/** dx[argmax[k]] += dy[k]. */
export function maxPoolBackward(dy: Float64Array, argmax: Int32Array, inputSize: number): Float64Array {
  const dx = new Float64Array(inputSize);
  for (let k = 0; k < dy.length; k++) dx[argmax[k]!] += dy[k]!;
  return dx;
}

/** The divisor PyTorch uses for one window (ceil_mode=false, so windows never pass the padded edge). */
function avgDivisor(g: PoolGeometry, i: number, j: number, countIncludePad: boolean): number {
  if (countIncludePad) return g.kh * g.kw;
  const h0 = Math.max(i * g.sh - g.ph, 0), h1 = Math.min(i * g.sh - g.ph + g.kh, g.h);
  const w0 = Math.max(j * g.sw - g.pw, 0), w1 = Math.min(j * g.sw - g.pw + g.kw, g.w);
  return (h1 - h0) * (w1 - w0);
}

export function avgPoolForward(x: Float64Array, g: PoolGeometry, countIncludePad: boolean): Float64Array {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = g;
  const y = new Float64Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let acc = 0;
        for (let ki = 0; ki < kh; ki++) {
          const yi = i * sh - ph + ki;
          if (yi < 0 || yi >= h) continue;
          for (let kj = 0; kj < kw; kj++) {
            const xj = j * sw - pw + kj;
            if (xj >= 0 && xj < w) acc += x[(p * h + yi) * w + xj]!;
          }
        }
        y[(p * oh + i) * ow + j] = acc / avgDivisor(g, i, j, countIncludePad);
      }
    }
  }
  return y;
}

/** Each window spreads dy / divisor over its real input elements. */
export function avgPoolBackward(dy: Float64Array, g: PoolGeometry, countIncludePad: boolean): Float64Array {
  const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = g;
  const dx = new Float64Array(n * c * h * w);
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const d = dy[(p * oh + i) * ow + j]! / avgDivisor(g, i, j, countIncludePad);
        for (let ki = 0; ki < kh; ki++) {
          const yi = i * sh - ph + ki;
          if (yi < 0 || yi >= h) continue;
          for (let kj = 0; kj < kw; kj++) {
            const xj = j * sw - pw + kj;
            if (xj >= 0 && xj < w) dx[(p * h + yi) * w + xj] += d;
          }
        }
      }
    }
  }
  return dx;
}

/** x[N,C,H,W] -> y[N,C] (spatial = H*W). */
export function globalAvgPoolForward(x: Float64Array, n: number, c: number, spatial: number): Float64Array {
  const y = new Float64Array(n * c);
  for (let p = 0; p < n * c; p++) {
    let acc = 0;
    for (let s = 0; s < spatial; s++) acc += x[p * spatial + s]!;
    y[p] = acc / spatial;
  }
  return y;
}

/** dx[n,c,h,w] = dy[n,c] / (H*W). */
export function globalAvgPoolBackward(dy: Float64Array, n: number, c: number, spatial: number): Float64Array {
  const dx = new Float64Array(n * c * spatial);
  for (let p = 0; p < n * c; p++) for (let s = 0; s < spatial; s++) dx[p * spatial + s] = dy[p]! / spatial;
  return dx;
}
