// Dynamic loss scaling (native/core/loss_scaler.h; docs/ARCHITECTURE.md, "Precision") on the CPU with fp32
// kernels: the overflow that fp16 gradients hit on a GPU is injected with scales so large that fp32
// gradients overflow. Scaling by a power of two is exact in float, so a scaled step whose gradients stay
// finite must update bit for bit as an unscaled one does; a skipped step must change nothing.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { compile, devices, GraphBuilder, type CompileOptions, type Session } from '../lib/index.js';
import { loadCheckpoint, restoreSession, saveCheckpoint } from '../lib/train/checkpoint.js';
import { smallNet } from './support/small-net.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

/**
 * PyTorch's GradScaler update (torch._amp_update_scale_), written from its documentation: the oracle. The
 * scale is a float32 and the factors doubles, so each new scale is the double product rounded once.
 */
function gradScalerUpdate(s: { scale: number; tracker: number }, foundInf: boolean, o: { growth: number; backoff: number; interval: number }) {
  if (foundInf) return { scale: Math.fround(s.scale * o.backoff), tracker: 0 };
  const successful = s.tracker + 1;
  if (successful !== o.interval) return { scale: s.scale, tracker: successful };
  const grown = Math.fround(s.scale * o.growth);
  return { scale: Number.isFinite(grown) ? grown : s.scale, tracker: 0 };
}

/** Every parameter and momentum buffer (batch-norm running statistics are parameters here). */
function snapshot(s: Session): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const name of s.parameterNames()) {
    m.set(name, s.getParameter(name));
    if (s.graph.params.find((p) => p.name === name)!.trainable) m.set(`momentum.${name}`, s.getOptimizerState(name));
  }
  return m;
}

function assertSameBits(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string) {
  for (const [k, v] of a) assert.deepEqual(new Uint32Array(b.get(k)!.buffer), new Uint32Array(v.buffer), `${what}: ${k}`);
}

/**
 * One linear layer (1 feature -> 2 classes), batch 1, weights set to zero: the logits are 0, the
 * probabilities 1/2, and the loss gradient seeded with scale S is (p - y) S = -+S/2. The weight gradient is
 * that times the feature, 1536 = 1.5 * 2^10: 0.75 * 2^10 * S, which overflows float (max about 2^128)
 * exactly when S >= 2^119. A tiny learning rate keeps p within 1e-6 of 1/2, far from the edge.
 */
