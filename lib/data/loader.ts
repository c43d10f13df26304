// DataLoader: seeded epochs of batches in reusable buffers, filled ahead of the consumer on the main
// thread between steps (workers: 0) or in worker threads. See Note [determinism] and Note [buffers].
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fillBatch, type FillResult, type SkippedImage } from './batch.js';
import { BadImageError, DataError, type Dataset } from './dataset.js';
import { FolderDataset } from './folder.js';
import { epochOrder } from './rng.js';
import { checkShard, shardLength, shardOrder, type ShardOptions } from './shard.js';
import type { FillReply, FillTask, WireError } from './worker.js';

// Note [determinism]: the epoch's order comes from (seed, epoch) and every sample's augmentation from
// (seed, epoch, sample index) (rng.ts), and a batch is always assembled by the same function
// (batch.ts), so a batch's contents do not depend on the number of workers, on which worker built it,
// or on timing.
//
// Note [buffers]: a batch's arrays are reused: they stay valid until the consumer asks for the next
// batch (the next turn of `for await`), which is when a session step on them has finished. prefetch + 1
// buffer pairs exist: the one the consumer holds and `prefetch` being filled. With workers, a buffer is
// transferred to the worker and back (never copied); an old batch's arrays then read as empty instead
// of silently showing newer data. That is why they are plain ArrayBuffers, transferred, not shared: the
// addon itself takes arrays over a SharedArrayBuffer as well (it copies the feeds before a step; test
// "takes feeds backed by a SharedArrayBuffer" in test/session.test.ts), but a shared buffer refilled by
// a worker would change under a consumer still holding the old batch.

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle every epoch (default false, as PyTorch). */
  shuffle?: boolean;
  /** Seeds the order and the augmentation (default 0). */
  seed?: number;
  /** Leave out the last batch when it would be smaller than batchSize (default false). */
  dropLast?: boolean;
  /**
   * Worker threads filling batches. Default: min(4, available cores - 1), at least 1, for image folders;
   * 0 for in-memory sets (IDX, CIFAR), whose batches cost well under a millisecond to fill on the main
   * thread while a step runs. Workers need a built-in data set (they rebuild it from its recipe()).
   */
  workers?: number;
  /** Batches filled ahead of the consumer (default max(2, workers)). */
  prefetch?: number;
  /**
   * Data-parallel training: this loader reads only its rank's part of each epoch's order (shard.ts: the
   * parts of all ranks are disjoint, their batches side by side are one process's at worldSize x batchSize).
   */
  shard?: ShardOptions;
  /**
   * Told of every image replaced under onBadImage 'skip'. Default: a process warning
   * (code CRUNET_BAD_IMAGE) the first time each file is skipped.
   */
  onSkip?: (skipped: SkippedImage) => void;
}

export interface Batch {
  /** size x C x H x W, float32, normalised. Valid until the next batch is requested (Note [buffers]). */
  images: Float32Array;
  labels: Int32Array;
  /** Samples in this batch: batchSize, except perhaps the last of an epoch without dropLast. */
  size: number;
  /** Position in the epoch. */
  index: number;
  epoch: number;
  /** The data set index of each sample. */
  indices: Int32Array;
  /** Undecodable images replaced in this batch (onBadImage 'skip'). */
  skipped: SkippedImage[];
}

interface Slot {
  images: ArrayBuffer;
  labels: ArrayBuffer;
}

interface Filled extends FillResult {
  slot: Slot;
}

interface WorkerState {
  worker: Worker;
  inFlight: Map<number, { resolve: (r: Filled) => void; reject: (e: unknown) => void }>;
  dead: boolean;
}

function fromWire(w: WireError): Error {
  const e =
    w.name === 'BadImageError' ? new BadImageError(w.message, w.file ?? '') :
    w.name === 'DataError' ? new DataError(w.message, { file: w.file, offset: w.offset }) :
    w.name === 'RangeError' ? new RangeError(w.message) : w.name === 'TypeError' ? new TypeError(w.message) : new Error(w.message);
  if (w.stack) e.stack = w.stack;
  return e;
}

/** tsx's CommonJS hook, when this module runs from TypeScript source (tests, `tsx script.ts`). */
function workerScript(): { file: string; execArgv?: string[] } {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, 'worker' + ext);
  return ext === '.ts' ? { file, execArgv: ['--require', require.resolve('tsx/cjs')] } : { file };
}

