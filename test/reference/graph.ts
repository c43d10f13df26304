// A float64 interpreter for a whole graph IR, built from the reference ops: the engine's expected
// answer for multi-op graphs (fan-out, shared parameters, batch-norm running statistics).
// referenceForward runs the nodes in order; referenceBackward seeds dL/d(outputs[0]) and walks them in
// reverse, summing gradients where a value or a parameter has several uses (and keeping each use's
// contribution to a parameter, so a test can show the sum).

import type { Graph, NodeIR } from '../../lib/graph/index.js';
import { addBackward, addForward } from './add.js';
import { batchNormInferBackward, batchNormInferForward, batchNormTrainBackward, batchNormTrainForward } from './batchNorm.js';
import { conv2dBackward, conv2dForward, conv2dGeometry, type ConvGeometry } from './conv2d.js';
import { linearBackward, linearForward } from './linear.js';
import {
  avgPoolBackward, avgPoolForward, globalAvgPoolBackward, globalAvgPoolForward, maxPoolBackward, maxPoolForward,
  poolGeometry, type PoolGeometry,
} from './pool.js';
import { reluBackward, reluForward } from './relu.js';
import { softmaxCrossEntropyBackward, softmaxCrossEntropyForward } from './softmaxCrossEntropy.js';
import { TestRng, normal32, uniform32 } from '../support/random.js';

export type Feeds64 = Record<string, Float64Array | Int32Array>;
export type Params64 = Map<string, Float64Array>;

export interface ReferenceRun {
  training: boolean;
  /** Every f32 value (graph inputs and node outputs), full batch, NCHW. */
  values: Map<string, Float64Array>;
  labels: Map<string, Int32Array>;
  outputs: Float64Array[];
  /** Present when the graph has a loss node. */
  loss?: { loss: number; correct: number; topkCorrect: number };
  /** Batch-norm running statistics after the step (training) or as given (inference). */
  params: Params64;
  /** What each node's backward needs. */
  saved: Map<string, unknown>;
}

export interface ReferenceGrads {
  inputGrads: Map<string, Float64Array>;
  paramGrads: Map<string, Float64Array>;
  /** Per parameter, the gradient contributed by each use, in node order (length > 1 when shared). */
  paramGradsPerUse: Map<string, Float64Array[]>;
}

const num = (v: unknown) => v as number;
const nums = (v: unknown) => v as number[];

function convGeom(graph: Graph, node: NodeIR, batch: number): ConvGeometry {
  const [c, h, w] = graph.shapes.get(node.inputs[0]!)!;
  const a = node.attrs;
  return conv2dGeometry(batch, c!, h!, w!, {
    outChannels: num(a.outChannels), kernel: nums(a.kernel) as [number, number],
    stride: nums(a.stride) as [number, number], padding: nums(a.padding) as [number, number], groups: num(a.groups),
  });
}

function poolGeom(graph: Graph, node: NodeIR, batch: number): PoolGeometry {
  const [c, h, w] = graph.shapes.get(node.inputs[0]!)!;
  const a = node.attrs;
  return poolGeometry(batch, c!, h!, w!, {
    kernel: nums(a.kernel) as [number, number], stride: nums(a.stride) as [number, number], padding: nums(a.padding) as [number, number],
  });
}

function bnGeom(graph: Graph, node: NodeIR, batch: number) {
  const s = graph.shapes.get(node.inputs[0]!)!;
  return { n: batch, c: s[0]!, spatial: s.slice(1).reduce((a, b) => a * b, 1) };
}

function size(graph: Graph, name: string): number {
  return graph.shapes.get(name)!.reduce((a, b) => a * b, 1);
}

