// The safetensors file format (huggingface/safetensors, docs/format): read and write.
//
//   bytes 0..8        N, the header length, an unsigned 64-bit little-endian integer
//   bytes 8..8+N      the header: UTF-8 JSON, padded with spaces (0x20) so that 8+N is a multiple of 8
//                     { "__metadata__": { string: string },
//                       name: { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] }, ... }
//   bytes 8+N..       the data section; data_offsets are relative to its start, little-endian, row-major
//
// Like the reference implementation, reading is strict: the tensors must cover the data section
// exactly (no overlap, no hole, no trailing bytes) and each one's byte size must equal numel * dtype size.
// Every error names the file and the byte offset (from the start of the file) of the problem.
import * as fs from 'node:fs';
import * as os from 'node:os';

/** Element types of the format, with their size in bytes. */
export const DTYPE_SIZE = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;
export type DType = keyof typeof DTYPE_SIZE;

/** The element types readAsFloat32 converts (the others can be read as raw bytes). */
const TO_F32: ReadonlySet<DType> = new Set<DType>(['F32', 'F16', 'BF16', 'F64', 'I32', 'I64', 'U8', 'I8', 'I16', 'U16', 'U32', 'BOOL']);

/** A tensor to write: its values decide the dtype (Float32Array -> F32, Int32Array -> I32, ...). */
export interface TensorToWrite {
  shape: readonly number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

/** One tensor's header entry, with its position in the file. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** [begin, end) relative to the data section, as in the header. */
  dataOffsets: [number, number];
  /** Absolute offset of the first byte in the file. */
  fileOffset: number;
}

export interface SafetensorsHeader {
  path: string;
  /** The header length N (bytes 8..8+N hold the JSON). */
  headerLength: number;
  /** Absolute offset of the data section (8 + N). */
  dataStart: number;
  fileSize: number;
  metadata: Record<string, string>;
  /** In the order of their data offsets. */
  tensors: TensorEntry[];
}

/** A tensor read from a file: its stored dtype, shape, raw little-endian bytes and values as float32. */
export interface ReadTensor {
  dtype: DType;
  shape: number[];
  /** The stored bytes (a view into the file's buffer). */
  bytes: Uint8Array;
  /** The values converted to float32 (a view when the file holds aligned F32 on a little-endian host). */
  data: Float32Array;
}

export interface SafetensorsFile {
  path: string;
  metadata: Record<string, string>;
  tensors: Map<string, ReadTensor>;
}

/** The reference implementation refuses headers over 100 MB; so do we (a corrupt length is usually huge). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    /** Absolute byte offset of the problem in the file. */
    readonly offset: number,
    detail: string,
  ) {
    super(`safetensors ${file}: ${detail} (at byte offset ${offset})`);
    this.name = 'SafetensorsError';
  }
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

// ---------------------------------------------------------------------------------------------------
// Reading

/**
 * Parses and validates a header given the first bytes of a file and the file's full size. `head` must
 * hold at least the first 8 + N bytes (N is read from its first 8); pass more or all of the file freely.
 */
