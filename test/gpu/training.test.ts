// Whole training steps of a small residual model on CUDA against the CPU backend (same initial
// parameters from the same seed, same batches): loss and counts per step, then every parameter, momentum
// buffer and running statistic. Then determinism (cudnn.deterministic: bitwise equal gradients across
// sessions) and the cuDNN algorithm report (profile().impl).
import { strict as assert } from 'node:assert';
import { compile, GraphBuilder } from '../../lib/index.js';
import { TestRng, labels32, normal32 } from '../support/random.js';
import { Checker, GPU, pair } from './compare.js';

/** conv-BN-ReLU stem, max pool, a grouped bottleneck with a residual add and a weight shared by two
 * 1x1 convolutions (a CRU-style shared factor), global pool, linear, loss. */
function smallResNet(k = 10) {
  const g = new GraphBuilder();
  const x = g.input('images', [3, 16, 16]);
  const y = g.input('labels', [], 'i32');
  let t = g.relu(g.batchNorm(g.conv2d(x, { outChannels: 32, kernel: 3, padding: 1, name: 'stem' }), { name: 'stem_bn' }));
  t = g.maxPool(t, { kernel: 3, stride: 2, padding: 1 });
  const shared = g.param('shared_1x1', [32, 32, 1, 1]);
  let b = g.relu(g.batchNorm(g.conv2d(t, { outChannels: 32, kernel: 1, weight: shared, name: 'a' }), { name: 'a_bn' }));
  b = g.relu(g.batchNorm(g.conv2d(b, { outChannels: 32, kernel: 3, padding: 1, groups: 8, name: 'b' }), { name: 'b_bn' }));
  b = g.batchNorm(g.conv2d(b, { outChannels: 32, kernel: 1, weight: shared, name: 'c' }), { name: 'c_bn' });
  t = g.relu(g.add(t, b));
  t = g.avgPool(t, { kernel: 2 });
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: k, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y, { topk: 3 }) });
}

