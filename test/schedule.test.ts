// The schedule (native/core/schedule.h), the pure half of compile: for a graph and what each kernel keeps
// for backward, every buffer's lifetime on the time axis and where each gradient goes, with no backend.
// The time axis for n nodes: feeds at 0, forward of node i at F(i) = 1 + i, the seed at n + 1, backward of
// node i at B(i) = 2n + 1 - i, and outputs read back (and the update) at 2n + 2.
import { strict as assert } from 'node:assert';
import { native } from '../lib/engine/native.js';
import { GraphBuilder } from '../lib/graph/index.js';

// x -> fc1 -> relu -> fc2 -> add(fc2, fc1) -> head -> loss, with fc1 and fc2 sharing one weight: the
// value fc1 and the parameter shared.weight each get two gradient contributions.
function sharedWeightGraph() {
  const g = new GraphBuilder();
  const x = g.input('x', [4]);
  const labels = g.input('labels', [], 'i32');
  const w = g.param('shared.weight', [4, 4]);
  const fc1 = g.linear(x, { outFeatures: 4, weight: w, name: 'fc1' });
  const r = g.relu(fc1, 'relu');
  const fc2 = g.linear(r, { outFeatures: 4, weight: w, name: 'fc2' });
  const logits = g.linear(g.add(fc2, fc1, 'add'), { outFeatures: 3, name: 'head' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, labels, { name: 'loss' }) }).ir;
}
const NODES = ['fc1', 'relu', 'fc2', 'add', 'head', 'loss'];
const n = NODES.length;
const F = (node: string) => 1 + NODES.indexOf(node);
const B = (node: string) => 2 * n + 1 - NODES.indexOf(node);
const SEED = n + 1;
const END = 2 * n + 2;
const BATCH = 2;

// What each kernel keeps for backward, chosen to exercise every rule: linear reads its input (the
// default), relu its output, add nothing; the loss saves BATCH x 3 floats and reads neither input.
const KERNELS = NODES.map((node) => ({
  relu: { readsInputs: [false], readsOutput: true },
  add: { readsInputs: [false, false] },
  loss: { savedBytes: BATCH * 3 * 4, readsInputs: [false, false] },
}[node] ?? {}));

describe('schedule', () => {
  const s = native().schedule(sharedWeightGraph(), BATCH, { kernels: KERNELS });
  const value = (name: string) => s.values.find((v) => v.name === name)!;
  const life = (buffer: number) => [s.buffers[buffer]!.first, s.buffers[buffer]!.last];

  it('keeps each value until its last reader, forward or backward', () => {
    assert.deepEqual(life(value('x').data), [0, B('fc1')], 'fc1 reads its input x in backward (dW)');
    assert.deepEqual(life(value('fc1').data), [F('fc1'), F('add')], 'relu and add read no input in backward');
    assert.deepEqual(life(value('relu').data), [F('relu'), B('relu')], 'relu reads its output in backward');
    assert.deepEqual(life(value('labels').data), [0, F('loss')]);
    assert.deepEqual(life(value('head').data), [F('head'), END], 'an output lives until it is read back');
    assert.equal(s.buffers[value('x').data]!.bytes, BATCH * 4 * 4);
    assert.equal(s.buffers[value('labels').data]!.bytes, BATCH * 4);
  });

  it('keeps saved tensors from forward to backward', () => {
    assert.deepEqual(s.saved.map((b, i) => (b < 0 ? null : [NODES[i], ...life(b), s.buffers[b]!.bytes])),
      [null, null, null, null, null, ['loss', F('loss'), B('loss'), BATCH * 3 * 4]]);
  });

  it('gives gradients a buffer from their first contribution to their producer\'s backward', () => {
    assert.equal(value('x').grad, -1, 'no input gradients were asked for');
    assert.equal(value('labels').grad, -1);
    assert.deepEqual(life(value('loss').grad), [SEED, B('loss')]);
    assert.deepEqual(life(value('fc1').grad), [B('add'), B('fc1')], 'add contributes first, relu second');
  });

  it('sends the second contribution to a gradient through a temporary that is added in', () => {
    const calls = new Map(s.loss!.calls.map((c) => [c.node, c]));
    assert.deepEqual(s.loss!.calls.map((c) => c.node), [...NODES].reverse());
    assert.equal(s.loss!.seedInLossKernel, true);
    assert.equal(calls.get('loss')!.outGrad, -1, 'the loss kernel seeds itself');

    // The value fc1: add writes its gradient, relu writes a temporary live during relu's backward only.
    assert.deepEqual(calls.get('add')!.inGrad, [{ buffer: value('fc2').grad }, { buffer: value('fc1').grad }]);
    const reluTemp = calls.get('relu')!.inGrad[0] as { buffer: number };
    assert.notEqual(reluTemp.buffer, value('fc1').grad);
    assert.deepEqual(life(reluTemp.buffer), [B('relu'), B('relu')]);
    assert.deepEqual(calls.get('relu')!.accumulate, [{ into: { buffer: value('fc1').grad }, from: reluTemp.buffer, count: BATCH * 4 }]);

    // The shared weight: fc2 (backward first) writes the parameter's gradient, fc1 a temporary added in.
    assert.deepEqual(calls.get('fc2')!.paramGrad, [{ param: 'shared.weight' }, { param: 'fc2.bias' }]);
    const [wTemp, b1] = calls.get('fc1')!.paramGrad as [{ buffer: number }, unknown];
    assert.deepEqual(b1, { param: 'fc1.bias' });
    assert.deepEqual(life(wTemp.buffer), [B('fc1'), B('fc1')]);
    assert.equal(s.buffers[wTemp.buffer]!.bytes, 16 * 4);
    assert.deepEqual(calls.get('fc1')!.accumulate, [{ into: { param: 'shared.weight' }, from: wTemp.buffer, count: 16 }]);
    assert.deepEqual(calls.get('fc1')!.inGrad, [null], 'no gradient for the input x');
    assert.deepEqual(calls.get('loss')!.inGrad, [{ buffer: value('head').grad }, null], 'labels have no gradient');
    assert.deepEqual(s.loss!.paramsReached, ['shared.weight', 'fc1.bias', 'fc2.bias', 'head.weight', 'head.bias']);
  });

  it('schedules gradients() towards outputs[0] without the loss, and input gradients when asked', () => {
    const t = native().schedule(sharedWeightGraph(), BATCH, { kernels: KERNELS, inputGrads: true });
    assert.equal(t.output!.target, 'head');
    assert.equal(t.output!.seedInLossKernel, false);
    assert.deepEqual(t.output!.calls.map((c) => c.node), ['head', 'add', 'fc2', 'relu', 'fc1']);
    const x = t.values.find((v) => v.name === 'x')!;
    assert.deepEqual([t.buffers[x.grad]!.first, t.buffers[x.grad]!.last], [B('fc1'), END], 'read back after backward');
    assert.deepEqual(t.output!.calls.find((c) => c.node === 'fc1')!.inGrad, [{ buffer: x.grad }]);
  });
});
