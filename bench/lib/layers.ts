// The distinct layer shapes of models, for the per-op suite, and the one-op graphs that time them.
//
// A layer is a conv2d (input C x H x W, out channels, kernel, stride, padding, groups), a batch norm
// (alone, or followed by the ReLU that the CPU backend fuses into it), or a ReLU the backend runs on its
// own; two nodes with the same key share one measurement, and `uses` counts the nodes of each model that
// have that shape, so that count x time sums to the model's per-step cost of that op.
import { GraphBuilder, type Graph } from '../../lib/index.js';
import type { NodeIR } from '../../lib/graph/ir.js';

export type LayerOp = 'conv2d' | 'batchNorm' | 'batchNormRelu' | 'relu';

export interface Layer {
  key: string;
  op: LayerOp;
  /** Per-sample input shape [C, H, W]. */
  input: number[];
  attrs: { outChannels?: number; kernel?: number[]; stride?: number[]; padding?: number[]; groups?: number; eps?: number; momentum?: number };
  /** Multiply-adds of one direction per sample (convolutions only). */
  macs: number;
  /** Nodes with this shape, per model; `firstConv` counts the ones reading the image (no backward-data in a step). */
  uses: Record<string, number>;
  imageInput: Record<string, number>;
  /** Example node names, per model. */
  nodes: Record<string, string[]>;
}

function convKey(input: readonly number[], a: NodeIR['attrs']): string {
  const k = a.kernel as number[], s = a.stride as number[], p = a.padding as number[];
  const g = a.groups as number;
  return `conv ${input[0]}->${a.outChannels} ${k[0]}x${k[1]}${s[0]! > 1 ? `/${s[0]}` : ''} g${g} p${p[0]} @${input[1]}x${input[2]}`;
}

/** Adds the layers of one model (a built graph) to `into`, keyed by shape. */
export function collectLayers(model: string, graph: Graph, into: Map<string, Layer>): void {
  const { ir, shapes } = graph;
  const consumers = new Map<string, NodeIR[]>();
  for (const n of ir.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const isOutput = (v: string) => ir.outputs.includes(v) || ir.loss === v;
  const fusedRelu = new Set<string>();
  const add = (key: string, mk: () => Omit<Layer, 'uses' | 'imageInput' | 'nodes' | 'key'>, node: NodeIR, image: boolean) => {
    let l = into.get(key);
    if (!l) into.set(key, (l = { key, ...mk(), uses: {}, imageInput: {}, nodes: {} }));
    l.uses[model] = (l.uses[model] ?? 0) + 1;
    if (image) l.imageInput[model] = (l.imageInput[model] ?? 0) + 1;
    (l.nodes[model] ??= []).push(node.name);
  };
  for (const n of ir.nodes) {
    const input = [...(shapes.get(n.inputs[0] ?? '') ?? [])];
    if (n.op === 'conv2d') {
      const a = n.attrs;
      const out = shapes.get(n.name)!;
      const k = a.kernel as number[];
      const macs = out.reduce((x, y) => x * y, 1) * (input[0]! / (a.groups as number)) * k[0]! * k[1]!;
      const image = ir.inputs.some((i) => i.name === n.inputs[0]);
      add(convKey(input, a), () => ({
        op: 'conv2d', input, macs,
        attrs: { outChannels: a.outChannels as number, kernel: k, stride: a.stride as number[], padding: a.padding as number[], groups: a.groups as number },
      }), n, image);
    } else if (n.op === 'batchNorm' && input.length === 3) {
      // The CPU backend's fusion rule (native/core/fusion.cc): a relu that is the batch norm's only reader.
      const readers = consumers.get(n.name) ?? [];
      const fuse = readers.length === 1 && readers[0]!.op === 'relu' && !isOutput(n.name);
      if (fuse) fusedRelu.add(readers[0]!.name);
      const op: LayerOp = fuse ? 'batchNormRelu' : 'batchNorm';
      const eps = n.attrs.eps as number, momentum = n.attrs.momentum as number;
      add(`${fuse ? 'bn+relu' : 'bn'} ${input.join('x')} eps ${eps}`, () => ({ op, input, macs: 0, attrs: { eps, momentum } }), n, false);
    } else if (n.op === 'relu' && !fusedRelu.has(n.name) && input.length === 3) {
      add(`relu ${input.join('x')}`, () => ({ op: 'relu', input, macs: 0, attrs: {} }), n, false);
    }
  }
}

/**
 * One-op graph for a layer. conv2d: `frozenWeight` makes the weight non-trainable, so that with
 * inputGrads the backward pass is backward-data alone; a trainable weight without inputGrads makes it
 * backward-weights alone. The timed nodes are named 'op' (and 'op_relu' when not fused).
 */
export function layerGraph(l: Layer, frozenWeight = false): Graph {
  const g = new GraphBuilder();
  const x = g.input('x', l.input);
  let y;
  if (l.op === 'conv2d') {
    const a = l.attrs;
    const weight = g.param('w', [a.outChannels!, l.input[0]! / a.groups!, a.kernel![0]!, a.kernel![1]!], { trainable: !frozenWeight });
    y = g.conv2d(x, { outChannels: a.outChannels!, kernel: a.kernel as [number, number], stride: a.stride as [number, number], padding: a.padding as [number, number], groups: a.groups, weight, name: 'op' });
  } else if (l.op === 'relu') {
    y = g.relu(x, 'op');
  } else {
    // The backend fuses batchNorm -> relu only when the batch norm does not read a graph input (as in
    // every network), so a ReLU named 'pre' feeds it; the suite counts only the nodes named 'op*'.
    y = g.batchNorm(g.relu(x, 'pre'), { eps: l.attrs.eps, momentum: l.attrs.momentum, name: 'op' });
    if (l.op === 'batchNormRelu') y = g.relu(y, 'op_relu');
  }
  return g.build({ outputs: [y] });
}

/** Bytes a memory-bound layer must move at least (read inputs once, write outputs once), per direction. */
export function layerBytes(l: Layer, batch: number): { fwd: number; bwd: number } {
  const n = batch * l.input.reduce((a, b) => a * b, 1) * 4;
  // forward: read x, write y; backward: read x (or y) and dy, write dx.
  return { fwd: 2 * n, bwd: 3 * n };
}
