import { strict as assert } from 'node:assert';
import { compile, GraphBuilder, type GraphIR, type Session } from '../lib/index.js';
import { assertClose } from './reference/check.js';

/** conv -> BN -> ReLU -> global pool -> linear -> loss on [c,h,w] images with k classes. */
function smallNet(c = 3, h = 8, w = 8, k = 4, width = 8) {
  const g = new GraphBuilder();
  const x = g.input('images', [c, h, w]);
  const y = g.input('labels', [], 'i32');
  let t = g.conv2d(x, { outChannels: width, kernel: 3, padding: 1, name: 'conv' });
  t = g.relu(g.batchNorm(t, { name: 'bn' }));
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: k, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y, { topk: 2 }) });
}

function fill(n: number, f: (i: number) => number) {
  return Float32Array.from({ length: n }, (_, i) => f(i));
}

describe('Session', () => {
  let s: Session;
  const batch = 4;
  const images = fill(batch * 3 * 64, (i) => Math.sin(i * 0.37));
  const labels = new Int32Array([0, 1, 2, 3]);

  beforeEach(async () => {
    s = await compile(smallNet(), { batchSize: batch, seed: 7, optimizer: { lr: 0.1, momentum: 0.9 } });
  });
  afterEach(() => s.dispose());

  it('out of memory at compile names what was allocated, its size and the batch, and suggests a smaller batch', async () => {
    // Hundreds of TB of activations, beyond x86-64's 128 TiB of user address space: refused at once
    // even where the kernel overcommits memory.
    await assert.rejects(compile(smallNet(3, 160, 160, 4, 64), { batchSize: 10_000_000 }),
      /cannot allocate the activation arena \([\d.e+]+ GiB at batch 10000000\) on cpu: out of host memory: asked for \d+ bytes; .*try a smaller batch size/);
  });

  it('profile(): implementations always, kernel times only while profiling is on', async () => {
    const conv = () => s.profile().find((p) => p.name === 'conv')!;
    assert.match(conv().impl, /fwd=\S+/);
    await s.step(images, labels);
    assert.equal(conv().calls, 0, 'compiled without profile: nothing timed');
    s.setProfiling(true);
    await s.step(images, labels);
    await s.step(images, labels);
    assert.equal(conv().calls, 2);
    assert.ok(conv().forwardMs > 0 && conv().backwardMs > 0, JSON.stringify(conv()));
    s.setProfiling(false);
    s.resetProfile();
    await s.step(images, labels);
    assert.equal(conv().calls, 0);
    assert.throws(() => s.setProfiling('yes' as unknown as boolean), /setProfiling: expected a boolean/);
  });

  it('steps, reporting loss and top-1/top-k counts', async () => {
    const r = await s.step(images, labels);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0);
    assert.ok(r.correct >= 0 && r.correct <= batch);
    assert.ok(r.topkCorrect! >= r.correct && r.topkCorrect! <= batch);
  });

  it('takes feeds backed by a SharedArrayBuffer (as worker loaders share them)', async () => {
    const shared = new Float32Array(new SharedArrayBuffer(images.byteLength));
    shared.set(images);
    const sharedLabels = new Int32Array(new SharedArrayBuffer(labels.byteLength));
    sharedLabels.set(labels);
    assert.deepEqual(await s.forward(shared), await s.forward(images));
    assert.ok(Number.isFinite((await s.step(shared, sharedLabels)).loss));
  });

  it('initialises deterministically from the seed', async () => {
    const t = await compile(smallNet(), { batchSize: batch, seed: 7 });
    const u = await compile(smallNet(), { batchSize: batch, seed: 8 });
    assert.deepEqual(t.getParameter('conv.weight'), s.getParameter('conv.weight'));
    assert.notDeepEqual(u.getParameter('conv.weight'), s.getParameter('conv.weight'));
    t.dispose();
    u.dispose();
  });

  it('reads and writes parameters by name, checking type and length', () => {
    const w = s.getParameter('fc.weight');
    assert.equal(w.length, 4 * 8);
    s.setParameter('fc.weight', fill(32, (i) => i));
    assert.deepEqual(s.getParameter('fc.weight'), fill(32, (i) => i));
    assert.throws(() => s.setParameter('fc.weight', new Float32Array(31)), /setParameter fc\.weight: expected 32 values \(shape \[4,8\]\), got 31/);
    assert.throws(() => s.setParameter('fc.weight', new Float64Array(32) as unknown as Float32Array), /expected a Float32Array, but received Float64Array/);
    assert.throws(() => s.getParameter('nope'), /unknown parameter 'nope'/);
    // Argument errors keep their class, also those the addon throws (rethrown with the caller's stack).
    assert.throws(() => s.getParameter('nope'), RangeError);
    assert.throws(() => s.setParameter('fc.weight', new Float32Array(31)), RangeError);
    assert.throws(() => s.setParameter('fc.weight', [] as unknown as Float32Array), TypeError);
  });

  it('forward accepts fewer samples than the batch and matches the full-batch result', async () => {
    const full = await s.forward(images);
    const part = await s.forward(images.subarray(0, 2 * 192));
    assert.equal(part.length, 2 * 4);
    assert.deepEqual(part, full.subarray(0, 8));
  });

  it('rejects feeds of the wrong type or length, naming the input', async () => {
    await assert.rejects(s.step(new Float32Array(10), labels), /step: input images: expected 768 elements \(4 samples x 192\), but received 10/);
    await assert.rejects(s.step(images, new Float32Array(4) as unknown as Int32Array), /input labels: expected a Int32Array, but received Float32Array/);
    await assert.rejects(s.step(images), /input labels: expected a Int32Array, but received nothing/);
    await assert.rejects(s.step(images, new Int32Array([0, 1, 9, 3])), /label 9 of sample 2 is outside \[0, 4\)/);
  });

  it('refuses a non-finite loss and leaves parameters, momentum and BN statistics untouched', async () => {
    await s.step(images, labels);
    const before = s.parameterNames().map((n) => s.getParameter(n));
    const mom = s.getOptimizerState('conv.weight');
    const bad = images.slice();
    bad[200] = NaN;
    await assert.rejects(s.step(bad, labels), /input images: element 200 \(sample 1\) is NaN; nothing was computed or updated/);
    assert.deepEqual(s.parameterNames().map((n) => s.getParameter(n)), before);
    const fc = s.getParameter('fc.weight');
    s.setParameter('fc.weight', fc.map((_, i) => (i < 8 ? 3e38 : -3e38))); // row 0 overflows to +inf
    await assert.rejects(s.step(images, labels), /the loss is (NaN|infinite).*left as they were/);
    before[s.parameterNames().indexOf('fc.weight')] = s.getParameter('fc.weight');
    assert.deepEqual(s.parameterNames().map((n) => s.getParameter(n)), before);
    assert.deepEqual(s.getOptimizerState('conv.weight'), mom);
    s.setParameter('fc.weight', fc);
    const r = await s.step(images, labels); // still usable
    assert.ok(Number.isFinite(r.loss));
  });

  it('refuses two calls at once and calls after dispose', async () => {
    const first = s.step(images, labels);
    await assert.rejects(s.step(images, labels), /already running on this session/);
    await first;
    s.dispose();
    s.dispose(); // twice is harmless
    await assert.rejects(s.step(images, labels), /step: this session was disposed/);
    assert.throws(() => s.getParameter('fc.bias'), /this session was disposed/);
  });

  it('runs a step off the JS thread: the event loop is idle, and turns, while the step is pending', async function () {
    // No clock limit: the event loop's own accounting (performance.eventLoopUtilization: time spent
    // running JS and callbacks over time spent including waiting for I/O) over one step is a ratio. A step
    // run on the JS thread keeps the loop busy for all its length (utilization near 1, whatever the
    // machine's speed); a step run elsewhere leaves the loop waiting, so the utilization falls as the
    // step's work grows. The work is doubled (batch size) until the ratio is conclusive at two sizes (the
    // smallest, 4, is not counted: a tiny step is dominated by the delivery of its result). A setImmediate
    // queued before the call must also run before the step's promise settles. Two sizes, not two in a row:
    // on a loaded machine one step in several can read near 1 (the loop thread descheduled mid-callback),
    // while a step run on the JS thread reads near 1 at every size past the smallest.
    const CONCLUSIVE = 0.25;
    const seen: string[] = [];
    let conclusive = 0;
    for (let b = 4; b <= 512; b *= 2) {
      const big = await compile(smallNet(16, 32, 32, 4, 32), { batchSize: b });
      try {
        const data = fill(b * 16 * 32 * 32, (i) => Math.sin(i * 0.01));
        const lab = new Int32Array(b);
        await big.step(data, lab); // warm-up: kernels created
        let settled = false, turnedWhilePending = false;
        setImmediate(() => (turnedWhilePending = !settled));
        const before = performance.eventLoopUtilization();
        await big.step(data, lab);
        settled = true;
        const elu = performance.eventLoopUtilization(before).utilization;
        seen.push(`batch ${b}: ${elu.toFixed(3)}${turnedWhilePending ? '' : ' (no turn while pending)'}`);
        if (b > 4 && turnedWhilePending && elu < CONCLUSIVE) conclusive++;
        if (conclusive === 2) return;
      } finally {
        big.dispose();
      }
    }
    assert.fail(`the event loop was not mostly idle during two steps (utilization per batch size: ${seen.join(', ')})`);
  });

  it('reports a memory plan that reuses buffers', async () => {
    const m = s.memory();
    assert.ok(m.arenaBytes < m.naiveBytes, `arena ${m.arenaBytes} should be below the naive ${m.naiveBytes}`);
    const t = await compile(smallNet(), { batchSize: batch, reuseMemory: false });
    assert.equal(t.memory().arenaBytes, t.memory().naiveBytes);
    t.dispose();
  });
});

