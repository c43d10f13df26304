// The few ONNX protobuf messages an inference graph needs, encoded by hand (onnx/onnx.proto, the message
// and field numbers below). Protocol buffers' wire format is small: a field is a varint key
// (number << 3 | wire type) then a varint (type 0), a length-delimited byte string (type 2: strings,
// bytes, nested messages, packed repeated scalars) or four bytes (type 5: float). A generated library
// (protobufjs and onnx-proto) would bring two dependencies and a schema runtime for these ~60 lines.

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Wire types used here. */
const VARINT = 0, LEN = 2, FIXED32 = 5;

/** Accumulates one message's bytes. */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.size += bytes.byteLength;
  }

  private varint(v: number | bigint): void {
    // int64 fields: a negative value is its two's complement over 64 bits (ten bytes).
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    do {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      out.push(x ? b | 0x80 : b);
    } while (x);
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** int32, int64, enum. */
  int(field: number, v: number | bigint): this {
    this.key(field, VARINT);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, LEN);
    this.varint(b.byteLength);
    this.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    return this.bytes(field, m.finish());
  }

  /** A repeated int64 field, packed (proto3's default; parsers accept packed and unpacked alike). */
  packedInts(field: number, vs: readonly number[]): this {
    const inner = new ProtoWriter();
    for (const v of vs) inner.varint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------
// onnx.proto, the parts used

/** TensorProto.DataType. */
export const ONNX_FLOAT = 1;

/** AttributeProto.AttributeType. */
const ATTR = { FLOAT: 1, INT: 2, INTS: 7 } as const;

export type OnnxAttr = number | number[] | { float: number };

export interface OnnxNode {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Integers and integer lists; `{ float }` for a float (epsilon). */
  attrs?: Record<string, OnnxAttr>;
}

export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  /** float32 values, stored as raw little-endian bytes. */
  data: Float32Array;
}

export interface OnnxValueInfo {
  name: string;
  /** A string is a symbolic dimension (dim_param), e.g. 'batch'; undefined: shape unknown (any rank). */
  dims?: (number | string)[];
}

export interface OnnxModel {
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  graphName: string;
  docString?: string;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

function attribute(name: string, v: OnnxAttr): ProtoWriter {
  const a = new ProtoWriter().string(1, name); // AttributeProto.name
  if (Array.isArray(v)) return a.packedInts(8, v).int(20, ATTR.INTS); // ints, type
  if (typeof v === 'object') return a.float(2, v.float).int(20, ATTR.FLOAT); // f, type
  return a.int(3, v).int(20, ATTR.INT); // i, type
}

function node(n: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i); // NodeProto.input
  for (const o of n.outputs) w.string(2, o); // output
  w.string(3, n.name).string(4, n.opType); // name, op_type
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v)); // attribute
  return w;
}

function tensor(t: OnnxInitializer): ProtoWriter {
  // raw_data is little-endian on every host.
  let raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (!LITTLE_ENDIAN) {
    raw = new Uint8Array(t.data.byteLength);
    const view = new DataView(raw.buffer);
    t.data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  }
  return new ProtoWriter().packedInts(1, [...t.dims]).int(2, ONNX_FLOAT).string(8, t.name).bytes(9, raw); // dims, data_type, name, raw_data
}

function valueInfo(v: OnnxValueInfo): ProtoWriter {
  const tensorType = new ProtoWriter().int(1, ONNX_FLOAT); // TypeProto.Tensor{elem_type, shape}
  if (v.dims) {
    const shape = new ProtoWriter();
    for (const d of v.dims) {
    // TensorShapeProto.dim: Dimension{dim_value = 1 | dim_param = 2}
      shape.message(1, typeof d === 'string' ? new ProtoWriter().string(2, d) : new ProtoWriter().int(1, d));
    }
    tensorType.message(2, shape);
  }
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType)); // ValueInfoProto{name, type{tensor_type}}
}

/** The serialized ModelProto. */
export function encodeOnnxModel(m: OnnxModel): Uint8Array {
  const graph = new ProtoWriter();
  for (const n of m.nodes) graph.message(1, node(n)); // GraphProto.node
  graph.string(2, m.graphName); // name
  for (const t of m.initializers) graph.message(5, tensor(t)); // initializer
  if (m.docString) graph.string(10, m.docString); // doc_string
  for (const v of m.inputs) graph.message(11, valueInfo(v)); // input
  for (const v of m.outputs) graph.message(12, valueInfo(v)); // output
  return new ProtoWriter()
    .int(1, m.irVersion) // ModelProto.ir_version
    .string(2, m.producerName) // producer_name
    .string(3, m.producerVersion) // producer_version
    .message(7, graph) // graph
    .message(8, new ProtoWriter().string(1, '').int(2, m.opset)) // opset_import{domain '' (ai.onnx), version}
    .finish();
}
