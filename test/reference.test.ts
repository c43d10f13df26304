// The float64 reference ops checked on their own: hand-computed forwards, and every backward against
// central finite differences of the forward (h = 1e-6 in float64; agreement to 1e-7 relative).
// No PyTorch in this environment, so the PyTorch conventions (padding, ties, momentum, unbiased running
// variance, divisors) are pinned by the hand-computed cases below.

import { strict as assert } from 'node:assert';
import { GraphBuilder } from '../lib/graph/index.js';
import {
  addBackward, addForward, assertClose, avgPoolBackward, avgPoolForward, batchNormInferBackward, batchNormInferForward,
  batchNormTrainBackward, batchNormTrainForward, conv2dBackward, conv2dForward, conv2dGeometry, dot, globalAvgPoolBackward,
  globalAvgPoolForward, linearBackward, linearForward, maxPoolBackward, maxPoolForward, numericalGradient, poolGeometry,
  referenceBackward, referenceForward, reluBackward, reluForward, sgdStep, softmaxCrossEntropyBackward, sumBound,
  softmaxCrossEntropyForward, type ConvOptions, type Params64, type PoolOptions, type Tolerance,
} from './reference/index.js';
import { TestRng, labels32, normal64, uniform64 } from './support/random.js';

const FD_H = 1e-6;
const FD_TOL: Tolerance = { rtol: 1e-6, atol: 1e-7 };
const HAND: Tolerance = { rtol: 1e-12, atol: 1e-12 };

/**
 * Checks a VJP: for L = sum(forward(inputs) * dy), every analytic gradient must match central FD of L.
 * `forward` reads the arrays in `inputs` (perturbed in place); `backward` returns one gradient per input.
 */
function checkVjp(what: string, inputs: Float64Array[], forward: () => Float64Array, dy: Float64Array, backward: () => Float64Array[]): void {
  const analytic = backward();
  const loss = () => dot(forward(), dy);
  inputs.forEach((x, k) => assertClose(analytic[k], numericalGradient(loss, x, FD_H), FD_TOL, `${what}: gradient of input ${k}`));
}

