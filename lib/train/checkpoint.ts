// Checkpoints: a Session's parameters, batch-norm running statistics, optimizer state and moving average
// of the weights in one safetensors file, with the training state (epoch, step, schedule, optimizer, RNG, model) as JSON in
// its metadata. Written atomically, so a crash or a full disk never leaves a half-written checkpoint
// where the last good one was.
//
// File layout (format 1):
//   tensors   every parameter by its graph name, PyTorch layout, F32 (conv weight [O, C/groups, kh, kw];
//             BN's running_mean / running_var are the non-trainable parameters)
//             "optimizer.<buffer>.<name>" for each of the optimizer's state buffers and trainable parameter,
//             named as PyTorch's optimizer state: SGD "momentum" (momentum_buffer), AdamW "exp_avg" and
//             "exp_avg_sq"; the updates taken (AdamW's step) are CheckpointInfo.updates
//             "ema.<name>" for every parameter when the session keeps a moving average (compile's ema)
//   metadata  "crunet": JSON of CheckpointInfo; "format": "pt" (what Hugging Face tools expect)
//             CheckpointInfo.tensorSha256 covers every tensor (name, dtype, shape, bytes), so that damage
//             inside the data or an edited header, which leave the file well-formed, is refused at load
//             too (safetensors has no checksum). Files written before it have CheckpointInfo.sha256 instead,
//             which omits the dtype; they are still read and checked by that rule, and restoreSession
//             refuses any tensor that is not F32, so an edited dtype is refused either way.
//             "crunet_sha256": SHA-256 of the "crunet" JSON text (absent in files written before it)
//
// Note [atomic replace]: the bytes go to a temporary file in the target's directory (same file
// system, so rename is atomic), which is fsynced, renamed over the target, and then the directory is
// fsynced so that the rename itself survives a power loss. On any failure before the rename the temporary
// file is removed and the previous checkpoint is untouched. A process killed mid-write can leave a
// ".<name>.tmp-*" file behind; latestCheckpoint ignores those, and the next write of <name> removes
// those last modified before the writing process started (a newer one may be another live process's
// write in progress, so is left alone).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Preprocessing } from '../data/dataset.js';
import type { LossScalerState, OptimizerOptions, Session } from '../engine/session.js';
import { version as crunetVersion } from '../engine/info.js';
import {
  dtypeOf, readSafetensors, readSafetensorsHeader, SafetensorsError, writeAll, writeSafetensorsTo, type ByteSink, type DType, type ReadTensor, type TensorToWrite,
} from './safetensors.js';
import type { ScheduleConfig } from './schedule.js';

export const CHECKPOINT_FORMAT = 1;
/** Names under these prefixes are the optimizer's state and the moving average, never parameters. */
export const OPTIMIZER_PREFIX = 'optimizer.';
export const EMA_PREFIX = 'ema.';
/** SGD's momentum buffers (the prefix of every checkpoint written before AdamW). */
export const MOMENTUM_PREFIX = 'optimizer.momentum.';

/** What the caller knows about the run; saved as given (plus anything else JSON-serialisable). */
export interface CheckpointMeta {
  /** The model's registry name and the options it was created with (enough to rebuild it). */
  model: { name: string; options?: unknown };
  /** Epochs completed (a resumed run starts at this epoch index). */
  epoch: number;
  /** Optimizer steps completed over the whole run (the global step of schedule.lrAt). */
  step: number;
  schedule?: ScheduleConfig;
  optimizer?: OptimizerOptions;
  /**
   * The state of the run's random numbers. crunet's data pipeline keeps none that evolves: every draw
   * (shuffle order, crops, flips, erasing) is a pure function of (seed, epoch, sample index), so the seed
   * with epoch and step above restores it exactly ('crunet train' stores the seed under this name).
   */
  seed?: number;
  /**
   * How raw pixels become the model's input (the training data set's `preprocessing`), so that a
   * checkpoint can be used on new images without the data set's source at hand. Stored when given.
   */
  preprocessing?: Preprocessing;
  /**
   * The CPU threads of the run (OpenMP). The kernels' sums, and so the last bits of every result, depend on
   * the thread count: a run resumed on other threads continues correctly but not bit for bit.
   */
  threads?: number;
  [key: string]: unknown;
}

