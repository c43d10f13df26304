// NetSpec -> Graph: stem, stages of block-term units, head and loss; plus the per-stage layout that
// summary() reports (which nodes belong to which stage, the unit structure, the factor sets).

import { GraphBuilder, Value, type Graph } from '../graph/index.js';
import { blockTermUnit, factorSet, type FactorSet } from './units.js';
import type { NetSpec, StageSpec } from './spec.js';

/** One row of the paper's Table 1: the stem, a stage of units, or the head. */
export interface Section {
  /** The paper's stage name: conv1 (stem), conv2..conv5, fc (head). */
  name: string;
  /** Layer-name prefix of the section's units ("layer1"), absent for stem and head. */
  prefix?: string;
  /** The unit's layers, one per line, in the paper's notation. */
  structure: string[];
  units: number;
  /** CRU factor sets in the stage (0 for plain stages). */
  sharedSets: number;
  /** Per-sample output shape. */
  output: number[];
  /** Names of the graph nodes the section holds, in graph order. */
  nodes: string[];
}

export interface BuiltNetwork {
  graph: Graph;
  sections: Section[];
}

function stageStructure(s: StageSpec): string[] {
  if (s.kind === 'cru') {
    return [`1x1, ${s.width} (shared)`, `3x3, ${s.width}, dw (shared)`, `1x1, ${s.width}`, `1x1, ${s.out}`];
  }
  const core = s.groups === 1 ? '' : s.groups === s.width ? ', dw' : `, R=${s.groups}`;
  return [`1x1, ${s.width}`, `3x3, ${s.width}${core}`, `1x1, ${s.out}`];
}

export function buildNetwork(spec: NetSpec): BuiltNetwork {
  const g = new GraphBuilder();
  const bn = spec.bn;
  const images = g.input('images', [spec.channels, spec.inputSize, spec.inputSize]);
  const labels = g.input('labels', [], 'i32');
  const ends: Value[] = [];
  const sections: Omit<Section, 'nodes'>[] = [];

  // Stem: conv, BN, ReLU (both activation styles, as fb.resnet.torch's pre-activation nets).
  const w0 = spec.stem.width;
  const imagenet = spec.stem.kind === 'imagenet';
  let x = g.conv2d(images, imagenet
    ? { outChannels: w0, kernel: 7, stride: 2, padding: 3, name: 'conv1' }
    : { outChannels: w0, kernel: 3, stride: 1, padding: 1, name: 'conv1' });
  x = g.relu(g.batchNorm(x, { ...bn, name: 'bn1' }), 'relu');
  if (imagenet) x = g.maxPool(x, { kernel: 3, stride: 2, padding: 1, name: 'maxpool' });
  ends.push(x);
  sections.push({
    name: 'conv1', units: 1, sharedSets: 0, output: [...x.shape],
    structure: imagenet ? [`7x7, ${w0}, stride 2`, '3x3 max pool, stride 2'] : [`3x3, ${w0}`],
  });

  spec.stages.forEach((s, i) => {
    const prefix = `layer${i + 1}`;
    let sets = 0;
    let factors: FactorSet | undefined;
    for (let j = 0; j < s.units; j++) {
      if (s.kind === 'cru' && j % s.setLength === 0) {
        factors = factorSet(g, `${prefix}.shared.${sets++}`, s.out, s.width);
      }
      x = blockTermUnit(g, x, {
        name: `${prefix}.${j}`, out: s.out, width: s.width, groups: s.kind === 'cru' ? s.width : s.groups,
        stride: j === 0 ? s.stride : 1, preActivation: spec.preActivation, bn, factors,
      });
    }
    ends.push(x);
    sections.push({ name: `conv${i + 2}`, prefix, structure: stageStructure(s), units: s.units, sharedSets: sets, output: [...x.shape] });
  });

  if (spec.preActivation) x = g.relu(g.batchNorm(x, { ...bn, name: 'bn_final' }), 'relu_final');
  const logits = g.linear(g.globalAvgPool(x, 'avgpool'), { outFeatures: spec.classes, name: 'fc' });
  const loss = g.softmaxCrossEntropy(logits, labels, { topk: spec.classes >= 5 ? 5 : 0, name: 'loss' });
  ends.push(loss);
  sections.push({
    name: 'fc', units: 1, sharedSets: 0, output: [...logits.shape],
    structure: [...(spec.preActivation ? ['BN, ReLU'] : []), 'global avg pool', `fc, ${spec.classes}`],
  });

  const graph = g.build({ outputs: [logits], loss });
  const order = graph.ir.nodes.map((n) => n.name);
  let start = 0;
  const withNodes = sections.map((s, i) => {
    const end = order.indexOf(ends[i]!.name) + 1;
    const nodes = order.slice(start, end);
    start = end;
    return { ...s, nodes };
  });
  return { graph, sections: withNodes };
}
