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
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 3, groups: 4, name: 'c' }), /conv2d c: groups \(4\) must divide input channels \(6\)/);
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 9, name: 'big' }), /conv2d big: input 8x8 is too small for kernel 9x9/);
    assert.throws(() => g.linear(x, { outFeatures: 3, name: 'fc' }), /linear fc: expected an f32 input of per-sample shape \[F\], but received f32 \[6,8,8\]/);
    const w = g.param('w', [8, 6, 1, 1]);
    assert.throws(() => g.conv2d(x, { outChannels: 8, kernel: 3, weight: w, name: 'c3' }), /parameter w has shape \[8,6,1,1\], expected \[8,6,3,3\]/);
    assert.throws(() => g.add(x, g.relu(g.conv2d(x, { outChannels: 2, kernel: 1 }))), /operands must have the same shape/);
    assert.throws(() => new GraphBuilder().relu(x), /expected a Value made by this GraphBuilder/);
  });
});
