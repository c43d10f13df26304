// Misuse of the graph builder and the Session API (issue 13): each mistake is an Error that names it,
// and nothing crashes. Fast: small graphs, a few steps.
import { strict as assert } from 'node:assert';
import { compile, GraphBuilder, type Session } from '../lib/index.js';
import { smallNet } from './support/small-net.js';

const batch = 4;
const per = 3 * 36;
const images = () => Float32Array.from({ length: batch * per }, (_, i) => Math.sin(i * 0.37));
const labels = () => new Int32Array([0, 1, 2, 3]);

describe('hardening: API misuse', () => {
  describe('the graph builder', () => {
    const input = () => {
      const g = new GraphBuilder();
      return { g, x: g.input('x', [8, 5, 5]) };
    };
    it('non-positive channels', () => {
      const { g, x } = input();
      assert.throws(() => g.conv2d(x, { outChannels: 0, kernel: 3, name: 'c0' }), /conv2d c0: expected outChannels to be an integer in \[1, 16777216\], but received 0/);
      assert.throws(() => g.conv2d(x, { outChannels: -4, kernel: 3, name: 'c1' }), /conv2d c1: expected outChannels .* received -4/);
      assert.throws(() => g.input('y', [0, 4, 4]), /input y: expected a shape of integers in \[1, 16777216\], but received \[0,4,4\]/);
    });
    it('a kernel larger than the input', () => {
      const { g, x } = input();
      assert.throws(() => g.conv2d(x, { outChannels: 4, kernel: 7, name: 'big' }), /conv2d big: expected an input of at least 7x7 for kernel 7x7 with padding 0x0, but received 5x5/);
      assert.throws(() => g.maxPool(x, { kernel: 6, name: 'p' }), /maxPool p: expected an input of at least 6x6 for kernel 6x6 with padding 0x0, but received 5x5/);
    });
    it('groups not dividing the channels', () => {
      const { g, x } = input();
      assert.throws(() => g.conv2d(x, { outChannels: 6, kernel: 1, groups: 3, name: 'grp' }), /conv2d grp: expected groups to be a positive integer dividing input channels \(8\) and outChannels \(6\), but received 3/);
    });
    it('stride 0', () => {
      const { g, x } = input();
      assert.throws(() => g.conv2d(x, { outChannels: 4, kernel: 3, stride: 0, name: 's0' }), /conv2d s0: expected kernel and stride of at least 1, but received kernel 3x3, stride 0x0/);
    });
  });

  describe('compile', () => {
    it('batch 1e9 is a range error naming the bound', async () => {
      await assert.rejects(compile(smallNet(), { batchSize: 1e9 }), /compile: options.batchSize must be an integer in \[1, 10000000\], got 1000000000/);
      await assert.rejects(compile(smallNet(), { batchSize: 1e9 }), RangeError);
      await assert.rejects(compile(smallNet(), { batchSize: 2, precision: 'fp8' as never }), RangeError);
      await assert.rejects(compile({} as never, { batchSize: 2 }), TypeError);
    });
    it('a batch too large for memory is an out-of-memory error with the size', async () => {
      await assert.rejects(compile(smallNet({ width: 64, size: 224 }), { batchSize: 10_000_000 }), /cannot allocate the activation arena \([\d.e+]+ GiB at batch 10000000\)/);
    });
  });

  describe('a session', () => {
    let s: Session;
    beforeEach(async () => {
      s = await compile(smallNet(), { batchSize: batch, seed: 7, optimizer: { lr: 0.1, momentum: 0.9 } });
    });
    afterEach(() => s.dispose());

    it('wrong typed arrays name what was expected and what came', async () => {
      await assert.rejects(s.step(new Float64Array(batch * per) as never, labels()), /step: expected a Float32Array, but received Float64Array/);
      await assert.rejects(s.step(images(), new Float32Array(batch) as never), /step: input labels: expected a Int32Array, but received Float32Array/);
      await assert.rejects(s.step(images().subarray(1), labels()), /step: input images: expected 432 elements \(4 samples x 108\), but received 431/);
      await assert.rejects(s.forward(new Uint8Array(per) as never), /forward: .*Float32Array/);
    });
    it('NaN and Inf inputs are refused, naming the element and sample', async () => {
      const x = images();
      x[per + 5] = NaN;
      await assert.rejects(s.step(x, labels()), /input images: element 113 \(sample 1\) is NaN; nothing was computed or updated/);
      x[per + 5] = 0;
      x[3 * per] = Infinity;
      await assert.rejects(s.step(x, labels()), /input images: element 324 \(sample 3\) is infinite/);
    });
    it('labels out of range are refused, naming the index and value', async () => {
      await assert.rejects(s.step(images(), new Int32Array([0, 4, 1, 2])), /input labels: label 4 of sample 1 is outside \[0, 4\)/);
    });
    it('a second step while one runs is refused; the first completes', async () => {
      const first = s.step(images(), labels());
      await assert.rejects(s.step(images(), labels()), /step: a call is already running on this session; await it before starting another/);
      assert.ok(Number.isFinite((await first).loss));
    });
    it('dispose during a step: the step completes, then the session is disposed', async () => {
      const running = s.step(images(), labels());
      s.dispose();
      assert.ok(s.isDisposed);
      assert.ok(Number.isFinite((await running).loss));
      await assert.rejects(s.step(images(), labels()), /step: this session was disposed/);
    });
    it('use after dispose names the call', async () => {
      s.dispose();
      assert.throws(() => s.getParameter('fc.weight'), /getParameter: this session was disposed/);
      assert.throws(() => s.setParameter('fc.weight', new Float32Array(32)), /setParameter: this session was disposed/);
      await assert.rejects(s.forward(images()), /forward: this session was disposed/);
      await assert.rejects(s.gradients(images(), new Float32Array(16)), /gradients: this session was disposed/);
      s.dispose();  // twice: harmless
    });
    it('step() copies its inputs: refilling the arrays right after the call does not change the step', async () => {
      // Two sessions with the same seed take the same step; in one, the caller overwrites its arrays
      // with NaN and wrong labels while the step is still queued behind another session's step.
      const twin = await compile(smallNet(), { batchSize: batch, seed: 7, optimizer: { lr: 0.1, momentum: 0.9 } });
      const busy = await compile(smallNet({ width: 64, size: 32 }), { batchSize: 32, seed: 1 });
      try {
        const expected = await twin.step(images(), labels());
        const x = images(), y = labels();
        const ahead = busy.step(new Float32Array(32 * 3 * 32 * 32).fill(0.5), new Int32Array(32));
        const mine = s.step(x, y);
        x.fill(NaN);
        y.fill(99);
        await ahead;
        assert.deepEqual(await mine, expected);
      } finally {
        twin.dispose();
        busy.dispose();
      }
    });
  });
});