/** The metadata as stored: the caller's plus what saveCheckpoint adds. */
export interface CheckpointInfo extends CheckpointMeta {
  format: number;
  /** crunet's version that wrote the file. */
  version: string;
  /** ISO time of saving. */
  savedAt: string;
  session: { device: string; batchSize: number; precision: string };
  /** Whether the optimizer's state buffers were saved. */
  optimizerState: boolean;
  /** The optimizer's type and the updates it has applied (absent in checkpoints written before AdamW: SGD). */
  optimizerType?: string;
  updates?: number;
  /** Whether the moving average of the weights was saved ("ema.*" tensors). */
  emaState?: boolean;
  /** The loss scaler's state, for sessions compiled with loss scaling (restored with the optimizer state). */
  lossScaler?: LossScalerState;
  /** tensorDigest() of the tensors: name, dtype, shape, bytes (absent in checkpoints written before it was added). */
  tensorSha256?: string;
  /** Checkpoints written before tensorSha256: the digest by the old rule, without the dtype (legacyTensorDigest). */
  sha256?: string;
}

export interface Checkpoint {
  path: string;
  meta: CheckpointInfo;
  /** Every tensor by name: parameters, BN statistics and "optimizer.momentum.*". */
  tensors: Map<string, ReadTensor>;
}

// ---------------------------------------------------------------------------------------------------
// Atomic file replacement

/** The part of an open file the atomic writer uses (fs.promises.FileHandle fits). */
export interface WritableFile {
  write(bytes: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file-system calls of writeFileAtomic: a seam so tests can make any of them fail. */
export interface AtomicIO {
  open(file: string, flags: string): Promise<WritableFile>;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** fsyncs a directory, so a rename in it is durable. */
  syncDir(dir: string): Promise<void>;
}

export const nodeIO: AtomicIO = {
  open: (file, flags) => fs.promises.open(file, flags, 0o644),
  rename: (from, to) => fs.promises.rename(from, to),
  unlink: (file) => fs.promises.unlink(file),
  async syncDir(dir) {
    if (process.platform === 'win32') return; // directories cannot be opened for fsync there
    const fh = await fs.promises.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

function tempName(file: string): string {
  const rand = Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${rand}`);
}

/** When this process started, in ms since the epoch (file mtimes compare against it). */
const PROCESS_START_MS = Date.now() - process.uptime() * 1000;

/**
 * Removes the temporary files a killed write of `file` left behind (tempName's pattern), if they were
 * last modified before this process started: none of those can be a write still in progress here, and
 * another process's write in progress keeps touching its file. Best effort: a file that cannot be
 * removed is left, and the write goes on. Returns the paths removed.
 */
export async function removeStaleTempFiles(file: string): Promise<string[]> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.tmp-`;
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^\d+-[0-9a-f]{8}$/.test(name.slice(prefix.length))) continue;
    const p = path.join(dir, name);
    try {
      const st = await fs.promises.lstat(p);
      if (!st.isFile() || st.mtimeMs >= PROCESS_START_MS) continue;
      await fs.promises.unlink(p);
      removed.push(p);
    } catch {
      // Gone already (another process cleaned up) or not ours to remove.
    }
  }
  return removed;
}

function describeError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code && !String(err.message).startsWith(err.code) ? `${err.code}: ${err.message}` : String(err?.message ?? e);
}

/**
 * Replaces `file` atomically with what `body` writes into the sink (see Note [atomic replace]).
 * On failure the previous file is untouched, the temporary file is gone, and the error (its `code`, e.g.
 * 'ENOSPC', kept) names the file.
 */
export async function writeFileAtomic(file: string, body: (sink: ByteSink) => Promise<void>, io: AtomicIO = nodeIO): Promise<void> {
  await removeStaleTempFiles(file); // first: a killed checkpoint write left a file as large as this one
  const tmp = tempName(file);
  let fh: WritableFile | undefined;
  let renamed = false;
  try {
    fh = await io.open(tmp, 'wx');
    const h = fh;
    await body({ write: (b) => writeAll(h, b) });
    await h.sync();
    fh = undefined;
    await h.close();
    await io.rename(tmp, file);
    renamed = true;
    await io.syncDir(path.dirname(path.resolve(file)));
  } catch (e) {
    if (fh) await fh.close().catch(() => {});
    if (!renamed) await io.unlink(tmp).catch(() => {});
    const what = renamed
      ? `wrote ${file} but could not make the rename durable (fsync of its directory failed: ${describeError(e)})`
      : `could not write ${file} (${describeError(e)}); the previous file, if any, is unchanged`;
    const err = new Error(what, { cause: e }) as NodeJS.ErrnoException;
    if ((e as NodeJS.ErrnoException)?.code) err.code = (e as NodeJS.ErrnoException).code;
    throw err;
  }
}

/** The synchronous form for small text files (plots, run summaries): same guarantees. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const tmp = tempName(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < bytes.byteLength; ) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.unlinkSync(tmp); } catch { /* not created */ }
    const err = new Error(`could not write ${file} (${describeError(e)}); the previous file, if any, is unchanged`, { cause: e }) as NodeJS.ErrnoException;
    if ((e as NodeJS.ErrnoException)?.code) err.code = (e as NodeJS.ErrnoException).code;
    throw err;
  }
  if (process.platform !== 'win32') {
    const dfd = fs.openSync(path.dirname(path.resolve(file)), 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  }
}

