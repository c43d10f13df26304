// Multiply-adds of one forward pass per sample, counted from the graph IR and its inferred shapes.
// Only convolutions and linear layers count: BN, ReLU, pooling and additions are counted as 0, the usual
// convention (torchvision's GFLOPS column, which reads "multiply-adds" and gives ResNet-50 4.09 G).

import type { Graph, NodeIR } from '../graph/index.js';

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Multiply-adds of one node: conv out elements x (Cin / groups) x kh x kw; linear in x out. */
export function nodeMacs(graph: Graph, node: NodeIR): number {
  const out = graph.shapes.get(node.name);
  const input = graph.shapes.get(node.inputs[0] ?? '');
  if (!out || !input) throw new Error(`macs: no inferred shape for node ${node.name}`);
  if (node.op === 'conv2d') {
    const [kh, kw] = node.attrs.kernel as number[];
    return product(out) * (input[0]! / (node.attrs.groups as number)) * kh! * kw!;
  }
  if (node.op === 'linear') return input[0]! * out[0]!;
  return 0;
}

/** Multiply-adds of the whole graph, or of the named nodes only. */
export function graphMacs(graph: Graph, nodes?: readonly string[]): number {
  const wanted = nodes ? new Set(nodes) : undefined;
  let total = 0;
  for (const n of graph.ir.nodes) if (!wanted || wanted.has(n.name)) total += nodeMacs(graph, n);
  return total;
}