describe('reference ops (float64)', () => {
  describe('conv2d', () => {
    it('matches hand-computed outputs (padding, stride, groups)', () => {
      const x = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const ones4 = new Float64Array(4).fill(1), ones9 = new Float64Array(9).fill(1);
      assertClose(conv2dForward(x, ones4, null, conv2dGeometry(1, 1, 3, 3, { outChannels: 1, kernel: 2 })), [12, 16, 24, 28], HAND, 'k2');
      assertClose(conv2dForward(x, ones9, null, conv2dGeometry(1, 1, 3, 3, { outChannels: 1, kernel: 3, stride: 2, padding: 1 })),
        [12, 16, 24, 28], HAND, 'k3 s2 p1');
      assertClose(conv2dForward(x, ones9, Float64Array.of(0.5), conv2dGeometry(1, 1, 3, 3, { outChannels: 1, kernel: 3, padding: 1 })),
        [12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5], HAND, 'k3 p1 bias');
      // groups = 2: out channel 0 sees input channel 0 only, out channel 1 input channel 1.
      const x2 = Float64Array.from([1, 2, 3, 4, 10, 20, 30, 40]);
      assertClose(conv2dForward(x2, Float64Array.of(2, 3), null, conv2dGeometry(1, 2, 2, 2, { outChannels: 2, kernel: 1, groups: 2 })),
        [2, 4, 6, 8, 30, 60, 90, 120], HAND, 'groups 2');
      // Rectangular kernel [1,2], weight [1,1,1,2] = [1,-1]: horizontal difference.
      assertClose(conv2dForward(x, Float64Array.of(1, -1), null, conv2dGeometry(1, 1, 3, 3, { outChannels: 1, kernel: [1, 2] })),
        [-1, -1, -1, -1, -1, -1], HAND, 'k1x2');
    });

    it('with groups equals separate convolutions on channel slices', () => {
      const rng = new TestRng(7);
      const [n, c, h, w, o, groups] = [2, 6, 5, 4, 9, 3];
      const opts: ConvOptions = { outChannels: o, kernel: [3, 2], stride: [2, 1], padding: [1, 0], groups };
      const g = conv2dGeometry(n, c, h, w, opts);
      const x = normal64(rng, n * c * h * w), wt = normal64(rng, o * (c / groups) * 3 * 2), b = normal64(rng, o);
      const y = conv2dForward(x, wt, b, g);
      const cg = c / groups, og = o / groups, plane = g.oh * g.ow;
      for (let k = 0; k < groups; k++) {
        const gk = conv2dGeometry(n, cg, h, w, { ...opts, outChannels: og, groups: 1 });
        const xk = new Float64Array(n * cg * h * w);
        for (let b0 = 0; b0 < n; b0++) xk.set(x.subarray((b0 * c + k * cg) * h * w, (b0 * c + (k + 1) * cg) * h * w), b0 * cg * h * w);
        const yk = conv2dForward(xk, wt.subarray(k * og * cg * 6, (k + 1) * og * cg * 6), b.subarray(k * og, (k + 1) * og), gk);
        for (let b0 = 0; b0 < n; b0++) {
          assertClose(y.subarray((b0 * o + k * og) * plane, (b0 * o + (k + 1) * og) * plane), yk.subarray(b0 * og * plane, (b0 + 1) * og * plane),
            HAND, `group ${k}, sample ${b0}`);
        }
      }
    });

    const cases: [string, number, number, number, number, ConvOptions, boolean][] = [
      ['1x1', 2, 4, 3, 5, { outChannels: 3, kernel: 1 }, true],
      ['3x3 p1', 2, 3, 5, 4, { outChannels: 4, kernel: 3, padding: 1 }, false],
      ['3x3 s2 p1 odd', 1, 2, 7, 5, { outChannels: 2, kernel: 3, stride: 2, padding: 1 }, true],
      ['groups 2, 2x3 kernel, stride [2,1]', 2, 4, 5, 6, { outChannels: 6, kernel: [2, 3], stride: [2, 1], padding: [1, 0], groups: 2 }, true],
      ['depthwise 3x3 s2', 2, 3, 6, 5, { outChannels: 3, kernel: 3, stride: 2, padding: 1, groups: 3 }, false],
      ['depthwise multiplier 2, 5x5 p2', 1, 2, 5, 5, { outChannels: 4, kernel: 5, padding: 2, groups: 2 }, true],
    ];
    for (const [name, n, c, h, w, opts, bias] of cases) {
      it(`backward matches finite differences: ${name}${bias ? ', bias' : ''}`, () => {
        const rng = new TestRng(h * 31 + w);
        const g = conv2dGeometry(n, c, h, w, opts);
        const [kh, kw] = typeof opts.kernel === 'number' ? [opts.kernel, opts.kernel] : opts.kernel;
        const x = normal64(rng, n * c * h * w), wt = normal64(rng, g.o * (c / g.groups) * kh * kw), b = normal64(rng, g.o);
        const dy = normal64(rng, n * g.o * g.oh * g.ow);
        checkVjp(`conv2d ${name}`, bias ? [x, wt, b] : [x, wt], () => conv2dForward(x, wt, bias ? b : null, g), dy, () => {
          const r = conv2dBackward(x, wt, dy, g, bias);
          return bias ? [r.dx, r.dw, r.db!] : [r.dx, r.dw];
        });
      });
    }
  });

  describe('batchNorm', () => {
    it('matches hand-computed training output and running statistics (PyTorch momentum, unbiased running var)', () => {
      const x = Float64Array.of(1, 2, 3, 4);  // [N=4, F=1]
      const eps = 1e-5;
      const r = batchNormTrainForward(x, Float64Array.of(2), Float64Array.of(0.5), Float64Array.of(0), Float64Array.of(1), { n: 4, c: 1, spatial: 1 }, 0.1, eps);
      assertClose(r.mean, [2.5], HAND, 'mean');
      assertClose(r.variance, [1.25], HAND, 'biased variance');
      assertClose(r.y, [-1.5, -0.5, 0.5, 1.5].map((d) => (2 * d) / Math.sqrt(1.25 + eps) + 0.5), HAND, 'y');
      assertClose(r.runningMean, [0.25], HAND, 'running mean = 0.9 * 0 + 0.1 * 2.5');
      assertClose(r.runningVar, [0.9 + 0.1 * (5 / 3)], HAND, 'running var = 0.9 * 1 + 0.1 * 5/3');
      const yi = batchNormInferForward(x, Float64Array.of(2), Float64Array.of(0.5), Float64Array.of(1), Float64Array.of(4), { n: 4, c: 1, spatial: 1 }, 0);
      assertClose(yi, [0.5, 1.5, 2.5, 3.5], HAND, 'inference y = 2 (x - 1) / 2 + 0.5');
    });

    it('computes statistics per channel over N, H and W', () => {
      // [N=2, C=2, H=1, W=2]: channel 0 holds 1,3,5,7; channel 1 holds 10,10,20,20.
      const x = Float64Array.of(1, 3, 10, 10, 5, 7, 20, 20);
      const r = batchNormTrainForward(x, Float64Array.of(1, 1), Float64Array.of(0, 0), Float64Array.of(0, 0), Float64Array.of(1, 1),
        { n: 2, c: 2, spatial: 2 }, 1, 0);
      assertClose(r.mean, [4, 15], HAND, 'mean');
      assertClose(r.variance, [5, 25], HAND, 'variance');
      assertClose(r.runningVar, [20 / 3, 100 / 3], HAND, 'momentum 1: running var is the unbiased batch var');
    });

    for (const [name, n, c, spatial] of [['[N,C,H,W]', 3, 2, 6], ['[N,F]', 5, 3, 1]] as const) {
      it(`training backward matches finite differences: ${name}`, () => {
        const rng = new TestRng(11 + spatial);
        const g = { n, c, spatial };
        const x = normal64(rng, n * c * spatial, 0.3, 1.5), gamma = normal64(rng, c), beta = normal64(rng, c);
        const rm = new Float64Array(c), rv = new Float64Array(c).fill(1);
        const dy = normal64(rng, x.length);
        checkVjp(`batchNorm train ${name}`, [x, gamma, beta], () => batchNormTrainForward(x, gamma, beta, rm, rv, g, 0.1, 1e-5).y, dy, () => {
          const f = batchNormTrainForward(x, gamma, beta, rm, rv, g, 0.1, 1e-5);
          const r = batchNormTrainBackward(x, gamma, dy, f.mean, f.invStd, g);
          return [r.dx, r.dgamma, r.dbeta];
        });
      });
    }

    it('inference backward matches finite differences', () => {
      const rng = new TestRng(12);
      const g = { n: 2, c: 3, spatial: 4 };
      const x = normal64(rng, 24), gamma = normal64(rng, 3), beta = normal64(rng, 3), rm = normal64(rng, 3), rv = uniform64(rng, 3, 0.5, 2);
      const dy = normal64(rng, 24);
      checkVjp('batchNorm infer', [x, gamma, beta], () => batchNormInferForward(x, gamma, beta, rm, rv, g, 1e-5), dy, () => {
        const r = batchNormInferBackward(x, gamma, dy, rm, rv, g, 1e-5);
        return [r.dx, r.dgamma, r.dbeta];
      });
    });
  });

  describe('relu', () => {
    it('zeroes negatives, passes gradient where x > 0 only (0 at x = 0)', () => {
      const x = Float64Array.of(-1, 0, 2);
      assertClose(reluForward(x), [0, 0, 2], HAND, 'y');
      assertClose(reluBackward(x, Float64Array.of(5, 6, 7)), [0, 0, 7], HAND, 'dx');
    });
    it('backward matches finite differences', () => {
      const rng = new TestRng(13);
      const x = normal64(rng, 40), dy = normal64(rng, 40);
      checkVjp('relu', [x], () => reluForward(x), dy, () => [reluBackward(x, dy)]);
    });
  });

  describe('pool', () => {
    it('maxPool: padding is -inf, ties send the gradient to the first maximum in row-major order', () => {
      const neg = Float64Array.of(-4, -3, -2, -1);  // [1,1,2,2]
      const g = poolGeometry(1, 1, 2, 2, { kernel: 2, stride: 1, padding: 1 });
      assertClose(maxPoolForward(neg, g).y, [-4, -3, -3, -2, -1, -1, -2, -1, -1], HAND, 'padded windows of negatives');
      const tie = Float64Array.of(5, 5, 5, 5);
      const t = maxPoolForward(tie, poolGeometry(1, 1, 2, 2, { kernel: 2 }));
      assertClose(maxPoolBackward(Float64Array.of(1), t.argmax, 4), [1, 0, 0, 0], HAND, 'tie: first element');
      const tie2 = Float64Array.of(0, 3, 1, 3);
      const t2 = maxPoolForward(tie2, poolGeometry(1, 1, 2, 2, { kernel: 2 }));
      assertClose(maxPoolBackward(Float64Array.of(1), t2.argmax, 4), [0, 1, 0, 0], HAND, 'tie: first maximum');
    });

    it('avgPool: count_include_pad true divides by kh*kw, false by the real elements', () => {
      const x = Float64Array.of(1, 2, 3, 4);
      const g = poolGeometry(1, 1, 2, 2, { kernel: 3, stride: 1, padding: 1 });
      assertClose(avgPoolForward(x, g, true), [10 / 9, 10 / 9, 10 / 9, 10 / 9], HAND, 'include pad');
      assertClose(avgPoolForward(x, g, false), [2.5, 2.5, 2.5, 2.5], HAND, 'exclude pad');
      const g2 = poolGeometry(1, 1, 3, 3, { kernel: 2, stride: 2, padding: 1 });  // 2x2 output; corners see 1, 2, 2, 4 real elements
      const x2 = Float64Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9);
      assertClose(avgPoolForward(x2, g2, false), [1, 2.5, 5.5, 7], HAND, 'exclude pad, stride 2');
      assertClose(avgPoolForward(x2, g2, true), [0.25, 1.25, 2.75, 7], HAND, 'include pad, stride 2');
    });

    const cases: [string, number, number, number, number, PoolOptions][] = [
      ['2x2 s2', 2, 2, 4, 6, { kernel: 2 }],
      ['3x3 s2 p1 odd', 1, 3, 7, 5, { kernel: 3, stride: 2, padding: 1 }],
      ['3x2 s1 p[1,1]', 2, 1, 5, 4, { kernel: [3, 2], stride: 1, padding: [1, 1] }],
    ];
    for (const [name, n, c, h, w, opts] of cases) {
      it(`maxPool and avgPool backward match finite differences: ${name}`, () => {
        const rng = new TestRng(h * 7 + w);
        const g = poolGeometry(n, c, h, w, opts);
        const x = normal64(rng, n * c * h * w), dy = normal64(rng, n * c * g.oh * g.ow);
        checkVjp(`maxPool ${name}`, [x], () => maxPoolForward(x, g).y, dy, () => [maxPoolBackward(dy, maxPoolForward(x, g).argmax, x.length)]);
        for (const inc of [true, false]) {
          checkVjp(`avgPool ${name} include pad ${inc}`, [x], () => avgPoolForward(x, g, inc), dy, () => [avgPoolBackward(dy, g, inc)]);
        }
      });
    }

    it('globalAvgPool: mean over H*W, backward matches finite differences', () => {
      assertClose(globalAvgPoolForward(Float64Array.of(1, 2, 3, 4, 10, 20, 30, 40), 1, 2, 4), [2.5, 25], HAND, 'y');
      const rng = new TestRng(14);
      const x = normal64(rng, 2 * 3 * 5 * 3), dy = normal64(rng, 6);
      checkVjp('globalAvgPool', [x], () => globalAvgPoolForward(x, 2, 3, 15), dy, () => [globalAvgPoolBackward(dy, 2, 3, 15)]);
    });
  });

  describe('linear, add', () => {
    it('linear computes x w^T + b; backward matches finite differences', () => {
      assertClose(linearForward(Float64Array.of(1, 2), Float64Array.of(1, 0, 1, 1, 0, -1), Float64Array.of(0, 1, 2), 1, 2, 3), [1, 4, 0], HAND, 'y');
      const rng = new TestRng(15);
      const [n, f, o] = [3, 5, 4];
      const x = normal64(rng, n * f), w = normal64(rng, o * f), b = normal64(rng, o), dy = normal64(rng, n * o);
      checkVjp('linear', [x, w, b], () => linearForward(x, w, b, n, f, o), dy, () => {
        const r = linearBackward(x, w, dy, n, f, o);
        return [r.dx, r.dw, r.db];
      });
    });
    it('add: backward matches finite differences', () => {
      const rng = new TestRng(16);
      const a = normal64(rng, 12), b = normal64(rng, 12), dy = normal64(rng, 12);
      checkVjp('add', [a, b], () => addForward(a, b), dy, () => { const r = addBackward(dy); return [r.da, r.db]; });
    });
  });

  describe('softmaxCrossEntropy', () => {
    it('mean loss; top-1 ties go to the lowest index; top-k counts logits strictly greater than the label', () => {
      const logits = Float64Array.of(0, 0, 1, 1, 1, 0, 2, 3, 3, 1);  // N=5, K=2
      const labels = Int32Array.of(0, 1, 1, 1, 0);
      const r = softmaxCrossEntropyForward(logits, labels, 5, 2, 1);
      const lse = (a: number, b: number) => Math.log(Math.exp(a) + Math.exp(b));
      const expected = (lse(0, 0) - 0 + lse(1, 1) - 1 + lse(1, 0) - 0 + lse(2, 3) - 3 + lse(3, 1) - 3) / 5;
      assert.ok(Math.abs(r.loss - expected) < 1e-12, `loss ${r.loss} vs ${expected}`);
      // argmax: 0 (tie), 0 (tie), 0, 1, 0 -> correct for samples 0, 3, 4
      assert.equal(r.correct, 3);
      // top-1 by "fewer than 1 strictly greater": samples 0, 1 (ties), 3, 4
      assert.equal(r.topkCorrect, 4);
      const k3 = softmaxCrossEntropyForward(Float64Array.of(5, 1, 3, 3), Int32Array.of(2), 1, 4, 2);
      assert.equal(k3.topkCorrect, 1, 'label tied for second place is within top-2');
      assert.equal(softmaxCrossEntropyForward(Float64Array.of(5, 4, 3, 3), Int32Array.of(3), 1, 4, 2).topkCorrect, 0);
    });

    it('backward (p - onehot) / N * seed matches finite differences', () => {
      const rng = new TestRng(17);
      const [n, k] = [4, 5];
      const logits = normal64(rng, n * k, 0, 2), labels = labels32(rng, n, k);
      const seed = 0.7;
      const analytic = softmaxCrossEntropyBackward(softmaxCrossEntropyForward(logits, labels, n, k).probs, labels, n, k, seed);
      const fd = numericalGradient(() => seed * softmaxCrossEntropyForward(logits, labels, n, k).loss, logits, FD_H);
      assertClose(analytic, fd, FD_TOL, 'dlogits');
    });

    it('label smoothing: the loss is (1 - e) CE + e mean_j(-log p_j), and backward matches finite differences', () => {
      const rng = new TestRng(23);
      const [n, k, e, seed] = [3, 6, 0.15, 1.3];
      const logits = normal64(rng, n * k, 0, 2), labels = labels32(rng, n, k);
      const r = softmaxCrossEntropyForward(logits, labels, n, k, 0, e);
      let expected = 0;  // PyTorch's definition, from the probabilities
      for (let i = 0; i < n; i++) {
        let uniform = 0;
        for (let j = 0; j < k; j++) uniform -= Math.log(r.probs[i * k + j]!) / k;
        expected += ((1 - e) * -Math.log(r.probs[i * k + labels[i]!]!) + e * uniform) / n;
      }
      assert.ok(Math.abs(r.loss - expected) < 1e-12, `loss ${r.loss} vs ${expected}`);
      const analytic = softmaxCrossEntropyBackward(r.probs, labels, n, k, seed, e);
      const fd = numericalGradient(() => seed * softmaxCrossEntropyForward(logits, labels, n, k, 0, e).loss, logits, FD_H);
      assertClose(analytic, fd, FD_TOL, 'dlogits with label smoothing');
    });

    it('soft targets: one-hot targets give the labels\' loss; the loss is linear in the targets; backward matches finite differences', () => {
      const rng = new TestRng(29);
      const [n, k, e, seed] = [4, 5, 0.1, 0.8];
      const logits = normal64(rng, n * k, 0, 2), a = labels32(rng, n, k), b = labels32(rng, n, k);
      const onehot = (l: Int32Array) => {
        const t = new Float64Array(n * k);
        l.forEach((c, i) => (t[i * k + c] = 1));
        return t;
      };
      const ta = onehot(a), tb = onehot(b);
      const la = softmaxCrossEntropyForward(logits, a, n, k, 0, e), lb = softmaxCrossEntropyForward(logits, b, n, k, 0, e);
      assert.ok(Math.abs(softmaxCrossEntropyForward(logits, a, n, k, 0, e, ta).loss - la.loss) < 1e-12);
      const lam = 0.3;
      const mix = ta.map((v, i) => lam * v + (1 - lam) * tb[i]!);
      const r = softmaxCrossEntropyForward(logits, a, n, k, 0, e, mix);
      assert.ok(Math.abs(r.loss - (lam * la.loss + (1 - lam) * lb.loss)) < 1e-12, `mixed loss ${r.loss}`);
      assertClose(softmaxCrossEntropyBackward(r.probs, a, n, k, seed, e, ta), softmaxCrossEntropyBackward(r.probs, a, n, k, seed, e), { rtol: 1e-12, atol: 1e-12 }, 'one-hot soft dlogits');
      const t = uniform64(rng, n * k, 0, 1);  // not normalised: the general formula
      const analytic = softmaxCrossEntropyBackward(r.probs, a, n, k, seed, e, t);
      const fd = numericalGradient(() => seed * softmaxCrossEntropyForward(logits, a, n, k, 0, e, t).loss, logits, FD_H);
      assertClose(analytic, fd, FD_TOL, 'dlogits with soft targets');
    });
  });

  describe('graph interpreter and SGD', () => {
    it('sums a shared parameter\'s gradient over its uses and matches finite differences through a whole graph', () => {
      const g = new GraphBuilder();
      const x = g.input('x', [2, 5, 4]);
      const labels = g.input('labels', [], 'i32');
      const w = g.param('shared.weight', [2, 1, 3, 3]);
      const c1 = g.conv2d(x, { outChannels: 2, kernel: 3, padding: 1, groups: 2, weight: w, name: 'c1' });
      const b1 = g.relu(g.batchNorm(c1, { name: 'bn1' }));
      const c2 = g.conv2d(b1, { outChannels: 2, kernel: 3, padding: 1, groups: 2, weight: w, name: 'c2', bias: true });
      const s = g.add(c2, c1);
      const p = g.maxPool(s, { kernel: 2, stride: 1 });
      const a = g.avgPool(g.conv2d(p, { outChannels: 2, kernel: 3, padding: 1, groups: 2, weight: w, name: 'c3' }), { kernel: 2, countIncludePad: false, padding: 1 });
      const logits = g.linear(g.globalAvgPool(a), { outFeatures: 3, name: 'fc' });
      const loss = g.softmaxCrossEntropy(logits, labels);
      const graph = g.build({ outputs: [loss], loss });
      const rng = new TestRng(18);
      const batch = 3;
      const params: Params64 = new Map(graph.ir.params.map((q) => {
        const n = q.shape.reduce((u, v) => u * v, 1);
        return [q.name, q.name.endsWith('running_var') ? uniform64(rng, n, 0.5, 1.5) : normal64(rng, n, 0, 0.7)];
      }));
      const feeds = { x: normal64(rng, batch * 40), labels: labels32(rng, batch, 3) };
      const run = referenceForward(graph, batch, feeds, params, true);
      const grads = referenceBackward(graph, batch, run, params, Float64Array.of(1));
      assert.equal(grads.paramGradsPerUse.get('shared.weight')!.length, 3);
      const lossOf = () => referenceForward(graph, batch, feeds, params, true).loss!.loss;
      for (const [name, grad] of grads.paramGrads) assertClose(grad, numericalGradient(lossOf, params.get(name)!, FD_H), FD_TOL, `d loss / d ${name}`);
      assertClose(grads.inputGrads.get('x')!, numericalGradient(lossOf, feeds.x, FD_H), FD_TOL, 'd loss / d x');
      assert.ok(!grads.paramGrads.has('bn1.running_mean'), 'running statistics get no gradient');
    });

    it('SGD follows PyTorch: momentum buffer, nesterov, weight decay', () => {
      const w = Float64Array.of(1, -2), buf = new Float64Array(2);
      sgdStep(w, Float64Array.of(0.5, 1), buf, { lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0.01 }, true);
      assertClose(buf, [0.51, 0.98], HAND, 'buf after step 1 = g + wd w');
      assertClose(w, [1 - 0.051, -2 - 0.098], HAND, 'w after step 1');
      const w2 = Float64Array.of(1), buf2 = Float64Array.of(2);
      sgdStep(w2, Float64Array.of(1), buf2, { lr: 0.5, momentum: 0.5, nesterov: true, weightDecay: 0.1 }, false);
      assertClose(buf2, [2], HAND, 'buf = 0.5 * 2 + 1');
      assertClose(w2, [1 - 0.5 * (1 + 0.5 * 2)], HAND, 'nesterov: w -= lr (g + m buf), no decay');
    });
  });
});

