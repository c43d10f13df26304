// Defaults of the graph builder and of each model family, written down here from their sources rather
// than read from lib/graph or lib/models: the float64 reference takes every shape and attribute from the
// built graph, so a wrong default would be shared by the engine and the reference and pass every parity
// test. Sources:
//   torch.nn.BatchNorm2d: eps 1e-5, momentum 0.1 (running = (1 - momentum) running + momentum batch).
//   torch.nn.MaxPool2d / AvgPool2d: stride defaults to kernel_size, padding 0; AvgPool2d count_include_pad True.
//   torch.nn.Conv2d: stride 1, padding 0, groups 1.
//   torchvision ResNet/ResNeXt: BatchNorm2d defaults; stem conv 7x7 stride 2 padding 3, max-pool 3 stride 2 padding 1.
//   CRU-Net's released MXNet code (lib/models/crunet.ts): mx.sym.BatchNorm momentum 0.9 (= PyTorch 0.1), eps 1e-3.
//   Small models (lib/models/small.ts): crunet_small as the CRU-Nets, the two baselines as PyTorch.

import { strict as assert } from 'node:assert';
import { GraphBuilder, type Graph } from '../lib/graph/index.js';
import { create, list } from '../lib/models/index.js';

const TORCH_BN = { momentum: 0.1, eps: 1e-5 };
const MXNET_CRUNET_BN = { momentum: 0.1, eps: 1e-3 };  // MXNet's momentum 0.9 is PyTorch's 1 - 0.9

/** Every model of the zoo with the BN settings of its source. */
const BN_BY_MODEL: Record<string, { momentum: number; eps: number }> = {
  resnet50: TORCH_BN, resnet101: TORCH_BN, resnet200: TORCH_BN, resnext50_32x4d: TORCH_BN, resnext50_136x1d: TORCH_BN,
  crunet56: MXNET_CRUNET_BN, crunet56_136x1d: MXNET_CRUNET_BN, crunet116: MXNET_CRUNET_BN, crunet116_wide: MXNET_CRUNET_BN,
  crunet56_tiny: MXNET_CRUNET_BN,
  crunet_small: MXNET_CRUNET_BN, resnext_small: TORCH_BN, resnet_small: TORCH_BN,
};

const nodesOf = (graph: Graph, op: string) => graph.ir.nodes.filter((n) => n.op === op);

describe('builder defaults, against PyTorch\'s documented values', () => {
  function built(f: (g: GraphBuilder, x: ReturnType<GraphBuilder['input']>) => ReturnType<GraphBuilder['input']>) {
    const g = new GraphBuilder();
    const out = f(g, g.input('x', [4, 12, 12]));
    return g.build({ outputs: [out] });
  }

  it('batchNorm: momentum 0.1, eps 1e-5 (torch.nn.BatchNorm2d)', () => {
    const [bn] = nodesOf(built((g, x) => g.batchNorm(x)), 'batchNorm');
    assert.deepEqual(bn!.attrs, TORCH_BN);
  });

  it('maxPool and avgPool: stride = kernel, padding 0; avgPool counts the padding (count_include_pad True)', () => {
    for (const op of ['maxPool', 'avgPool'] as const) {
      const [p] = nodesOf(built((g, x) => g[op](x, { kernel: 3 })), op);
      assert.deepEqual(p!.attrs.stride, [3, 3], `${op} stride`);
      assert.deepEqual(p!.attrs.padding, [0, 0], `${op} padding`);
      const [q] = nodesOf(built((g, x) => g[op](x, { kernel: [2, 3] })), op);
      assert.deepEqual(q!.attrs.stride, [2, 3], `${op} stride of a 2x3 kernel`);
    }
    const [avg] = nodesOf(built((g, x) => g.avgPool(x, { kernel: 2, padding: 1 })), 'avgPool');
    assert.equal(avg!.attrs.countIncludePad, true);
  });

  it('conv2d: stride 1, padding 0, groups 1 (torch.nn.Conv2d)', () => {
    const [c] = nodesOf(built((g, x) => g.conv2d(x, { outChannels: 4, kernel: 3 })), 'conv2d');
    assert.deepEqual([c!.attrs.stride, c!.attrs.padding, c!.attrs.groups], [[1, 1], [0, 0], 1]);
  });
});

describe('model defaults, against each family\'s source', () => {
  it('covers every model of the zoo', () => {
    assert.deepEqual(list().map((m) => m.name).sort(), Object.keys(BN_BY_MODEL).sort());
  });

  for (const [name, bn] of Object.entries(BN_BY_MODEL)) {
    it(`${name}: every batchNorm has momentum ${bn.momentum}, eps ${bn.eps}`, () => {
      const nodes = nodesOf(create(name).graph, 'batchNorm');
      assert.ok(nodes.length > 0);
      for (const n of nodes) assert.deepEqual(n.attrs, bn, `${name} ${n.name}`);
    });
  }

  it('ImageNet stems are torchvision\'s: conv 7x7 stride 2 padding 3, max-pool 3x3 stride 2 padding 1', () => {
    for (const name of ['resnet50', 'crunet56']) {
      const graph = create(name).graph;
      const conv1 = graph.ir.nodes.find((n) => n.name === 'conv1')!;
      assert.deepEqual([conv1.attrs.kernel, conv1.attrs.stride, conv1.attrs.padding], [[7, 7], [2, 2], [3, 3]], `${name} conv1`);
      const [pool, ...more] = nodesOf(graph, 'maxPool');
      assert.equal(more.length, 0, `${name}: one max-pool`);
      assert.deepEqual([pool!.attrs.kernel, pool!.attrs.stride, pool!.attrs.padding], [[3, 3], [2, 2], [1, 1]], `${name} max-pool`);
    }
  });
});
