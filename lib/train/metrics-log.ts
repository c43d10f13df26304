// The metrics of a run as JSON Lines: one object per line, appended as it happens.
//
//   {"type":"run","epochsFrom":1,"time":...,"model":...}                      (optional, once at start)
//   {"type":"step","epoch":1,"step":50,"lr":0.1,"loss":1.93,"acc":0.31,"time":...}          (one batch)
//   {"type":"epoch","epoch":1,"step":390,"lr":0.1,"loss":1.21,"acc":0.56,"imagesPerSec":812,
//    "seconds":48,"time":...}                                                   (the epoch's training means)
//   (an "epoch" line has "skippedSteps":N when the loss scaler skipped N steps; their batches are not in
//    its means)
//   {"type":"eval","epoch":1,"step":390,"loss":1.05,"acc":0.63,"top5":0.97,"time":...}    (test set)
//
// Epochs count from 1, as the console prints them: a "run" line with "epochsFrom":1 says so for the lines
// after it. Lines under a run line without it (or before any run line) are from older versions, which
// counted from 0; epochHistory() and numberEpochsFrom1() read both. "val" lines (validation split, same
// fields as "eval") come from runs with --validation.
//
// These are the fields crunet train writes; other fields may be added. acc and top5 are fractions in
// [0, 1]; time is Unix time in seconds; a non-finite number is written as null (JSON has no NaN). Each
// line is written with one write(2) on a file opened for appending, so it is in the kernel as soon as
// write() returns and survives a crash of the process; "epoch" and "eval" lines (and every line with
// fsync: 'always') are also fsynced, to survive a power loss.
import * as fs from 'node:fs';
import { writeFileAtomicSync } from './checkpoint.js';

export type MetricsType = 'run' | 'step' | 'epoch' | 'eval' | 'val';

export interface MetricsRecord {
  type: MetricsType;
  epoch?: number;
  step?: number;
  lr?: number;
  loss?: number;
  acc?: number;
  top5?: number;
  imagesPerSec?: number;
  /** Unix time in seconds (filled in by write when absent). */
  time?: number;
  [key: string]: unknown;
}

export interface MetricsLogOptions {
  /** 'epoch' (default): fsync after epoch and eval lines; 'always': after every line; 'never'. */
  fsync?: 'epoch' | 'always' | 'never';
  /** Start a new file instead of appending (default: append). */
  truncate?: boolean;
  /**
   * Resuming from a checkpoint taken after this many steps: drop the lines of the interrupted run that
   * the resumed one writes again, so that the log reads as one run: "step" lines of this step or later (a
   * step line's step is the steps before it) and other lines of a later step (theirs are the steps done).
   */
  resumeAfterStep?: number;
  /** The clock, in ms (for tests). */
  now?: () => number;
}

export class MetricsLog {
  private fd: number | undefined;
  private readonly fsyncMode: 'epoch' | 'always' | 'never';
  private readonly now: () => number;

