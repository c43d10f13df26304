// What defines a training run, and how `crunet train --resume` recovers it from a checkpoint: settings
// not given on the command line come from the checkpoint, and flags that contradict it are refused, so a
// resumed run is the run it continues (on the CPU, step for step).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Dataset, Preprocessing } from '../data/index.js';
import type { Precision } from '../engine/index.js';
import type { CheckpointInfo } from '../train/checkpoint.js';
import { UsageError } from './errors.js';
import { intFlag } from './flags.js';

export interface RunSettings {
  model: string;
  dataset: string;
  epochs: number;
  batchSize: number;
  lr: number;
  schedule: string;
  stepSize?: number;
  milestones?: number[];
  warmupEpochs: number;
  /** 'sgd', 'adamw' or 'lamb' (lib/engine/session.ts OPTIMIZER_TYPES). */
  optimizer: string;
  /** AdamW's betas and eps (undefined: PyTorch's defaults). */
  betas?: [number, number];
  eps?: number;
  /** Clip the gradient to this global norm (undefined: no clipping). */
  clipGradNorm?: number;
  /** Batches per optimizer update (gradient accumulation; 1: none). */
  accumulate: number;
  /** Keep a moving average of the weights with this decay (undefined: none), with timm's warmup when emaWarmup. */
  ema?: number;
  emaWarmup?: boolean;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /** Label smoothing of the loss (0: none). */
  labelSmoothing: number;
  /** Undefined: the data set's default (see --help). */
  augment?: boolean;
  erase?: number;
  seed: number;
  limitTrain?: number;
  /** Evaluate on this many test samples (a subset drawn with seed + 1); undefined: the whole test split. */
  limitTest?: number;
  /** Image folders without a val/ split: the fraction of each class held out as the test set. */
  valSplit?: number;
  /** Mixup's and cutmix's Beta alphas (0: off), the probability a batch is mixed, cutmix's share of those. */
  mixup: number;
  cutmix: number;
  mixProb: number;
  mixSwitchProb: number;
  /** 'randaugment:N,M' or 'trivialaugment'; undefined: none. */
  autoAugment?: string;
  /** The fraction of the training samples held out as a validation set. */
  validation?: number;
  /** Stop after this many epochs without a better validation top-1. */
  earlyStopPatience?: number;
  /** The compute precision (undefined: fp32); a resumed run keeps it. */
  precision?: Precision;
}

export const TRAIN_DEFAULTS = {
  model: 'crunet_small',
  dataset: 'fashion-mnist',
  epochs: 3,
  batchSize: 128,
  lr: 0.2,
  schedule: 'cosine',
  warmupEpochs: 0.3,
  optimizer: 'sgd',
  accumulate: 1,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  labelSmoothing: 0,
  seed: 0,
  mixup: 0,
  cutmix: 0,
  mixProb: 1,
  mixSwitchProb: 0.5,
} satisfies Partial<RunSettings>;

/** What changes with --optimizer adamw or lamb: PyTorch's AdamW default weight decay (timm's Lamb has the same), and a learning rate that suits them. */
export const ADAMW_DEFAULTS = { lr: 1e-3, weightDecay: 0.01 } satisfies Partial<RunSettings>;

/** A setting as the flag that sets it. */
function asFlag(key: keyof RunSettings, value: unknown): string {
  switch (key) {
    case 'augment': return value ? '--augment' : '--no-augment';
    case 'nesterov': return value ? 'Nesterov momentum' : '--no-nesterov';
    case 'milestones': return `--milestones ${(value as number[]).join(',')}`;
    case 'limitTrain': return value === undefined ? 'the whole training set' : `--limit-train ${value}`;
    case 'limitTest': return value === undefined ? 'the whole test set' : `--limit-test ${value}`;
    case 'valSplit': return value === undefined ? 'the data set\'s own test split' : `--val-split ${value}`;
    case 'autoAugment': return value === undefined ? 'no RandAugment or TrivialAugment' : value === 'trivialaugment' ? '--trivialaugment' : `--randaugment ${String(value).slice('randaugment:'.length)}`;
    case 'validation': return value === undefined ? 'no validation split' : `--validation ${value}`;
    case 'earlyStopPatience': return value === undefined ? 'no early stopping' : `--early-stop-patience ${value}`;
    case 'betas': return value === undefined ? "AdamW's default betas" : `--betas ${(value as number[]).join(',')}`;
    case 'eps': return value === undefined ? "AdamW's default eps" : `--eps ${value}`;
    case 'clipGradNorm': return value === undefined ? 'no gradient clipping' : `--clip-grad-norm ${value}`;
    case 'ema': return value === undefined ? 'no moving average of the weights' : `--ema ${value}`;
    case 'emaWarmup': return value ? '--ema-warmup' : 'no EMA warmup';
    case 'precision': return `--precision ${value ?? 'fp32'}`;
    default: return `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} ${value}`;
  }
}