describe('comparison helpers (test/reference/check.ts)', () => {
  it('bounds each element by atol + rtol * |expected|, not by the tensor\'s largest element', () => {
    const tol = { rtol: 1e-4, atol: 1e-9 };
    // A 5 % error on a small entry next to a large one (a 1000-class cross-entropy row) fails.
    assert.throws(() => assertClose([1, 1.05e-4], [1, 1e-4], tol, 'row'), /row: element 1 is 0\.000105, expected 0\.0001/);
    assertClose([1 + 5e-5, 1e-4 + 5e-9], [1, 1e-4], tol, 'row');
  });

  it('fails on a missing tensor, a different length, NaN, and a bound of the wrong length', () => {
    const tol = { rtol: 1, atol: 1 };
    assert.throws(() => assertClose(undefined, [1], tol, 't'), /t: missing \(expected 1 values\)/);
    assert.throws(() => assertClose([1, 2], [1, 2, 3], tol, 't'), /t: length 2, expected 3/);
    assert.throws(() => assertClose([1, 2, 3], [1, 2], tol, 't'), /t: length 3, expected 2/);
    assert.throws(() => assertClose([NaN], [1], tol, 't'), /element 0 is NaN/);
    assert.throws(() => assertClose([1], [1], tol, 't', [0, 0]), /t: 2 rounding bounds for 1 values/);
  });

  it('sumBound allows sqrt(K) u sum |terms| per element: a cancelled sum gets its summands\' rounding', () => {
    const u = 2 ** -24;
    const b = sumBound([2, 0], 100, 1);
    assert.deepEqual(Array.from(b), [10 * u * 2, 0]);
    const tol = { rtol: 0, atol: 0 };
    assertClose([1e-7 + 5 * u], [1e-7], tol, 'cancelled', b.subarray(0, 1));
    assert.throws(() => assertClose([1e-7 + 30 * u], [1e-7], tol, 'cancelled', b.subarray(0, 1)), /cancelled: element 0/);
  });
});