  constructor(readonly path: string, opts: MetricsLogOptions = {}) {
    this.fsyncMode = opts.fsync ?? 'epoch';
    this.now = opts.now ?? Date.now;
    if (opts.resumeAfterStep !== undefined && !opts.truncate && fs.existsSync(path)) {
      const s = opts.resumeAfterStep;
      const kept = readMetrics(path).filter((r) => r.step === undefined || (r.type === 'step' ? r.step < s : r.step <= s));
      writeFileAtomicSync(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    }
    this.fd = fs.openSync(path, opts.truncate ? 'w' : 'a+');
    // A line torn by a crash would glue itself to the next one: start on a fresh line.
    const size = fs.fstatSync(this.fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      fs.readSync(this.fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) fs.writeSync(this.fd, '\n');
    }
  }

  /** Appends one line (adding time when absent) and returns the record as written. */
  write(record: MetricsRecord): MetricsRecord {
    if (this.fd === undefined) throw new Error(`MetricsLog ${this.path}: write after close`);
    if (!record || typeof record.type !== 'string') throw new TypeError(`MetricsLog ${this.path}: a record needs a type ('step', 'epoch', 'eval' or 'run')`);
    const rec = record.time === undefined ? { ...record, time: this.now() / 1000 } : record;
    const fd = this.fd;
    this.io('append to it', () => fs.writeSync(fd, JSON.stringify(rec) + '\n'));
    if (this.fsyncMode === 'always' || (this.fsyncMode === 'epoch' && rec.type !== 'step')) this.io('fsync it', () => fs.fsyncSync(fd));
    return rec;
  }

  /** fsyncs what was written (e.g. before exiting). */
  flush(): void {
    const fd = this.fd;
    if (fd !== undefined) this.io('fsync it', () => fs.fsyncSync(fd));
  }

  /** File-system errors (a full disk, say) name the log they happened to. */
  private io<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw new Error(`metrics log ${this.path}: cannot ${what}: ${(e as Error).message}`, { cause: e });
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    try {
      this.io('fsync it', () => fs.fsyncSync(fd));
    } finally {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Reads a metrics file. A line cut short by a crash is skipped; a bad line elsewhere is an error
 * naming the file and line number.
 */
export function readMetrics(path: string): MetricsRecord[] {
  const text = fs.readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const out: MetricsRecord[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const r = JSON.parse(line);
      if (!r || typeof r !== 'object' || typeof r.type !== 'string') throw new Error('not an object with a type');
      out.push(r);
    } catch (e) {
      // A crash mid-write leaves a line cut short (at the end, or in the middle once appending went on
      // after a fresh newline): such a prefix of an object does not end with '}'. Skip it.
      if (!line.trimEnd().endsWith('}')) return;
      throw new Error(`readMetrics: ${path} line ${i + 1}: ${(e as Error).message}`);
    }
  });
  return out;
}

/**
 * The records with every epoch counted from 1: lines under a run line with epochsFrom 1 as they are, the
 * others (older files, counting from 0) plus one.
 */
export function numberEpochsFrom1(records: readonly MetricsRecord[]): MetricsRecord[] {
  let shift = 1;
  return records.map((r) => {
    if (r.type === 'run') shift = r.epochsFrom === 1 ? 0 : 1;
    return typeof r.epoch === 'number' && shift ? { ...r, epoch: r.epoch + shift } : r;
  });
}

/** One epoch's numbers for plotting: train means, validation and test results (fractions for accuracies). */
export interface EpochPoint {
  /** Counted from 1. */
  epoch: number;
  trainLoss?: number;
  trainAcc?: number;
  testLoss?: number;
  testAcc?: number;
  testTop5?: number;
  valLoss?: number;
  valAcc?: number;
  lr?: number;
  imagesPerSec?: number;
}

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

/**
 * The per-epoch history from "epoch" (train), "val" (validation) and "eval" (test) records, epochs counted
 * from 1 (numberEpochsFrom1); a later record of an epoch wins.
 */
export function epochHistory(records: readonly MetricsRecord[]): EpochPoint[] {
  const by = new Map<number, EpochPoint>();
  for (const r of numberEpochsFrom1(records)) {
    if ((r.type !== 'epoch' && r.type !== 'eval' && r.type !== 'val') || typeof r.epoch !== 'number') continue;
    const p = by.get(r.epoch) ?? { epoch: r.epoch };
    if (r.type === 'epoch') {
      p.trainLoss = num(r.loss);
      p.trainAcc = num(r.acc);
      if (num(r.lr) !== undefined) p.lr = num(r.lr);
      if (num(r.imagesPerSec) !== undefined) p.imagesPerSec = num(r.imagesPerSec);
    } else if (r.type === 'val') {
      p.valLoss = num(r.loss);
      p.valAcc = num(r.acc);
    } else {
      p.testLoss = num(r.loss);
      p.testAcc = num(r.acc);
      p.testTop5 = num(r.top5);
    }
    by.set(r.epoch, p);
  }
  return [...by.values()].sort((a, b) => a.epoch - b.epoch);
}

const CSV_COLUMNS: (keyof EpochPoint)[] = ['epoch', 'lr', 'trainLoss', 'trainAcc', 'imagesPerSec', 'valLoss', 'valAcc', 'testLoss', 'testAcc', 'testTop5'];

/** The per-epoch history as CSV (a header line, then one line per epoch; an unknown value is an empty field). */
export function metricsCsv(records: readonly MetricsRecord[]): string {
  const rows = epochHistory(records).map((p) => CSV_COLUMNS.map((k) => (p[k] === undefined ? '' : String(p[k]))).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}
