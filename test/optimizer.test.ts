// The update phase of step() against PyTorch's formulas computed in float64 here: AdamW and SGD with
// parameter groups, clipping by global norm, gradient accumulation and the moving average of the weights
// (docs/ARCHITECTURE.md, "A training step").
//
// Each step is checked from the engine's own state before it (parameters and optimizer state read back:
// float32 values are exact float64 values) against one float64 reference step on the float64 reference
// gradient (test/reference/graph.ts), so the comparison carries one step's rounding only. The graphs have
// no ReLU (no kink where float32 and float64 could take different branches) and no batch norm (so that
// accumulation over micro-batches is the same maths as one large batch).
import { strict as assert } from 'node:assert';
import { compile, GraphBuilder, type Graph, type OptimizerOptions, type Session } from '../lib/index.js';
import { createSchedule } from '../lib/train/schedule.js';
import { Trainer, type BatchSource, type StepInfo } from '../lib/train/trainer.js';
import { assertClose, referenceBackward, referenceForward, type Params64, type Tolerance } from './reference/index.js';
import { normal32, TestRng } from './support/random.js';

/** conv (with bias) -> global average pool -> linear -> loss: every parameter reached, no kinks, no batch statistics. */
function net(): Graph {
  const g = new GraphBuilder();
  const x = g.input('images', [2, 5, 5]);
  const y = g.input('labels', [], 'i32');
  const t = g.conv2d(x, { outChannels: 6, kernel: 3, padding: 1, bias: true, name: 'conv' });
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}

const PER = 2 * 5 * 5;
function batchData(seed: number, n: number) {
  const rng = new TestRng(seed);
  return { images: normal32(rng, n * PER, 0, 1), labels: Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % 4) };
}

const to64 = (a: Float32Array) => Float64Array.from(a);

/** The float64 gradient of the mean loss at the session's current parameters. */
function referenceGradient(graph: Graph, s: Session, images: Float32Array, labels: Int32Array, batch: number): Map<string, Float64Array> {
  const params: Params64 = new Map(graph.ir.params.map((q) => [q.name, to64(s.getParameter(q.name))]));
  const run = referenceForward(graph, batch, { images: to64(images), labels }, params, true);
  return referenceBackward(graph, batch, run, params, Float64Array.of(1), graph.ir.loss).paramGrads;
}

/** torch.optim.AdamW's update of one tensor (amsgrad off), in place; t is the 1-based step. */
function adamwReference(w: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, t: number,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }): void {
  const bc1 = 1 - o.beta1 ** t, bc2 = 1 - o.beta2 ** t;
  for (let i = 0; i < w.length; i++) {
    w[i] *= 1 - o.lr * o.weightDecay;
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
    w[i] -= (o.lr / bc1) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps);
  }
}

/** timm's Lamb on one tensor (bias correction, grad averaging, trust ratio without clipping), in place. */
function lambReference(w: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, t: number,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }): void {
  const bc1 = 1 - o.beta1 ** t, bc2 = 1 - o.beta2 ** t;
  const u = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
    u[i] = (m[i]! / bc1) / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps) + o.weightDecay * w[i]!;
  }
  let ratio = 1;
  if (o.weightDecay !== 0) {
    const wn = Math.hypot(...w), un = Math.hypot(...u);
    ratio = wn > 0 && un > 0 ? wn / un : 1;
  }
  for (let i = 0; i < w.length; i++) w[i] -= o.lr * ratio * u[i]!;
}

/** torch.optim.SGD's update of one tensor (dampening 0), in place. */
function sgdReference(w: Float64Array, g: Float64Array, buf: Float64Array, o: { lr: number; momentum: number; nesterov: boolean; weightDecay: number }): void {
  for (let i = 0; i < w.length; i++) {
    const d = g[i]! + o.weightDecay * w[i]!;
    buf[i] = o.momentum * buf[i]! + d;
    w[i] -= o.lr * (o.nesterov ? d + o.momentum * buf[i]! : buf[i]!);
  }
}