/** Runs the graph forward in float64. `params` is not modified; the run's `params` holds updated running stats. */
export function referenceForward(graph: Graph, batch: number, feeds: Feeds64, params: Params64, training: boolean): ReferenceRun {
  const values = new Map<string, Float64Array>();
  const labels = new Map<string, Int32Array>();
  for (const inp of graph.ir.inputs) {
    const f = feeds[inp.name];
    if (!f && inp.dtype === 'i32') continue;  // labels may be left out when only outputs before the loss are wanted
    if (!f) throw new Error(`reference: no feed for input ${inp.name}`);
    if (inp.dtype === 'i32') labels.set(inp.name, f as Int32Array);
    else values.set(inp.name, f instanceof Float64Array ? f : Float64Array.from(f));
  }
  const newParams: Params64 = new Map(params);
  const saved = new Map<string, unknown>();
  let loss: ReferenceRun['loss'];
  const p = (node: NodeIR, slot: number) => {
    const v = params.get(node.params[slot]!);
    if (!v) throw new Error(`reference: no value for parameter ${node.params[slot]}`);
    return v;
  };
  for (const node of graph.ir.nodes) {
    const x = values.get(node.inputs[0]!)!;
    let y: Float64Array;
    switch (node.op) {
      case 'conv2d':
        y = conv2dForward(x, p(node, 0), node.attrs.bias ? p(node, 1) : null, convGeom(graph, node, batch));
        break;
      case 'batchNorm': {
        const g = bnGeom(graph, node, batch);
        const eps = num(node.attrs.eps);
        if (training) {
          const r = batchNormTrainForward(x, p(node, 0), p(node, 1), p(node, 2), p(node, 3), g, num(node.attrs.momentum), eps);
          newParams.set(node.params[2]!, r.runningMean);
          newParams.set(node.params[3]!, r.runningVar);
          saved.set(node.name, r);
          y = r.y;
        } else {
          y = batchNormInferForward(x, p(node, 0), p(node, 1), p(node, 2), p(node, 3), g, eps);
        }
        break;
      }
      case 'relu':
        y = reluForward(x);
        break;
      case 'maxPool': {
        const r = maxPoolForward(x, poolGeom(graph, node, batch));
        saved.set(node.name, r.argmax);
        y = r.y;
        break;
      }
      case 'avgPool':
        y = avgPoolForward(x, poolGeom(graph, node, batch), node.attrs.countIncludePad as boolean);
        break;
      case 'globalAvgPool': {
        const [c, h, w] = graph.shapes.get(node.inputs[0]!)!;
        y = globalAvgPoolForward(x, batch, c!, h! * w!);
        break;
      }
      case 'linear': {
        const f = size(graph, node.inputs[0]!);
        y = linearForward(x, p(node, 0), p(node, 1), batch, f, num(node.attrs.outFeatures));
        break;
      }
      case 'add':
        y = addForward(x, values.get(node.inputs[1]!)!);
        break;
      case 'softmaxCrossEntropy': {
        const k = size(graph, node.inputs[0]!);
        const lab = labels.get(node.inputs[1]!);
        if (!lab) continue;  // no labels fed: the loss is not computed
        const r = softmaxCrossEntropyForward(x, lab, batch, k, num(node.attrs.topk), num(node.attrs.labelSmoothing ?? 0));
        saved.set(node.name, r);
        if (graph.ir.loss === node.name || !loss) loss = { loss: r.loss, correct: r.correct, topkCorrect: r.topkCorrect };
        y = Float64Array.of(r.loss);
        break;
      }
    }
    values.set(node.name, y);
  }
  return { training, values, labels, outputs: graph.ir.outputs.map((o) => values.get(o)!), loss, params: newParams, saved, };
}

/**
 * Vector-Jacobian product of the run with respect to every f32 input and every trainable parameter,
 * seeded with dL/d(seedAt): by default the first output (as gradients()); step() seeds the loss node.
 */
