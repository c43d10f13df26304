// Every op forward and backward on CUDA against the CPU backend, on the same seeded random inputs and
// parameters (helpers and tolerances in compare.ts). The conv cases are test/ops.test.ts's (support/conv-cases.ts): plain, strided,
// padded, grouped, depthwise and rectangular convolutions with and without bias, batch norm on rank 2
// and 4, pooling with and without padding, the loss with top-k counts.
import { strict as assert } from 'node:assert';
import { GraphBuilder, type AvgPoolOptions, type Conv2dOptions } from '../../lib/graph/index.js';
import { TestRng, labels32, normal32, seedFrom } from '../support/random.js';
import { AVG_POOL_CASES, BATCH_NORM_CASES, CONV_CASES, MAX_POOL_CASES, RELU_CASES, ties } from '../support/op-cases.js';
import { Checker, FP32, TF32, pair, parity } from './compare.js';

const fmt = (o: object) => JSON.stringify(o).replace(/"/g, '');
const shape = (n: number, s: number[]) => `[${[n, ...s].join(',')}]`;

/**
 * Max pooling on 0/1 inputs (many tied maxima): the forward output as the CPU's, and each window's
 * gradient at one of its maxima. With overlapping windows, dx is a sum over windows: every nonzero dx
 * is at a maximum of a window that covers it, and each plane's gradients add up to its dy. Without
 * overlap (stride >= kernel), each window's dy lands whole on exactly one of its maxima.
 */
async function tiedMaxPool(what: string, k: number, s: number, pad: number): Promise<void> {
  const [n, c, h, w] = [2, 3, 5, 7];
  const rng = new TestRng(seedFrom(what));
  const g = new GraphBuilder();
  const y = g.maxPool(g.input('x', [c, h, w]), { kernel: k, stride: s, padding: pad });
  const graph = g.build({ outputs: [y] });
  const [, oh, ow] = y.shape as [number, number, number];
  const x = ties(rng, n * c * h * w);
  const dy = Float32Array.from({ length: n * c * oh * ow }, (_, i) => 1 + (i % 7) / 8);  // nonzero, exact in f32
  const { cpu, gpu, dispose } = await pair(graph, n);
  try {
    const check = new Checker(what, FP32);
    check.check(await gpu.forward(x), await cpu.forward(x), 'forward output');
    check.done();
    const dx = (await gpu.gradients(x, dy)).inputGrads.x!;
    for (let p = 0; p < n * c; p++) {
      const at = (r: number, q: number) => p * h * w + r * w + q;
      const windows: { rows: number[]; cols: number[]; max: number; dy: number }[] = [];
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          const rows = [...Array(k).keys()].map((d) => i * s - pad + d).filter((r) => r >= 0 && r < h);
          const cols = [...Array(k).keys()].map((d) => j * s - pad + d).filter((q) => q >= 0 && q < w);
          const max = Math.max(...rows.flatMap((r) => cols.map((q) => x[at(r, q)]!)));
          windows.push({ rows, cols, max, dy: dy[p * oh * ow + i * ow + j]! });
        }
      let sumDx = 0;
      for (let r = 0; r < h; r++)
        for (let q = 0; q < w; q++) {
          const v = dx[at(r, q)]!;
          sumDx += v;
          if (v !== 0)
            assert.ok(windows.some((win) => win.rows.includes(r) && win.cols.includes(q) && x[at(r, q)] === win.max),
              `${what}: plane ${p}: gradient ${v} at (${r},${q}), which is no maximum of a window covering it`);
        }
      const sumDy = windows.reduce((a, win) => a + win.dy, 0);
      assert.ok(Math.abs(sumDx - sumDy) <= 1e-5 * sumDy, `${what}: plane ${p}: the gradients add up to ${sumDx}, dy to ${sumDy}`);
      if (s >= k)
        for (const win of windows) {
          const got = win.rows.flatMap((r) => win.cols.map((q) => ({ v: dx[at(r, q)]!, atMax: x[at(r, q)] === win.max })));
          const nonzero = got.filter((e) => e.v !== 0);
          assert.ok(nonzero.length === 1 && nonzero[0]!.v === win.dy && nonzero[0]!.atMax,
            `${what}: plane ${p}: a window's dy ${win.dy} should land whole on one of its maxima, got ${JSON.stringify(got)}`);
        }
    }
  } finally {
    dispose();
  }
}

