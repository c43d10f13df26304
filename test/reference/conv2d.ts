// Reference 2-D convolution (PyTorch's nn.Conv2d: cross-correlation, zero padding, groups, optional
// bias), float64, NCHW. conv2dForward and conv2dBackward side by side, as llm.c lays out its layers.

/** Every size a convolution needs; conv2dGeometry derives the output size. */
export interface ConvGeometry {
  n: number; c: number; h: number; w: number;  // input x[N,C,H,W]
  o: number; kh: number; kw: number;           // weight [O, C/groups, kh, kw]
  sh: number; sw: number; ph: number; pw: number;
  groups: number;
  oh: number; ow: number;                      // output y[N,O,OH,OW]
}

export interface ConvOptions {
  outChannels: number;
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

export function conv2dGeometry(n: number, c: number, h: number, w: number, opts: ConvOptions): ConvGeometry {
  const [kh, kw] = pair(opts.kernel);
  const [sh, sw] = pair(opts.stride ?? 1);
  const [ph, pw] = pair(opts.padding ?? 0);
  const groups = opts.groups ?? 1;
  if (c % groups || opts.outChannels % groups) throw new Error(`conv2d reference: groups ${groups} must divide ${c} and ${opts.outChannels}`);
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (oh <= 0 || ow <= 0) throw new Error('conv2d reference: input too small for the kernel');
  return { n, c, h, w, o: opts.outChannels, kh, kw, sh, sw, ph, pw, groups, oh, ow };
}

/**
 * y[n,o,i,j] = b[o] + sum over c in o's group, ki, kj of x[n,c, i*sh-ph+ki, j*sw-pw+kj] * w[o, c - group start, ki, kj]
 * x[N,C,H,W], w[O,C/g,kh,kw], b[O] or null -> y[N,O,OH,OW]
 */
export function conv2dForward(x: Float64Array, w: Float64Array, b: Float64Array | null, g: ConvGeometry): Float64Array {
  const { n, c, h, w: iw, o, kh, kw, sh, sw, ph, pw, groups, oh, ow } = g;
  const cg = c / groups, og = o / groups;
  const y = new Float64Array(n * o * oh * ow);
  for (let b0 = 0; b0 < n; b0++) {
    for (let oc = 0; oc < o; oc++) {
      const c0 = Math.floor(oc / og) * cg;
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let acc = b ? b[oc]! : 0;
          for (let ci = 0; ci < cg; ci++) {
            for (let ki = 0; ki < kh; ki++) {
              const yi = i * sh - ph + ki;
              if (yi < 0 || yi >= h) continue;
              for (let kj = 0; kj < kw; kj++) {
                const xj = j * sw - pw + kj;
                if (xj < 0 || xj >= iw) continue;
                acc += x[((b0 * c + c0 + ci) * h + yi) * iw + xj]! * w[((oc * cg + ci) * kh + ki) * kw + kj]!;
              }
            }
          }
          y[((b0 * o + oc) * oh + i) * ow + j] = acc;
        }
      }
    }
  }
  return y;
}

/**
 * Vector-Jacobian product of conv2dForward: given dy[N,O,OH,OW], returns dx[N,C,H,W] (backward data),
 * dw[O,C/g,kh,kw] (backward weights) and db[O] (sum of dy over N, OH, OW) when hasBias.
 */
export function conv2dBackward(x: Float64Array, w: Float64Array, dy: Float64Array, g: ConvGeometry, hasBias: boolean): {
  dx: Float64Array; dw: Float64Array; db: Float64Array | null;
} {
  const { n, c, h, w: iw, o, kh, kw, sh, sw, ph, pw, groups, oh, ow } = g;
  const cg = c / groups, og = o / groups;
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = hasBias ? new Float64Array(o) : null;
  for (let b0 = 0; b0 < n; b0++) {
    for (let oc = 0; oc < o; oc++) {
      const c0 = Math.floor(oc / og) * cg;
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          const d = dy[((b0 * o + oc) * oh + i) * ow + j]!;
          if (db) db[oc] += d;
          for (let ci = 0; ci < cg; ci++) {
            for (let ki = 0; ki < kh; ki++) {
              const yi = i * sh - ph + ki;
              if (yi < 0 || yi >= h) continue;
              for (let kj = 0; kj < kw; kj++) {
                const xj = j * sw - pw + kj;
                if (xj < 0 || xj >= iw) continue;
                const xi = ((b0 * c + c0 + ci) * h + yi) * iw + xj;
                const wi = ((oc * cg + ci) * kh + ki) * kw + kj;
                dx[xi] += d * w[wi]!;
                dw[wi] += d * x[xi]!;
              }
            }
          }
        }
      }
    }
  }
  return { dx, dw, db };
}