// ---------------------------------------------------------------------------------------------------
// Save

function checkMeta(meta: CheckpointMeta): void {
  if (!meta || typeof meta !== 'object') throw new TypeError(`saveCheckpoint: expected meta to be an object with model, epoch and step, but received ${JSON.stringify(meta)}`);
  if (!meta.model || typeof meta.model.name !== 'string' || !meta.model.name) {
    throw new TypeError(`saveCheckpoint: expected meta.model to be {name, options}, but received ${JSON.stringify(meta.model)}`);
  }
  for (const k of ['epoch', 'step'] as const) {
    if (!Number.isSafeInteger(meta[k]) || meta[k] < 0) throw new RangeError(`saveCheckpoint: expected meta.${k} to be a non-negative integer, but received ${meta[k]}`);
  }
  const pre = meta.preprocessing;
  if (pre !== undefined) {
    const c = pre?.channels;
    const ok = Number.isInteger(c) && c > 0 && pre.mean?.length === c && pre.std?.length === c && Number.isFinite(pre.scale) && pre.std.every((v: number) => v > 0);
    if (!ok) throw new TypeError(`saveCheckpoint: expected meta.preprocessing to be a data set's preprocessing ({scale, mean, std, channels, ...} with one mean and one positive std per channel), but received ${JSON.stringify(pre)}`);
  }
}

/**
 * Saves a session's parameters, BN statistics, moving average and (unless optimizerState is false) optimizer state with
 * `meta`, atomically replacing `file`. Every tensor is read from the session before the first byte is
 * written, so the snapshot is consistent even if the caller steps the session while the file is written.
 */
