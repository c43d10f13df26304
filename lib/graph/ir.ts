// The graph IR: the plain-data form of a network that crosses into native code (and into JSON).
// Shapes are PER SAMPLE in PyTorch's order ([C,H,W] for images, [F] for features, [] for labels);
// compile() prepends the batch size.

/**
 * Every op the engine knows, with the IR name native code parses: a mirror of the op table in
 * native/core/ops.h, in its order (test/op-table.test.ts holds the two together).
 */
export const OPS = [
  'conv2d',
  'batchNorm',
  'relu',
  'maxPool',
  'avgPool',
  'globalAvgPool',
  'linear',
  'add',
  'softmaxCrossEntropy',
] as const;
export type OpName = (typeof OPS)[number];

export type DType = 'f32' | 'i32';

/** How native code fills a parameter at compile time (the policy, e.g. He's std, is decided in TS). */
export type Init =
  | { dist: 'normal'; std: number; mean?: number }
  | { dist: 'uniform'; low: number; high: number }
  | { dist: 'constant'; value: number };

export interface InputIR {
  name: string;
  shape: number[];
  dtype: DType;
}

export interface ParamIR {
  name: string;
  shape: number[];
  init: Init;
  /** false for batch-norm running statistics: saved and loaded, never updated by the optimizer. */
  trainable: boolean;
  /** Apply L2 weight decay (off for batch-norm and bias parameters by default). */
  weightDecay: boolean;
}

export type AttrValue = number | boolean | number[];

export interface NodeIR {
  name: string;
  op: OpName;
  /** Value names: graph inputs or other nodes (a node's output is named after the node). */
  inputs: string[];
  /** Parameter names, in the op's slot order (conv2d: weight[, bias]; batchNorm: weight, bias, runningMean, runningVar). */
  params: string[];
  attrs: Record<string, AttrValue>;
}

export interface GraphIR {
  inputs: InputIR[];
  params: ParamIR[];
  nodes: NodeIR[];
  /** Values that forward() returns, in order. */
  outputs: string[];
  /** The softmaxCrossEntropy node that step() minimises, if any. */
  loss?: string;
}
