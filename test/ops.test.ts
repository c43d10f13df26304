// Every op on the engine, forward and backward, against the float64 reference (test/reference/), on
// seeded random inputs and parameters. One helper (checkOp, after tinygrad's helper_test_op) builds a
// one-op graph, compiles it, sets random parameters and checks, in order:
//   1. forward() (inference: batch norm uses the running statistics) against the reference;
//   2. gradients() with a random seed dy: the training-mode output, every input gradient and every
//      trainable parameter gradient against the reference vector-Jacobian product;
//   3. batch norm's running_mean / running_var unchanged by gradients() (getParameter).
// Each case is one line of a table. Inputs are float32 values, and the reference runs in float64 on
// exactly those values, so the only differences are the engine's float32 rounding.
//
// Tolerances are element-wise, |engine - reference| <= atol + rtol * |reference| (+ a rounding bound),
// stated per op (float32 everywhere; unit roundoff u = 2^-24 = 6e-8):
//   TOL (rtol 1e-4, atol 1e-5): batch norm, relu, max-pool, add (short or no sums);
//   SUM_TOL (rtol 1e-5, atol 1e-7) plus sumBound: conv2d, linear, avgPool, globalAvgPool, whose outputs and
//     gradients are sums; float32 accumulation over K terms errs by about sqrt(K) * u * sum |terms|, and
//     that sum of magnitudes is the same op run by the reference on |inputs|, |parameters| and |dy|, so an
//     element that is small after cancellation is allowed the rounding of its summands, no more;
//   CE_TOL (rtol 1e-5, atol 1e-9): softmax cross-entropy's loss and dlogits, which are not long sums: each
//     dlogit (p - onehot) / N is exact to a few ulps of itself, also the 1e-4 entries of a 1000-class row.

import { strict as assert } from 'node:assert';
import { compile } from '../lib/index.js';
import { GraphBuilder, type AvgPoolOptions, type Conv2dOptions, type PoolOptions, type Value } from '../lib/graph/index.js';
import {
  closeMessage, params64, randomParams, sumBound, referenceBackward, referenceForward, softmaxCrossEntropyBackward,
  softmaxCrossEntropyForward, to64, type Tolerance,
} from './reference/index.js';
import { AVG_POOL_CASES, BATCH_NORM_CASES, CONV_CASES, MAX_POOL_CASES, RELU_CASES, ties, type InputGen } from './support/op-cases.js';
import { TestRng, labels32, normal32, seedFrom } from './support/random.js';

const TOL: Tolerance = { rtol: 1e-4, atol: 1e-5 };
const SUM_TOL: Tolerance = { rtol: 1e-5, atol: 1e-7 };
const CE_TOL: Tolerance = { rtol: 1e-5, atol: 1e-9 };
const LINEAR_OPS = new Set(['conv2d', 'linear', 'avgPool', 'globalAvgPool']);

type Session = Awaited<ReturnType<typeof compile>>;

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

async function withSession<T>(
  graph: Parameters<typeof compile>[0], batch: number, fn: (s: Session) => Promise<T>, extra: { labelSmoothing?: number } = {},
): Promise<T> {
  const s = await compile(graph, {
    device: 'cpu', batchSize: batch, inputGrads: true, seed: 1,
    optimizer: { lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 }, ...extra,
  });
  try {
    return await fn(s);
  } finally {
    s.dispose();
  }
}

/**
 * Forward and backward of one op on the engine against the reference.
 * inputs: per-sample shapes of the f32 graph inputs; build: the op applied to them.
 */
