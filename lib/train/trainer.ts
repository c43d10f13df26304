// The training loop. Trainer.fit() is the common case; trainEpoch() and evaluate() are the pieces a user
// can call in a loop of their own. Policy lives here (schedule, logging, checkpoints); the Session does
// the maths.
import { mirrorRows } from '../data/augment.js';
import type { ShardTail } from '../data/shard.js';
import type { Session } from '../engine/session.js';
import { sumOverRanks, type RankSum } from './rank-sum.js';
import { emptyScore, meanSoftmaxLogits, scoreLogits } from './metrics.js';
import type { Schedule } from './schedule.js';

/** One batch as the loaders produce it: NCHW images, labels, and how many samples are real. */
export interface TrainBatch {
  images: Float32Array;
  labels: Int32Array;
  size: number;
  /** Soft targets [size, classes] (mixup, cutmix): trained towards instead of the labels' one-hot. */
  targets?: Float32Array;
  /**
   * The data set index of each sample, and the samples that could not be read (a DataLoader under
   * onBadImage 'skip' fills their places with copies of others): evaluation leaves those places out.
   */
  indices?: Int32Array;
  skipped?: readonly { index: number }[];
}

/** Anything that yields the batches of an epoch (lib/data's DataLoader). */
export interface BatchSource {
  epoch(e: number): AsyncIterable<TrainBatch>;
  /**
   * The samples' [C, H, W] (a DataLoader's dataset has it); test-time mirroring needs the width, gradient
   * accumulation the number of samples (to know an epoch's last batch).
   */
  readonly dataset?: { readonly shape: readonly number[]; readonly length?: number };
  /** The rank's part of the data it reads (a DataLoader's shard option; lib/data/shard.ts). */
  readonly shard?: { readonly rank: number; readonly worldSize: number; readonly tail: ShardTail };
}

/** Test-time augmentation: 'flip' scores the mean softmax of each image and its mirror image. */
export type TestTimeAugment = 'none' | 'flip';

export interface StepInfo {
  epoch: number;
  /** Global optimizer step (0-based, before this step's update; the same for every micro-batch of one update). */
  step: number;
  /** Step within the epoch (0-based). */
  batch: number;
  lr: number;
  loss: number;
  correct: number;
  size: number;
  seconds: number;
  /** The gradient's global norm before clipping, on steps that updated (absent on accumulating micro-batches). */
  gradNorm?: number;
  /** The loss scaler skipped this step (its gradients overflowed; nothing changed): not in the epoch's totals. */
  skipped: boolean;
  /** The epoch so far, this step included: images trained on, their mean loss and accuracy (for progress bars). */
  epochImages: number;
  epochLoss: number;
  epochAcc: number;
}

export interface EpochStats {
  epoch: number;
  loss: number;
  acc: number;
  images: number;
  seconds: number;
  imagesPerSec: number;
  lr: number;
  /**
   * Steps the loss scaler skipped (compile's lossScale): their batches count neither into images, loss
   * nor acc, since they trained nothing. They still advance the step count and so the schedule, as
   * PyTorch's loop with GradScaler does (the scheduler steps every iteration).
   */
  skippedSteps: number;
}

export interface EvalStats {
  loss: number;
  top1: number;
  top5: number;
  /** Images scored: those of the data set less the unreadable ones skipped. */
  images: number;
  /** Unreadable images left out (onBadImage 'skip'). */
  skipped: number;
  seconds: number;
}

export interface EpochEnd {
  epoch: number;
  /** Global steps completed. */
  step: number;
  train: EpochStats;
  test?: EvalStats;
}

export interface TrainerCallbacks {
  /** Before an epoch's first batch is asked for. */
  onEpochStart?(epoch: number): void | Promise<void>;
  onStep?(info: StepInfo): void | Promise<void>;
  /**
   * After an epoch's training, before its evaluation: the place for a checkpoint, so that an evaluation
   * that fails (an unreadable test image, say) cannot cost the epoch's training.
   */
  onEpochTrained?(info: Omit<EpochEnd, 'test'>): void | Promise<void>;
  /** After the epoch's evaluation. */
  onEpochEnd?(info: EpochEnd): void | Promise<void>;
}

export interface TrainerOptions {
  session: Session;
  train: BatchSource;
  test?: BatchSource;
  schedule: Schedule;
  epochs: number;
  /**
   * Gradient accumulation: one optimizer update per this many batches (default 1), with their mean
   * gradient. An epoch's last update takes the batches left (timm's rule), so that an epoch ends with
   * nothing accumulated; the schedule's steps are updates, ceil(full batches / accumulate) an epoch.
   */
  accumulate?: number;
  /** Resume: the first epoch to run and the global steps already taken (from a checkpoint). */
  startEpoch?: number;
  startStep?: number;
  callbacks?: TrainerCallbacks;
  /**
   * Data-parallel training (lib/train/rank-sum.ts): this process is one rank and its sources hold its
   * part of the data. The epoch's training statistics and evaluate()'s scores are then summed over the
   * ranks (counts and loss x count, never means of means), so every rank returns the whole job's.
   */
  group?: RankSum;
}