describe('batchNorm -> relu fusion', () => {
  // The first pair normalises the graph input itself (left unfused: no input gradient), the second sits
  // between convolutions; the last relu feeds two consumers and must not be fused away.
  function net() {
    const g = new GraphBuilder();
    const x = g.input('images', [3, 7, 9]);
    const y = g.input('labels', [], 'i32');
    let t = g.relu(g.batchNorm(x, { name: 'bn0' }));
    t = g.conv2d(t, { outChannels: 6, kernel: 3, padding: 1, name: 'conv1' });
    t = g.relu(g.batchNorm(t, { name: 'bn1' }));
    const u = g.conv2d(t, { outChannels: 6, kernel: 1, name: 'conv2' });
    t = g.add(t, g.relu(g.batchNorm(u, { name: 'bn2', momentum: 0.3 })));
    const logits = g.linear(g.globalAvgPool(t), { outFeatures: 5, name: 'fc' });
    return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
  }

  it('gives the same outputs, gradients and running statistics as the unfused graph', async () => {
    const images = fill(4 * 3 * 63, (i) => Math.cos(i * 1.7) * 2);
    const labels = new Int32Array([0, 4, 2, 1]);
    const fused = await compile(net(), { batchSize: 4, seed: 5 });
    const plain = await compile(net(), { batchSize: 4, seed: 5, fuse: false });
    const seed = fill(20, (i) => (i % 3) - 1);
    const a = await fused.gradients({ images, labels }, seed);
    const b = await plain.gradients({ images, labels }, seed);
    // Missing tensors and different lengths fail too, not only differing elements.
    const close = (x: Float32Array | undefined, y: Float32Array, what: string) => assertClose(x, y, { rtol: 1e-5, atol: 1e-5 }, what);
    close(a.outputs[0]!, b.outputs[0]!, 'logits');
    for (const name of Object.keys(b.paramGrads)) close(a.paramGrads[name]!, b.paramGrads[name]!, `d ${name}`);
    for (const name of ['bn0.running_var', 'bn2.running_mean']) close(fused.getParameter(name), plain.getParameter(name), name);
    close(await fused.forward(images), await plain.forward(images), 'inference logits');
    assert.ok(fused.memory().buffers < plain.memory().buffers, 'fusion removes the relu buffers');
    fused.dispose();
    plain.dispose();
  });
});