async function checkOp(
  what: string, batch: number, inputs: Record<string, number[]>, build: (g: GraphBuilder, x: Record<string, Value>) => Value,
  o: { tol?: Tolerance; data?: InputGen } = {},
): Promise<void> {
  const tol = o.tol ?? TOL;
  const rng = new TestRng(seedFrom(what));
  const g = new GraphBuilder();
  const xs = Object.fromEntries(Object.entries(inputs).map(([k, s]) => [k, g.input(k, s)]));
  const y = build(g, xs);
  const graph = g.build({ outputs: [y] });
  const p32 = randomParams(graph, rng);
  const p64 = params64(p32);
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, s]) => [k, (o.data ?? normal32)(rng, batch * prod(s))]));
  const feeds64 = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, to64(v)]));
  const dy = normal32(rng, batch * prod(y.shape));
  const errors: string[] = [];
  const check = (actual: ArrayLike<number> | undefined, expected: ArrayLike<number>, tensor: string, bound?: ArrayLike<number>) => {
    const m = closeMessage(actual, expected, tol, `${what}: ${tensor}`, bound);
    if (m) errors.push(m);
  };
  // For ops that are sums: the same op on absolute values gives sum |terms| per element (see SUM_TOL).
  const abs = (a: Float64Array) => a.map(Math.abs);
  const summed = graph.ir.nodes.every((n) => LINEAR_OPS.has(n.op));
  const absFeeds = Object.fromEntries(Object.entries(feeds64).map(([k, v]) => [k, abs(v)]));
  const absParams = new Map([...p64].map(([k, v]) => [k, abs(v)]));
  const absRun = summed ? referenceForward(graph, batch, absFeeds, absParams, true) : undefined;
  const absRef = absRun ? referenceBackward(graph, batch, absRun, absParams, abs(to64(dy))) : undefined;
  // Terms per sum: at most the larger of an output's window and a parameter's reduction over the batch.
  const terms = batch * Math.max(...[...Object.values(inputs), y.shape].map(prod));
  const bound = (m: Float64Array | undefined) => (m ? sumBound(m, terms) : undefined);
  await withSession(graph, batch, async (s) => {
    for (const [name, v] of p32) s.setParameter(name, v);
    check(await s.forward(feeds), referenceForward(graph, batch, feeds64, p64, false).outputs[0]!, 'forward (inference) output', bound(absRun?.outputs[0]));

    const run = referenceForward(graph, batch, feeds64, p64, true);
    const ref = referenceBackward(graph, batch, run, p64, to64(dy));
    const got = await s.gradients(feeds, dy);
    check(got.outputs[0], run.outputs[0]!, 'training forward output', bound(absRun?.outputs[0]));
    for (const [name, grad] of ref.inputGrads) check(got.inputGrads[name], grad, `gradient of input ${name}`, bound(absRef?.inputGrads.get(name)));
    for (const [name, grad] of ref.paramGrads) check(got.paramGrads[name], grad, `gradient of ${name}`, bound(absRef?.paramGrads.get(name)));

    // gradients() is backward without an update: running statistics stay as set (their update by a
    // training step is checked against float64 in test/hardening-native.test.ts).
    const buffers = graph.ir.params.filter((q) => !q.trainable).map((q) => q.name);
    for (const name of buffers) {
      const m = closeMessage(s.getParameter(name), p32.get(name)!, { rtol: 0, atol: 0 }, `${what}: ${name} after gradients() (must be unchanged)`);
      if (m) errors.push(m);
    }
  });
  if (errors.length) assert.fail(errors.join('\n'));
}