export interface FitResult {
  epochs: EpochEnd[];
  /** Global steps completed. */
  steps: number;
  seconds: number;
  /**
   * Set when interrupt() ended fit() early: the epoch it was in and the steps of it taken. During training,
   * that epoch got neither onEpochTrained (so no checkpoint) nor onEpochEnd; during (or just before) the
   * evaluation, its training was complete and onEpochTrained ran, but its evaluation is missing.
   */
  interrupted?: { epoch: number; steps: number; during: 'training' | 'evaluation' };
}

export class Trainer {
  readonly session: Session;
  /** Global optimizer steps completed. */
  step: number;
  private readonly opts: TrainerOptions;
  private stopping = false;
  private interrupted = false;
  /** Whether the last trainEpoch() was cut short by interrupt() (an interrupt in its last step is not). */
  private cutShort = false;

  constructor(opts: TrainerOptions) {
    if (!Number.isInteger(opts.epochs) || opts.epochs < 0) throw new RangeError(`Trainer: epochs must be a non-negative integer, but received ${opts.epochs}`);
    const k = opts.accumulate ?? 1;
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`Trainer: expected accumulate to be a positive integer, but received ${opts.accumulate}`);
    if (k > 1 && !Number.isInteger(opts.train.dataset?.length)) {
      throw new TypeError('Trainer: expected a training source with dataset.length for accumulate > 1 (an epoch\'s last update needs it), but received one without');
    }
    if (opts.group && k > 1) {
      // An epoch's last update is found from the whole set's batch count, not a rank's shard (the CLI refuses
      // --accumulate with several processes for the same reason).
      throw new RangeError(`Trainer: expected accumulate 1 with a process group, but received ${k} (accumulation is not yet sharded)`);
    }
    if (opts.group) {
      // Each rank takes a step per batch, and every step is a collective: ranks with different numbers of
      // batches (an 'uneven' tail) wait on each other until the timeout, and ranks that all read the whole
      // set (no shard) train each sample W times over, silently.
      const shard = opts.train.shard;
      if (shard?.tail === 'uneven') {
        throw new RangeError("Trainer: expected the training source of a group's rank to be sharded with tail 'drop' or 'pad' (equal steps on every rank), but received tail 'uneven'");
      }
      if (!shard && opts.group.worldSize > 1) {
        throw new TypeError(`Trainer: expected the training source of rank ${opts.group.rank} of ${opts.group.worldSize} to read its part of the data (a DataLoader's shard option), but received a source with no shard`);
      }
    }
    this.opts = opts;
    this.session = opts.session;
    this.step = opts.startStep ?? 0;
  }

  /** One pass over the training set: a step per full batch (a short last batch is skipped: batch norm needs the compiled batch). */
  async trainEpoch(epoch: number): Promise<EpochStats> {
    const { session, schedule, callbacks } = this.opts;
    await callbacks?.onEpochStart?.(epoch);
    const t0 = performance.now();
    let lossSum = 0, correct = 0, images = 0, batch = 0, skippedSteps = 0, lr = schedule.lrAt(this.step);
    this.cutShort = false;
    const k = this.opts.accumulate ?? 1;
    const fullBatches = k > 1 ? Math.floor(this.opts.train.dataset!.length! / session.batchSize) : 0;
    for await (const b of this.opts.train.epoch(epoch)) {
      if (this.interrupted) {
        this.cutShort = true;
        break;
      }
      if (b.size !== session.batchSize) continue;
      lr = schedule.lrAt(this.step);
      const ts = performance.now();
      const accumulate = k > 1 && (batch + 1) % k !== 0 && batch + 1 < fullBatches;
      const r = await session.step(b.images, b.labels, { lr, accumulate, ...(b.targets ? { targets: b.targets } : {}) });
      const skipped = r.skipped === true;
      if (skipped) {
        skippedSteps++;
      } else {
        lossSum += r.loss * b.size;
        correct += r.correct;
        images += b.size;
      }
      await callbacks?.onStep?.({
        epoch, step: this.step, batch, lr, loss: r.loss, correct: r.correct, size: b.size, seconds: (performance.now() - ts) / 1000, skipped,
        ...(r.gradNorm !== undefined ? { gradNorm: r.gradNorm } : {}), epochImages: images, epochLoss: lossSum / images, epochAcc: correct / images,
      });
      if (!accumulate) this.step++;
      batch++;
    }
    if (this.opts.group && !this.cutShort) [lossSum, correct, images] = await sumOverRanks(this.opts.group, [lossSum, correct, images]);
    const seconds = (performance.now() - t0) / 1000;
    return { epoch, loss: images ? lossSum / images : NaN, acc: images ? correct / images : NaN, images, seconds, imagesPerSec: images / seconds, lr, skippedSteps };
  }

  /**
   * Loss, top-1 and top-5 accuracy over a data set, in inference mode (batch norm's running statistics).
   * Images the loader skipped as unreadable are not scored (their places hold copies of other images).
   * `ema`: with the moving average of the weights (a session compiled with ema).
   */
  async evaluate(source: BatchSource, epoch = 0, opts: { tta?: TestTimeAugment; ema?: boolean; onBatch?: (done: { batches: number; images: number }) => void } = {}): Promise<EvalStats> {
    if (opts.ema && !this.session.ema) throw new TypeError('evaluate: expected a session compiled with ema for {ema: true}, but received one without');
    const fwd = { ema: opts.ema ?? false };
    const t0 = performance.now();
    const score = emptyScore();
    let skipped = 0, batches = 0;
    const tta = opts.tta ?? 'none';
    const width = source.dataset?.shape[2];
    if (tta === 'flip' && !width) throw new TypeError("evaluate: expected a source with dataset.shape [C, H, W] for tta 'flip' (it needs the images' width), but received one without");
    for await (const b of source.epoch(epoch)) {
      if (this.interrupted) break; // the partial scores are not returned as the data set's: see isInterrupted
      const images = b.images.subarray(0, (b.images.length / b.labels.length) * b.size);
      let logits = await this.session.forward(images, fwd);
      const classes = logits.length / b.size;
      if (tta === 'flip') logits = meanSoftmaxLogits([logits, await this.session.forward(mirrorRows(images, width!), fwd)], b.size, classes);
      const left = skippedPositions(b);
      skipped += left.size;
      scoreLogits(score, logits, b.labels, b.size, classes, left);
      batches++;
      opts.onBatch?.({ batches, images: score.count });
    }
    if (this.opts.group && !this.interrupted) {
      [score.lossSum, score.top1, score.top5, score.count, skipped] = await sumOverRanks(this.opts.group, [score.lossSum, score.top1, score.top5, score.count, skipped]);
    }
    return {
      loss: score.lossSum / score.count,
      top1: score.top1 / score.count,
      top5: score.top5 / score.count,
      images: score.count,
      skipped,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /**
   * Makes fit() return after the epoch in progress (once its onEpochEnd has run): for early stopping and
   * time-limited jobs. Call it from a callback or anywhere else; the next fit() starts afresh.
   */
  stop(): void {
    this.stopping = true;
  }

  /**
   * Ends training as soon as the step in flight is done (a Ctrl-C): trainEpoch() and evaluate() stop at the
   * next batch and fit() returns with `interrupted` set, without the epoch's callbacks, so nothing of the
   * partial epoch is mistaken for a whole one. An interrupted Trainer stays interrupted.
   */
  interrupt(): void {
    this.interrupted = true;
  }

  /** Whether interrupt() was called: an evaluate() that returned since then covered part of the data only. */
  get isInterrupted(): boolean {
    return this.interrupted;
  }

  /** Trains from startEpoch to epochs (or until stop()), evaluating on the test set after each epoch. */
  async fit(): Promise<FitResult> {
    const t0 = performance.now();
    const done: EpochEnd[] = [];
    this.stopping = false;
    const result = (interrupted?: FitResult['interrupted']): FitResult =>
      ({ epochs: done, steps: this.step, seconds: (performance.now() - t0) / 1000, ...(interrupted ? { interrupted } : {}) });
    for (let e = this.opts.startEpoch ?? 0; e < this.opts.epochs && !this.stopping; e++) {
      const stepsBefore = this.step;
      const train = await this.trainEpoch(e);
      if (this.cutShort) return result({ epoch: e, steps: this.step - stepsBefore, during: 'training' });
      await this.opts.callbacks?.onEpochTrained?.({ epoch: e, step: this.step, train });
      const test = this.opts.test && !this.interrupted ? await this.evaluate(this.opts.test, e) : undefined;
      if (this.interrupted) return result({ epoch: e, steps: this.step - stepsBefore, during: 'evaluation' });
      const end: EpochEnd = { epoch: e, step: this.step, train, ...(test ? { test } : {}) };
      done.push(end);
      await this.opts.callbacks?.onEpochEnd?.(end);
    }
    return result();
  }
}

/** Positions in a batch whose sample was skipped as unreadable. */
function skippedPositions(b: TrainBatch): Set<number> {
  const out = new Set<number>();
  if (!b.skipped?.length) return out;
  if (!b.indices) throw new TypeError('evaluate: expected a batch with skipped samples to give their indices, but received one without');
  const bad = new Set(b.skipped.map((s) => s.index));
  for (let j = 0; j < b.size; j++) if (bad.has(b.indices[j]!)) out.add(j);
  return out;
}