describe('SGD', () => {
  // A linear layer alone: its update is easy to follow by hand with PyTorch's formulas.
  async function linearSession(opt: { momentum: number; nesterov: boolean; weightDecay: number }) {
    const g = new GraphBuilder();
    const x = g.input('x', [3]);
    const y = g.input('labels', [], 'i32');
    const logits = g.linear(x, { outFeatures: 2, name: 'fc' });
    const loss = g.softmaxCrossEntropy(logits, y);
    const graph = g.build({ outputs: [loss], loss });
    return compile(graph, { batchSize: 2, seed: 3, optimizer: { lr: 0.5, ...opt } });
  }
  for (const opt of [
    { momentum: 0, nesterov: false, weightDecay: 0 },
    { momentum: 0.9, nesterov: false, weightDecay: 0.01 },
    { momentum: 0.9, nesterov: true, weightDecay: 0.01 },
  ]) {
    it(`follows torch.optim.SGD ${JSON.stringify(opt)}, decaying weights but not biases`, async () => {
      const s = await linearSession(opt);
      const x = new Float32Array([1, -2, 0.5, 0.3, 0.1, -1]);
      const y = new Int32Array([1, 0]);
      const w = Float64Array.from(s.getParameter('fc.weight'));
      const b = Float64Array.from(s.getParameter('fc.bias'));
      const bufW = new Float64Array(6), bufB = new Float64Array(2);
      for (let stepNo = 0; stepNo < 3; stepNo++) {
        const g = await s.gradients({ x, labels: y }, new Float32Array([1]));
        const upd = (p: Float64Array, grad: Float32Array, buf: Float64Array, decay: boolean) => {
          for (let i = 0; i < p.length; i++) {
            let d = grad[i]! + (decay ? opt.weightDecay * p[i]! : 0);
            if (opt.momentum) {
              buf[i] = opt.momentum * buf[i]! + d;
              d = opt.nesterov ? d + opt.momentum * buf[i]! : buf[i]!;
            }
            p[i] = p[i]! - 0.5 * d;
          }
        };
        upd(w, g.paramGrads['fc.weight']!, bufW, true);
        upd(b, g.paramGrads['fc.bias']!, bufB, false);
        await s.step({ x }, y);
        const gotW = s.getParameter('fc.weight'), gotB = s.getParameter('fc.bias');
        w.forEach((v, i) => assert.ok(Math.abs(v - gotW[i]!) < 1e-5, `step ${stepNo} weight ${i}: ${gotW[i]} vs ${v}`));
        b.forEach((v, i) => assert.ok(Math.abs(v - gotB[i]!) < 1e-5, `step ${stepNo} bias ${i}: ${gotB[i]} vs ${v}`));
      }
      s.dispose();
    });
  }
});