/** The metadata fields of a checkpoint written by `crunet train` (format 1; older ones lack some). */
interface TrainMeta {
  dataset?: string;
  seed?: number;
  runEpochs?: number;
  limitTrain?: number | null;
  /** Absent in checkpoints written before it was recorded: the flag then decides. */
  limitTest?: number | null;
  valSplit?: number | null;
  augmentation?: { augment: boolean; erase: number };
  labelSmoothing?: number;
  classNames?: string[];
  /** Absent in checkpoints written before these existed: then off. */
  mix?: { mixup: number; cutmix: number; prob: number; switchProb: number };
  autoAugment?: string | null;
  validation?: number | null;
  earlyStopPatience?: number | null;
  /** Absent in checkpoints written before these existed: then 1 and none. */
  accumulate?: number;
  ema?: { decay: number; warmup: boolean } | null;
}

/** What a checkpoint says about its run's settings, and its steps per epoch. */
export function storedSettings(meta: CheckpointInfo): { settings: Partial<RunSettings>; stepsPerEpoch?: number } {
  const m = meta as CheckpointInfo & TrainMeta;
  const s: Partial<RunSettings> = { model: meta.model.name, batchSize: meta.session.batchSize };
  if (typeof m.dataset === 'string') s.dataset = m.dataset;
  if (typeof m.seed === 'number') s.seed = m.seed;
  if (m.limitTrain !== undefined) s.limitTrain = m.limitTrain ?? undefined;
  if (m.limitTest !== undefined) s.limitTest = m.limitTest ?? undefined;
  if (m.valSplit !== undefined) s.valSplit = m.valSplit ?? undefined;
  if (m.augmentation) (s.augment = m.augmentation.augment), (s.erase = m.augmentation.erase);
  // Every checkpoint of `crunet train` records its data set; those without labelSmoothing predate the flag.
  if (typeof m.dataset === 'string') {
    s.labelSmoothing = m.labelSmoothing ?? 0;
    const mix = m.mix ?? { mixup: 0, cutmix: 0, prob: 1, switchProb: 0.5 };
    Object.assign(s, { mixup: mix.mixup, cutmix: mix.cutmix, mixProb: mix.prob, mixSwitchProb: mix.switchProb });
    s.autoAugment = m.autoAugment ?? undefined;
    s.validation = m.validation ?? undefined;
    s.earlyStopPatience = m.earlyStopPatience ?? undefined;
    s.accumulate = m.accumulate ?? 1;
    s.ema = m.ema?.decay;
    s.emaWarmup = m.ema ? m.ema.warmup : undefined;
    // Every checkpoint records its session's precision (fp32 until other precisions existed).
    if (['fp32', 'bf16', 'fp16'].includes(meta.session.precision)) s.precision = meta.session.precision as Precision;
  }
  if (meta.optimizer) {
    const o = meta.optimizer;
    s.optimizer = o.type ?? 'sgd';  // checkpoints written before AdamW are SGD's
    if (o.betas !== undefined) s.betas = [o.betas[0], o.betas[1]];
    if (o.eps !== undefined) s.eps = o.eps;
    if (typeof m.dataset === 'string') s.clipGradNorm = o.clipGradNorm;
    if (o.momentum !== undefined) s.momentum = o.momentum;
    if (o.nesterov !== undefined) s.nesterov = o.nesterov;
    if (o.weightDecay !== undefined) s.weightDecay = o.weightDecay;
  }
  const sch = meta.schedule;
  const spe = sch?.stepsPerEpoch;
  if (sch) {
    s.lr = sch.lr;
    s.schedule = sch.type;
    if (sch.type === 'step') s.stepSize = sch.stepSize;
    if (sch.type === 'multistep') s.milestones = sch.milestones;
    if (sch.type === 'cosine' && sch.epochs !== undefined) s.epochs = sch.epochs;
    if (spe) s.warmupEpochs = (sch.warmup?.steps ?? 0) / spe;
  }
  if (typeof m.runEpochs === 'number') s.epochs = m.runEpochs;
  return { settings: s, ...(spe ? { stepsPerEpoch: spe } : {}) };
}

/** The metadata `crunet train` adds to its checkpoints so that storedSettings() recovers everything. */
export function trainMeta(run: RunSettings, train: Dataset, augmentation: { augment: boolean; erase: number }, threads?: number): TrainMeta & { threads?: number; preprocessing?: Preprocessing } {
  return {
    dataset: run.dataset, seed: run.seed, runEpochs: run.epochs, limitTrain: run.limitTrain ?? null, limitTest: run.limitTest ?? null,
    valSplit: run.valSplit ?? null, augmentation, labelSmoothing: run.labelSmoothing, classNames: [...train.classes],
    mix: { mixup: run.mixup, cutmix: run.cutmix, prob: run.mixProb, switchProb: run.mixSwitchProb }, autoAugment: run.autoAugment ?? null,
    validation: run.validation ?? null, earlyStopPatience: run.earlyStopPatience ?? null,
    accumulate: run.accumulate, ema: run.ema !== undefined ? { decay: run.ema, warmup: !!run.emaWarmup } : null,
    ...(threads !== undefined ? { threads } : {}), ...(train.preprocessing ? { preprocessing: train.preprocessing } : {}),
  };
}