describe('training on CUDA against the CPU backend', () => {
  it('five SGD steps (momentum, nesterov, weight decay): losses, parameters, momentum and running statistics', async () => {
    const batch = 16, steps = 5;
    const graph = smallResNet();
    const optimizer = { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4 };
    const { cpu, gpu, dispose } = await pair(graph, batch, { seed: 11, optimizer, inputGrads: false });
    // Losses drift apart slowly as float32 rounding differs; parameters after 5 steps within 1e-3.
    const c = new Checker('five steps', { rtol: 1e-3, atol: 1e-4 });
    try {
      for (const name of cpu.parameterNames()) c.check(gpu.getParameter(name), cpu.getParameter(name), `initial ${name}`);
      const rng = new TestRng(7);
      for (let i = 0; i < steps; i++) {
        const images = normal32(rng, batch * 3 * 256), labels = labels32(rng, batch, 10);
        const [a, b] = [await gpu.step(images, labels), await cpu.step(images, labels)];
        c.check([a.loss], [b.loss], `step ${i} loss`);
        assert.ok(Math.abs(a.correct - b.correct) <= 1, `step ${i}: correct ${a.correct} on cuda, ${b.correct} on cpu`);
      }
      for (const name of cpu.parameterNames()) c.check(gpu.getParameter(name), cpu.getParameter(name), `${name} after ${steps} steps`);
      for (const name of cpu.parameterNames().filter((n) => !/running_(mean|var)/.test(n)))
        c.check(gpu.getOptimizerState(name), cpu.getOptimizerState(name), `momentum of ${name}`);
      const probe = normal32(new TestRng(99), batch * 3 * 256);
      c.check(await gpu.forward(probe), await cpu.forward(probe), 'inference logits after training');
    } finally {
      dispose();
    }
    c.done();
  });

  it('five AdamW steps with groups, clipping, accumulation and the moving average: as on the CPU', async () => {
    const batch = 16, steps = 5;
    const graph = smallResNet();
    const optimizer = { type: 'adamw' as const, lr: 2e-3, weightDecay: 0.05, clipGradNorm: 0.5, groups: [{ match: /^fc\./, lrScale: 0.5 }] };
    const { cpu, gpu, dispose } = await pair(graph, batch, { seed: 12, optimizer, inputGrads: false, ema: { decay: 0.9, warmup: true } });
    const c = new Checker('five AdamW steps', { rtol: 1e-3, atol: 1e-4 });
    try {
      const rng = new TestRng(8);
      for (let i = 0; i < steps; i++) {
        const images = normal32(rng, batch * 3 * 256), labels = labels32(rng, batch, 10);
        const accumulate = i === 1;
        const [a, b] = [await gpu.step(images, labels, { accumulate }), await cpu.step(images, labels, { accumulate })];
        c.check([a.loss], [b.loss], `step ${i} loss`);
        assert.equal(a.gradNorm === undefined, accumulate, `step ${i}: gradNorm only after an update`);
        if (!accumulate) c.check([a.gradNorm!], [b.gradNorm!], `step ${i} gradient norm`);
      }
      assert.equal(gpu.updates, cpu.updates);
      for (const name of cpu.parameterNames()) {
        c.check(gpu.getParameter(name), cpu.getParameter(name), `${name} after ${steps} steps`);
        c.check(gpu.getEma(name), cpu.getEma(name), `moving average of ${name}`);
      }
      for (const name of cpu.parameterNames().filter((n) => !/running_(mean|var)/.test(n)))
        for (const buffer of cpu.optimizerStateNames) c.check(gpu.getOptimizerState(name, buffer), cpu.getOptimizerState(name, buffer), `${buffer} of ${name}`);
      const probe = normal32(new TestRng(98), batch * 3 * 256);
      c.check(await gpu.forward(probe, { ema: true }), await cpu.forward(probe, { ema: true }), 'inference logits of the moving average');
    } finally {
      dispose();
    }
    c.done();
  });

  it('cudnn.deterministic: two sessions give bitwise equal gradients', async () => {
    const graph = smallResNet();
    const batch = 8;
    const rng = new TestRng(3);
    const images = normal32(rng, batch * 3 * 256), seed = normal32(rng, batch * 10);
    const run = async () => {
      const s = await compile(graph, { device: GPU, batchSize: batch, seed: 5, inputGrads: true, cudnn: { deterministic: true } });
      try {
        const a = await s.gradients(images, seed);
        const b = await s.gradients(images, seed);  // also within one session
        return [a, b];
      } finally {
        s.dispose();
      }
    };
    const [[a1, a2], [b1]] = [await run(), await run()];
    for (const [x, y, label] of [[a1!, a2!, 'same session'], [a1!, b1!, 'two sessions']] as const) {
      assert.deepEqual(x.inputGrads.images, y.inputGrads.images, `${label}: input gradient`);
      for (const k of Object.keys(x.paramGrads)) assert.deepEqual(x.paramGrads[k], y.paramGrads[k], `${label}: gradient of ${k}`);
    }
  });

  it('profile() names the cuDNN algorithms chosen, and a second session finds them in the cache', async () => {
    const graph = smallResNet();
    const opts = { device: GPU, batchSize: 4, profile: true, cudnn: { benchmark: true, benchmarkLimit: 4 } };
    const first = await compile(graph, opts);
    const second = await compile(graph, opts);
    try {
      const conv = (s: typeof first) => s.profile().find((p) => p.name === 'b')!.impl;
      assert.match(conv(first), /^cuDNN fwd=\w+ \(.*benchmarked.*\) bwd_data=\w+ .* bwd_filter=\w+ /);
      assert.match(conv(second), /cached/);
      console.log(`      conv b (grouped 3x3): ${conv(first)}`);
    } finally {
      first.dispose();
      second.dispose();
    }
  });
});