describe('compile: bad graphs and options', () => {
  const base = (): GraphIR => structuredClone(smallNet().ir);

  async function rejects(ir: GraphIR, re: RegExp, opts: Record<string, unknown> = {}) {
    await assert.rejects(compile({ ir, shapes: new Map(), parameters: [] }, { batchSize: 2, ...opts }), re);
  }

  it('names an unknown op and lists the known ones', async () => {
    const ir = base();
    (ir.nodes[1] as { op: string }).op = 'softmaxx';
    await rejects(ir, /node bn: unknown op 'softmaxx' \(known ops: add, .*batchNorm/);
  });
  it('names an unknown attribute and the allowed ones', async () => {
    const ir = base();
    ir.nodes[0]!.attrs.dilation = 2;
    await rejects(ir, /node conv \(conv2d\): unknown attribute 'dilation' \(allowed: .*groups/);
  });
  it('names a parameter whose shape does not match', async () => {
    const ir = base();
    ir.params[0]!.shape = [8, 3, 5, 5];
    await rejects(ir, /node conv \(conv2d\): parameter conv\.weight has shape \[8,3,5,5\], expected \[8,3,3,3\]/);
  });
  it('names an input of the wrong rank', async () => {
    const ir = base();
    ir.inputs[0]!.shape = [3, 8, 8, 2];
    await rejects(ir, /input images: f32 inputs must be \[C,H,W\] or \[F\] per sample/);
    const ir2 = base();
    ir2.nodes[4]!.inputs = ['bn']; // linear fed a 4-D tensor
    await rejects(ir2, /node fc \(linear\): expected an input \[N,F\] but got shape \[2,8,8,8\]/);
  });
  it('names a node reading a value that does not exist yet', async () => {
    const ir = base();
    ir.nodes[0]!.inputs = ['fc'];
    await rejects(ir, /node conv \(conv2d\): input 'fc' is not a graph input or an earlier node/);
  });
  it('names malformed IR fields', async () => {
    const ir = base() as unknown as { nodes: { attrs: Record<string, unknown> }[] };
    ir.nodes[0]!.attrs.kernel = 'three';
    await rejects(ir as unknown as GraphIR, /graph\.nodes\[0\]\.attrs\.kernel: expected a number, a boolean or an array of numbers/);
  });
  it('rejects bad options and unusable devices with the reason', async () => {
    await rejects(base(), /compile: expected batchSize to be a positive integer, but received 0/, { batchSize: 0 });
    await rejects(base(), /compile: expected precision 'fp32', 'bf16' or 'fp16', but received "fp8"/, { precision: 'fp8' });
    // Without a GPU: the library is not built, or (built) there is no driver or device; test/cuda-errors.test.ts has the details.
    await rejects(base(), /device 'cuda:0': (this build of crunet has no CUDA backend|no CUDA driver|no CUDA device|cannot load)/, { device: 'cuda:0' });
    await rejects(base(), /device 'tpu' is not known; valid devices: 'cpu', 'cuda', 'cuda:N'/, { device: 'tpu' });
  });
});