/** torch.nn.utils.clip_grad_norm_: the global norm, and every gradient scaled by min(1, max / (norm + 1e-6)). */
function clipReference(grads: Map<string, Float64Array>, max: number): number {
  let sq = 0;
  for (const g of grads.values()) for (const x of g) sq += x * x;
  const norm = Math.sqrt(sq), coef = Math.min(1, max / (norm + 1e-6));
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] *= coef;
  return norm;
}

// One float32 step against float64: the gradient carries float32's forward/backward rounding (relative
// ~1e-6 at these sizes), the update a few roundings more. AdamW's step is lr-sized per element whatever the
// gradient's scale, so parameters get an absolute term of 1e-4 x lr; state buffers are compared relatively
// (exp_avg_sq is a square: twice the gradient's relative error) with an absolute floor far below their values.
const W_TOL: Tolerance = { rtol: 2e-5, atol: 1e-6 };
// The state buffers: a float32 gradient element's error is relative to the largest terms of its sum (a
// convolution's weight gradient sums over the batch and every position, with cancellation), not to its own
// value, so the absolute term scales with the tensor's largest entry; exp_avg_sq squares the gradient, twice
// the relative error.
const stateTol = (expected: Float64Array): Tolerance => ({ rtol: 2e-4, atol: 2e-5 * Math.max(...expected.map(Math.abs)) });