export function parseHeader(path: string, head: Uint8Array, fileSize: number): SafetensorsHeader {
  const fail = (offset: number, detail: string): never => {
    throw new SafetensorsError(path, offset, detail);
  };
  if (fileSize < 8) fail(0, `the file is ${fileSize} bytes long, too short for the 8-byte header length`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) {
    fail(0, `the header length ${n64} runs past the end of the file (${fileSize} bytes, so at most ${fileSize - 8}); the file is truncated or not safetensors`);
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) fail(0, `the header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit`);
  if (n < 2) fail(0, `the header length ${n} is too short for a JSON object`);
  if (head.byteLength < 8 + n) throw new RangeError(`parseHeader: expected at least ${8 + n} bytes of ${path}, but received ${head.byteLength}`);
  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + n));
  } catch {
    // The first byte where a lenient decode (invalid sequences become U+FFFD) differs from the input.
    const raw = head.subarray(8, 8 + n);
    const lenient = Buffer.from(new TextDecoder('utf-8').decode(raw), 'utf8');
    let k = 0;
    while (k < raw.length && raw[k] === lenient[k]) k++;
    return fail(8 + k, 'the header is not valid UTF-8');
  }
  if (text[0] !== '{') fail(8, `the header does not start with '{' (it starts with ${JSON.stringify(text.slice(0, 16))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // V8's message gives a position only sometimes: find it ourselves. Positions count UTF-16 units.
    const pos = jsonErrorPosition(text);
    return fail(8 + Buffer.byteLength(text.slice(0, pos)), `the header is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(8, 'the header is not a JSON object');

  // Locates a key in the header text, for error offsets (best effort: the first occurrence).
  const keyOffset = (key: string): number => {
    const i = text.indexOf(JSON.stringify(key));
    return i < 0 ? 8 : 8 + Buffer.byteLength(text.slice(0, i));
  };

  let metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    const at = keyOffset(name);
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(at, '__metadata__ is not an object of strings');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(at, `__metadata__.${k} is a ${v === null ? 'null' : typeof v}, expected a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(at, `tensor '${name}': its entry is not an object`);
    const { dtype, shape, data_offsets: offs } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZE)) {
      fail(at, `tensor '${name}': unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(at, `tensor '${name}': shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(at, `tensor '${name}': data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`);
    }
    const [b, e] = offs as [number, number];
    if (b > e) fail(dataStart + b, `tensor '${name}': data_offsets [${b}, ${e}] end before they begin`);
    if (e > dataLength) {
      fail(dataStart + Math.min(e, dataLength), `tensor '${name}': data_offsets [${b}, ${e}] run past the end of the data section (${dataLength} bytes from offset ${dataStart}); the file is truncated`);
    }
    const numel = (shape as number[]).reduce((a, d) => a * d, 1);
    // Past 2^53 the product is no longer exact (and no file holds that many elements anyway).
    if (!Number.isSafeInteger(numel * DTYPE_SIZE[dtype as DType])) {
      fail(at, `tensor '${name}': shape [${(shape as number[]).join(',')}] has about ${numel.toPrecision(3)} elements, more bytes than any file can hold`);
    }
    const want = numel * DTYPE_SIZE[dtype as DType];
    if (e - b !== want) {
      fail(dataStart + b, `tensor '${name}': holds ${e - b} bytes but ${dtype} of shape [${(shape as number[]).join(',')}] needs ${want}`);
    }
    tensors.push({ name, dtype: dtype as DType, shape: shape as number[], dataOffsets: [b, e], fileOffset: dataStart + b });
  }

  // The tensors must tile the data section: sorted by offset, each begins where the previous ended.
  tensors.sort((x, y) => x.dataOffsets[0] - y.dataOffsets[0] || x.dataOffsets[1] - y.dataOffsets[1]);
  let end = 0;
  let prev: TensorEntry | undefined;
  for (const t of tensors) {
    const [b, e] = t.dataOffsets;
    if (b < end) fail(dataStart + b, `tensor '${t.name}' [${b}, ${e}] overlaps tensor '${prev!.name}' [${prev!.dataOffsets[0]}, ${end}]`);
    if (b > end) fail(dataStart + end, `${b - end} bytes of the data section before tensor '${t.name}' belong to no tensor`);
    end = e;
    prev = t;
  }
  if (end !== dataLength) {
    fail(dataStart + end, `the data section has ${dataLength - end} bytes after the last tensor that belong to no tensor`);
  }
  return { path, headerLength: n, dataStart, fileSize, metadata, tensors };
}

/**
 * Where JSON.parse fails on `text`: the index of the first character that cannot continue valid JSON
 * (text.length when the text ends too soon). A small recursive-descent recogniser, run only on failure.
 */
export function jsonErrorPosition(text: string): number {
  let i = 0;
  class Stop { constructor(readonly at: number) {} }
  const stop = (): never => { throw new Stop(i); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++; };
  const lit = (word: string) => { for (const c of word) { if (text[i] !== c) stop(); i++; } };
  const string = () => {
    if (text[i] !== '"') stop();
    i++;
    for (;;) {
      if (i >= text.length) stop();
      const c = text.charCodeAt(i);
      if (c === 0x22) { i++; return; }
      if (c < 0x20) stop();
      if (c === 0x5c) {
        i++;
        const esc = text[i];
        if (esc === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) { i += k; stop(); }
          i += 5;
        } else if (esc !== undefined && '"\\/bfnrt'.includes(esc)) i++;
        else stop();
      } else i++;
    }
  };
  const digits = () => { const s0 = i; while (i < text.length && text[i]! >= '0' && text[i]! <= '9') i++; if (i === s0) stop(); };
  const number = () => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') { i++; digits(); }
    if (text[i] === 'e' || text[i] === 'E') { i++; if (text[i] === '+' || text[i] === '-') i++; digits(); }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) {
        ws(); string(); ws();
        if (text[i] !== ':') stop();
        i++; value(); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return; }
        stop();
      }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (;;) {
        value(); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return; }
        stop();
      }
    } else if (c === '"') string();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) number();
    else stop();
  };
  try {
    value();
    ws();
    if (i < text.length) stop();
  } catch (e) {
    if (e instanceof Stop) return e.at;
    throw e;
  }
  return text.length; // valid: should not happen when JSON.parse failed
}

/** Reads and validates only the header (8 + N bytes), checking offsets against the file's size. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = fs.openSync(path, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const first = Buffer.alloc(Math.min(8, size));
    readFully(fd, first, 0);
    if (size < 8) return parseHeader(path, first, size); // throws
    const n = first.readBigUInt64LE(0);
    if (n > BigInt(Math.min(size - 8, MAX_HEADER_BYTES))) return parseHeader(path, first, size); // throws
    const head = Buffer.alloc(8 + Number(n));
    readFully(fd, head, 0);
    return parseHeader(path, head, size);
  } finally {
    fs.closeSync(fd);
  }
}

function readFully(fd: number, buf: Uint8Array, position: number): void {
  for (let off = 0; off < buf.byteLength; ) {
    const got = fs.readSync(fd, buf, off, buf.byteLength - off, position + off);
    if (got === 0) throw new Error(`unexpected end of file at offset ${position + off}`);
    off += got;
  }
}

/** Reads a whole file, validates it and converts every tensor to float32 (see ReadTensor). */
export function readSafetensors(path: string): SafetensorsFile {
  const buf = fs.readFileSync(path);
  return decodeSafetensors(path, buf);
}

/** Like readSafetensors, from bytes already in memory (`path` is only used in messages). */
export function decodeSafetensors(path: string, buf: Uint8Array): SafetensorsFile {
  const header = parseHeader(path, buf, buf.byteLength);
  const tensors = new Map<string, ReadTensor>();
  for (const t of header.tensors) {
    const bytes = buf.subarray(t.fileOffset, t.fileOffset + t.dataOffsets[1] - t.dataOffsets[0]);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, bytes, data: toFloat32(path, t, bytes) });
  }
  return { path, metadata: header.metadata, tensors };
}

/** float32 values of a tensor's little-endian bytes. */
function toFloat32(path: string, t: TensorEntry, bytes: Uint8Array): Float32Array {
  if (!TO_F32.has(t.dtype)) {
    throw new SafetensorsError(path, t.fileOffset, `tensor '${t.name}': dtype ${t.dtype} cannot be read as float32 (use .bytes)`);
  }
  const n = bytes.byteLength / DTYPE_SIZE[t.dtype];
  if (t.dtype === 'F32' && LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true); break;
    case 'F64': for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = halfToFloat(v.getUint16(2 * i, true)); break;
    case 'BF16': {
      const u = new Uint32Array(1), f = new Float32Array(u.buffer);
      for (let i = 0; i < n; i++) {
        u[0] = v.getUint16(2 * i, true) << 16;
        out[i] = f[0]!;
      }
      break;
    }
    case 'I32': for (let i = 0; i < n; i++) out[i] = v.getInt32(4 * i, true); break;
    case 'U32': for (let i = 0; i < n; i++) out[i] = v.getUint32(4 * i, true); break;
    case 'I64': for (let i = 0; i < n; i++) out[i] = Number(v.getBigInt64(8 * i, true)); break;
    case 'I16': for (let i = 0; i < n; i++) out[i] = v.getInt16(2 * i, true); break;
    case 'U16': for (let i = 0; i < n; i++) out[i] = v.getUint16(2 * i, true); break;
    case 'I8': for (let i = 0; i < n; i++) out[i] = v.getInt8(i); break;
    case 'U8': case 'BOOL': for (let i = 0; i < n; i++) out[i] = v.getUint8(i); break;
  }
  return out;
}

/** IEEE 754 binary16 bits to a number (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// ---------------------------------------------------------------------------------------------------
// Writing

/** Where a writer puts bytes, in order (a file handle, usually; a seam for tests). */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
}

/** The reference implementation's Dtype enum, in descending order: the order tensors are laid out in. */
const WRITE_RANK: readonly DType[] = ['U64', 'I64', 'F64', 'F32', 'U32', 'I32', 'BF16', 'F16', 'U16', 'I16', 'F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'BOOL'];

/** The dtype a typed array is written as. */
export function dtypeOf(name: string, data: TensorToWrite['data']): DType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Uint8Array) return 'U8';
  throw new TypeError(`safetensors: tensor '${name}': expected a Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array, but received ${(data as object)?.constructor?.name ?? typeof data}`);
}

/**
 * The header bytes (length prefix included, padded with spaces to a multiple of 8) and the order in
 * which the tensors' data must follow. The layout is the reference writer's (safetensors' `prepare`):
 * sorted by dtype in WRITE_RANK order, then by name (UTF-8 bytes), so every tensor is aligned to its
 * element size and the file is byte-identical to what the Python package writes for the same tensors.
 */
export function encodeHeader(
  tensors: Iterable<[string, TensorToWrite]> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): { header: Uint8Array; order: [string, TensorToWrite][]; dataBytes: number } {
  const list: [string, TensorToWrite][] = Symbol.iterator in tensors ? [...(tensors as Iterable<[string, TensorToWrite]>)] : Object.entries(tensors);
  const seen = new Set<string>();
  const typed = list.map(([name, t]) => {
    if (name === '__metadata__') throw new RangeError(`safetensors: expected a tensor name other than '__metadata__' (the header's own key), but received it`);
    if (seen.has(name)) throw new RangeError(`safetensors: expected each tensor name once, but received '${name}' twice`);
    seen.add(name);
    const dtype = dtypeOf(name, t.data);
    const shape = [...t.shape];
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`safetensors: tensor '${name}': expected a shape of integers >= 0, but received [${shape.join(',')}]`);
    const numel = shape.reduce((a, d) => a * d, 1);
    if (numel !== t.data.length) {
      throw new RangeError(`safetensors: tensor '${name}': expected ${numel} elements for shape [${shape.join(',')}], but received ${t.data.length}`);
    }
    return { name, t, dtype, shape };
  });
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`safetensors: expected metadata '${k}' to be a string, but received ${typeof v}`);
  }
  typed.sort((a, b) => WRITE_RANK.indexOf(a.dtype) - WRITE_RANK.indexOf(b.dtype) || Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length) json.__metadata__ = metadata;
  let offset = 0;
  for (const { name, t, dtype, shape } of typed) {
    const bytes = t.data.byteLength;
    json[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const n = Math.ceil(text.length / 8) * 8;
  const header = Buffer.alloc(8 + n, 0x20);
  header.writeBigUInt64LE(BigInt(n), 0);
  text.copy(header, 8);
  return { header, order: typed.map((x) => [x.name, x.t]), dataBytes: offset };
}

/** The little-endian bytes of a typed array: a view, no copy, on a little-endian host. */
function leBytes(data: TensorToWrite['data']): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return view;
  const out = new Uint8Array(view);
  const w = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < out.length; i += w) out.subarray(i, i + w).reverse();
  return out;
}

