// The op table has one home per language: native/core/ops.h (arity, parameter slots, attributes, which
// shape inference and the executor derive their rules from) and its mirror, lib/graph/ir.ts's OPS. This
// holds the mirror and the graph builder to the native table, so adding an op cannot update one side only.
import { strict as assert } from 'node:assert';
import { native } from '../lib/engine/native.js';
import { GraphBuilder } from '../lib/graph/index.js';
import { OPS } from '../lib/graph/ir.js';

describe('op table', () => {
  const table = native().opTable();

  it('lists the same ops as lib/graph/ir.ts, in the same order', () => {
    assert.deepEqual([...OPS], table.map((op) => op.name));
  });

  it('is well formed: unique slot names, optional parameters and inputs only at the end, no integer input differentiable', () => {
    for (const op of table) {
      assert.ok(op.inputs.length >= 1, `${op.name}: no inputs`);
      for (const list of [op.inputs, op.params, op.attributes]) {
        const names = list.map((s) => s.name);
        assert.equal(new Set(names).size, names.length, `${op.name}: a slot name repeats in ${names.join(', ')}`);
      }
      for (const [what, list] of [['parameter', op.params], ['input', op.inputs]] as const) {
        const firstOptional = list.findIndex((p) => p.optional);
        if (firstOptional >= 0) assert.ok(list.slice(firstOptional).every((p) => p.optional), `${op.name}: a required ${what} follows an optional one`);
      }
      for (const i of op.inputs) if (i.dtype !== 'f32') assert.equal(i.differentiable, false, `${op.name}: ${i.name} is ${i.dtype} yet differentiable`);
    }
  });

  it('agrees with what the graph builder emits for every op', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 6, 6]);
    const labels = g.input('labels', [], 'i32');
    const c = g.conv2d(x, { outChannels: 4, kernel: 3, padding: 1, bias: true, name: 'conv' });
    const b = g.relu(g.batchNorm(c, { name: 'bn' }), 'relu');
    const s = g.add(g.maxPool(b, { kernel: 2, name: 'max' }), g.avgPool(b, { kernel: 2, name: 'avg' }), 'sum');
    const logits = g.linear(g.globalAvgPool(s, 'gap'), { outFeatures: 3, name: 'fc' });
    const ir = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, labels, { topk: 2, name: 'loss' }) }).ir;

    assert.deepEqual(new Set(ir.nodes.map((n) => n.op)), new Set(OPS), 'the graph above should use every op');
    const byName = new Map(table.map((op) => [op.name, op]));
    const paramByName = new Map(ir.params.map((p) => [p.name, p]));
    for (const node of ir.nodes) {
      const op = byName.get(node.op)!;
      const requiredInputs = op.inputs.filter((i) => !i.optional).length;
      assert.ok(node.inputs.length >= requiredInputs && node.inputs.length <= op.inputs.length, `${node.name}: ${node.inputs.length} inputs`);
      const required = op.params.filter((p) => !p.optional).length;
      assert.ok(node.params.length >= required && node.params.length <= op.params.length, `${node.name}: ${node.params.length} parameters`);
      node.params.forEach((p, k) => assert.equal(paramByName.get(p)!.trainable, op.params[k]!.trainable, `${node.name}: parameter ${p}`));
      const allowed = new Set(op.attributes.map((a) => a.name));
      for (const key of Object.keys(node.attrs)) assert.ok(allowed.has(key), `${node.name}: attribute ${key} is not in the native table`);
      for (const a of op.attributes.filter((a) => a.required)) assert.ok(a.name in node.attrs, `${node.name}: required attribute ${a.name} missing`);
    }
  });

  describe('shape inference derives its rules from it', () => {
    function graph() {
      const g = new GraphBuilder();
      const x = g.input('x', [3, 4, 4]);
      const labels = g.input('labels', [], 'i32');
      const bn = g.batchNorm(g.conv2d(x, { outChannels: 2, kernel: 3, name: 'conv' }), { name: 'bn' });
      const logits = g.linear(g.globalAvgPool(bn, 'gap'), { outFeatures: 3, name: 'fc' });
      return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, labels, { name: 'loss' }) }).ir;
    }
    const check = (ir: ReturnType<typeof graph>) => native().checkTensorElements(ir, 2, 2 ** 40, 'cpu');

    it('accepts the graph as built', () => check(graph()));

    it('a required attribute', () => {
      const ir = graph();
      delete ir.nodes.find((n) => n.name === 'conv')!.attrs.kernel;
      assert.throws(() => check(ir), /^Error: node conv \(conv2d\): missing attribute 'kernel'$/);
    });

    it('the number of inputs and of parameter slots', () => {
      const ir = graph();
      ir.nodes.find((n) => n.name === 'gap')!.inputs.push('x');
      assert.throws(() => check(ir), /node gap \(globalAvgPool\): expected 1 inputs, got 2/);
      const ir2 = graph();
      ir2.nodes.find((n) => n.name === 'fc')!.params.pop();
      assert.throws(() => check(ir2), /node fc \(linear\): expected 2 parameters, got 1/);
      const ir3 = graph();
      ir3.nodes.find((n) => n.name === 'conv')!.params.push('fc.bias', 'fc.bias');
      assert.throws(() => check(ir3), /node conv \(conv2d\): expected 1 or 2 parameters, got 3/);
    });

    it('the dtype of each input', () => {
      const ir = graph();
      ir.nodes.find((n) => n.name === 'loss')!.inputs[1] = 'fc';
      assert.throws(() => check(ir), /node loss \(softmaxCrossEntropy\): input 1 \(fc\) must be i32, got f32/);
    });

    it('state slots, which must not be trainable', () => {
      const ir = graph();
      const bn = ir.nodes.find((n) => n.name === 'bn')!;
      ir.params.find((p) => p.name === bn.params[2])!.trainable = true;
      assert.throws(() => check(ir), new RegExp(`^Error: node bn \\(batchNorm\\): runningMean parameter ${bn.params[2]!.replace('.', '\\.')} must not be trainable$`));
    });
  });
});