describe('optimizer: update rules against PyTorch formulas in float64', () => {
  const graph = net();
  const batch = 4;

  it('AdamW (decoupled decay, bias correction) with a group: no decay on biases, half the learning rate on fc', async () => {
    const o = { lr: 0.01, beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.05 };
    const optimizer: OptimizerOptions = { type: 'adamw', lr: o.lr, betas: [o.beta1, o.beta2], eps: o.eps, weightDecay: o.weightDecay, groups: [{ match: /^fc\./, lrScale: 0.5 }] };
    const s = await compile(graph, { batchSize: batch, seed: 3, optimizer });
    try {
      assert.deepEqual(s.optimizerStateNames, ['exp_avg', 'exp_avg_sq']);
      for (let t = 1; t <= 4; t++) {
        const { images, labels } = batchData(10 + t, batch);
        const grads = referenceGradient(graph, s, images, labels, batch);
        const expected = new Map<string, Float64Array[]>();
        for (const q of graph.ir.params) {
          const w = to64(s.getParameter(q.name)), m = to64(s.getOptimizerState(q.name, 'exp_avg')), v = to64(s.getOptimizerState(q.name, 'exp_avg_sq'));
          const lr = q.name.startsWith('fc.') ? o.lr * 0.5 : o.lr;
          adamwReference(w, grads.get(q.name)!, m, v, t, { ...o, lr, weightDecay: q.weightDecay ? o.weightDecay : 0 });
          expected.set(q.name, [w, m, v]);
        }
        const r = await s.step(images, labels);
        assert.equal(s.updates, t);
        assert.ok(r.gradNorm! > 0);
        for (const q of graph.ir.params) {
          const [w, m, v] = expected.get(q.name)!;
          assertClose(s.getParameter(q.name), w!, W_TOL, `step ${t}: ${q.name}`);
          assertClose(s.getOptimizerState(q.name, 'exp_avg'), m!, stateTol(m!), `step ${t}: exp_avg of ${q.name}`);
          assertClose(s.getOptimizerState(q.name, 'exp_avg_sq'), v!, stateTol(v!), `step ${t}: exp_avg_sq of ${q.name}`);
        }
      }
    } finally {
      s.dispose();
    }
  });

  it("LAMB (timm's): trust ratio on parameters with weight decay, plain Adam steps on the others", async () => {
    const o = { lr: 0.02, beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 };
    const s = await compile(graph, { batchSize: batch, seed: 6, optimizer: { type: 'lamb', lr: o.lr, betas: [o.beta1, o.beta2], weightDecay: o.weightDecay } });
    try {
      for (let t = 1; t <= 3; t++) {
        const { images, labels } = batchData(50 + t, batch);
        const grads = referenceGradient(graph, s, images, labels, batch);
        const expected = new Map(graph.ir.params.map((q) => {
          const w = to64(s.getParameter(q.name)), m = to64(s.getOptimizerState(q.name, 'exp_avg')), v = to64(s.getOptimizerState(q.name, 'exp_avg_sq'));
          lambReference(w, grads.get(q.name)!, m, v, t, { ...o, weightDecay: q.weightDecay ? o.weightDecay : 0 });
          return [q.name, [w, m, v]] as const;
        }));
        await s.step(images, labels);
        for (const q of graph.ir.params) {
          const [w, m, v] = expected.get(q.name)!;
          assertClose(s.getParameter(q.name), w, W_TOL, `step ${t}: ${q.name}`);
          assertClose(s.getOptimizerState(q.name, 'exp_avg'), m, stateTol(m), `step ${t}: exp_avg of ${q.name}`);
          assertClose(s.getOptimizerState(q.name, 'exp_avg_sq'), v, stateTol(v), `step ${t}: exp_avg_sq of ${q.name}`);
        }
      }
    } finally {
      s.dispose();
    }
  });

  it("AdamW's defaults are PyTorch's: betas (0.9, 0.999), eps 1e-8, weight decay 0.01", async () => {
    const s = await compile(graph, { batchSize: batch, seed: 4, optimizer: { type: 'adamw', lr: 0.003 } });
    try {
      const { images, labels } = batchData(5, batch);
      const grads = referenceGradient(graph, s, images, labels, batch);
      const expected = new Map(graph.ir.params.map((q) => {
        const w = to64(s.getParameter(q.name));
        adamwReference(w, grads.get(q.name)!, new Float64Array(w.length), new Float64Array(w.length), 1,
          { lr: 0.003, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: q.weightDecay ? 0.01 : 0 });
        return [q.name, w];
      }));
      await s.step(images, labels);
      for (const q of graph.ir.params) assertClose(s.getParameter(q.name), expected.get(q.name)!, W_TOL, q.name);
    } finally {
      s.dispose();
    }
  });

  it('SGD with clipping by global norm and a group with its own weight decay and learning rate; gradNorm is the norm before clipping', async () => {
    const o = { lr: 0.2, momentum: 0.9, nesterov: true, weightDecay: 0.01 };
    const clip = 0.05;
    const optimizer: OptimizerOptions = { ...o, clipGradNorm: clip, groups: [{ match: (n) => n === 'conv.bias', weightDecay: 0.1, lrScale: 3 }] };
    const s = await compile(graph, { batchSize: batch, seed: 5, optimizer });
    try {
      let clipped = 0;
      for (let t = 1; t <= 3; t++) {
        const { images, labels } = batchData(20 + t, batch);
        const grads = referenceGradient(graph, s, images, labels, batch);
        const norm = clipReference(grads, clip);
        if (norm > clip) clipped++;
        const expected = new Map(graph.ir.params.map((q) => {
          const w = to64(s.getParameter(q.name)), buf = to64(s.getOptimizerState(q.name));
          const group = q.name === 'conv.bias';
          sgdReference(w, grads.get(q.name)!, buf, { ...o, lr: group ? o.lr * 3 : o.lr, weightDecay: group ? 0.1 : q.weightDecay ? o.weightDecay : 0 });
          return [q.name, w];
        }));
        const r = await s.step(images, labels);
        assertClose([r.gradNorm!], [norm], { rtol: 1e-5, atol: 0 }, `step ${t}: gradNorm`);
        for (const q of graph.ir.params) assertClose(s.getParameter(q.name), expected.get(q.name)!, W_TOL, `step ${t}: ${q.name}`);
      }
      assert.ok(clipped > 0, 'the clipping bound should bind in at least one step, or this test checks nothing of it');
    } finally {
      s.dispose();
    }
  });
});