export class DataLoader implements AsyncIterable<Batch> {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly workers: number;
  readonly prefetch: number;
  readonly shard?: Required<ShardOptions>;
  private readonly onSkip: (skipped: SkippedImage) => void;
  /** Every image replaced under onBadImage 'skip' so far, by path, with its error. */
  readonly badImages = new Map<string, string>();
  /** Images replaced under onBadImage 'skip', counted every time (an image bad in 3 epochs counts 3). */
  skippedCount = 0;
  private free: Slot[] = [];
  private threads: WorkerState[] = [];
  private nextTaskId = 0;
  private active = false;
  private nextEpoch = 0;
  private filled = 0;
  private closed = false;
  private readonly sampleSize: number;

  constructor(dataset: Dataset, opts: LoaderOptions) {
    const bs = opts?.batchSize;
    if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`DataLoader: expected batchSize to be a positive integer, but received ${JSON.stringify(bs)}`);
    this.dataset = dataset;
    this.batchSize = bs;
    this.shuffle = opts.shuffle ?? false;
    this.seed = (opts.seed ?? 0) >>> 0;
    this.dropLast = opts.dropLast ?? false;
    this.workers = opts.workers ?? (dataset instanceof FolderDataset ? Math.max(1, Math.min(4, os.availableParallelism() - 1)) : 0);
    if (!Number.isInteger(this.workers) || this.workers < 0) throw new RangeError(`DataLoader: expected workers to be an integer >= 0, but received ${opts.workers}`);
    if (this.workers > 0 && typeof dataset.recipe !== 'function') {
      throw new TypeError(`DataLoader: workers: ${this.workers} needs a built-in data set (one with recipe()); ${dataset.name} has none, use workers: 0`);
    }
    this.prefetch = opts.prefetch ?? Math.max(2, this.workers);
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1) throw new RangeError(`DataLoader: expected prefetch to be an integer >= 1, but received ${opts.prefetch}`);
    this.onSkip = opts.onSkip ?? ((sk) => {
      if (!this.badImages.has(sk.file)) process.emitWarning(`skipped an unreadable image: ${sk.message}`, { code: 'CRUNET_BAD_IMAGE' });
    });
    if (opts.shard !== undefined) this.shard = checkShard(opts.shard, 'DataLoader');
    this.sampleSize = dataset.shape[0] * dataset.shape[1] * dataset.shape[2];
    if (this.batchesPerEpoch === 0 && (this.dropLast || !this.shard)) {
      const part = this.shard ? ` (${this.length} on rank ${this.shard.rank} of ${this.shard.worldSize})` : '';
      throw new RangeError(`DataLoader: ${dataset.name} has ${dataset.length} samples${part}, fewer than one batch of ${bs} with dropLast`);
    }
  }

  /** Samples an epoch visits: the data set's, or this rank's part of them. */
  get length(): number {
    return this.shard ? shardLength(this.dataset.length, this.shard) : this.dataset.length;
  }

  get batchesPerEpoch(): number {
    const n = this.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The order in which epoch e visits the samples (before dropLast): with a shard, this rank's part. */
  order(epoch: number): Int32Array {
    const all = epochOrder(this.dataset.length, this.seed, epoch, this.shuffle);
    return this.shard ? shardOrder(all, this.shard) : all;
  }

  /** Batches filled and waiting for the consumer: > 0 right after a batch is taken means prefetch kept up. */
  get ready(): number {
    return this.filled;
  }

  /** The next epoch (0, 1, ...), for `for await (const batch of loader)`. */
  [Symbol.asyncIterator](): AsyncGenerator<Batch> {
    return this.epoch(this.nextEpoch);
  }

  /**
   * The batches of epoch e. Only one epoch can be iterated at a time; breaking out early waits for the
   * batches being filled and frees their buffers.
   */
  async *epoch(e: number): AsyncGenerator<Batch> {
    if (!Number.isInteger(e) || e < 0) throw new RangeError(`DataLoader: expected epoch to be an integer >= 0, but received ${e}`);
    if (this.closed) throw new Error('DataLoader: epoch() after close()');
    if (this.active) throw new Error('DataLoader: epoch() while another epoch is being iterated; finish or break out of it first');
    this.active = true;
    this.nextEpoch = e + 1;
    const order = this.order(e);
    const nb = this.batchesPerEpoch;
    const tasks = new Map<number, Promise<Filled>>();
    let held: Slot | undefined;
    const schedule = (b: number) => {
      if (b >= nb || tasks.has(b)) return;
      const indices = order.slice(b * this.batchSize, Math.min(order.length, (b + 1) * this.batchSize));
      const p = this.fill(this.takeSlot(), e, indices);
      // Settled by the generator or by the drain in `finally`; this only keeps an early failure of a
      // batch not yet awaited from being reported as unhandled.
      p.then(() => this.filled++, () => this.filled++);
      tasks.set(b, p);
    };
    try {
      for (let b = 0; b < nb; b++) {
        if (held) this.free.push(held);
        held = undefined;
        for (let k = b; k <= b + this.prefetch; k++) schedule(k);
        const task = tasks.get(b)!;
        tasks.delete(b);
        let r: Filled;
        try {
          r = await task;
        } finally {
          this.filled--;
        }
        held = r.slot;
        for (const s of r.skipped) {
          this.skippedCount++;
          this.onSkip(s);
          this.badImages.set(s.file, s.message);
        }
        const size = Math.min(this.batchSize, order.length - b * this.batchSize);
        yield {
          images: new Float32Array(r.slot.images, 0, size * this.sampleSize),
          labels: new Int32Array(r.slot.labels, 0, size),
          size,
          index: b,
          epoch: e,
          indices: order.subarray(b * this.batchSize, b * this.batchSize + size),
          skipped: r.skipped,
        };
      }
    } finally {
      if (held) this.free.push(held);
      for (const r of await Promise.allSettled(tasks.values())) {
        this.filled--;
        if (r.status === 'fulfilled') this.free.push(r.value.slot);
      }
      this.active = false;
    }
  }

  /** Stops the workers. The loader cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    const ws = this.threads;
    this.threads = [];
    for (const w of ws) this.kill(w, new Error('DataLoader: closed while a batch was being filled'));
    await Promise.all(ws.map((w) => w.worker.terminate()));
    this.free = [];
  }

  private takeSlot(): Slot {
    return this.free.pop() ?? {
      images: new ArrayBuffer(this.batchSize * this.sampleSize * 4),
      labels: new ArrayBuffer(this.batchSize * 4),
    };
  }

  private async fill(slot: Slot, epoch: number, indices: Int32Array): Promise<Filled> {
    if (this.workers === 0) {
      // Run after the consumer's current turn, i.e. while its step computes off the JS thread.
      await new Promise((r) => setImmediate(r));
      try {
        const r = await fillBatch(this.dataset, indices, epoch, this.seed, new Float32Array(slot.images), new Int32Array(slot.labels));
        return { ...r, slot };
      } catch (e) {
        this.free.push(slot);
        throw e;
      }
    }
    const w = this.pickWorker();
    const id = this.nextTaskId++;
    return new Promise<Filled>((resolve, reject) => {
      w.inFlight.set(id, { resolve, reject });
      w.worker.ref();
      const task: FillTask = { id, epoch, seed: this.seed, indices, images: slot.images, labels: slot.labels };
      w.worker.postMessage(task, [slot.images, slot.labels]);
    });
  }

  /** The live worker with the fewest batches in flight; dead ones are replaced. */
  private pickWorker(): WorkerState {
    this.threads = this.threads.filter((w) => !w.dead);
    while (this.threads.length < this.workers) this.threads.push(this.spawn());
    return this.threads.reduce((a, b) => (b.inFlight.size < a.inFlight.size ? b : a));
  }

  private spawn(): WorkerState {
    const { file, execArgv } = workerScript();
    const worker = new Worker(file, { workerData: { crunetDataRecipe: this.dataset.recipe!() }, execArgv });
    const state: WorkerState = { worker, inFlight: new Map(), dead: false };
    // Idle workers must not keep the process alive when the consumer forgets close().
    worker.unref();
    worker.on('message', (m: FillReply) => {
      const t = state.inFlight.get(m.id);
      if (!t) return;
      state.inFlight.delete(m.id);
      if (state.inFlight.size === 0) worker.unref();
      const slot = { images: m.images, labels: m.labels };
      if ('error' in m) {
        this.free.push(slot);
        t.reject(fromWire(m.error));
      } else t.resolve({ skipped: m.skipped, slot });
    });
    worker.on('error', (e) => this.kill(state, new Error(`DataLoader worker failed: ${e.message}`, { cause: e })));
    worker.on('exit', (code) => this.kill(state, new Error(`DataLoader worker exited with code ${code}`)));
    return state;
  }

  private kill(state: WorkerState, err: Error): void {
    state.dead = true;
    for (const t of state.inFlight.values()) t.reject(err);
    state.inFlight.clear();
  }
}
