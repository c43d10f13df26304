// Hardening of the native engine (issue 13): exceptions at the N-API boundary, exit during a step,
// state that gradients() and refused steps must leave alone, batch-norm statistics for inputs with a
// large mean, bounds on attributes and shapes, non-finite parameters.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { compile, GraphBuilder, type GraphIR, type Session } from '../lib/index.js';
import { smallNet } from './support/small-net.js';
import { normal32, TestRng } from './support/random.js';

const CHILD = path.join(__dirname, 'support', 'hardening-child.ts');

function runChild(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    cwd: path.join(__dirname, '..'),
  });
}

/** Every parameter and every momentum buffer, copied. */
function snapshot(s: Session): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const name of s.parameterNames()) {
    m.set(name, s.getParameter(name));
    const trainable = s.graph.params.find((p) => p.name === name)!.trainable;
    if (trainable) m.set(`${name} (momentum)`, s.getOptimizerState(name));
  }
  return m;
}

/** Bit-identical: compares the bytes, so NaN == NaN and -0 != 0. */
function assertSameState(before: Map<string, Float32Array>, after: Map<string, Float32Array>, what: string) {
  for (const [k, v] of before) {
    const a = new Uint32Array(v.buffer), b = new Uint32Array(after.get(k)!.buffer);
    assert.deepEqual(b, a, `${what}: ${k} changed`);
  }
}

const images = (n: number, per: number, mean = 0) => normal32(new TestRng(5), n * per, mean, 1);