function linearNet() {
  const g = new GraphBuilder();
  const x = g.input('x', [1]);
  const y = g.input('labels', [], 'i32');
  const logits = g.linear(x, { outFeatures: 2, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}

describe('loss scaling', () => {
  afterEach(removeTestTempDirs);
  const x = new Float32Array([1536]);
  const label = new Int32Array([0]);
  async function linearSession(lossScale: CompileOptions['lossScale']) {
    const s = await compile(linearNet(), { batchSize: 1, optimizer: { lr: 2 ** -40, momentum: 0.9 }, lossScale });
    s.setParameter('fc.weight', new Float32Array(2));
    s.setParameter('fc.bias', new Float32Array(2));
    return s;
  }

  it("follows GradScaler's scale sequence: skips and backs off on an overflow, grows after growthInterval good steps", async () => {
    const opts = { growth: 2, backoff: 0.5, interval: 2 };
    using s = await linearSession({ initScale: 2 ** 121, growthInterval: opts.interval });
    let state = { scale: 2 ** 121, tracker: 0 };
    const scales: number[] = [], skipped: boolean[] = [];
    for (let i = 0; i < 9; i++) {
      const before = snapshot(s);
      const r = await s.step(x, label);
      scales.push(Math.log2(r.lossScale!));
      skipped.push(r.skipped!);
      // The overflow predicted from the gradient's size (see linearNet), not read from the engine.
      assert.equal(r.skipped, r.lossScale! >= 2 ** 119, `step ${i} at scale 2^${Math.log2(r.lossScale!)}`);
      if (r.skipped) assertSameBits(before, snapshot(s), `skipped step ${i}`);
      else assert.notDeepEqual(s.getOptimizerState('fc.weight'), before.get('momentum.fc.weight'), `step ${i} updated`);
      state = gradScalerUpdate(state, r.skipped!, opts);
      assert.deepEqual(s.lossScaler(), { scale: state.scale, growthTracker: state.tracker }, `after step ${i}`);
    }
    // Three back-offs to 2^118, two good steps, growth to 2^119, which overflows again: a cycle of three.
    assert.deepEqual(scales, [121, 120, 119, 118, 118, 119, 118, 118, 119]);
    assert.deepEqual(skipped, [true, true, true, false, false, true, false, false, true]);
  });

  it('a good scaled step updates bit for bit as the unscaled step; a skipped one changes nothing, batch-norm statistics included', async () => {
    const batch = 4, size = 6;
    const images = Float32Array.from({ length: batch * 3 * size * size }, (_, i) => 40 * Math.sin(i * 0.37));
    const labels = new Int32Array([0, 1, 2, 3]);
    const optimizer = { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
    using scaled = await compile(smallNet({ size }), { batchSize: batch, seed: 3, optimizer, lossScale: { initScale: 2 ** 127, growthInterval: 2 } });
    using plain = await compile(smallNet({ size }), { batchSize: batch, seed: 3, optimizer });
    // Larger classifier weights carry the scaled gradient past float's range below the classifier, so
    // that the first steps at 2^127 overflow in the convolution and batch-norm gradients.
    const fc = scaled.getParameter('fc.weight').map((w) => 64 * w);
    for (const s of [scaled, plain]) s.setParameter('fc.weight', fc);
    let skips = 0, goods = 0;
    for (let i = 0; i < 40 && (skips < 2 || goods < 2); i++) {
      const before = snapshot(scaled);
      const r = await scaled.step(images, labels);
      if (r.skipped) {
        skips++;
        assertSameBits(before, snapshot(scaled), `skipped step ${i}`);
      } else {
        goods++;
        const p = await plain.step(images, labels);
        assert.equal(r.loss, p.loss);
        assertSameBits(snapshot(plain), snapshot(scaled), `good step ${i} at scale 2^${Math.log2(r.lossScale!)}`);
      }
    }
    assert.ok(skips >= 2 && goods >= 2, `expected overflowing and finite steps, but received ${skips} skipped and ${goods} good`);
  });

  it('an overflow restarts the count of good steps: good, good, overflow, good, good with growthInterval 3 does not grow', async () => {
    // At 2^118 a feature of 4096 = 2^12 gives the weight gradient 2^11 * 2^118 = 2^129: an overflow; a
    // zero feature gives the weight gradient 0 and the bias gradient -+2^117: good (see linearNet).
    using s = await linearSession({ initScale: 2 ** 118, growthInterval: 3 });
    const [good, overflow] = [new Float32Array([0]), new Float32Array([4096])];
    const expected = [[2 ** 118, 1, false], [2 ** 118, 2, false], [2 ** 117, 0, true], [2 ** 117, 1, false], [2 ** 117, 2, false]];
    for (const [i, feed] of [good, good, overflow, good, good].entries()) {
      const r = await s.step(feed, label);
      const st = s.lossScaler()!;
      assert.deepEqual([st.scale, st.growthTracker, r.skipped], expected[i], `after step ${i}`);
    }
  });

  it("rounds each new scale once from double factors, as GradScaler (float factors would round twice)", async () => {
    // Factors that are not powers of two: 65536 * 0.1 * 0.1 and 1.3 * 1.3 differ in float32 when the factor
    // is rounded to float first. A feature of 2^120 overflows at these scales; a zero feature does not.
    const opts = { growth: 1.3, backoff: 0.1, interval: 1 };
    using s = await linearSession({ initScale: 65536, growthFactor: opts.growth, backoffFactor: opts.backoff, growthInterval: opts.interval });
    let state = { scale: 65536, tracker: 0 };
    const [good, overflow] = [new Float32Array([0]), new Float32Array([2 ** 120])];
    for (const [i, feed] of [overflow, overflow, good, good, good].entries()) {
      const r = await s.step(feed, label);
      assert.equal(r.skipped, feed === overflow, `step ${i}`);
      state = gradScalerUpdate(state, r.skipped!, opts);
      assert.deepEqual(s.lossScaler(), { scale: state.scale, growthTracker: state.tracker }, `after step ${i}`);
    }
    assert.equal(state.scale, Math.fround(Math.fround(Math.fround(655.3599853515625 * 1.3) * 1.3) * 1.3));
  });

  describe('a gradient that overflows only when unscaled (a scale below 1) skips the step', () => {
    // x -> h (1 -> 1, weight and bias 0) -> logits (1 -> 2, weights +-2^100): h and the logits are 0, the
    // loss gradient is -+S/2, h's gradient -2^100 S and h's weight gradient -2^100 S x. With x = 2^120 and
    // S = 2^-100 (or 2^-127) that is finite scaled (-2^120; -2^93) but -2^220 once multiplied by 1/S.
    function deepNet() {
      const g = new GraphBuilder();
      const x = g.input('x', [1]);
      const y = g.input('labels', [], 'i32');
      const h = g.linear(x, { outFeatures: 1, name: 'h' });
      const logits = g.linear(h, { outFeatures: 2, name: 'fc' });
      return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    }
    async function deepSession(lossScale: CompileOptions['lossScale']) {
      const s = await compile(deepNet(), { batchSize: 1, optimizer: { lr: 2 ** -40, momentum: 0.9 }, lossScale });
      for (const [name, v] of [['h.weight', [0]], ['h.bias', [0]], ['fc.weight', [2 ** 100, -(2 ** 100)]], ['fc.bias', [0, 0]]] as const) {
        s.setParameter(name, new Float32Array(v));
      }
      return s;
    }
    const big = new Float32Array([2 ** 120]);

    it('with a fixed scale 2^-100: skipped, nothing changed', async () => {
      using s = await deepSession(2 ** -100);
      const before = snapshot(s);
      const r = await s.step(big, label);
      assert.deepEqual([r.skipped, r.lossScale], [true, 2 ** -100]);
      assertSameBits(before, snapshot(s), 'the skipped step');
    });

    it('with a dynamic scale at 2^-127: skipped, and no back-off to a scale whose inverse is infinite', async () => {
      using s = await deepSession({ initScale: 2 ** -127, growthInterval: 5 });
      for (let i = 0; i < 2; i++) {
        const before = snapshot(s);
        const r = await s.step(big, label);
        assert.deepEqual([r.skipped, r.lossScale], [true, 2 ** -127], `step ${i}`);
        assertSameBits(before, snapshot(s), `skipped step ${i}`);
        assert.deepEqual(s.lossScaler(), { scale: 2 ** -127, growthTracker: 0 });
      }
    });

    it('refuses scales whose inverse is not a finite float32', async () => {
      const want = /a finite number > 0 in float32 whose inverse is finite too \(above 2\^-128\), but received/;
      await assert.rejects(deepSession(2 ** -128), (e: Error) => e instanceof RangeError && /^compile: lossScale: expected a fixed scale that is /.test(e.message) && want.test(e.message));
      await assert.rejects(deepSession({ initScale: 2 ** -140 }), (e: Error) => e instanceof RangeError && /^compile: lossScale.initScale: expected /.test(e.message) && want.test(e.message));
      using s = await deepSession({ initScale: 2 ** -127 });
      assert.throws(() => s.setLossScaler({ scale: 2 ** -128, growthTracker: 0 }), (e: Error) => e instanceof RangeError && /^setLossScaler: state.scale: expected /.test(e.message) && want.test(e.message));
    });
  });

  it('a non-finite loss is an error even with loss scaling, and changes neither the weights nor the scale', async () => {
    // Documented (Session.step): an infinite or NaN loss is bad input or divergence, not a scale to back off from.
    // Finite inputs and weights whose logits overflow: +-2^100 * 2^100 = +-inf.
    using s = await linearSession({ initScale: 2 ** 10, growthInterval: 2 });
    await s.step(new Float32Array([0]), label);
    s.setParameter('fc.weight', new Float32Array([2 ** 100, -(2 ** 100)]));
    const [before, scaler] = [snapshot(s), s.lossScaler()];
    await assert.rejects(s.step(new Float32Array([2 ** 100]), new Int32Array([1])),
      /^Error: step: the loss is NaN; parameters, optimizer state and batch-norm statistics were left as they were/);
    assert.deepEqual(s.lossScaler(), scaler);
    assert.deepEqual(scaler, { scale: 2 ** 10, growthTracker: 1 });
    assertSameBits(before, snapshot(s), 'after the refused step');
  });

  it('is refused on CUDA until the backend has an unscale kernel (docs/GPU.md)', async function () {
    if (!devices().some((d) => d.type === 'cuda')) this.skip();
    await assert.rejects(compile(linearNet(), { batchSize: 1, device: 'cuda:0', lossScale: 'dynamic' }),
      /^Error: compile: lossScale on device 'cuda:0': this backend has no unscale kernel yet; compile without lossScale$/);
  });

  it("does not grow past float's range (GradScaler keeps the scale when growing would overflow)", async () => {
    // A zero feature: the weight gradient is 0 and the bias gradient (p - y) S = -+2^126, finite.
    using s = await linearSession({ initScale: 2 ** 127, growthInterval: 1 });
    for (let i = 0; i < 2; i++) {
      const r = await s.step(new Float32Array([0]), label);
      assert.deepEqual([r.skipped, r.lossScale], [false, 2 ** 127]);
      assert.deepEqual(s.lossScaler(), { scale: 2 ** 127, growthTracker: 0 });
    }
  });

  it('a fixed scale skips overflowing steps without changing the scale', async () => {
    using s = await linearSession(2 ** 120);
    for (let i = 0; i < 3; i++) {
      const before = snapshot(s);
      const r = await s.step(x, label);
      assert.deepEqual([r.skipped, r.lossScale], [true, 2 ** 120]);
      assertSameBits(before, snapshot(s), `step ${i}`);
    }
    using ok = await linearSession(2 ** 100);
    const r = await ok.step(x, label);
    assert.deepEqual([r.skipped, r.lossScale], [false, 2 ** 100]);
    assert.deepEqual(ok.lossScaler(), { scale: 2 ** 100, growthTracker: 0 });
  });

  it("is off by default for fp32, with GradScaler's defaults when asked for", async () => {
    using off = await linearSession(undefined);
    assert.equal(off.lossScaler(), undefined);
    const r = await off.step(x, label);
    assert.equal('skipped' in r || 'lossScale' in r, false);
    using dyn = await linearSession('dynamic');
    assert.deepEqual(dyn.lossScaler(), { scale: 65536, growthTracker: 0 });
  });

  it('refuses bad settings and states, naming them', async () => {
    const bad = (lossScale: unknown) => linearSession(lossScale as CompileOptions['lossScale']);
    await assert.rejects(bad(0), (e: Error) => e instanceof RangeError && /compile: lossScale: expected a fixed scale that is a finite number > 0 in float32 whose inverse is finite too \(above 2\^-128\), but received 0/.test(e.message));
    await assert.rejects(bad(1e39), RangeError);
    await assert.rejects(bad('static'), (e: Error) => e instanceof TypeError && /expected 'dynamic', a number, false or \{initScale, growthFactor, backoffFactor, growthInterval\}, but received "static"/.test(e.message));
    await assert.rejects(bad({ growthFactor: 1 }), /compile: lossScale.growthFactor: expected a finite number > 1, but received 1/);
    await assert.rejects(bad({ backoffFactor: 1 }), /compile: lossScale.backoffFactor: expected a number in \(0, 1\), but received 1/);
    await assert.rejects(bad({ growthInterval: 1.5 }), /compile: lossScale.growthInterval: expected an integer in \[1, 2\^31\), but received 1.5/);
    await assert.rejects(bad({ growthIntervall: 5 }), /compile: lossScale: expected fields initScale, growthFactor, backoffFactor, growthInterval, but received 'growthIntervall'/);
    using s = await linearSession({ growthInterval: 10 });
    assert.throws(() => s.setLossScaler({ scale: 8, growthTracker: 10 }), /^Error: setLossScaler: loss scaler state: the growth tracker must be an integer in \[0, 10\), got 10$/);
    assert.throws(() => s.setLossScaler({ scale: Infinity, growthTracker: 0 }), (e: Error) => e instanceof RangeError &&
      /^setLossScaler: state.scale: expected a finite number > 0 in float32 whose inverse is finite too \(above 2\^-128\), but received Infinity$/.test(e.message));
    // Both fields are required: no silent default.
    assert.throws(() => s.setLossScaler({ scale: 8 } as never), (e: Error) => e instanceof TypeError && /^setLossScaler: state.growthTracker: expected a number, but received undefined$/.test(e.message));
    assert.throws(() => s.setLossScaler({ growthTracker: 0 } as never), (e: Error) => e instanceof TypeError && /^setLossScaler: state.scale: expected a number, but received undefined$/.test(e.message));
    assert.throws(() => s.setLossScaler({ scale: 8, growthTracker: 1.5 }), /^RangeError: setLossScaler: state.growthTracker: expected an integer in \[0, 2\^31\), but received 1.5$/);
    assert.deepEqual(s.lossScaler(), { scale: 65536, growthTracker: 0 }, 'a refused state changes nothing');
    using off = await linearSession(false);
    assert.throws(() => off.setLossScaler({ scale: 8, growthTracker: 0 }), /^Error: setLossScaler: loss scaler state: this session was compiled without loss scaling$/);
  });

  it('keeps its state in checkpoints: a resumed session scales and skips as the uninterrupted one', async () => {
    const dir = testTempDir('loss-scaler');
    const opts = { initScale: 2 ** 121, growthInterval: 2 };
    using a = await linearSession(opts);
    for (let i = 0; i < 4; i++) await a.step(x, label);  // 3 skipped, 1 good: scale 2^118, tracker 1
    const file = path.join(dir, 'ck.safetensors');
    const info = await saveCheckpoint(file, a, { model: { name: 'linear', options: {} }, epoch: 0, step: 4 });
    assert.deepEqual(info.lossScaler, { scale: 2 ** 118, growthTracker: 1 });
    using b = await linearSession(opts);
    restoreSession(b, loadCheckpoint(file));
    assert.deepEqual(b.lossScaler(), a.lossScaler());
    for (let i = 0; i < 4; i++) {
      const [ra, rb] = [await a.step(x, label), await b.step(x, label)];
      assert.deepEqual(rb, ra, `step ${i} after the resume`);
    }
    assertSameBits(snapshot(a), snapshot(b), 'after four more steps');
  });
});