describe('optimizer: a gradient that overflows', () => {
  it('fails the step before the update: parameters, optimizer state and the update count stay as they were', async () => {
    const graph = net();
    const s = await compile(graph, { batchSize: 2, seed: 9, optimizer: { type: 'adamw', lr: 0.01, clipGradNorm: 1 } });
    try {
      // Zero convolution weights keep the forward pass (and the loss) finite on inputs near float32's
      // largest value; the weight gradient sums input x output-gradient over every position and overflows.
      s.setParameter('conv.weight', new Float32Array(6 * 2 * 9));
      s.setParameter('fc.weight', Float32Array.from({ length: 4 * 6 }, (_, i) => (Math.floor(i / 6) % 2 ? 100 : -100)));  // an output gradient of order 1
      const before = graph.ir.params.map((q) => [s.getParameter(q.name), s.getOptimizerState(q.name, 'exp_avg')]);
      await assert.rejects(s.step(new Float32Array(2 * PER).fill(3e38), Int32Array.of(0, 1)),
        /step: the gradient's norm is (infinite|NaN); parameters, optimizer state and batch-norm statistics were left as they were/);
      assert.deepEqual(graph.ir.params.map((q) => [s.getParameter(q.name), s.getOptimizerState(q.name, 'exp_avg')]), before);
      assert.equal(s.updates, 0);
    } finally {
      s.dispose();
    }
  });
});

describe('optimizer: gradient accumulation', () => {
  const graph = net();

  // k micro-steps of batch b against one step of batch k*b from the same initial weights: the mean of the
  // micro-batches' mean gradients is the large batch's mean gradient, summed in another order (float32,
  // relative ~1e-6); AdamW then divides by sqrt(v), which the test keeps well away from eps.
  for (const type of ['sgd', 'adamw'] as const) {
    it(`${type}: 3 accumulating micro-steps of batch 2 equal one step at batch 6 (rtol 1e-5, atol 1e-6), with clipping on the mean gradient`, async () => {
      const optimizer: OptimizerOptions = type === 'sgd' ? { lr: 0.3, momentum: 0.9, weightDecay: 1e-3, clipGradNorm: 0.05 } : { type, lr: 0.01, clipGradNorm: 0.05 };
      const small = await compile(graph, { batchSize: 2, seed: 8, optimizer });
      const large = await compile(graph, { batchSize: 6, seed: 8, optimizer });
      try {
        for (let round = 0; round < 2; round++) {
          const { images, labels } = batchData(30 + round, 6);
          let norm: number | undefined;
          for (let k = 0; k < 3; k++) {
            const r = await small.step(images.subarray(k * 2 * PER, (k + 1) * 2 * PER), labels.subarray(k * 2, (k + 1) * 2), { accumulate: k < 2 });
            if (k < 2) assert.equal(r.gradNorm, undefined, 'an accumulating step updates nothing and reports no norm');
            norm = r.gradNorm;
          }
          const r = await large.step(images, labels);
          assertClose([norm!], [r.gradNorm!], { rtol: 1e-5, atol: 0 }, `round ${round}: gradNorm`);
          for (const q of graph.ir.params) assertClose(small.getParameter(q.name), large.getParameter(q.name), { rtol: 1e-5, atol: 1e-6 }, `round ${round}: ${q.name}`);
        }
        assert.equal(small.updates, 2);
      } finally {
        small.dispose();
        large.dispose();
      }
    });
  }

  it('Trainer: one update per `accumulate` batches, the epoch\'s last update taking the batches left, steps counting updates', async () => {
    const batches = 5;  // 11 samples at batch 2: 5 full batches, so updates after batches 2, 4 and 5
    const source: BatchSource = {
      dataset: { shape: [2, 5, 5], length: 11 },
      async *epoch(e: number) {
        for (let b = 0; b < batches; b++) yield { ...batchData(100 * e + b, 2), size: 2 };
      },
    };
    const s = await compile(graph, { batchSize: 2, optimizer: { type: 'adamw', lr: 0.01 } });
    try {
      const seen: StepInfo[] = [];
      const trainer = new Trainer({ session: s, train: source, schedule: createSchedule({ type: 'constant', lr: 0.01 }), epochs: 2, accumulate: 2, callbacks: { onStep: (i) => void seen.push(i) } });
      await trainer.fit();
      assert.equal(trainer.step, 6);
      assert.equal(s.updates, 6);
      assert.deepEqual(seen.map((i) => [i.step, i.gradNorm !== undefined]),
        [[0, false], [0, true], [1, false], [1, true], [2, true], [3, false], [3, true], [4, false], [4, true], [5, true]]);
      assert.throws(() => new Trainer({ session: s, train: { epoch: source.epoch }, schedule: createSchedule({ type: 'constant', lr: 0.01 }), epochs: 1, accumulate: 2 }),
        /Trainer: expected a training source with dataset.length for accumulate > 1/);
      assert.throws(() => new Trainer({ session: s, train: source, schedule: createSchedule({ type: 'constant', lr: 0.01 }), epochs: 1, accumulate: 0 }),
        /Trainer: expected accumulate to be a positive integer, but received 0/);
    } finally {
      s.dispose();
    }
  });

  it('an accumulating step changes no parameter', async () => {
    const s = await compile(graph, { batchSize: 2, seed: 1, optimizer: { lr: 0.5 } });
    try {
      const before = s.getParameter('fc.weight');
      const { images, labels } = batchData(2, 2);
      await s.step(images, labels, { accumulate: true });
      assert.deepEqual(s.getParameter('fc.weight'), before);
      assert.equal(s.updates, 0);
    } finally {
      s.dispose();
    }
  });
});

describe('optimizer: moving average of the weights (timm ModelEmaV2)', () => {
  const graph = net();
  for (const warmup of [false, true]) {
    it(`ema = decay * ema + (1 - decay) * weights after every update${warmup ? ', decay min(d, (1 + u) / (10 + u)) with warmup' : ''}`, async () => {
      const decay = 0.9;
      const s = await compile(graph, { batchSize: 2, seed: 2, optimizer: { type: 'adamw', lr: 0.05 }, ema: { decay, warmup } });
      try {
        const ema = new Map(graph.ir.params.map((q) => [q.name, to64(s.getParameter(q.name))]));  // starts as a copy
        for (let u = 0; u < 4; u++) {
          const { images, labels } = batchData(40 + u, 2);
          await s.step(images, labels, { accumulate: u === 1 });  // an accumulating step leaves the average alone
          if (u === 1) continue;
          const updates = s.updates - 1;
          const d = warmup ? Math.min(decay, (1 + updates) / (10 + updates)) : decay;
          for (const q of graph.ir.params) {
            const e = ema.get(q.name)!, w = s.getParameter(q.name);
            for (let i = 0; i < e.length; i++) e[i] = d * e[i]! + (1 - d) * w[i]!;
            // float32 rounding of two products and a sum per update, compounded over 3 updates.
            assertClose(s.getEma(q.name), e, { rtol: 1e-6, atol: 1e-7 }, `update ${s.updates}: ema of ${q.name}`);
          }
        }
        // Inference with the average's weights differs from inference with the trained ones.
        const { images } = batchData(99, 2);
        const [plain, averaged] = [await s.forward(images), await s.forward(images, { ema: true })];
        assert.notDeepEqual(plain, averaged);
      } finally {
        s.dispose();
      }
    });
  }

  it('the average starts from weights set before the first update (a state dict, a broadcast), not from the initial ones', async () => {
    const s = await compile(graph, { batchSize: 2, seed: 3, optimizer: { type: 'adamw', lr: 0.05 }, ema: { decay: 0.9 } });
    try {
      const q = graph.ir.params[0]!;
      const loaded = s.getParameter(q.name).map((v, i) => v + 0.25 * ((i % 3) - 1));
      s.setParameter(q.name, loaded);
      assert.deepEqual(s.getEma(q.name), loaded);
      await s.step(batchData(7, 2).images, batchData(7, 2).labels);
      // After an update, setting weights no longer moves the average (a checkpoint sets it itself).
      const before = s.getEma(q.name);
      s.setParameter(q.name, loaded);
      assert.deepEqual(s.getEma(q.name), before);
    } finally {
      s.dispose();
    }
  });

  it('forward with the average of a session that keeps none is refused', async () => {
    const s = await compile(graph, { batchSize: 2, optimizer: { lr: 0.1 } });
    try {
      await assert.rejects(s.forward(batchData(1, 2).images, { ema: true }), /forward: expected a session compiled with ema/);
      assert.throws(() => s.getEma('fc.weight'), /keeps no moving average/);
    } finally {
      s.dispose();
    }
  });
});

describe('optimizer: settings are checked', () => {
  const graph = net();
  const bad: [string, Partial<OptimizerOptions> & Record<string, unknown>, RegExp, ErrorConstructor][] = [
    ['an unknown type', { type: 'adam' as never }, /expected type to be one of 'sgd', 'adamw', 'lamb', but received "adam"/, RangeError],
    ['a beta of 1', { type: 'adamw', betas: [0.9, 1] }, /expected betas\[1\] to be a number in \[0, 1\), but received 1/, RangeError],
    ['a negative beta', { type: 'adamw', betas: [-0.1, 0.9] }, /expected betas\[0\] to be a number in \[0, 1\), but received -0.1/, RangeError],
    ['eps 0', { type: 'adamw', eps: 0 }, /expected eps to be a finite number > 0, but received 0/, RangeError],
    ['a negative clipping norm', { clipGradNorm: -1 }, /expected clipGradNorm to be a finite number >= 0 \(0: no clipping\), but received -1/, RangeError],
    ['momentum with AdamW', { type: 'adamw', momentum: 0.9 }, /expected no momentum or nesterov for type 'adamw'/, TypeError],
    ['a group without match', { groups: [{ lrScale: 2 } as never] }, /expected groups\[0\]\.match to be a RegExp or a function/, TypeError],
    ['a negative lrScale', { groups: [{ match: /x/, lrScale: -1 }] }, /expected groups\[0\]\.lrScale to be a finite number >= 0, but received -1/, RangeError],
  ];
  for (const [what, o, message, Class] of bad) {
    it(`compile refuses ${what}`, async () => {
      await assert.rejects(compile(graph, { batchSize: 2, optimizer: { lr: 0.1, ...o } }), (e: Error) => e instanceof Class && message.test(e.message));
    });
  }
  it('compile refuses an EMA decay outside [0, 1]', async () => {
    await assert.rejects(compile(graph, { batchSize: 2, ema: { decay: 1.5 } }), /compile: expected ema.decay to be a number in \[0, 1\], but received 1.5/);
    await assert.rejects(compile(graph, { batchSize: 2, ema: { decay: -0.1 } }), RangeError);
  });
  it('setOptimizer keeps the type and checks the rest; groups are resolved again', async () => {
    const s = await compile(graph, { batchSize: 2, optimizer: { type: 'adamw', lr: 0.1 } });
    try {
      assert.throws(() => s.setOptimizer({ type: 'sgd' }), /setOptimizer: expected type 'adamw' \(fixed at compile time/);
      assert.throws(() => s.setOptimizer({ betas: [1, 0.9] }), /setOptimizer: expected betas\[0\] to be a number in \[0, 1\)/);
      s.setOptimizer({ lr: 0.01, groups: [{ match: /^conv\./, lrScale: 0 }] });  // conv frozen (AdamW's decay scales with the lr too)
      const conv = s.getParameter('conv.weight'), fc = s.getParameter('fc.weight');
      const { images, labels } = batchData(3, 2);
      await s.step(images, labels);
      assert.deepEqual(s.getParameter('conv.weight'), conv);
      assert.notDeepEqual(s.getParameter('fc.weight'), fc);
      assert.throws(() => s.getOptimizerState('fc.weight', 'momentum'), /expected an optimizer state buffer of adamw \(exp_avg, exp_avg_sq\), but received 'momentum'/);
    } finally {
      s.dispose();
    }
  });
});
