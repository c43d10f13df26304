// ONNX export of a crunet graph: the inference graph (what Session.forward computes), opset 17.
//
// One ONNX node per crunet node, names kept, so a model reads the same in Netron as in crunet's summary:
//   conv2d -> Conv, batchNorm -> BatchNormalization (inference form: running statistics; not folded into
//   the convolution, because a pre-activation network's BN follows an addition or the input, not a conv),
//   relu -> Relu, maxPool -> MaxPool, avgPool -> AveragePool, globalAvgPool -> GlobalAveragePool then
//   Flatten (crunet's value is [N, C], ONNX's [N, C, 1, 1]), linear -> Gemm (transB: the weight is
//   [out, in], as PyTorch's), add -> Add. The loss and the labels input are training-only and left out.
// Every parameter is one initializer, named as in the state dict: a CRU factor set shared by several
// units is stored once and read by each of their Conv nodes. The batch dimension is symbolic ('batch').
import * as fs from 'node:fs';
import type { AttrValue, GraphIR, NodeIR } from '../graph/ir.js';
import { version as crunetVersion } from '../engine/info.js';
import { writeFileAtomicSync } from '../train/checkpoint.js';
import { encodeOnnxModel, type OnnxAttr, type OnnxInitializer, type OnnxNode } from './onnx-proto.js';

/** The opset the graph is written for (BatchNormalization-15, Conv-11, Gemm-13, ...). */
export const ONNX_OPSET = 17;
/** The IR version that goes with opset 17 (onnx's IR_VERSION_2021_7_30). */
export const ONNX_IR_VERSION = 8;

/** A graph's parameter values: a Session, a checkpoint's tensors (a Map by name), or a function of the name. */
export type ParameterSource = ((name: string) => Float32Array | undefined) | Map<string, { data: Float32Array }> | { getParameter(name: string): Float32Array };

function getter(values: ParameterSource): (name: string) => Float32Array | undefined {
  if (typeof values === 'function') return values;
  if (values instanceof Map) return (name) => values.get(name)?.data;
  if (values && typeof (values as { getParameter?: unknown }).getParameter === 'function') return (name) => (values as { getParameter(n: string): Float32Array }).getParameter(name);
  throw new TypeError(`ONNX export: expected the parameters as a Session, a Map of tensors or a function, but received ${values === null ? 'null' : typeof values}`);
}

export interface OnnxExportOptions {
  /** The graph's name in the file (default 'crunet'). */
  name?: string;
  /** Free text stored as the graph's doc_string (e.g. the model and checkpoint it came from). */
  docString?: string;
}

const pads = (p: number[]) => [p[0]!, p[1]!, p[0]!, p[1]!]; // [top, left, bottom, right]

// Attributes as native/core/shape_inference.cc reads them, so that the file computes what the engine
// does for any GraphIR, not only the GraphBuilder's (which writes every attribute out in full): an
// absent (or empty) one takes native's default, and a pair may be one number for both dimensions.
const attrValues = (v: AttrValue | undefined): number[] => (v === undefined ? [] : typeof v === 'object' ? v : [Number(v)]);
function pairAttr(v: AttrValue | undefined, def: readonly number[]): number[] {
  const x = attrValues(v);
  return x.length === 0 ? [...def] : x.length === 1 ? [x[0]!, x[0]!] : x;
}
const numberAttr = (v: AttrValue | undefined, def: number) => attrValues(v)[0] ?? def;

/** Where a value is in ONNX: crunet's globalAvgPool output is the Flatten after it. */
function onnxNodes(n: NodeIR, input: (name: string) => string): OnnxNode[] {
  const a = n.attrs;
  const ins = n.inputs.map(input);
  const one = (opType: string, inputs: string[], attrs?: Record<string, OnnxAttr>): OnnxNode[] => [{ name: n.name, opType, inputs, outputs: [n.name], ...(attrs ? { attrs } : {}) }];
  const kernel = pairAttr(a.kernel, [1, 1]);
  const padding = pads(pairAttr(a.padding, [0, 0]));
  switch (n.op) {
    case 'conv2d':
      return one('Conv', [...ins, ...n.params], {
        kernel_shape: kernel, strides: pairAttr(a.stride, [1, 1]), pads: padding, group: numberAttr(a.groups, 1), dilations: [1, 1],
      });
    case 'batchNorm':
      return one('BatchNormalization', [...ins, ...n.params], { epsilon: { float: numberAttr(a.eps, 1e-5) } });
    case 'relu':
      return one('Relu', ins);
    // A pool's stride defaults to its kernel.
    case 'maxPool':
      return one('MaxPool', ins, { kernel_shape: kernel, strides: pairAttr(a.stride, kernel), pads: padding });
    case 'avgPool':
      return one('AveragePool', ins, {
        kernel_shape: kernel, strides: pairAttr(a.stride, kernel), pads: padding, count_include_pad: numberAttr(a.countIncludePad, 1) !== 0 ? 1 : 0,
      });
    case 'globalAvgPool':
      return [
        { name: `${n.name}.pool`, opType: 'GlobalAveragePool', inputs: ins, outputs: [`${n.name}.pool`] },
        { name: n.name, opType: 'Flatten', inputs: [`${n.name}.pool`], outputs: [n.name], attrs: { axis: 1 } },
      ];
    case 'linear':
      return one('Gemm', [...ins, ...n.params], { transB: 1 });
    case 'add':
      return one('Add', ins);
    default:
      throw new Error(`ONNX export: node ${n.name}: op ${n.op} has no ONNX counterpart in crunet's exporter`);
  }
}