export function referenceBackward(
  graph: Graph, batch: number, run: ReferenceRun, params: Params64, seed: Float64Array, seedAt = graph.ir.outputs[0]!,
): ReferenceGrads {
  const grads = new Map<string, Float64Array>();
  const paramGradsPerUse = new Map<string, Float64Array[]>();
  const addTo = (name: string, g: Float64Array) => {
    const prev = grads.get(name);
    if (!prev) grads.set(name, Float64Array.from(g));
    else for (let i = 0; i < g.length; i++) prev[i] += g[i]!;
  };
  const addParam = (node: NodeIR, slot: number, g: Float64Array) => {
    const name = node.params[slot]!;
    paramGradsPerUse.set(name, [...(paramGradsPerUse.get(name) ?? []), g]);
  };
  const p = (node: NodeIR, slot: number) => params.get(node.params[slot]!)!;
  if (seed.length !== run.values.get(seedAt)!.length) {
    throw new Error(`reference: seed has ${seed.length} values, ${seedAt} has ${run.values.get(seedAt)!.length}`);
  }
  addTo(seedAt, seed);
  for (const node of [...graph.ir.nodes].reverse()) {
    const dy = grads.get(node.name);
    if (!dy) continue;  // does not reach outputs[0]
    const xName = node.inputs[0]!;
    const x = run.values.get(xName)!;
    switch (node.op) {
      case 'conv2d': {
        const r = conv2dBackward(x, p(node, 0), dy, convGeom(graph, node, batch), !!node.attrs.bias);
        addTo(xName, r.dx);
        addParam(node, 0, r.dw);
        if (r.db) addParam(node, 1, r.db);
        break;
      }
      case 'batchNorm': {
        const g = bnGeom(graph, node, batch);
        const r = run.training
          ? (() => {
            const s = run.saved.get(node.name) as ReturnType<typeof batchNormTrainForward>;
            return batchNormTrainBackward(x, p(node, 0), dy, s.mean, s.invStd, g);
          })()
          : batchNormInferBackward(x, p(node, 0), dy, p(node, 2), p(node, 3), g, num(node.attrs.eps));
        addTo(xName, r.dx);
        addParam(node, 0, r.dgamma);
        addParam(node, 1, r.dbeta);
        break;
      }
      case 'relu':
        addTo(xName, reluBackward(x, dy));
        break;
      case 'maxPool':
        addTo(xName, maxPoolBackward(dy, run.saved.get(node.name) as Int32Array, x.length));
        break;
      case 'avgPool':
        addTo(xName, avgPoolBackward(dy, poolGeom(graph, node, batch), node.attrs.countIncludePad as boolean));
        break;
      case 'globalAvgPool': {
        const [c, h, w] = graph.shapes.get(xName)!;
        addTo(xName, globalAvgPoolBackward(dy, batch, c!, h! * w!));
        break;
      }
      case 'linear': {
        const f = size(graph, xName);
        const r = linearBackward(x, p(node, 0), dy, batch, f, num(node.attrs.outFeatures));
        addTo(xName, r.dx);
        addParam(node, 0, r.dw);
        addParam(node, 1, r.db);
        break;
      }
      case 'add': {
        const r = addBackward(dy);
        addTo(xName, r.da);
        addTo(node.inputs[1]!, r.db);
        break;
      }
      case 'softmaxCrossEntropy': {
        const k = size(graph, xName);
        const s = run.saved.get(node.name) as ReturnType<typeof softmaxCrossEntropyForward>;
        const e = num(node.attrs.labelSmoothing ?? 0);
        addTo(xName, softmaxCrossEntropyBackward(s.probs, run.labels.get(node.inputs[1]!)!, batch, k, dy[0]!, e));
        break;
      }
    }
  }
  const inputGrads = new Map<string, Float64Array>();
  for (const inp of graph.ir.inputs) {
    if (inp.dtype !== 'f32') continue;
    inputGrads.set(inp.name, grads.get(inp.name) ?? new Float64Array(batch * size(graph, inp.name)));
  }
  const paramGrads = new Map<string, Float64Array>();
  for (const q of graph.ir.params) {
    if (!q.trainable) continue;
    const uses = paramGradsPerUse.get(q.name) ?? [];
    const sum = new Float64Array(q.shape.reduce((a, b) => a * b, 1));
    for (const u of uses) for (let i = 0; i < sum.length; i++) sum[i] += u[i]!;
    paramGrads.set(q.name, sum);
  }
  return { inputGrads, paramGrads, paramGradsPerUse };
}

/**
 * Random float32 values for every parameter of a graph, scaled so activations stay O(1):
 * conv / linear weights N(0, 1/fan_in), their biases N(0, 0.5^2); batch norm gamma U(0.5, 1.5),
 * beta N(0, 0.5^2), running_mean N(0, 0.5^2), running_var U(0.5, 2).
 */
export function randomParams(graph: Graph, rng: TestRng): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const shape = new Map(graph.ir.params.map((q) => [q.name, q.shape]));
  const count = (name: string) => shape.get(name)!.reduce((a, b) => a * b, 1);
  for (const node of graph.ir.nodes) {
    node.params.forEach((name, slot) => {
      if (out.has(name)) return;  // shared: first use decides
      const n = count(name);
      const s = shape.get(name)!;
      let v: Float32Array;
      if (node.op === 'batchNorm') {
        v = slot === 0 ? uniform32(rng, n, 0.5, 1.5) : slot === 3 ? uniform32(rng, n, 0.5, 2) : normal32(rng, n, 0, 0.5);
      } else if (slot === 0) {
        v = normal32(rng, n, 0, 1 / Math.sqrt(s.slice(1).reduce((a, b) => a * b, 1)));
      } else {
        v = normal32(rng, n, 0, 0.5);
      }
      out.set(name, v);
    });
  }
  return out;
}

/** Float64 copies of float32 parameter values (exactly the same numbers). */
export function params64(p: Map<string, Float32Array>): Params64 {
  return new Map([...p].map(([k, v]) => [k, Float64Array.from(v)]));
}