/** The CPU threads a checkpoint's run had, when it records them. */
export function storedThreads(meta: CheckpointInfo): number | undefined {
  return typeof meta.threads === 'number' ? meta.threads : undefined;
}

/**
 * The settings of a resumed run: each comes from the checkpoint where it records it, else from the
 * flags; a flag that contradicts the checkpoint is a UsageError naming both values.
 */
export function resumeSettings(given: Partial<RunSettings>, meta: CheckpointInfo, ckptPath: string): Partial<RunSettings> {
  const { settings: stored, stepsPerEpoch } = storedSettings(meta);
  const same = (k: keyof RunSettings, a: unknown, b: unknown) =>
    k === 'warmupEpochs' && stepsPerEpoch // compared in steps: what the schedule really uses
      ? Math.round((a as number) * stepsPerEpoch) === Math.round((b as number) * stepsPerEpoch)
      : JSON.stringify(a) === JSON.stringify(b);
  for (const k of Object.keys(given) as (keyof RunSettings)[]) {
    const g = given[k];
    if (g === undefined || !(k in stored) || same(k, g, stored[k])) continue;
    const show = (v: unknown) => asFlag(k, v) + (k === 'warmupEpochs' && stepsPerEpoch ? ` (${Math.round((v as number) * stepsPerEpoch)} steps)` : '');
    throw new UsageError(
      `--resume: ${ckptPath} is from a run with ${show(stored[k])}, but this command asks for ${show(g)}; ` +
        'a resumed run keeps the settings it started with (leave the flag out, or start a new run)',
    );
  }
  const merged: Partial<RunSettings> = { ...given };
  for (const [k, v] of Object.entries(stored)) (merged as Record<string, unknown>)[k] = v;
  return merged;
}

/**
 * Refuses data that the checkpoint's model cannot have been trained on: another image shape or class
 * count, or (where the checkpoint records them) other class names, e.g. MNIST for a Fashion-MNIST model.
 */
export function checkDataMatches(meta: CheckpointInfo, data: Dataset, ckptPath: string): void {
  const o = (meta.model.options ?? {}) as { classes?: number; channels?: number; inputSize?: number };
  const [c, h, w] = data.shape;
  const trained = `${ckptPath} holds ${meta.model.name} for ${o.channels}x${o.inputSize}x${o.inputSize} images in ${o.classes} classes`;
  if (o.channels !== c || o.inputSize !== h || o.inputSize !== w || o.classes !== data.classes.length) {
    throw new UsageError(`${trained}, but ${data.name} has ${c}x${h}x${w} images in ${data.classes.length} classes`);
  }
  const names = (meta as CheckpointInfo & TrainMeta).classNames;
  if (names && JSON.stringify(names) !== JSON.stringify(data.classes)) {
    const show = (n: readonly string[]) => n.slice(0, 4).join(', ') + (n.length > 4 ? ', ...' : '');
    throw new UsageError(`${ckptPath} was trained on classes ${show(names)}, but ${data.name} has classes ${show(data.classes)}`);
  }
}

/** --bad-images: what an unreadable image in a folder data set does (train and eval). */
export function badImagesFlag(v: string | undefined): 'fail' | 'skip' {
  const p = v ?? 'fail';
  if (p !== 'fail' && p !== 'skip') throw new UsageError(`--bad-images: expected fail or skip, but received '${p}'`);
  return p;
}

/** --max-image-bytes / --max-image-pixels: image folders' limits (lib/data/folder.ts), for data with big images. */
export function imageLimitFlags(v: { 'max-image-bytes'?: string; 'max-image-pixels'?: string }): { maxImageBytes?: number; maxImagePixels?: number } {
  const bytes = intFlag(v['max-image-bytes'], '--max-image-bytes', 1), pixels = intFlag(v['max-image-pixels'], '--max-image-pixels', 1);
  return { ...(bytes !== undefined ? { maxImageBytes: bytes } : {}), ...(pixels !== undefined ? { maxImagePixels: pixels } : {}) };
}

/** The --max-image-* lines of a command's help, their descriptions starting at `column`. */
export function imageLimitsHelp(column: number): string {
  const pad = ' '.repeat(column);
  return '--max-image-bytes N'.padEnd(column - 2) + 'image folders: refuse larger files unread (default 64 MiB)\n' +
    '  ' + '--max-image-pixels N'.padEnd(column - 2) + 'image folders: refuse larger images before decoding (default 178956970,\n' +
    `${pad}Pillow's decompression-bomb limit)`;
}

/** A checkpoint argument: a checkpoint file, or a run directory (its checkpoint.safetensors). */
export function checkpointFile(arg: string): string {
  return fs.statSync(arg, { throwIfNoEntry: false })?.isDirectory() ? path.join(arg, 'checkpoint.safetensors') : arg;
}