describe('hardening: native engine', () => {
  describe('every N-API entry point turns a C++ exception into a JavaScript Error', () => {
    // Each group runs in a child process with the test-only fault hook set for its entry points: an
    // exception that escaped as before would abort the child (SIGABRT), failing this test, not mocha.
    const groups = [
      ['compile'],
      ['params'],
      ['step', 'forward', 'gradients', 'values', 'getParameter', 'setParameter', 'getOptimizerState', 'setOptimizerState',
        'getUpdates', 'setUpdates', 'getEma', 'setEma', 'setOptimizer', 'lossScaler', 'setLossScaler', 'memory', 'profile', 'resetProfile', 'setProfiling', 'dispose', 'buildInfo', 'devices',
        'primitiveSeconds', 'setNumThreads'],
    ];
    for (const entries of groups) {
      it(entries.join(', '), () => {
        const r = runChild(['fault', ...entries], { CRUNET_TEST_FAULT: entries.join(',') });
        assert.equal(r.signal, null, `child killed by ${r.signal}: ${r.stderr.slice(-2000)}`);
        assert.equal(r.status, 0, r.stderr.slice(-2000));
        const results = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string | null>;
        for (const e of entries) assert.match(results[e] ?? 'did not throw', new RegExp(`CRUNET_TEST_FAULT: injected failure in ${e}$`), e);
      });
    }
  });

  describe('exiting while a step runs ends with the exit code, never a signal', () => {
    for (const [mode, code] of [['exit-during-step', 3], ['throw-during-step', 1]] as const) {
      it(`${mode}: exit code ${code}, 5 times`, () => {
        for (let i = 0; i < 5; i++) {
          const r = runChild([mode]);
          assert.equal(r.signal, null, `run ${i}: killed by ${r.signal}`);
          assert.equal(r.status, code, `run ${i}: ${r.stderr.slice(-2000)}`);
        }
      });
    }
  });

  it('gradients() leaves parameters, momentum and batch-norm running statistics bit-identical', async () => {
    const s = await compile(smallNet(), { batchSize: 4, seed: 3, optimizer: { lr: 0.1, momentum: 0.9 } });
    try {
      const x = images(4, 3 * 36, 2);
      await s.step(x, new Int32Array([0, 1, 2, 3]));  // non-zero momentum and moved statistics
      const before = snapshot(s);
      const g = await s.gradients(x, new Float32Array(16).fill(1));
      assert.ok(g.paramGrads['bn.weight']!.some((v) => v !== 0), 'the backward pass ran');
      assertSameState(before, snapshot(s), 'gradients()');
    } finally {
      s.dispose();
    }
  });

  it('a step refused for a label out of range names the index and value, and changes nothing', async () => {
    const s = await compile(smallNet(), { batchSize: 4, seed: 3, optimizer: { lr: 0.1, momentum: 0.9 } });
    try {
      const x = images(4, 3 * 36, 2);
      await s.step(x, new Int32Array([0, 1, 2, 3]));
      const before = snapshot(s);
      await assert.rejects(s.step(x, new Int32Array([0, 1, 7, 3])), /input labels: label 7 of sample 2 is outside \[0, 4\)/);
      await assert.rejects(s.step(x, new Int32Array([-1, 1, 2, 3])), /label -1 of sample 0 is outside \[0, 4\)/);
      assertSameState(before, snapshot(s), 'refused step');
    } finally {
      s.dispose();
    }
  });

  describe('batch-norm training statistics for inputs with a large mean', () => {
    // Against float64: the normalized output and the running statistics after one step. The bound is a
    // few roundings of the input's magnitude (float32 cannot hold x - mean better than ulp(mean)),
    // which float sums of x and x^2 exceed by orders of magnitude.
    for (const [mean, momentum] of [[100, 0.1], [1000, 1]] as const) {
      it(`mean ${mean}, std 1 (momentum ${momentum})`, async () => {
        const n = 16, c = 4, hw = 64;
        const g = new GraphBuilder();
        const x = g.input('x', [c, 8, 8]);
        const y = g.input('labels', [], 'i32');
        const bn = g.batchNorm(x, { name: 'bn', momentum });
        const logits = g.linear(g.globalAvgPool(bn), { outFeatures: 2, name: 'fc' });
        const s = await compile(g.build({ outputs: [bn], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: n, fuse: false, optimizer: { lr: 0 } });  // lr 0: gamma 1 and beta 0 stay
        try {
          const data = normal32(new TestRng(11), n * c * hw, mean, 1);
          const ulp = 2 ** (Math.floor(Math.log2(mean)) - 23);
          await s.step({ x: data, labels: new Int32Array(n) });
          const runMean = s.getParameter('bn.running_mean'), runVar = s.getParameter('bn.running_var');
          const { outputs } = await s.gradients({ x: data, labels: new Int32Array(n) }, new Float32Array(n * c * hw));
          let worst = 0;
          for (let ch = 0; ch < c; ch++) {
            let m = 0, v = 0;
            for (let i = 0; i < n; i++) for (let j = 0; j < hw; j++) m += data[(i * c + ch) * hw + j]!;
            m /= n * hw;
            for (let i = 0; i < n; i++) for (let j = 0; j < hw; j++) v += (data[(i * c + ch) * hw + j]! - m) ** 2;
            v /= n * hw;
            for (let i = 0; i < n; i++)
              for (let j = 0; j < hw; j++) {
                const k = (i * c + ch) * hw + j;
                worst = Math.max(worst, Math.abs(outputs[0]![k]! - (data[k]! - m) / Math.sqrt(v + 1e-5)));
              }
            assert.ok(Math.abs(runMean[ch]! - momentum * m) <= 2 * ulp, `running mean ${runMean[ch]} vs ${momentum * m}`);
            const wantVar = (1 - momentum) + momentum * v * (n * hw) / (n * hw - 1);
            assert.ok(Math.abs(runVar[ch]! - wantVar) <= 1e-5, `running var ${runVar[ch]} vs ${wantVar}`);
          }
          assert.ok(worst <= 2 * ulp, `max output error ${worst} > ${2 * ulp} (2 ulp of ${mean})`);
        } finally {
          s.dispose();
        }
      });
    }
  });

  describe('bounds: attributes and shape products', () => {
    /** The small net's IR with one node's attributes replaced (bypassing the builder's own checks). */
    function withAttrs(node: string, attrs: Record<string, number | number[]>): GraphIR {
      const ir = smallNet().ir;
      return { ...ir, nodes: ir.nodes.map((n) => (n.name === node ? { ...n, attrs: { ...n.attrs, ...attrs } } : n)) };
    }
    const rejects = (ir: GraphIR, re: RegExp, batchSize = 2) => assert.rejects(compile({ ir } as never, { batchSize }), re);

    it('conv2d padding 6e8 is refused, naming the node and the value', async () => {
      await rejects(withAttrs('conv', { padding: [6e8, 6e8] }), /node conv \(conv2d\): attribute 'padding' must be an integer in \[0, 16777216\], got \[600000000/);
    });
    it('outFeatures 1e9 is refused, naming the node and the value', async () => {
      await rejects(withAttrs('fc', { outFeatures: 1e9 }), /node fc \(linear\): attribute 'outFeatures' must be an integer in \[1, 16777216\], got \[1000000000/);
    });
    it('an input whose element count overflows is refused, naming it', async () => {
      const ir = smallNet().ir;
      const big = { ...ir, inputs: ir.inputs.map((i) => (i.name === 'images' ? { ...i, shape: [2 ** 24, 2 ** 24, 2 ** 24] } : i)) };
      await rejects(big, /input images: \[2,16777216,16777216,16777216\] \(batch 2\) would have more than 2\^48 elements/);
      const huge = { ...ir, inputs: ir.inputs.map((i) => (i.name === 'images' ? { ...i, shape: [2 ** 29, 2 ** 29, 2 ** 29] } : i)) };
      await rejects(huge, /input images: shape must hold integers in \[1, 16777216\], got \[536870912,536870912,536870912\]/);
    });
    it('a parameter too large for memory says which one and how many bytes', async () => {
      const g = new GraphBuilder();
      const x = g.input('x', [2 ** 24]);
      const out = g.linear(x, { outFeatures: 2 ** 20, name: 'huge' });
      // 2^44 floats: 64 TiB, refused by the allocator even where the kernel overcommits memory.
      await assert.rejects(compile(g.build({ outputs: [out] }), { batchSize: 1 }), (e: Error) => {
        assert.match(e.message, /huge/);
        assert.match(e.message, /(out of host memory|cannot allocate).*\d{10,}|\d+(\.\d+)? ?[GT]iB/);
        return true;
      });
    });
    it('the builder refuses attributes beyond 2^24 where the layer is added', () => {
      const g = new GraphBuilder();
      const x = g.input('x', [3, 8, 8]);
      assert.throws(() => g.conv2d(x, { outChannels: 4, kernel: 3, padding: 6e8, name: 'c' }), /c: expected padding to be an integer in \[0, 16777216\]/);
      assert.throws(() => g.linear(g.globalAvgPool(x), { outFeatures: 1e9, name: 'l' }), /linear l: expected outFeatures to be an integer in \[1, 16777216\], but received 1000000000/);
      assert.throws(() => g.input('y', [2 ** 29, 2 ** 29, 2 ** 29]), /input y: expected a shape of integers in \[1, 16777216\]/);
    });
  });

  describe('non-finite parameters', () => {
    let s: Session;
    beforeEach(async () => {
      s = await compile(smallNet(), { batchSize: 4, seed: 3, optimizer: { lr: 0.1, momentum: 0.9 } });
    });
    afterEach(() => s.dispose());

    it('a step whose update makes a parameter non-finite is rejected, naming it', async () => {
      // Weight decay 3e38 on weights of 2: the decayed gradient overflows to infinity in the update.
      s.setOptimizer({ weightDecay: 3e38 });
      s.setParameter('fc.weight', new Float32Array(32).fill(2));
      await assert.rejects(s.step(images(4, 3 * 36, 0), new Int32Array([0, 1, 2, 3])),
        /step: after the update, parameter fc.weight holds NaN or infinite values \(the learning rate, 0.1, is probably too large\)\. This step was applied/);
    });
    it('setParameter refuses NaN and infinity, naming the element, and keeps the old values', () => {
      const before = s.getParameter('fc.weight');
      const bad = before.slice();
      bad[5] = NaN;
      assert.throws(() => s.setParameter('fc.weight', bad), /setParameter fc.weight: element 5 is NaN; the parameter was left unchanged/);
      bad[5] = 0;
      bad[2] = -Infinity;
      assert.throws(() => s.setParameter('fc.weight', bad), /element 2 is infinite/);
      assert.deepEqual(s.getParameter('fc.weight'), before);
      const m = new Float32Array(before.length);
      m[1] = NaN;
      assert.throws(() => s.setOptimizerState('fc.weight', m), /setOptimizerState fc.weight: element 1 is NaN/);
    });
    it('setParameter refuses a negative running variance', () => {
      const v = new Float32Array(8).fill(1);
      v[3] = -0.5;
      assert.throws(() => s.setParameter('bn.running_var', v), /setParameter bn.running_var: element 3 is -0.5\d*, but a running variance must be >= 0/);
      v[3] = 0;
      s.setParameter('bn.running_var', v);  // zero is a valid variance
      const mean = new Float32Array(8).fill(-3);
      s.setParameter('bn.running_mean', mean);  // a negative mean is fine
    });
    it('optimizer settings must be finite in float32 and momentum at most 1', async () => {
      assert.throws(() => s.setOptimizer({ momentum: 1e39 }), /optimizer: momentum must be a finite number >= 0 in float32, got 1e\+39/);
      assert.throws(() => s.setOptimizer({ momentum: 2 }), /optimizer: momentum must be in \[0, 1\] \(above 1 the momentum buffer grows without bound\), got 2/);
      assert.throws(() => s.setOptimizer({ lr: 1e39 }), /optimizer: lr must be a finite number >= 0 in float32/);
      assert.throws(() => s.setOptimizer({ weightDecay: -1 }), /optimizer: weightDecay must be a finite number >= 0/);
      s.setOptimizer({ momentum: 1 });
      await assert.rejects(compile(smallNet(), { batchSize: 2, optimizer: { lr: 0.1, momentum: 1e39 } }), /momentum must be a finite number/);
    });
  });
});