describe(`ops on CUDA against the CPU backend (fp32, allowTF32 off: rtol ${FP32.rtol}, atol ${FP32.atol})`, () => {
  describe('conv2d (cuDNN, heuristic algorithms)', () => {
    const cases: [number, number[], Conv2dOptions][] = [
      ...CONV_CASES,
      [8, [64, 14, 14], { outChannels: 128, kernel: 3, padding: 1, groups: 32 }], // a ResNeXt-sized grouped conv
    ];
    for (const [n, s, o] of cases) {
      const what = `conv2d x${shape(n, s)} ${fmt(o)}`;
      it(what, () => parity(what, n, { x: s }, (g, x) => g.conv2d(x.x!, o)));
    }
  });

  describe('conv2d under other cuDNN settings', () => {
    const o: Conv2dOptions = { outChannels: 32, kernel: 3, padding: 1, groups: 4, bias: true };
    const s = [16, 12, 12];
    for (const [label, cudnn, tol] of [
      ['benchmark (timed search)', { benchmark: true, allowTF32: false }, FP32],
      ['benchmark, benchmarkLimit 0 (every algorithm)', { benchmark: true, benchmarkLimit: 0, allowTF32: false }, FP32],
      ['deterministic', { deterministic: true, allowTF32: false }, FP32],
      ['allowTF32 (PyTorch default)', {}, TF32],
    ] as const) {
      const what = `conv2d x${shape(4, s)} ${fmt(o)}, ${label}`;
      it(what, () => parity(what, 4, { x: s }, (g, x) => g.conv2d(x.x!, o), { cudnn, tol }));
    }
  });

  describe('batchNorm (cuDNN; running statistics with PyTorch momentum and unbiased variance)', () => {
    for (const [n, s, o, data] of BATCH_NORM_CASES) {
      const what = `batchNorm x${shape(n, s)} ${fmt(o)}${data?.label ? ` ${data.label}` : ''}`;
      it(what, () => parity(what, n, { x: s }, (g, x) => g.batchNorm(x.x!, o), { data }));
    }
    const what = 'batchNorm on a graph input that needs no gradient (parameter gradients only)';
    it(what, async () => {
      // inputGrads off: the kernel's parameter-gradient-only path.
      const g = new GraphBuilder();
      const x = g.input('x', [8, 5, 5]);
      const graph = g.build({ outputs: [g.batchNorm(x, { name: 'bn' })] });
      const rng = new TestRng(seedFrom(what));
      const feeds = normal32(rng, 3 * 200), dy = normal32(rng, 3 * 200);
      const { cpu, gpu, dispose } = await pair(graph, 3, { inputGrads: false });
      const c = new Checker(what, FP32);
      try {
        const [a, b] = [await gpu.gradients(feeds, dy), await cpu.gradients(feeds, dy)];
        for (const k of Object.keys(b.paramGrads)) c.check(a.paramGrads[k], b.paramGrads[k], `gradient of ${k}`);
      } finally {
        dispose();
      }
      c.done();
    });
  });

  describe('relu, pooling, add', () => {
    for (const [n, s, data] of RELU_CASES) {
      const what = `relu x${shape(n, s)}${data ? ' with exact zeros' : ''}`;
      it(what, () => parity(what, n, { x: s }, (g, x) => g.relu(x.x!), { data }));
    }
    for (const [n, s, o] of MAX_POOL_CASES) {
      const what = `maxPool x${shape(n, s)} ${fmt(o)}`;
      it(what, () => parity(what, n, { x: s }, (g, x) => g.maxPool(x.x!, o)));
    }
    // Ties: cuDNN may route a window's gradient to any of its tied maxima (PyTorch's CPU and crunet's take
    // the first), so the random cases above have no ties and these accept any tied position.
    for (const [kernel, stride, padding] of [[3, 1, 1], [2, 2, 0], [3, 3, 1]] as const) {
      const what = `maxPool x[2,3,5,7] ${fmt({ kernel, stride, padding })} with ties: each window's gradient at one of its maxima`;
      it(what, () => tiedMaxPool(what, kernel, stride, padding));
    }
    for (const [n, s, base] of AVG_POOL_CASES) {
      for (const countIncludePad of [true, false]) {
        const o: AvgPoolOptions = { ...base, countIncludePad };
        const what = `avgPool x${shape(n, s)} ${fmt(o)}`;
        it(what, () => parity(what, n, { x: s }, (g, x) => g.avgPool(x.x!, o)));
      }
    }
    for (const [n, s] of [[2, [8, 7, 9]], [1, [3, 1, 1]], [3, [64, 2, 3]], [4, [512, 7, 7]]] as [number, number[]][]) {
      const what = `globalAvgPool x${shape(n, s)}`;
      it(what, () => parity(what, n, { x: s }, (g, x) => g.globalAvgPool(x.x!)));
    }
    for (const [n, s] of [[2, [4, 7, 9]], [3, [10]]] as [number, number[]][]) {
      const what = `add a${shape(n, s)} + b${shape(n, s)}`;
      it(what, () => parity(what, n, { a: s, b: s }, (g, x) => g.add(x.a!, x.b!)));
    }
    const twice = 'add x + x (gradient accumulated over two uses)';
    it(twice, () => parity(twice, 2, { x: [3, 4, 5] }, (g, x) => g.add(x.x!, x.x!)));
  });

  describe('linear (cuBLAS)', () => {
    for (const [n, f, o] of [[1, 7, 5], [4, 64, 10], [3, 1, 1], [2, 33, 17], [32, 2048, 1000]] as const) {
      const what = `linear x[${n},${f}] -> [${n},${o}]`;
      it(what, () => parity(what, n, { x: [f] }, (g, x) => g.linear(x.x!, { outFeatures: o })));
    }
  });

  describe('softmaxCrossEntropy (loss, counts, dlogits)', () => {
    // [batch, classes, topk, logit std, label smoothing]
    const cases: [number, number, number, number, number][] = [
      [4, 10, 0, 1, 0], [1, 3, 2, 1, 0], [16, 5, 2, 2, 0], [3, 1000, 5, 1, 0], [6, 10, 3, 30, 0],
      [8, 10, 2, 1, 0.1], [3, 1000, 5, 30, 0.2],
    ];
    for (const [n, k, topk, std, labelSmoothing] of cases) {
      const what = `softmaxCrossEntropy logits[${n},${k}] topk ${topk} std ${std}${labelSmoothing ? ` label smoothing ${labelSmoothing}` : ''}`;
      it(what, async () => {
        const rng = new TestRng(seedFrom(what));
        const g = new GraphBuilder();
        const x = g.input('x', [k]);
        const labels = g.input('labels', [], 'i32');
        const loss = g.softmaxCrossEntropy(x, labels, { topk, labelSmoothing });
        const graph = g.build({ outputs: [loss], loss });
        const z = normal32(rng, n * k, 0, std), y = labels32(rng, n, k);
        const { cpu, gpu, dispose } = await pair(graph, n);
        const c = new Checker(what, FP32);
        try {
          c.check(await gpu.forward({ x: z, labels: y }), await cpu.forward({ x: z, labels: y }), 'forward() loss');
          const [a, b] = [await gpu.gradients({ x: z, labels: y }, Float32Array.of(0.75)), await cpu.gradients({ x: z, labels: y }, Float32Array.of(0.75))];
          c.check(a.outputs[0], b.outputs[0], 'gradients() loss');
          c.check(a.inputGrads.x, b.inputGrads.x, 'dlogits (seed 0.75)');
          const [sa, sb] = [await gpu.step(z, y), await cpu.step(z, y)];
          c.check([sa.loss], [sb.loss], 'step() loss');
          assert.equal(sa.correct, sb.correct, `${what}: step() correct`);
          if (topk > 0) assert.equal(sa.topkCorrect, sb.topkCorrect, `${what}: step() topkCorrect`);
        } finally {
          dispose();
        }
        c.done();
      });
    }
    // Soft targets (mixup, cutmix): each row a random distribution with some exact zeros.
    const softCases: [number, number, number][] = [[8, 10, 0], [16, 5, 0.1], [3, 1000, 0.2]];
    for (const [n, k, labelSmoothing] of softCases) {
      const what = `softmaxCrossEntropy logits[${n},${k}] soft targets${labelSmoothing ? ` label smoothing ${labelSmoothing}` : ''}`;
      it(what, async () => {
        const rng = new TestRng(seedFrom(what));
        const g = new GraphBuilder();
        const x = g.input('x', [k]);
        const labels = g.input('labels', [], 'i32');
        const targets = g.input('t', [k]);
        const loss = g.softmaxCrossEntropy(x, labels, { topk: 2, labelSmoothing, targets });
        const graph = g.build({ outputs: [loss], loss });
        const z = normal32(rng, n * k, 0, 2), y = labels32(rng, n, k);
        const t = new Float32Array(n * k);
        for (let i = 0; i < n; i++) {
          let sum = 0;
          for (let j = 0; j < k; j++) sum += t[i * k + j] = rng.next() < 0.3 ? 0 : rng.next();
          if (sum === 0) t[i * k] = sum = 1;
          for (let j = 0; j < k; j++) t[i * k + j]! /= sum;
        }
        const feeds = { x: z, labels: y, t };
        const { cpu, gpu, dispose } = await pair(graph, n);
        const c = new Checker(what, FP32);
        try {
          c.check(await gpu.forward(feeds), await cpu.forward(feeds), 'forward() loss');
          const [a, b] = [await gpu.gradients(feeds, Float32Array.of(0.75)), await cpu.gradients(feeds, Float32Array.of(0.75))];
          c.check(a.outputs[0], b.outputs[0], 'gradients() loss');
          c.check(a.inputGrads.x, b.inputGrads.x, 'dlogits (seed 0.75)');
          const [sa, sb] = [await gpu.step(feeds), await cpu.step(feeds)];
          c.check([sa.loss], [sb.loss], 'step() loss');
          assert.equal(sa.correct, sb.correct, `${what}: step() correct`);
          assert.equal(sa.topkCorrect, sb.topkCorrect, `${what}: step() topkCorrect`);
        } finally {
          dispose();
        }
        c.done();
      });
    }
  });
});
