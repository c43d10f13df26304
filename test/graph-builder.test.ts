import { strict as assert } from 'node:assert';
import { GraphBuilder } from '../lib/graph/index.js';

describe('GraphBuilder', () => {
  it('infers per-sample shapes and names parameters after their layer', () => {
    const g = new GraphBuilder();
    const x = g.input('images', [3, 32, 32]);
    const y = g.input('labels', [], 'i32');
    const c = g.conv2d(x, { outChannels: 8, kernel: 3, stride: 2, padding: 1, name: 'conv1' });
    assert.deepEqual(c.shape, [8, 16, 16]);
    const p = g.maxPool(g.relu(g.batchNorm(c, { name: 'bn1' })), { kernel: 3, stride: 2, padding: 1 });
    assert.deepEqual(p.shape, [8, 8, 8]);
    const logits = g.linear(g.globalAvgPool(p), { outFeatures: 10, name: 'fc' });
    const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    assert.deepEqual(graph.parameters.map((q) => q.name), [
      'conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'fc.weight', 'fc.bias',
    ]);
    assert.deepEqual(graph.ir.params.find((q) => q.name === 'conv1.weight')!.shape, [8, 3, 3, 3]);
    assert.equal(graph.ir.params.find((q) => q.name === 'bn1.bias')!.weightDecay, false);
    assert.equal(graph.ir.params.find((q) => q.name === 'bn1.running_var')!.trainable, false);
  });

  it('shares a parameter passed to several layers, listing it once', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 5, 5]);
    const w = g.param('shared.weight', [4, 1, 3, 3]);
    let h = x;
    for (let i = 0; i < 3; i++) h = g.conv2d(h, { outChannels: 4, kernel: 3, padding: 1, groups: 4, weight: w });
    const graph = g.build({ outputs: [h] });
    assert.equal(graph.parameters.length, 1);
    assert.equal(graph.ir.nodes.filter((n) => n.params[0] === 'shared.weight').length, 3);
  });

  it('names the layer, the option and the received value in its errors', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [6, 8, 8]);
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 3, groups: 4, name: 'c' }), /conv2d c: expected groups to be a positive integer dividing input channels \(6\) and outChannels \(8\), but received 4/);
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 9, name: 'big' }), /conv2d big: expected an input of at least 9x9 for kernel 9x9 with padding 0x0, but received 8x8/);
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 11, padding: 1, name: 'big1' }), /conv2d big1: expected an input of at least 9x9 for kernel 11x11 with padding 1x1, but received 8x8/);
    assert.throws(() => g.linear(x, { outFeatures: 3, name: 'fc' }), /linear fc: expected an f32 input of per-sample shape \[F\], but received f32 \[6,8,8\]/);
    const w = g.param('w', [8, 6, 1, 1]);
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 3, weight: w, name: 'c3' }), /c3: expected parameter w to have shape \[8,6,3,3\], but received shape \[8,6,1,1\]/);
    assert.throws(() => g.add(x, g.relu(g.conv2d(x, { outChannels: 2, kernel: 1 }))), /expected operands of the same shape, but received \[6,8,8\] and \[2,8,8\]/);
    assert.throws(() => new GraphBuilder().relu(x), /expected a Value made by this GraphBuilder, but received x from another builder/);
  });

  // One case per kind of mistake (not per call site): the class is what callers branch on (the CLI exits
  // with code 2 on a TypeError or RangeError), the wording is the library's one form.
  describe('error classes', () => {
    const setup = () => {
      const g = new GraphBuilder();
      return { g, x: g.input('x', [4, 8, 8]), y: g.input('y', [], 'i32') };
    };
    const throwsAs = (f: () => unknown, cls: typeof TypeError | typeof RangeError, message: RegExp) =>
      assert.throws(f, (e: Error) => {
        assert.equal(e.constructor, cls, `${e.constructor.name}: ${e.message}`);
        assert.match(e.message, message);
        assert.match(e.message, /expected .*, but received /);
        return true;
      });

    it('a number option that is not a number is a TypeError', () => {
      const { g, x } = setup();
      throwsAs(() => g.conv2d(x, { outChannels: '8' as never, kernel: 3, name: 'c' }), TypeError, /conv2d c: expected outChannels .* received "8"/);
      throwsAs(() => g.conv2d(x, { outChannels: 8, kernel: 'three' as never, name: 'k' }), TypeError, /k: expected kernel .* received "three"/);
      throwsAs(() => g.batchNorm(x, { momentum: '0.9' as never, name: 'bn' }), TypeError, /batchNorm bn: expected momentum .* received "0.9"/);
    });
    it('a value that is not a Value of this builder is a TypeError', () => {
      const { g } = setup();
      const other = new GraphBuilder().input('z', [4, 8, 8]);
      throwsAs(() => g.relu(other, 'r'), TypeError, /r: expected a Value made by this GraphBuilder, but received z from another builder/);
      throwsAs(() => g.conv2d(undefined as never, { outChannels: 4, kernel: 1, name: 'u' }), TypeError, /u: expected a Value .* received undefined/);
    });
    it('a tensor of the wrong dtype or rank is a TypeError', () => {
      const { g, x, y } = setup();
      throwsAs(() => g.linear(x, { outFeatures: 3, name: 'fc' }), TypeError, /linear fc: expected an f32 input of per-sample shape \[F\]/);
      throwsAs(() => g.batchNorm(y, { name: 'bn' }), TypeError, /batchNorm bn: expected an f32 input .* but received i32 \[\]/);
      const logits = g.linear(g.globalAvgPool(x), { outFeatures: 3 });
      throwsAs(() => g.softmaxCrossEntropy(logits, logits, { name: 'ce' }), TypeError, /ce: expected labels to be an i32 input/);
      throwsAs(() => g.build({ outputs: [logits], loss: logits }), TypeError, /build: expected loss to be the output of softmaxCrossEntropy, but received linear_\d+ \(linear\)/);
    });
    it('a number out of its range is a RangeError', () => {
      const { g, x } = setup();
      throwsAs(() => g.conv2d(x, { outChannels: 0, kernel: 3, name: 'c' }), RangeError, /expected outChannels to be an integer in \[1, 16777216\], but received 0/);
      throwsAs(() => g.conv2d(x, { outChannels: 4, kernel: 3, stride: 0, name: 's' }), RangeError, /expected kernel and stride of at least 1/);
      throwsAs(() => g.maxPool(x, { kernel: 2, padding: 2, name: 'p' }), RangeError, /expected padding at most half the kernel 2x2/);
      throwsAs(() => g.batchNorm(x, { eps: 0, name: 'bn' }), RangeError, /expected eps to be a finite number > 0, but received 0/);
      throwsAs(() => g.input('z', [4, 0]), RangeError, /input z: expected a shape of integers .* but received \[4,0\]/);
      throwsAs(() => g.param('p', [3, 1.5]), RangeError, /Parameter p: expected a shape of positive integers, but received \[3,1.5\]/);
    });
    it('sizes that do not fit together are a RangeError', () => {
      const { g, x } = setup();
      throwsAs(() => g.conv2d(x, { outChannels: 4, kernel: 9, name: 'c' }), RangeError, /expected an input of at least 9x9/);
      throwsAs(() => g.conv2d(x, { outChannels: 6, kernel: 1, groups: 4, name: 'g' }), RangeError, /expected groups to be a positive integer dividing/);
      throwsAs(() => g.conv2d(x, { outChannels: 4, kernel: 3, weight: g.param('w', [4, 4, 1, 1]), name: 'w' }), RangeError, /expected parameter w to have shape \[4,4,3,3\]/);
      throwsAs(() => g.add(x, g.maxPool(x, { kernel: 2 }), 'a'), RangeError, /add a: expected operands of the same shape/);
    });
    it('a name already taken is a RangeError', () => {
      const { g, x } = setup();
      throwsAs(() => g.relu(x, 'x'), RangeError, /relu: expected a name not yet used in this graph, but received x/);
      g.conv2d(x, { outChannels: 4, kernel: 1, name: 'a' });
      throwsAs(() => g.conv2d(x, { outChannels: 4, kernel: 1, name: 'b', weight: g.param('a.weight', [4, 4, 1, 1]) }), RangeError,
        /conv2d b: expected a parameter name not taken by another Parameter of this graph, but received a different Parameter named a.weight/);
    });
  });
});