/**
 * The ONNX ModelProto bytes of a graph's inference part, with the parameters from `values`:
 * `toOnnx(session.graph, session)`, or a checkpoint's `tensors` with its model's graph. The graph's outputs become the model's outputs.
 */
export function toOnnx(graph: GraphIR, values: ParameterSource, opts: OnnxExportOptions = {}): Uint8Array {
  if (!graph || !Array.isArray(graph.nodes) || !Array.isArray(graph.params)) {
    throw new TypeError('toOnnx: expected a GraphIR (model.graph.ir or session.graph), but received ' + typeof graph);
  }
  const get = getter(values);
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  // Only what the outputs depend on: the loss (and through it the labels) is left out.
  const needed = new Set<string>();
  const visit = (v: string) => {
    if (needed.has(v)) return;
    needed.add(v);
    byName.get(v)?.inputs.forEach(visit);
  };
  graph.outputs.forEach(visit);
  const nodes: OnnxNode[] = [];
  const usedParams = new Set<string>();
  for (const n of graph.nodes) {
    if (!needed.has(n.name)) continue;
    nodes.push(...onnxNodes(n, (x) => x));
    n.params.forEach((p) => usedParams.add(p));
  }
  const initializers: OnnxInitializer[] = [];
  const missing: string[] = [];
  for (const p of graph.params) {
    if (!usedParams.has(p.name)) continue;
    const data = get(p.name);
    const numel = p.shape.reduce((x, d) => x * d, 1);
    if (!(data instanceof Float32Array) || data.length !== numel) {
      missing.push(`${p.name} (${data instanceof Float32Array ? `${data.length} values, expected ${numel}` : 'absent'})`);
      continue;
    }
    initializers.push({ name: p.name, dims: p.shape, data });
  }
  if (missing.length) {
    const more = missing.length > 8 ? ` and ${missing.length - 8} more` : '';
    throw new Error(`ONNX export: no values for ${missing.length} parameter${missing.length > 1 ? 's' : ''}: ${missing.slice(0, 8).join(', ')}${more}`);
  }
  const inputs = graph.inputs.filter((i) => needed.has(i.name));
  for (const i of inputs) {
    if (i.dtype !== 'f32') throw new Error(`ONNX export: input ${i.name} is ${i.dtype}; only float inputs reach the outputs of an exportable graph`);
  }
  const shapes = outputShapes(graph);
  return encodeOnnxModel({
    irVersion: ONNX_IR_VERSION,
    opset: ONNX_OPSET,
    producerName: 'crunet',
    producerVersion: crunetVersion(),
    graphName: opts.name ?? 'crunet',
    ...(opts.docString ? { docString: opts.docString } : {}),
    nodes,
    initializers,
    inputs: inputs.map((i) => ({ name: i.name, dims: ['batch', ...i.shape] })),
    outputs: graph.outputs.map((o) => {
      const s = shapes.get(o);
      return s ? { name: o, dims: ['batch', ...s] } : { name: o };
    }),
  });
}

/** Per-sample shapes of the outputs known without shape inference (linear layers; crunet's models end in one). */
function outputShapes(graph: GraphIR): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const n of graph.nodes) {
    if (n.op === 'linear') out.set(n.name, [n.attrs.outFeatures as number]);
  }
  return out;
}

/**
 * Writes the ONNX file atomically. An unwritable path (a missing directory, a directory in its place) is
 * an Error naming it; the previous file there, if any, is left as it was.
 */
export function writeOnnx(file: string, graph: GraphIR, values: ParameterSource, opts: OnnxExportOptions = {}): number {
  if (typeof file !== 'string' || !file) throw new TypeError(`writeOnnx: expected a file path, but received ${JSON.stringify(file)}`);
  if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`writeOnnx: ${file} is a directory; give the path of the .onnx file to write`);
  const bytes = toOnnx(graph, values, opts);
  writeFileAtomicSync(file, bytes);
  return bytes.byteLength;
}