const fmt = (o: object) => JSON.stringify(o).replace(/"/g, '');
const shape = (n: number, s: number[]) => `[${[n, ...s].join(',')}]`;

describe('ops: engine (cpu, float32) against the float64 reference', () => {
  describe('conv2d', () => {
    const cases: [number, number[], Conv2dOptions][] = [...CONV_CASES];
    // Plus seeded random draws over the same space.
    const rng = new TestRng(20240601);
    for (let i = 0; i < 12; i++) {
      const kind = rng.pick(['1', '4', '32', 'depthwise'] as const);
      const k = rng.pick([1, 3, 7]);
      const c = kind === '32' ? 32 * rng.int(1, 2) : kind === '4' ? 4 * rng.int(1, 4) : rng.int(1, 3) * 4;
      const groups = kind === 'depthwise' ? c : Number(kind);
      const outChannels = kind === 'depthwise' ? c * rng.int(1, 2) : groups * rng.int(1, 3);
      const h = rng.int(k, 11), w = rng.int(k, 11);
      cases.push([rng.int(1, 4), [c, h, w], { outChannels, kernel: k, stride: rng.int(1, 2), padding: rng.int(0, 1), groups, bias: rng.next() < 0.5 }]);
    }
    for (const [n, s, o] of cases) {
      const what = `conv2d x${shape(n, s)} ${fmt(o)}`;
      it(what, () => checkOp(what, n, { x: s }, (g, x) => g.conv2d(x.x!, o), { tol: SUM_TOL }));
    }
  });

  describe('batchNorm (training: batch statistics and running-stat update; inference: running statistics)', () => {
    for (const [n, s, o, data] of BATCH_NORM_CASES) {
      const what = `batchNorm x${shape(n, s)} ${fmt(o)}${data?.label ? ` ${data.label}` : ''}`;
      it(what, () => checkOp(what, n, { x: s }, (g, x) => g.batchNorm(x.x!, o), { data }));
    }
  });

  describe('relu', () => {
    for (const [n, s, data] of RELU_CASES) {
      const what = `relu x${shape(n, s)}${data ? ' with exact zeros (gradient 0 at 0)' : ''}`;
      it(what, () => checkOp(what, n, { x: s }, (g, x) => g.relu(x.x!), { data }));
    }
  });

  describe('maxPool', () => {
    for (const [n, s, o] of MAX_POOL_CASES) {
      const what = `maxPool x${shape(n, s)} ${fmt(o)}`;
      it(what, () => checkOp(what, n, { x: s }, (g, x) => g.maxPool(x.x!, o)));
    }
    for (const [n, s, o] of [[2, [3, 5, 7], { kernel: 3, stride: 1, padding: 1 }], [1, [2, 6, 6], { kernel: 2 }]] as [number, number[], PoolOptions][]) {
      const what = `maxPool x${shape(n, s)} ${fmt(o)} with ties (0/1 input): gradient to the first maximum, row-major`;
      it(what, () => checkOp(what, n, { x: s }, (g, x) => g.maxPool(x.x!, o), { data: ties }));
    }
  });

  describe('avgPool', () => {
    for (const [n, s, base] of AVG_POOL_CASES) {
      for (const countIncludePad of [true, false]) {
        const o: AvgPoolOptions = { ...base, countIncludePad };
        const what = `avgPool x${shape(n, s)} ${fmt(o)}`;
        it(what, () => checkOp(what, n, { x: s }, (g, x) => g.avgPool(x.x!, o), { tol: SUM_TOL }));
      }
    }
  });

  describe('globalAvgPool', () => {
    for (const [n, s] of [[2, [8, 7, 9]], [1, [3, 1, 1]], [4, [16, 4, 4]], [3, [64, 2, 3]]] as [number, number[]][]) {
      const what = `globalAvgPool x${shape(n, s)}`;
      it(what, () => checkOp(what, n, { x: s }, (g, x) => g.globalAvgPool(x.x!), { tol: SUM_TOL }));
    }
  });

  describe('linear', () => {
    for (const [n, f, o] of [[1, 7, 5], [4, 64, 10], [3, 1, 1], [2, 33, 17], [4, 512, 100]] as const) {
      const what = `linear x[${n},${f}] -> [${n},${o}]`;
      it(what, () => checkOp(what, n, { x: [f] }, (g, x) => g.linear(x.x!, { outFeatures: o }), { tol: SUM_TOL }));
    }
  });

  describe('add', () => {
    for (const [n, s] of [[2, [4, 7, 9]], [3, [10]], [1, [1, 1, 1]]] as [number, number[]][]) {
      const what = `add a${shape(n, s)} + b${shape(n, s)}`;
      it(what, () => checkOp(what, n, { a: s, b: s }, (g, x) => g.add(x.a!, x.b!)));
    }
    const what = 'add x + x (one value used twice: its gradient is 2 dy)';
    it(what, () => checkOp(what, 2, { x: [3, 4, 5] }, (g, x) => g.add(x.x!, x.x!)));
  });

  describe('softmaxCrossEntropy (loss, top-1 and top-k correct counts, dlogits)', () => {
    /**
     * Graph: logits input x[K] and labels -> mean loss. gradients() with a scalar seed gives the loss
     * and dlogits (inputGrads.x); step() gives loss, correct and topkCorrect; forward() the loss.
     */
    /** `smoothing`: label smoothing, set in the graph or (`via` 'compile') as a compile option. */
    async function checkCrossEntropy(
      what: string, n: number, k: number, topk: number, logits: (rng: TestRng) => Float32Array,
      smoothing = 0, via: 'graph' | 'compile' = 'graph', softTargets?: (rng: TestRng) => Float32Array,
    ): Promise<void> {
      const rng = new TestRng(seedFrom(what));
      const g = new GraphBuilder();
      const x = g.input('x', [k]);
      const labels = g.input('labels', [], 'i32');
      const targets = softTargets ? g.input('t', [k]) : undefined;
      const loss = g.softmaxCrossEntropy(x, labels, { topk, ...(via === 'graph' ? { labelSmoothing: smoothing } : {}), ...(targets ? { targets } : {}) });
      const graph = g.build({ outputs: [loss], loss });
      const z = logits(rng), y = labels32(rng, n, k);
      const t = softTargets?.(rng);
      const seed = 0.75;
      const ref = softmaxCrossEntropyForward(to64(z), y, n, k, topk, smoothing, t && to64(t));
      const dz = softmaxCrossEntropyBackward(ref.probs, y, n, k, seed, smoothing, t && to64(t));
      const feeds = { x: z, labels: y, ...(t ? { t } : {}) };
      const errors: string[] = [];
      const check = (actual: ArrayLike<number> | undefined, expected: ArrayLike<number>, tensor: string) => {
        const m = closeMessage(actual, expected, CE_TOL, `${what}: ${tensor}`);
        if (m) errors.push(m);
      };
      await withSession(graph, n, async (s) => {
        check(await s.forward(feeds), [ref.loss], 'forward() loss');
        const got = await s.gradients(feeds, Float32Array.of(seed));
        check(got.outputs[0], [ref.loss], 'gradients() loss');
        check(got.inputGrads.x, dz, `dlogits (seed ${seed})`);
        if (t && got.inputGrads.t?.some((v) => v !== 0)) errors.push(`${what}: the soft targets got a non-zero gradient`);
        const st = await s.step(t ? feeds : z, t ? undefined : y);
        check([st.loss], [ref.loss], 'step() loss');
        if (st.correct !== ref.correct) errors.push(`${what}: step() correct ${st.correct}, expected ${ref.correct}`);
        if (topk > 0 && st.topkCorrect !== ref.topkCorrect) errors.push(`${what}: step() topkCorrect ${st.topkCorrect}, expected ${ref.topkCorrect}`);
      }, via === 'compile' ? { labelSmoothing: smoothing } : {});
      if (errors.length) assert.fail(errors.join('\n'));
    }

    // [batch, classes, topk, logit std]
    const cases: [number, number, number, number][] = [
      [4, 10, 0, 1], [1, 3, 2, 1], [16, 5, 2, 2], [3, 1000, 5, 1], [8, 4, 4, 1], [7, 2, 1, 0.5],
      [6, 10, 3, 30],  // logits up to ~100: exp overflows float32 without the max shift
    ];
    for (const [n, k, topk, std] of cases) {
      const what = `softmaxCrossEntropy logits[${n},${k}] topk ${topk} logit std ${std}`;
      it(what, () => checkCrossEntropy(what, n, k, topk, (rng) => normal32(rng, n * k, 0, std)));
    }
    const what = 'softmaxCrossEntropy logits[32,4] topk 2 with ties (integer logits 0..2): top-1 ties to the lowest index, top-k counts strictly greater';
    it(what, () => checkCrossEntropy(what, 32, 4, 2, (rng) => Float32Array.from({ length: 128 }, () => rng.int(0, 2))));
    // [batch, classes, label smoothing, where it is set]
    const smoothed: [number, number, number, 'graph' | 'compile'][] = [[8, 10, 0.1, 'graph'], [5, 3, 0.5, 'compile'], [4, 1000, 0.2, 'graph']];
    for (const [n, k, e, via] of smoothed) {
      const what = `softmaxCrossEntropy logits[${n},${k}] label smoothing ${e} (set in the ${via === 'graph' ? 'graph' : 'compile options'})`;
      it(what, () => checkCrossEntropy(what, n, k, 2, (rng) => normal32(rng, n * k, 0, 2), e, via));
    }
    // Soft targets (mixup, cutmix): [batch, classes, label smoothing, targets]
    const distributions = (n: number, k: number) => (rng: TestRng) => {
      const t = new Float32Array(n * k);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = 0; j < k; j++) sum += t[i * k + j] = rng.next() < 0.3 ? 0 : rng.next();  // some exact zeros
        if (sum === 0) t[i * k] = sum = 1;
        for (let j = 0; j < k; j++) t[i * k + j]! /= sum;
      }
      return t;
    };
    const mixed = (n: number, k: number) => (rng: TestRng) => {
      const t = new Float32Array(n * k), lam = rng.next();
      for (let i = 0; i < n; i++) {
        t[i * k + rng.int(0, k - 1)] += lam;
        t[i * k + rng.int(0, k - 1)] += 1 - lam;
      }
      return t;
    };
    const soft: [number, number, number, string, (n: number, k: number) => (rng: TestRng) => Float32Array][] = [
      [8, 10, 0, 'random distributions', distributions], [6, 5, 0.1, 'random distributions', distributions],
      [16, 10, 0, 'two-hot (mixup)', mixed], [4, 1000, 0.2, 'two-hot (mixup)', mixed],
    ];
    for (const [n, k, e, kind, targets] of soft) {
      const what = `softmaxCrossEntropy logits[${n},${k}] soft targets (${kind}), label smoothing ${e}`;
      it(what, () => checkCrossEntropy(what, n, k, 2, (rng) => normal32(rng, n * k, 0, 2), e, 'graph', targets(n, k)));
    }
    it('soft targets equal to the one-hot labels give the labels\' loss and gradient', async () => {
      const what = 'one-hot soft targets';
      const n = 6, k = 7;
      const g = new GraphBuilder();
      const x = g.input('x', [k]), y = g.input('labels', [], 'i32'), t = g.input('t', [k]);
      const softLoss = g.softmaxCrossEntropy(x, y, { targets: t, labelSmoothing: 0.1, name: 'soft' });
      const rng = new TestRng(seedFrom(what));
      const z = normal32(rng, n * k, 0, 2), labels = labels32(rng, n, k);
      const onehot = new Float32Array(n * k);
      labels.forEach((l, i) => (onehot[i * k + l] = 1));
      const ref = softmaxCrossEntropyForward(to64(z), labels, n, k, 0, 0.1);
      const got = await withSession(g.build({ outputs: [softLoss], loss: softLoss }), n, (s) => s.gradients({ x: z, labels, t: onehot }, Float32Array.of(1)));
      const m = closeMessage(got.outputs[0], [ref.loss], CE_TOL, 'one-hot soft loss') ?? closeMessage(got.inputGrads.x, softmaxCrossEntropyBackward(ref.probs, labels, n, k, 1, 0.1), CE_TOL, 'one-hot soft dlogits');
      if (m) assert.fail(m);
    });
    it('compile softTargets adds a targets input that step() takes; forward() does without it', async () => {
      const g = new GraphBuilder();
      const x = g.input('x', [4]), y = g.input('labels', [], 'i32');
      const logits = g.linear(x, { outFeatures: 3 });
      const loss = g.softmaxCrossEntropy(logits, y);
      const graph = g.build({ outputs: [logits], loss });
      const z = Float32Array.of(1, 2, 3, 4, -1, 0, 1, 0), labels = Int32Array.of(0, 2);
      const session = await compile(graph, { batchSize: 2, softTargets: true, optimizer: { lr: 0 } });
      try {
        assert.equal(session.targetsInput, 'targets');
        assert.equal(graph.ir.inputs.length, 2, "the caller's graph is left as built");
        await assert.rejects(session.step(z, labels), /input targets: expected a Float32Array, but received nothing/);
        const out = await session.forward(z);
        const onehot = Float32Array.of(1, 0, 0, 0, 0, 1);
        const ref = softmaxCrossEntropyForward(to64(out), labels, 2, 3);
        const r = await session.step(z, labels, { targets: onehot });
        const m = closeMessage([r.loss], [ref.loss], CE_TOL, 'step loss with one-hot targets');
        if (m) assert.fail(m);
        const half = Float32Array.of(0.5, 0.5, 0, 0, 0.5, 0.5);
        const r2 = await session.step(z, labels, { targets: half });
        const ref2 = softmaxCrossEntropyForward(to64(out), labels, 2, 3, 0, 0, to64(half));
        const m2 = closeMessage([r2.loss], [ref2.loss], CE_TOL, 'step loss with mixed targets');
        if (m2) assert.fail(m2);
      } finally {
        session.dispose();
      }
      const plain = await compile(graph, { batchSize: 2 });
      try {
        await assert.rejects(plain.step(z, labels, { targets: new Float32Array(6) }), /not compiled with softTargets/);
      } finally {
        plain.dispose();
      }
    });
    it('label smoothing outside [0, 1) is refused by the builder and by compile', async () => {
      const g = new GraphBuilder();
      const x = g.input('x', [4]), y = g.input('labels', [], 'i32');
      assert.throws(() => g.softmaxCrossEntropy(x, y, { labelSmoothing: 1 }), /expected labelSmoothing to be a number in \[0, 1\), but received 1/);
      const loss = g.softmaxCrossEntropy(x, y, { labelSmoothing: 0.3 });
      const graph = g.build({ outputs: [loss], loss });
      await assert.rejects(compile(graph, { batchSize: 2, labelSmoothing: -0.1 }), /compile: expected labelSmoothing to be a number in \[0, 1\), but received -0.1/);
      await assert.rejects(compile(graph, { batchSize: 2, labelSmoothing: NaN }), /expected labelSmoothing to be a number in \[0, 1\), but received NaN/);
      const noLoss = new GraphBuilder();
      const out = noLoss.relu(noLoss.input('x', [4]));
      await assert.rejects(compile(noLoss.build({ outputs: [out] }), { batchSize: 2, labelSmoothing: 0.1 }), /compile: expected labelSmoothing 0 for a graph without a loss, but received 0.1/);
    });
    it('compile labelSmoothing 0 turns off the smoothing a graph was built with, and leaves the graph as built', async () => {
      const g = new GraphBuilder();
      const x = g.input('x', [5]), y = g.input('labels', [], 'i32');
      const loss = g.softmaxCrossEntropy(x, y, { labelSmoothing: 0.3 });
      const graph = g.build({ outputs: [loss], loss });
      const z = Float32Array.of(1, 2, 3, 4, 5, -1, 0, 1, 0, 2), labels = Int32Array.of(0, 4);
      const plain = softmaxCrossEntropyForward(to64(z), labels, 2, 5).loss;
      const smoothed = softmaxCrossEntropyForward(to64(z), labels, 2, 5, 0, 0.3).loss;
      const got = await withSession(graph, 2, (s) => s.forward({ x: z, labels }), { labelSmoothing: 0 });
      assert.ok(Math.abs(got[0]! - plain) < 1e-5 && Math.abs(plain - smoothed) > 1e-2, `loss ${got[0]} vs unsmoothed ${plain}`);
      assert.equal(graph.ir.nodes.find((n) => n.op === 'softmaxCrossEntropy')!.attrs.labelSmoothing, 0.3);
    });
  });
});