export async function saveCheckpoint(
  file: string,
  session: Session,
  meta: CheckpointMeta,
  opts: { optimizerState?: boolean; io?: AtomicIO } = {},
): Promise<CheckpointInfo> {
  checkMeta(meta);
  const withState = opts.optimizerState ?? true;
  const params = new Map(session.graph.params.map((p) => [p.name, p]));
  const tensors: [string, TensorToWrite][] = [];
  for (const name of session.parameterNames()) {
    if (name.startsWith(OPTIMIZER_PREFIX) || name.startsWith(EMA_PREFIX)) {
      throw new RangeError(`saveCheckpoint: expected parameter names outside the prefixes '${OPTIMIZER_PREFIX}' and '${EMA_PREFIX}' (optimizer state, moving average), but received '${name}'`);
    }
    const p = params.get(name);
    if (!p) throw new Error(`saveCheckpoint: the session has parameter '${name}' that its graph does not list`);
    tensors.push([name, { shape: p.shape, data: session.getParameter(name) }]);
  }
  if (withState) {
    for (const buffer of session.optimizerStateNames) {
      for (const name of session.parameterNames()) {
        const p = params.get(name)!;
        if (p.trainable) tensors.push([`${OPTIMIZER_PREFIX}${buffer}.${name}`, { shape: p.shape, data: session.getOptimizerState(name, buffer) }]);
      }
    }
  }
  if (session.ema) for (const name of session.parameterNames()) tensors.push([EMA_PREFIX + name, { shape: params.get(name)!.shape, data: session.getEma(name) }]);
  const info: CheckpointInfo = {
    ...meta,
    format: CHECKPOINT_FORMAT,
    version: crunetVersion(),
    savedAt: new Date().toISOString(),
    session: { device: session.device, batchSize: session.batchSize, precision: session.precision },
    optimizerState: withState,
    optimizerType: session.optimizer.type ?? 'sgd',
    updates: session.updates,
    emaState: !!session.ema,
    ...(withState && session.lossScaler() ? { lossScaler: session.lossScaler() } : {}),
    sha256: undefined, // a legacy digest carried over in `meta` (e.g. {...old.meta, epoch}) would no longer match
    tensorSha256: tensorDigest(tensors.map(([name, t]) => [name, dtypeOf(name, t.data), t.shape, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)])),
  };
  const json = JSON.stringify(info);
  fs.mkdirSync(path.dirname(file), { recursive: true }); // as Keras' ModelCheckpoint: a new run's directory
  await writeFileAtomic(file, async (sink) => {
    await writeSafetensorsTo(sink, tensors, { crunet: json, crunet_sha256: sha256(json), format: 'pt' });
  }, opts.io);
  return JSON.parse(json) as CheckpointInfo;
}

// ---------------------------------------------------------------------------------------------------
// Load