/**
 * Streams a safetensors file into a sink: the header, then each tensor's bytes straight from its typed
 * array (nothing is concatenated, so a 100 MB checkpoint costs no extra 100 MB copy).
 */
export async function writeSafetensorsTo(
  sink: ByteSink,
  tensors: Iterable<[string, TensorToWrite]> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Promise<number> {
  const { header, order, dataBytes } = encodeHeader(tensors, metadata);
  await sink.write(header);
  for (const [, t] of order) if (t.data.byteLength) await sink.write(leBytes(t.data));
  return header.byteLength + dataBytes;
}

/** The whole file in one buffer (for small files and tests). */
export function encodeSafetensors(
  tensors: Iterable<[string, TensorToWrite]> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Buffer {
  const { header, order } = encodeHeader(tensors, metadata);
  return Buffer.concat([header, ...order.map(([, t]) => leBytes(t.data))]);
}

/**
 * Writes a safetensors file in place (not atomically: see checkpoint.ts's writeFileAtomic for that).
 * Returns the number of bytes written.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<[string, TensorToWrite]> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Promise<number> {
  const fh = await fs.promises.open(path, 'w');
  try {
    return await writeSafetensorsTo({ write: (b) => writeAll(fh, b) }, tensors, metadata);
  } finally {
    await fh.close();
  }
}

/** Writes all of `bytes` (FileHandle.write may write fewer than asked). */
export async function writeAll(fh: { write(b: Uint8Array, off: number, len: number): Promise<{ bytesWritten: number }> }, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.byteLength; ) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off);
    if (bytesWritten <= 0) throw new Error('write returned 0 bytes');
    off += bytesWritten;
  }
}
