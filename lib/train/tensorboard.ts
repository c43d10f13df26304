// TensorBoard event files, written directly: a TFRecord stream of Event protocol buffers (scalars only),
// so that `tensorboard --logdir runs/` shows a run without Python on the training side. TFRecord framing:
// uint64 length, uint32 masked CRC-32C of the length, the bytes, uint32 masked CRC-32C of the bytes (all
// little-endian). The protobuf fields used (tensorflow/core/util/event.proto, framework/summary.proto):
// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
// SessionLog session_log = 7 }, Summary { repeated Value value = 1 }, Value { string tag = 1;
// float simple_value = 2 }, SessionLog { SessionStatus status = 1 } (START = 1).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MetricsRecord } from './metrics-log.js';

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as TFRecord uses it. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant, so CRCs of CRCs do not look like data. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: the framing around `data`. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(16 + data.length);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// Protobuf encoding, the few wire types needed.
function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const lengthDelimited = (field: number, bytes: Uint8Array | number[]) => [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

function eventBytes(wallTime: number, step: number, body: number[]): Uint8Array {
  const t = Buffer.alloc(8);
  t.writeDoubleLE(wallTime);
  return Uint8Array.from([0x09, ...t, ...varint(0x10), ...varint(step), ...body]);
}

function scalarValue(tag: string, value: number): number[] {
  const f = Buffer.alloc(4);
  f.writeFloatLE(value);
  return lengthDelimited(1, [...lengthDelimited(1, utf8(tag)), 0x15, ...f]);
}

/** Encodes one Event holding scalars (a Summary of simple values). */
export function scalarEvent(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): Uint8Array {
  const values = Object.entries(scalars).filter(([, v]) => Number.isFinite(v)).flatMap(([tag, v]) => scalarValue(tag, v));
  return eventBytes(wallTime, step, lengthDelimited(5, values));
}

const num = (x: unknown) => (typeof x === 'number' ? x : NaN);

/** The TensorBoard scalars of a metrics line, tagged by its type (none for a "run" line). */
export function metricsScalars(r: MetricsRecord): Record<string, number> {
  switch (r.type) {
    case 'step': return { 'train/loss': num(r.loss), 'train/lr': num(r.lr), ...(r.gradNorm !== undefined ? { 'train/grad_norm': num(r.gradNorm) } : {}) };
    case 'epoch': return { 'epoch/train_loss': num(r.loss), 'epoch/train_acc': num(r.acc), 'epoch/lr': num(r.lr), 'epoch/images_per_sec': num(r.imagesPerSec) };
    case 'val': return { 'val/loss': num(r.loss), 'val/top1': num(r.acc), 'val/top5': num(r.top5) };
    case 'eval': return {
      'test/loss': num(r.loss), 'test/top1': num(r.acc), 'test/top5': num(r.top5),
      ...(r.emaAcc !== undefined ? { 'test_ema/loss': num(r.emaLoss), 'test_ema/top1': num(r.emaAcc), 'test_ema/top5': num(r.emaTop5) } : {}),
    };
    default: return {};
  }
}

/**
 * Writes scalar events to a new event file `events.out.tfevents.<seconds>.<host>.<pid>[.<n>]` in a directory.
 * Each call writes whole records with one write, so a crash leaves at most a torn last record, which
 * TensorBoard's reader stops at.
 */
export class TensorBoardWriter {
  readonly file: string;
  private fd: number | undefined;

  /**
   * `resumeAtStep`: this process continues a run from that step: a SessionLog START there tells
   * TensorBoard to drop what earlier files logged at that step or later (its event accumulator keeps the
   * points of a step below the START's), i.e. the interrupted run's lost steps, but also the scalars of the
   * epoch that ended at that step: the caller writes those again (see `crunet train`).
   */
  constructor(dir: string, opts: { resumeAtStep?: number; now?: () => number } = {}) {
    const now = (opts.now ?? Date.now)() / 1000;
    // A new file per writer: two writers of one process in one second (a run stopped and resumed in-process)
    // get a counter suffix, as TensorBoard's own writers add; the later file sorts after the earlier.
    const base = path.join(dir, `events.out.tfevents.${Math.floor(now)}.${os.hostname().replace(/[^\w.-]/g, '_')}.${process.pid}`);
    for (let n = 0; ; n++) {
      const file = n ? `${base}.${n}` : base;
      try {
        this.fd = fs.openSync(file, 'wx');
        this.file = file;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    this.writeEvent(eventBytes(now, 0, lengthDelimited(3, utf8('brain.Event:2'))));
    if (opts.resumeAtStep !== undefined) this.writeEvent(eventBytes(now, opts.resumeAtStep, lengthDelimited(7, [0x08, 0x01])));
  }

  /** Scalars at a global step; non-finite values are left out (an event with none is not written). */
  scalars(step: number, values: Record<string, number>, wallTime?: number): void {
    if (!Object.values(values).some(Number.isFinite)) return;
    this.writeEvent(scalarEvent(step, values, wallTime));
  }

  private writeEvent(e: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`TensorBoardWriter ${this.file}: write after close`);
    fs.writeSync(this.fd, tfRecord(e));
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