function parseInfo(file: string, metadata: Record<string, string>): CheckpointInfo {
  const raw = metadata.crunet;
  if (raw === undefined) {
    throw new Error(`loadCheckpoint: ${file} is a safetensors file but not a crunet checkpoint (its metadata has no 'crunet' key; keys: ${Object.keys(metadata).join(', ') || 'none'})`);
  }
  // The tensors' digest is inside this JSON; this one covers the JSON itself (a changed digit in lr or
  // epoch would still parse). Checkpoints from before it have none.
  const digest = metadata.crunet_sha256;
  if (digest !== undefined && digest !== sha256(raw)) {
    throw new Error(`loadCheckpoint: ${file} is damaged: its 'crunet' metadata does not match the SHA-256 recorded when it was saved`);
  }
  let info: CheckpointInfo;
  try {
    info = JSON.parse(raw);
  } catch (e) {
    throw new Error(`loadCheckpoint: ${file} is damaged: its 'crunet' metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!info || typeof info !== 'object' || typeof info.format !== 'number') {
    throw new Error(`loadCheckpoint: ${file} is damaged: its 'crunet' metadata has no format number`);
  }
  if (info.format > CHECKPOINT_FORMAT) {
    throw new Error(`loadCheckpoint: ${file} has checkpoint format ${info.format} (written by crunet ${info.version}); this crunet (${crunetVersion()}) reads format ${CHECKPOINT_FORMAT} and older`);
  }
  if (!info.model || typeof info.model.name !== 'string' || !Number.isSafeInteger(info.epoch) || !Number.isSafeInteger(info.step)) {
    throw new Error(`loadCheckpoint: ${file} is damaged: its 'crunet' metadata lacks model.name, epoch or step`);
  }
  // Checked here, not only by setLossScaler, so that the error names the file (and a bad state is found
  // on load, not when a resume applies it).
  const ls = info.lossScaler as unknown;
  if (ls !== undefined) {
    const { scale, growthTracker } = (ls ?? {}) as Record<string, unknown>;
    const ok = ls !== null && typeof ls === 'object' && typeof scale === 'number' && Number.isFinite(scale) && scale > 0 &&
      Number.isFinite(Math.fround(scale)) && Number.isSafeInteger(growthTracker) && (growthTracker as number) >= 0;
    if (!ok) {
      throw new Error(`loadCheckpoint: ${file} is damaged: its 'crunet' metadata field lossScaler is not {scale: a finite number > 0 in float32, growthTracker: an integer >= 0}, but ${JSON.stringify(ls)}`);
    }
  }
  return info;
}

/** Reads and validates a checkpoint. A truncated or damaged file is an Error naming it and the byte offset. */
export function loadCheckpoint(file: string): Checkpoint {
  let st;
  try {
    st = readSafetensors(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`loadCheckpoint: no checkpoint at ${file}`, { cause: e });
    if (e instanceof SafetensorsError) {
      throw new Error(`loadCheckpoint: ${file} is damaged or not a safetensors file: ${e.message}`, { cause: e });
    }
    throw new Error(`loadCheckpoint: cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const meta = parseInfo(file, st.metadata);
  const recorded = meta.tensorSha256 ?? meta.sha256;
  if (recorded !== undefined) {
    const digest = meta.tensorSha256 !== undefined
      ? tensorDigest([...st.tensors].map(([name, t]) => [name, t.dtype, t.shape, t.bytes]))
      : legacyTensorDigest([...st.tensors].map(([name, t]) => [name, t.shape, t.bytes]));
    if (digest !== recorded) {
      throw new Error(`loadCheckpoint: ${file} is damaged: its tensor data does not match the SHA-256 recorded when it was saved (${recorded.slice(0, 12)}..., now ${digest.slice(0, 12)}...; it covers each tensor's name, ${meta.tensorSha256 !== undefined ? 'dtype, ' : ''}shape and bytes)`);
    }
  }
  checkValues(file, st.tensors);
  return { path: file, meta, tensors: st.tensors };
}

/**
 * Refuses values no training run should save: NaN or infinity anywhere (a diverged run; resuming
 * from it only spreads them), and a negative batch-norm running variance (its square root is taken).
 */
function checkValues(file: string, tensors: Map<string, ReadTensor>): void {
  for (const [name, t] of tensors) {
    const d = t.data;
    const isVar = name === 'running_var' || name.endsWith('.running_var');
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (Number.isFinite(v) && !(isVar && v < 0)) continue;
      const what = Number.isFinite(v) ? `a negative variance, ${v},` : `${v}`;
      throw new Error(`loadCheckpoint: ${file}: tensor '${name}' holds ${what} at element ${i} of ${d.length}; the run that saved it had diverged or the file was altered. Resume from an earlier checkpoint`);
    }
  }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const byName = <T extends [string, ...unknown[]]>(x: T, y: T) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0);

/** SHA-256 over the tensors in name order: each name, dtype, shape and stored little-endian bytes. */
export function tensorDigest(tensors: [string, DType, readonly number[], Uint8Array][]): string {
  const h = createHash('sha256');
  for (const [name, dtype, shape, bytes] of [...tensors].sort(byName)) {
    h.update(`${name}\0${dtype}\0${shape.join(',')}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/** The digest of checkpoints written before tensorSha256 (CheckpointInfo.sha256): no dtype. */
export function legacyTensorDigest(tensors: [string, readonly number[], Uint8Array][]): string {
  const h = createHash('sha256');
  for (const [name, shape, bytes] of [...tensors].sort(byName)) {
    h.update(`${name}\0${shape.join(',')}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/** The metadata alone (reads and validates only the header). */
export function readCheckpointInfo(file: string): CheckpointInfo {
  try {
    return parseInfo(file, readSafetensorsHeader(file).metadata);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new Error(`readCheckpointInfo: ${file} is damaged or not a safetensors file: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The newest crunet checkpoint in a directory (largest step, then epoch, then modification time), judged
 * from the headers; files that are not crunet checkpoints, damaged ones and leftover temporary files are
 * skipped. undefined when there is none (or the directory does not exist).
 */
export function latestCheckpoint(dir: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let best: { file: string; step: number; epoch: number; mtime: number } | undefined;
  for (const name of names) {
    if (!name.endsWith('.safetensors') || name.startsWith('.')) continue;
    const file = path.join(dir, name);
    let info: CheckpointInfo, mtime: number;
    try {
      info = readCheckpointInfo(file);
      mtime = fs.statSync(file).mtimeMs;
    } catch {
      continue;
    }
    const c = { file, step: info.step, epoch: info.epoch, mtime };
    if (!best || c.step > best.step || (c.step === best.step && (c.epoch > best.epoch || (c.epoch === best.epoch && c.mtime > best.mtime)))) best = c;
  }
  return best?.file;
}

// ---------------------------------------------------------------------------------------------------
// Restore

export interface RestoreOptions {
  /**
   * true (default): the checkpoint must hold exactly the session's parameters. false: parameters missing
   * on either side are skipped and reported (PyTorch's load_state_dict(strict=False)); a shape mismatch
   * is an error either way.
   */
  strict?: boolean;
  /**
   * Restore the optimizer's state buffers and update count when the checkpoint has them (default true).
   * false also ignores another optimizer's state (fine-tuning with AdamW from an SGD run, say).
   */
  optimizerState?: boolean;
  /** The session's model name, for messages. */
  model?: string;
}

export interface RestoreResult {
  /** Session parameters the checkpoint did not have (left as they were). */
  missing: string[];
  /** Checkpoint tensors the session has no place for. */
  unexpected: string[];
  /** Whether the optimizer's state buffers were restored. */
  optimizerState: boolean;
  /**
   * Sessions with a moving average: 'restored' from the checkpoint's "ema.*" tensors, or 'initialised' as a
   * copy of the restored weights when it has none (as timm creates its ModelEmaV2 after loading the model).
   * A session without one ignores the checkpoint's.
   */
  ema?: 'restored' | 'initialised';
}

const SHOWN = 5;

/**
 * Loads a checkpoint into a session. Everything is checked before the first value is written: a
 * checkpoint of another model (other parameter names or shapes), or whose optimizer state or moving
 * average does not fit the session's, is refused, naming both models and the first mismatches, and leaves
 * the session untouched.
 */
export function restoreSession(session: Session, ckpt: Checkpoint, opts: RestoreOptions = {}): RestoreResult {
  const strict = opts.strict ?? true;
  if (session.isDisposed) throw new Error('restoreSession: this session was disposed');
  const params = new Map(session.graph.params.map((p) => [p.name, p]));
  const names = session.parameterNames();
  const buffers = session.optimizerStateNames;
  const missing: string[] = [];
  const unexpected: string[] = [];
  const shapes: string[] = [];
  const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  const fmt = (s: readonly number[]) => `[${s.join(',')}]`;
  // "optimizer.<buffer>.<parameter>" (buffer names have no dot) and "ema.<parameter>" name a parameter's state.
  const stateOf = (name: string): { buffer?: string; param: string } | undefined => {
    if (name.startsWith(EMA_PREFIX)) return { param: name.slice(EMA_PREFIX.length) };
    if (!name.startsWith(OPTIMIZER_PREFIX)) return undefined;
    const rest = name.slice(OPTIMIZER_PREFIX.length), dot = rest.indexOf('.');
    return { buffer: rest.slice(0, dot), param: rest.slice(dot + 1) };
  };
  const wantState = opts.optimizerState ?? true;

  for (const name of names) {
    const t = ckpt.tensors.get(name);
    const want = params.get(name)!.shape;
    if (!t) missing.push(name);
    else if (!sameShape(t.shape, want)) shapes.push(`${name} is ${fmt(t.shape)} in the checkpoint but ${fmt(want)} in the session`);
  }
  // Every parameter and state tensor is float32; another dtype would be converted, not refused, by
  // ReadTensor.data (integers read as floats).
  for (const [name, t] of ckpt.tensors) {
    const used = params.has(name) || params.has(stateOf(name)?.param ?? '');
    if (used && t.dtype !== 'F32') shapes.push(`${name} has dtype ${t.dtype} in the checkpoint, expected F32`);
  }
  const ours = (n: string) => {
    const st = stateOf(n);
    return !!st && st.buffer !== undefined && buffers.includes(st.buffer) && !!params.get(st.param)?.trainable;
  };
  const useState = wantState && [...ckpt.tensors.keys()].some(ours);
  const emaNames = [...ckpt.tensors.keys()].filter((k) => k.startsWith(EMA_PREFIX));
  const useEma = !!session.ema && emaNames.length > 0;
  const theirType = ckpt.meta.optimizerType ?? 'sgd', ourType = session.optimizer.type ?? 'sgd';
  for (const [name, t] of ckpt.tensors) {
    const st = stateOf(name);
    if (!st) {
      if (!params.has(name)) unexpected.push(name);
      continue;
    }
    const p = params.get(st.param);
    if (st.buffer === undefined) {  // the moving average: used when the session keeps one, else ignored
      if (!session.ema) continue;
      if (!p) unexpected.push(name);
      else if (!sameShape(t.shape, p.shape)) shapes.push(`${name} is ${fmt(t.shape)} in the checkpoint but ${fmt(p.shape)} in the session`);
      continue;
    }
    if (!buffers.includes(st.buffer) && !wantState) continue;  // another optimizer's state, not asked for
    if (!ours(name)) {
      unexpected.push(buffers.includes(st.buffer) || theirType === ourType ? name : `${name} (the checkpoint's optimizer is ${theirType}, the session's ${ourType})`);
    } else if (!sameShape(t.shape, p!.shape) && sameShape(ckpt.tensors.get(p!.name)?.shape ?? p!.shape, p!.shape)) {
      shapes.push(`${name} is ${fmt(t.shape)} in the checkpoint but ${fmt(p!.shape)} in the session`); // not implied by the parameter's own
    } else if (st.buffer === 'exp_avg_sq' && useState && t.data.some((v) => v < 0)) {
      shapes.push(`${name} holds a negative value, but exp_avg_sq is a mean of squares`);
    }
  }
  if (useState) {
    for (const buffer of buffers) {
      for (const name of names) if (params.get(name)!.trainable && !ckpt.tensors.has(`${OPTIMIZER_PREFIX}${buffer}.${name}`)) missing.push(`${OPTIMIZER_PREFIX}${buffer}.${name}`);
    }
  }
  if (useEma) for (const name of names) if (!ckpt.tensors.has(EMA_PREFIX + name)) missing.push(EMA_PREFIX + name);

  if (shapes.length || (strict && (missing.length || unexpected.length))) {
    // A parameter's state goes with it: name it only where the parameter itself is not named.
    const implied = (n: string, list: string[]) => stateOf(n) !== undefined && list.includes(stateOf(n)!.param);
    const problems = [
      ...shapes,
      ...missing.filter((n) => !implied(n, missing)).map((n) => `${n} is missing from the checkpoint`),
      ...unexpected.filter((n) => !implied(n, unexpected)).map((n) => `${n} is in the checkpoint but not in the session`),
    ];
    const ckptParams = [...ckpt.tensors.keys()].filter((k) => !stateOf(k)).length;
    const ourModel = opts.model ? `model '${opts.model}'` : "this session's graph";
    throw new Error(
      `restoreSession: ${ckpt.path} holds model '${ckpt.meta.model.name}' (${ckptParams} parameters, epoch ${ckpt.meta.epoch}), ` +
        `which does not fit ${ourModel} (${names.length} parameters): ${problems.slice(0, SHOWN).join('; ')}` +
        `${problems.length > SHOWN ? `; and ${problems.length - SHOWN} more` : ''}. The session was not changed.`,
    );
  }

  // First, because the native side is the one to judge it (its growth interval): a state it refuses
  // leaves the session unchanged, as the checks above do. A session without loss scaling ignores it.
  const scaler = ckpt.meta.lossScaler;
  if ((opts.optimizerState ?? true) && scaler && session.lossScaler()) session.setLossScaler(scaler);
  for (const name of names) {
    const t = ckpt.tensors.get(name);
    if (t) session.setParameter(name, t.data);
  }
  if (useState) {
    for (const buffer of buffers) {
      for (const name of names) {
        const t = ckpt.tensors.get(`${OPTIMIZER_PREFIX}${buffer}.${name}`);
        if (t && params.get(name)!.trainable) session.setOptimizerState(name, t.data, buffer);
      }
    }
    // Checkpoints written before the count was kept come from SGD without accumulation: one update a step.
    session.updates = ckpt.meta.updates ?? ckpt.meta.step;
  }
  if (!session.ema) return { missing, unexpected, optimizerState: useState };
  for (const name of names) session.setEma(name, useEma ? ckpt.tensors.get(EMA_PREFIX + name)!.data : session.getParameter(name));
  return { missing, unexpected, optimizerState: useState, ema: useEma ? 'restored' : 'initialised' };
}
