import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DataLoader, DATASET_SPECS, openDataset, parseDatasetSpec, type Dataset, type SmallAugment } from '../data/index.js';
import { BINS, checkAutoAugment, type AutoAugment } from '../data/autoaugment.js';
import { mixEnabled } from '../data/mixup.js';
import { holdOut, limitDataset } from '../data/subset.js';
import { compile, OPTIMIZER_TYPES, type OptimizerOptions, type OptimizerType, type Session } from '../engine/index.js';
import { create, fromJSON, type Model } from '../models/index.js';
import { loadCheckpoint, restoreSession, saveCheckpoint, type Checkpoint } from '../train/checkpoint.js';
import { writeFileAtomicSync } from '../train/checkpoint.js';
import { epochHistory, metricsCsv, MetricsLog, numberEpochsFrom1, readMetrics, type MetricsRecord } from '../train/metrics-log.js';
import { mixedBatches } from '../train/mixed-source.js';
import { metricsScalars, TensorBoardWriter } from '../train/tensorboard.js';
import { writePlot } from '../train/plot.js';
import { etaSeconds, formatDuration, ProgressBar } from '../train/progress.js';
import { createSchedule, SCHEDULE_TYPES, type ScheduleConfig } from '../train/schedule.js';
import { Trainer, type EvalStats } from '../train/trainer.js';
import { UsageError, usage } from './errors.js';
import { intFlag, MAX_SEED, numberFlag, precisionFlag, precisionHelp } from './flags.js';
import { isDistributedEnv } from '../dist/env.js';
import { prepareOutDir } from './out-dir.js';
import { MAX_THREADS, applyThreads, availableCpus, threadsHelp } from './threads.js';
import { parseModelOptions } from './model-options.js';
import { joinJobFromEnv, launchedThreads, resumedBatchSize, resumedThreads, type TrainRank } from './train-rank.js';
import { badImagesFlag, checkDataMatches, imageLimitFlags, imageLimitsHelp, checkpointFile, resumeSettings, storedThreads, ADAMW_DEFAULTS, TRAIN_DEFAULTS, trainMeta, type RunSettings } from './run-settings.js';

export const TRAIN_HELP = `Usage: crunet train [options]

Trains a model on a data set on the CPU, evaluating on the test split after every epoch. Writes into
--out: metrics.jsonl (one JSON object per step/epoch/eval; epochs count from 1), metrics.csv (one line per
epoch), TensorBoard event files (events.out.tfevents.*: tensorboard --logdir DIR), plot.svg (loss and accuracy
per epoch) and checkpoint.safetensors (replaced atomically after every epoch; --resume continues from it).

Options:
  --model NAME            model (default ${TRAIN_DEFAULTS.model}; 'crunet summary --list' lists them)
  --model-options JSON    the model's options, e.g. '{"width":48,"D":[96]}' ('crunet summary M' shows them);
                          classes, channels and input size always come from the data set
  --dataset SPEC          ${DATASET_SPECS} (default ${TRAIN_DEFAULTS.dataset})
  --epochs N              epochs (default ${TRAIN_DEFAULTS.epochs})
  --batch-size B          batch size (default ${TRAIN_DEFAULTS.batchSize})
  --lr X                  base learning rate (default ${TRAIN_DEFAULTS.lr}; ${ADAMW_DEFAULTS.lr} with adamw and lamb)
  --schedule S            ${SCHEDULE_TYPES.join(', ')} (default ${TRAIN_DEFAULTS.schedule}); step decays 10x every
                          --step-size epochs (default a third of the run), multistep at --milestones A,B
  --warmup-epochs N       linear warmup (default ${TRAIN_DEFAULTS.warmupEpochs})
  --optimizer O           ${OPTIMIZER_TYPES.join(', ')} (default ${TRAIN_DEFAULTS.optimizer}): PyTorch's SGD with Nesterov momentum, AdamW, or
                          timm's LAMB (its default clipping at norm 1 is --clip-grad-norm 1)
  --momentum M            SGD momentum in [0, 1] (default ${TRAIN_DEFAULTS.momentum}); --no-nesterov for plain momentum
  --betas B1,B2           AdamW's and LAMB's betas, each in [0, 1) (default 0.9,0.999)
  --eps E                 AdamW's and LAMB's eps > 0 (default 1e-8; LAMB 1e-6)
  --weight-decay W        on weights, not on BN or biases (default ${TRAIN_DEFAULTS.weightDecay}; adamw and lamb ${ADAMW_DEFAULTS.weightDecay}, decoupled)
  --clip-grad-norm N      clip the gradient to global L2 norm N > 0 (default: no clipping); the norm is logged
                          (metrics.jsonl gradNorm, TensorBoard train/grad_norm)
  --accumulate K          one optimizer update per K batches (K >= 1, default 1), with their mean gradient: the
                          update of a K x batch-size batch without its memory (batch norm still sees each batch)
  --ema DECAY             keep a moving average of the weights (timm's ModelEmaV2, DECAY in [0, 1], e.g. 0.9998),
                          evaluated after every epoch beside the weights and saved in checkpoints ('crunet eval --ema')
  --ema-warmup            with --ema: decay min(DECAY, (1 + u) / (10 + u)) after u updates
  --label-smoothing E     train towards (1 - E) onehot + E / classes (default ${TRAIN_DEFAULTS.labelSmoothing}); the training
                          loss reported is then the smoothed one, the test loss stays plain cross-entropy
  --augment / --no-augment  training augmentation (IDX: pad 2 + crop (+ mirror for Fashion-MNIST), off by
                          default: it slows short runs; CIFAR: pad 4 + crop + mirror, on; folders: the paper's, on)
  --erase P               IDX and CIFAR: random erasing with probability P after crop and mirror (implies
                          --augment; default off)
  --randaugment N,M       IDX and CIFAR: RandAugment, N ops per image (1-16) at magnitude bin M (0-30), after
                          crop and mirror (implies --augment; torchvision's ops and magnitudes; e.g. 2,9)
  --trivialaugment        IDX and CIFAR: TrivialAugment (torchvision's TrivialAugmentWide) instead
  --mixup A               mixup with lambda ~ Beta(A, A) per batch (A >= 0; default 0: off; DeiT's recipe: 0.8)
  --cutmix A              cutmix with lambda ~ Beta(A, A), corrected to the box's area (A >= 0; default 0: off; DeiT: 1)
  --mix-prob P            probability that a batch is mixed (in [0, 1]; default 1)
  --mix-switch-prob P     with both: probability of cutmix rather than mixup (in [0, 1]; default 0.5). Mixed
                          batches train on soft targets (label smoothing applies to them); the training loss and
                          accuracy reported are against those targets and the original labels
  --validation F          hold out the fraction F (in (0, 1)) of the training samples (seeded, unaugmented) as a
                          validation set, evaluated after every epoch; best.safetensors keeps the epoch with the
                          best validation top-1
  --early-stop-patience N with --validation: stop after N epochs (N >= 1) without a better validation top-1;
                          best.safetensors is the model to keep, checkpoint.safetensors the last epoch
  --device D              cpu (default)
  ${precisionHelp(26)}
  ${threadsHelp(26)}
  --workers N             data-loading worker threads, for training and test sets (default: the loader's choice)
  --seed S                seeds initialisation, shuffling and augmentation: an integer in [0, 2^32)
                          (default ${TRAIN_DEFAULTS.seed})
  --out DIR               run directory (default runs/<model>-<dataset>-<time>); must be writable
  --limit-train N         train on N samples (a seeded random subset)
  --limit-test N          evaluate on N samples
  --val-split F           image folders without PATH/val: hold out the fraction F of each class (seeded) as the
                          test set
  --bad-images P          image folders: an unreadable image is fatal (fail, default) or skipped and counted (skip)
  ${imageLimitsHelp(26)}
  --stop-after-epoch E    end this process after epoch E of the run (for time-limited jobs; --resume continues)
  --resume CKPT|DIR       continue a run from its checkpoint (or a run directory's): the model, data set, schedule,
                          optimizer, augmentation, seed, limits and (unless --threads) threads come from the
                          checkpoint; a flag that contradicts them is refused. Resuming on the CPU with the same
                          threads reproduces the uninterrupted run bit for bit; other threads get a warning.
  --json                  end with one JSON line: test loss, top-1, top-5, images/s, wall time, parameters

Ctrl-C (SIGINT) or SIGTERM stops after the step in flight; the checkpoint on disk is the last whole epoch's
(the run's initial state before the first), the partial epoch is lost and redone exactly on --resume; exit
code 130 (SIGINT) or 143 (SIGTERM). A second signal exits at once.`;

interface TrainArgs {
  /** The settings given on the command line (undefined: not given). */
  given: Partial<RunSettings>;
  modelOptions: Record<string, unknown>;
  device: string;
  threads?: number;
  workers?: number;
  out?: string;
  stopAfterEpoch?: number;
  badImages: 'fail' | 'skip';
  imageLimits: { maxImageBytes?: number; maxImagePixels?: number };
  resume?: string;
  json: boolean;
  /** Distributed jobs only: the process group's collective timeout, and batch norm over the global batch. */
  distTimeoutMs?: number;
  syncBatchNorm: boolean;
}

/** Options that the data set decides; --model-options may not set them. */
const FROM_DATA = ['classes', 'channels', 'inputSize'];

export function parseTrainArgs(args: string[]): TrainArgs {
  const { values: v, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      model: { type: 'string' }, 'model-options': { type: 'string' }, dataset: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' },
      lr: { type: 'string' }, schedule: { type: 'string' }, 'step-size': { type: 'string' }, milestones: { type: 'string' },
      'warmup-epochs': { type: 'string' }, momentum: { type: 'string' }, 'no-nesterov': { type: 'boolean' },
      optimizer: { type: 'string' }, betas: { type: 'string' }, eps: { type: 'string' }, 'clip-grad-norm': { type: 'string' },
      accumulate: { type: 'string' }, ema: { type: 'string' }, 'ema-warmup': { type: 'boolean' },
      'weight-decay': { type: 'string' }, 'label-smoothing': { type: 'string' }, augment: { type: 'boolean' }, 'no-augment': { type: 'boolean' }, erase: { type: 'string' },
      randaugment: { type: 'string' }, trivialaugment: { type: 'boolean' }, mixup: { type: 'string' }, cutmix: { type: 'string' }, 'mix-prob': { type: 'string' },
      'mix-switch-prob': { type: 'string' }, validation: { type: 'string' }, 'early-stop-patience': { type: 'string' },
      device: { type: 'string' }, precision: { type: 'string' }, threads: { type: 'string' }, workers: { type: 'string' }, seed: { type: 'string' },
      out: { type: 'string' }, 'limit-train': { type: 'string' }, 'limit-test': { type: 'string' },
      'stop-after-epoch': { type: 'string' }, 'val-split': { type: 'string' }, 'bad-images': { type: 'string' }, 'max-image-bytes': { type: 'string' }, 'max-image-pixels': { type: 'string' }, resume: { type: 'string' }, json: { type: 'boolean' },
      'dist-timeout': { type: 'string' }, 'sync-batch-norm': { type: 'boolean' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (v.schedule !== undefined && !(SCHEDULE_TYPES as readonly string[]).includes(v.schedule)) {
    throw new UsageError(`--schedule: expected one of ${SCHEDULE_TYPES.join(', ')}, but received '${v.schedule}'`);
  }
  const erase = numberFlag(v.erase, '--erase', { min: 0 });
  if (erase !== undefined && erase > 1) throw new UsageError(`--erase: expected a probability in [0, 1], but received '${v.erase}'`);
  if (erase !== undefined && v['no-augment']) throw new UsageError('--erase needs augmentation, but --no-augment was given');
  const autoAugment = autoAugmentFlag(v.randaugment, v.trivialaugment);
  if (autoAugment !== undefined && v['no-augment']) throw new UsageError(`${autoAugment === 'trivialaugment' ? '--trivialaugment' : '--randaugment'} needs augmentation, but --no-augment was given`);
  const validation = numberFlag(v.validation, '--validation', { min: 0, max: 1 });
  if (validation !== undefined && !(validation > 0 && validation < 1)) throw new UsageError(`--validation: expected a fraction in (0, 1), but received '${v.validation}'`);
  const earlyStopPatience = intFlag(v['early-stop-patience'], '--early-stop-patience', 1);
  if (v.optimizer !== undefined && !(OPTIMIZER_TYPES as readonly string[]).includes(v.optimizer)) {
    throw new UsageError(`--optimizer: expected one of ${OPTIMIZER_TYPES.join(', ')}, but received '${v.optimizer}'`);
  }
  const eps = numberFlag(v.eps, '--eps', { min: 0 });
  if (eps === 0) throw new UsageError(`--eps: expected a number > 0, but received '${v.eps}'`);
  const clipGradNorm = numberFlag(v['clip-grad-norm'], '--clip-grad-norm', { min: 0 });
  if (clipGradNorm === 0) throw new UsageError(`--clip-grad-norm: expected a number > 0 (leave the flag out for no clipping), but received '${v['clip-grad-norm']}'`);
  const ema = numberFlag(v.ema, '--ema', { min: 0, max: 1 });
  if (v['ema-warmup'] && ema === undefined) throw new UsageError('--ema-warmup warms up the moving average of --ema DECAY: give --ema too');
  const given: Partial<RunSettings> = {
    model: v.model,
    dataset: v.dataset,
    epochs: intFlag(v.epochs, '--epochs', 1),
    batchSize: intFlag(v['batch-size'], '--batch-size', 2),
    lr: numberFlag(v.lr, '--lr', { min: 0 }),
    schedule: v.schedule,
    stepSize: intFlag(v['step-size'], '--step-size', 1),
    milestones: v.milestones?.split(',').map((m) => intFlag(m, '--milestones', 1)!),
    warmupEpochs: numberFlag(v['warmup-epochs'], '--warmup-epochs', { min: 0 }),
    optimizer: v.optimizer,
    betas: betasFlag(v.betas),
    eps,
    clipGradNorm,
    accumulate: intFlag(v.accumulate, '--accumulate', 1),
    ema,
    emaWarmup: v['ema-warmup'] ? true : undefined,
    momentum: numberFlag(v.momentum, '--momentum', { min: 0, max: 1 }),
    nesterov: v['no-nesterov'] ? false : undefined,
    weightDecay: numberFlag(v['weight-decay'], '--weight-decay', { min: 0 }),
    labelSmoothing: numberFlag(v['label-smoothing'], '--label-smoothing', { min: 0 }),
    augment: v['no-augment'] ? false : v.augment || erase !== undefined || autoAugment !== undefined ? true : undefined,
    erase,
    autoAugment,
    mixup: numberFlag(v.mixup, '--mixup', { min: 0 }),
    cutmix: numberFlag(v.cutmix, '--cutmix', { min: 0 }),
    mixProb: numberFlag(v['mix-prob'], '--mix-prob', { min: 0, max: 1 }),
    mixSwitchProb: numberFlag(v['mix-switch-prob'], '--mix-switch-prob', { min: 0, max: 1 }),
    validation,
    earlyStopPatience,
    seed: intFlag(v.seed, '--seed', 0, MAX_SEED),
    limitTrain: intFlag(v['limit-train'], '--limit-train', 1),
    limitTest: intFlag(v['limit-test'], '--limit-test', 1),
    valSplit: numberFlag(v['val-split'], '--val-split', { min: 0 }),
    precision: precisionFlag(v.precision),
  };
  if (given.labelSmoothing !== undefined && given.labelSmoothing >= 1) throw new UsageError(`--label-smoothing: expected a number in [0, 1), but received '${v['label-smoothing']}'`);
  if (given.valSplit !== undefined && !(given.valSplit > 0 && given.valSplit < 1)) throw new UsageError(`--val-split: expected a fraction in (0, 1), but received '${v['val-split']}'`);
  const badImages = badImagesFlag(v['bad-images']);
  for (const k of Object.keys(given) as (keyof RunSettings)[]) if (given[k] === undefined) delete given[k];
  const distTimeout = intFlag(v['dist-timeout'], '--dist-timeout', 1, 2_147_483); // the group's limit: 2^31 - 1 ms
  return {
    given,
    modelOptions: parseModelOptions(v['model-options'], FROM_DATA),
    device: v.device ?? 'cpu',
    threads: intFlag(v.threads, '--threads', 1, MAX_THREADS),
    workers: intFlag(v.workers, '--workers', 0),
    out: v.out,
    stopAfterEpoch: intFlag(v['stop-after-epoch'], '--stop-after-epoch', 1),
    badImages,
    imageLimits: imageLimitFlags(v),
    resume: v.resume,
    json: !!v.json,
    ...(distTimeout !== undefined ? { distTimeoutMs: distTimeout * 1000 } : {}),
    syncBatchNorm: !!v['sync-batch-norm'],
  };
}

/** --betas B1,B2: AdamW's two coefficients, each in [0, 1). */
function betasFlag(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(',');
  const b = parts.map(Number);
  if (parts.length !== 2 || parts.some((p) => p.trim() === '') || !b.every((x) => x >= 0 && x < 1)) {
    throw new UsageError(`--betas: expected B1,B2 with each in [0, 1), e.g. 0.9,0.999, but received '${v}'`);
  }
  return [b[0]!, b[1]!];
}

/** --randaugment N,M / --trivialaugment as the setting stored in checkpoints ('randaugment:N,M', 'trivialaugment'). */
function autoAugmentFlag(ra: string | undefined, ta: boolean | undefined): string | undefined {
  if (ra !== undefined && ta) throw new UsageError('--randaugment and --trivialaugment are alternatives: give one');
  if (ta) return 'trivialaugment';
  if (ra === undefined) return undefined;
  const parts = ra.split(',');
  if (parts.length !== 2) throw new UsageError(`--randaugment: expected N,M (ops per image, magnitude bin), e.g. 2,9, but received '${ra}'`);
  const n = intFlag(parts[0], '--randaugment N (ops per image)', 1, 16)!, m = intFlag(parts[1], '--randaugment M (magnitude bin)', 0, BINS - 1)!;
  return `randaugment:${n},${m}`;
}

/** The stored auto-augment setting as the data layer's option. */
function parseAutoAugment(s: string | undefined): AutoAugment | undefined {
  if (s === undefined) return undefined;
  if (s === 'trivialaugment') return { policy: 'trivialaugment' };
  const [n, m] = s.slice('randaugment:'.length).split(',').map(Number);
  return checkAutoAugment({ policy: 'randaugment', n: n!, m: m! }, 'autoAugment');
}

const datasetKind = (spec: string) => usage(() => parseDatasetSpec(spec).kind);

function scheduleConfig(a: RunSettings, stepsPerEpoch: number): ScheduleConfig {
  // Warmup may be a fraction of an epoch: pass it on in steps.
  const warmup = a.warmupEpochs > 0 ? { warmup: { steps: Math.max(1, Math.round(a.warmupEpochs * stepsPerEpoch)) } } : {};
  switch (a.schedule) {
    case 'constant': return { type: 'constant', lr: a.lr, ...warmup };
    case 'step': return { type: 'step', lr: a.lr, stepSize: a.stepSize ?? Math.max(1, Math.ceil(a.epochs / 3)), gamma: 0.1, ...warmup };
    case 'multistep': return { type: 'multistep', lr: a.lr, milestones: a.milestones ?? [Math.ceil(a.epochs / 2), Math.ceil((3 * a.epochs) / 4)], gamma: 0.1, ...warmup };
    default: return { type: 'cosine', lr: a.lr, epochs: a.epochs, ...warmup };
  }
}

/** The model for a data set: classes, channels and input size come from the data. */
function modelFor(run: RunSettings, modelOptions: Record<string, unknown>, data: Dataset, ckpt?: Checkpoint): Model {
  const [channels, h, w] = data.shape;
  if (h !== w) throw new UsageError(`the models take square inputs, but ${data.name} has ${h}x${w} images`);
  const opts = { classes: data.classes.length, channels, inputSize: h };
  // A bad --model or --model-options is the command line's mistake (exit code 2); a checkpoint's model is not.
  if (!ckpt) return usage(() => create(run.model, { ...modelOptions, ...opts }));
  checkDataMatches(ckpt.meta, data, ckpt.path);
  const m = fromJSON(ckpt.meta.model as { name: string; options: Record<string, unknown> });
  // Compared after resolution, so that '{"D":96}' matches the [96] it resolves to.
  const stored = m.toJSON().options as Record<string, unknown>;
  const asked = create(m.name, { ...modelOptions, ...opts }).toJSON().options as Record<string, unknown>;
  for (const k of Object.keys(modelOptions)) {
    if (JSON.stringify(stored[k]) !== JSON.stringify(asked[k])) {
      throw new UsageError(`--resume: ${ckpt.path} holds ${m.name} with ${k} = ${JSON.stringify(stored[k])}, but --model-options asks for ${JSON.stringify(asked[k])}`);
    }
  }
  return m;
}

/** The augmentation a run's training split really gets (besides autoAugment): stored in checkpoints, checked on resume. */
function effectiveAugmentation(run: RunSettings, train: Dataset): { augment: boolean; erase: number } {
  const small = (train as { augment?: SmallAugment | null }).augment;
  if (small !== undefined) return { augment: small !== null, erase: small?.erase ?? 0 };
  return { augment: run.augment ?? true, erase: 0 }; // image folders: the paper's augmentation unless --no-augment
}

/** The run's settings: the flags, over the checkpoint's when resuming (contradictions refused), over the defaults. */
function resolveRun(a: TrainArgs, ckpt?: Checkpoint): RunSettings {
  const known = ckpt ? resumeSettings(a.given, ckpt.meta, ckpt.path) : a.given;
  const adamw = known.optimizer === 'adamw' || known.optimizer === 'lamb';  // Adam-style: betas and eps, no momentum
  const run = { ...TRAIN_DEFAULTS, precision: 'fp32', ...(adamw ? ADAMW_DEFAULTS : {}), ...known } as RunSettings;
  if (adamw && (a.given.momentum !== undefined || a.given.nesterov !== undefined)) throw new UsageError(`--momentum and --no-nesterov are SGD's: ${known.optimizer} has --betas and --eps`);
  if (!adamw && (run.betas !== undefined || run.eps !== undefined)) throw new UsageError('--betas and --eps are AdamW\'s and LAMB\'s: give --optimizer adamw or lamb too');
  if (!run.erase) delete run.erase; // a stored 0: augmentation without erasing
  return run;
}

/** Rank 0's answer on every rank (it alone reads the run directory); a plain run's own. */
async function rootSays(job: TrainRank | undefined, answer: boolean): Promise<boolean> {
  if (!job) return answer;
  const b = Uint8Array.of(answer ? 1 : 0);
  await job.group.broadcast(b, 0);
  return b[0] === 1;
}

/** The exit code of a process ended by a signal, as a shell reports it (SIGINT 130, SIGTERM 143). */
const signalExitCode = (sig: NodeJS.Signals) => 128 + os.constants.signals[sig];

/**
 * The threads of a run: --threads, else a resumed run's recorded count on the same world size (even above
 * the CPUs available now: the same count is what makes the resumed run bit-identical), else a launched
 * worker's share (lib/cli/train-rank.ts), else
 * every available CPU. A resumed run on other threads than its checkpoint's is warned about, not refused: it
 * continues the same run with the same settings, only the order of the kernels' sums changes (the last bits
 * of the results, README "Reliability"), and refusing would strand a run moved to a smaller machine.
 */
function runThreads(flag: number | undefined, ckpt: Checkpoint | undefined, worldSize: number): number {
  const recorded = ckpt ? resumedThreads(storedThreads(ckpt.meta), ckpt.meta, worldSize) : undefined;
  const threads = applyThreads(flag ?? recorded ?? launchedThreads());
  if (recorded !== undefined && flag === undefined && recorded > availableCpus()) {
    process.stderr.write(`crunet train: note: ${ckpt!.path} was trained with ${recorded} threads, more than the ${availableCpus()} CPUs available ` +
      'now; the run keeps that count so that it continues bit for bit (pass --threads to trade that for speed)\n');
  }
  if (recorded !== undefined && threads !== recorded) {
    process.stderr.write(`crunet train: warning: ${ckpt!.path} was trained with ${recorded} threads and this run has ${threads}: ` +
      'it continues the run, but its results will differ in the last bits from an uninterrupted run (README "Reliability")\n');
  }
  return threads;
}

export async function trainCommand(args: string[]): Promise<number> {
  const a = parseTrainArgs(args);
  const t0 = performance.now();
  // One rank of a data-parallel job when the environment names one (lib/cli/train-rank.ts); rank 0 alone
  // prints, logs and writes the run directory.
  if (!isDistributedEnv()) {
    const jobOnly = [a.distTimeoutMs !== undefined ? '--dist-timeout' : '', a.syncBatchNorm ? '--sync-batch-norm' : ''].filter(Boolean);
    if (jobOnly.length) throw new UsageError(`${jobOnly.join(', ')}: expected a distributed run (--nproc-per-node N, crunet launch or a scheduler's RANK and WORLD_SIZE), but this is a single process`);
  }
  const job = await joinJobFromEnv(a.distTimeoutMs);
  try {
    return await trainRun(a, t0, job);
  } finally {
    job?.group.destroy();
  }
}

async function trainRun(a: TrainArgs, t0: number, job: TrainRank | undefined): Promise<number> {
  const root = !job || job.root;
  const worldSize = job?.worldSize ?? 1;
  const say = (s: string) => root && (a.json ? process.stderr : process.stdout).write(s + '\n');
  const resume = a.resume === undefined ? undefined : checkpointFile(a.resume);
  const ckpt = resume ? loadCheckpoint(resume) : undefined; // a damaged checkpoint stops here, before any work
  const run = resolveRun(a, ckpt);
  if (ckpt) run.batchSize = resumedBatchSize(ckpt.meta, ckpt.path, run.batchSize, worldSize);
  const threads = runThreads(a.threads, ckpt, worldSize);
  const kind = datasetKind(run.dataset);
  if (run.erase !== undefined && kind === 'folder') {
    throw new UsageError('--erase is for IDX and CIFAR data sets; image folders get the paper\'s augmentation (--augment / --no-augment)');
  }
  if (run.autoAugment !== undefined && kind === 'folder') {
    throw new UsageError('--randaugment and --trivialaugment are for IDX and CIFAR data sets; image folders get the paper\'s augmentation');
  }
  if (run.earlyStopPatience !== undefined && run.validation === undefined) {
    throw new UsageError('--early-stop-patience selects on a validation split: give --validation F too (the test set is never used to select)');
  }
  const auto = parseAutoAugment(run.autoAugment);
  const augment = run.erase !== undefined || auto ? { ...(run.erase !== undefined ? { erase: run.erase } : {}), ...(auto ? { auto } : {}) } : run.augment;
  if (run.valSplit !== undefined && kind !== 'folder') throw new UsageError('--val-split is for image folders (folder:PATH); the other data sets have their own test split');
  const data = await openDataset(run.dataset, {
    ...(augment !== undefined ? { augment } : {}), seed: run.seed, onBadImage: a.badImages, ...a.imageLimits, ...(run.valSplit !== undefined ? { valSplit: run.valSplit } : {}),
  });
  const limited = limitDataset(data.train, run.limitTrain, run.seed);
  const split = run.validation !== undefined ? usage(() => holdOut(limited, run.validation!, run.seed)) : undefined;
  const train = split?.train ?? limited;
  const test = limitDataset(data.test, run.limitTest, run.seed + 1);
  const model = modelFor(run, a.modelOptions, train, ckpt);
  const augmentation = effectiveAugmentation(run, data.train);
  // Each rank's part of an epoch is floor(n / W) samples (shard 'drop'): floor(n / (W B)) batches, as one process at W x B.
  const batchesPerEpoch = Math.floor(train.length / (run.batchSize * worldSize));
  // Schedules count optimizer updates: with accumulation, an epoch's last update takes the batches left.
  const stepsPerEpoch = Math.ceil(batchesPerEpoch / run.accumulate);
  // The Trainer finds an epoch's last batch from the whole training set's size, not a rank's shard.
  if (run.accumulate > 1 && worldSize > 1) throw new UsageError('--accumulate with several processes is not supported yet: use one process, or a larger --batch-size');
  if (stepsPerEpoch < 1) {
    const limited = run.limitTrain !== undefined ? ` (--limit-train ${run.limitTrain})` : '';
    const global = worldSize > 1 ? ` x ${worldSize} processes` : '';
    throw new UsageError(`--batch-size ${run.batchSize}${global} is more than the ${train.length} training samples of ${run.dataset}${limited}: a step needs a whole batch`);
  }
  const ranWith = ckpt?.meta.schedule?.stepsPerEpoch;
  if (ranWith !== undefined && ranWith !== stepsPerEpoch) {
    throw new UsageError(`--resume: ${ckpt!.path} is from a run of ${ranWith} steps per epoch, but ${run.dataset} gives ${stepsPerEpoch} at batch ${run.batchSize} ` +
      `(${train.length} training samples): has the data set changed?`);
  }
  const storedSchedule = ckpt?.meta.schedule;
  const schedule = storedSchedule ? createSchedule(storedSchedule, stepsPerEpoch) : usage(() => createSchedule(scheduleConfig(run, stepsPerEpoch), stepsPerEpoch));
  const out = a.out ?? (resume ? path.dirname(resume) : path.join('runs', `${model.name}-${run.dataset.split(':')[0]}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  if (root) prepareOutDir(out);
  const ckptFile = path.join(out, 'checkpoint.safetensors');

  const clip = run.clipGradNorm !== undefined ? { clipGradNorm: run.clipGradNorm } : {};
  const optimizer: OptimizerOptions = run.optimizer !== 'sgd'
    ? { type: run.optimizer as OptimizerType, lr: run.lr, ...(run.betas ? { betas: run.betas } : {}), ...(run.eps !== undefined ? { eps: run.eps } : {}), weightDecay: run.weightDecay, ...clip }
    : { type: 'sgd', lr: run.lr, momentum: run.momentum, nesterov: run.nesterov && run.momentum > 0, weightDecay: run.weightDecay, ...clip };
  const ema = run.ema !== undefined ? { decay: run.ema, warmup: !!run.emaWarmup } : undefined;
  const mix = { mixupAlpha: run.mixup, cutmixAlpha: run.cutmix, prob: run.mixProb, switchProb: run.mixSwitchProb };
  const mixing = mixEnabled(mix);
  const session: Session = await compile(model, {
    device: a.device, batchSize: run.batchSize, precision: run.precision, seed: run.seed, optimizer, ...(ema ? { ema } : {}), labelSmoothing: run.labelSmoothing,
    softTargets: mixing, ...(job ? { distributed: { group: job.group, syncBatchNorm: a.syncBatchNorm } } : {}),
  });
  const workers = a.workers !== undefined ? { workers: a.workers } : {};
  // Training: equal parts, the tail of each epoch's order dropped (shard.ts); evaluation: every sample once.
  const part = (tail: 'drop' | 'uneven') => (job ? { shard: { rank: job.rank, worldSize, tail } } : {});
  const trainLoader = new DataLoader(train, { batchSize: run.batchSize, shuffle: true, seed: run.seed, dropLast: true, ...workers, ...part('drop') });
  const testLoader = new DataLoader(test, { batchSize: run.batchSize, shuffle: false, seed: run.seed, ...workers, ...part('uneven') });
  const valLoader = split ? new DataLoader(split.validation, { batchSize: run.batchSize, shuffle: false, seed: run.seed, ...workers, ...part('uneven') }) : undefined;
  const trainSource = mixing ? usage(() => mixedBatches(trainLoader, { ...mix, seed: run.seed, classes: train.classes.length })) : trainLoader;

  let startEpoch = 0, startStep = 0;
  if (ckpt) {
    restoreSession(session, ckpt); // refuses another model's checkpoint before touching the session
    startEpoch = ckpt.meta.epoch;
    startStep = ckpt.meta.step;
  }
  const log = root ? new MetricsLog(path.join(out, 'metrics.jsonl'), ckpt ? { resumeAfterStep: startStep } : { truncate: true }) : undefined;
  const tb = root ? new TensorBoardWriter(out, ckpt ? { resumeAtStep: startStep } : {}) : undefined;
  // Early stopping's state: the best validation top-1 so far and its epoch (1-based), carried in checkpoints.
  const stored = ckpt?.meta.earlyStop as { bestEpoch: number; bestAcc: number } | undefined;
  const best = { epoch: stored?.bestEpoch ?? 0, acc: stored?.bestAcc ?? -Infinity };
  const params = model.parameterCount();
  const checkpoint = async (epoch: number, step: number, file = ckptFile) => root && saveCheckpoint(file, session, {
    model: model.toJSON(), epoch, step, schedule: schedule.config, optimizer, ...trainMeta(run, train, augmentation, threads),
    ...(split ? { earlyStop: { bestEpoch: best.epoch, bestAcc: best.acc } } : {}), ...(job ? { worldSize } : {}),
  });
  say(`crunet train: ${model.name} (${params.toLocaleString('en-US')} parameters) on ${run.dataset}: ${train.length} train / ` +
      `${split ? `${split.validation.length} validation / ` : ''}${test.length} test samples, ` +
      `batch ${run.batchSize}${job ? ` per process x ${worldSize} processes` : ''}, ${run.epochs} epochs, lr ${run.lr} ${schedule.config.type}, ${a.device}, ${threads} thread${threads > 1 ? 's' : ''}; writing ${out}`);
  // A run that early stopping ended is complete: resuming it evaluates it, as a run that ran all its epochs.
  const stoppedEarly = !!ckpt && run.earlyStopPatience !== undefined && best.epoch > 0 && startEpoch - best.epoch >= run.earlyStopPatience;
  if (ckpt) {
    say(`resuming from ${resume} after epoch ${startEpoch} (step ${startStep})${startEpoch >= run.epochs ? ': the run is complete, evaluating it' : ''}` +
        (stoppedEarly && startEpoch < run.epochs ? `: early stopping ended the run (best validation top-1 at epoch ${best.epoch}), evaluating it` : ''));
  }
  // TensorBoard's resume marker (at startStep) also drops the scalars of the epoch that ended there, which
  // the earlier file logged: write them again, from the log, at their own times.
  if (ckpt && log) for (const r of readMetrics(log.path)) if (r.step === startStep && r.type !== 'step') tb!.scalars(startStep, metricsScalars(r), r.time);
  log?.write({ type: 'run', epochsFrom: 1, model: model.toJSON(), dataset: run.dataset, args: { ...run, device: a.device, threads, ...(job ? { worldSize } : {}) }, params, startEpoch, startStep });
  /** A metrics line, and its scalars in TensorBoard. */
  const record = (r: MetricsRecord & { step: number }) => {
    if (!log) return;
    const written = log.write(r);
    tb!.scalars(r.step, metricsScalars(written), written.time);
  };

  const bar = new ProgressBar({ stream: root ? process.stderr : { write: () => true } });
  // The progress bar's ETA is the epoch's; after each epoch, the whole run's at this invocation's pace.
  const tFit = performance.now();
  const runEta = (done: number) => {
    if (done >= run.epochs) return '';
    const eta = etaSeconds(done - startEpoch, run.epochs - startEpoch, (performance.now() - tFit) / 1000);
    return `; run ETA ${formatDuration(eta)}`;
  };
  // Lines and TensorBoard scalars count epochs from 1 (the Trainer's epoch indices count from 0).
  const evalLine = (epoch: number, step: number, t: EvalStats, m?: EvalStats) => {
    record({ type: 'eval', epoch: epoch + 1, step, loss: t.loss, acc: t.top1, top5: t.top5, ...(m ? { emaLoss: m.loss, emaAcc: m.top1, emaTop5: m.top5 } : {}) });
  };
  // --ema: the test set is also scored with the moving average's weights after each epoch.
  let lastEma: EvalStats | undefined;
  const smoothed = [run.labelSmoothing > 0 ? `label smoothing ${run.labelSmoothing}` : '', mixing ? 'mixed targets' : ''].filter(Boolean).join(', ');
  const plotLabels = { train: smoothed ? `train (${smoothed})` : 'train', test: 'test (plain cross-entropy)' };
  let valNote = '';
  const trainer: Trainer = new Trainer({
    session, train: trainSource, test: testLoader, schedule, epochs: stoppedEarly ? startEpoch : run.epochs, startEpoch, startStep, accumulate: run.accumulate, group: job?.group,
    callbacks: {
      onEpochStart: (epoch) => bar.start(epoch + 1, batchesPerEpoch, run.epochs),
      onStep: (s) => {
        bar.update({ step: s.batch + 1, images: s.epochImages, loss: s.epochLoss, acc: s.epochAcc });
        if (s.step % 50 === 0 && s.gradNorm !== undefined) {
          record({ type: 'step', epoch: s.epoch + 1, step: s.step, lr: s.lr, loss: s.loss, acc: s.correct / s.size, gradNorm: s.gradNorm });
        }
      },
      // The epoch's line and checkpoint come before its evaluation: a failing evaluation cannot cost the epoch.
      onEpochTrained: async (e) => {
        bar.end();
        record({
          type: 'epoch', epoch: e.epoch + 1, step: e.step, lr: e.train.lr, loss: e.train.loss, acc: e.train.acc, imagesPerSec: e.train.imagesPerSec, seconds: e.train.seconds,
          ...(e.train.skippedSteps ? { skippedSteps: e.train.skippedSteps } : {}),
        });
        if (valLoader) {
          // Validation before the checkpoint, so that the early-stopping state it stores includes this epoch.
          const v = await trainer.evaluate(valLoader, e.epoch);
          if (trainer.isInterrupted) return; // partial: the epoch is redone on resume
          record({ type: 'val', epoch: e.epoch + 1, step: e.step, loss: v.loss, acc: v.top1, top5: v.top5 });
          if (v.top1 > best.acc) {
            best.epoch = e.epoch + 1;
            best.acc = v.top1;
            await checkpoint(e.epoch + 1, e.step, path.join(out, 'best.safetensors'));
          }
          valNote = `; validation loss ${v.loss.toFixed(4)} top-1 ${(100 * v.top1).toFixed(2)}% (best ${(100 * best.acc).toFixed(2)}% at epoch ${best.epoch})`;
        }
        await checkpoint(e.epoch + 1, e.step);
      },
      onEpochEnd: async (e) => {
        const m = e.test && ema ? await trainer.evaluate(testLoader, e.epoch, { ema: true }) : undefined;
        if (trainer.isInterrupted) return; // a partial score is not the data set's; the epoch's evaluation is redone on resume
        lastEma = m ?? lastEma;
        if (e.test) evalLine(e.epoch, e.step, e.test, m);
        const skipped = trainLoader.skippedCount + testLoader.skippedCount;
        say(`epoch ${e.epoch + 1}/${run.epochs}: train loss ${e.train.loss.toFixed(4)} acc ${(100 * e.train.acc).toFixed(2)}% ` +
            `(${e.train.imagesPerSec.toFixed(0)} img/s)` + (e.train.skippedSteps ? `; ${e.train.skippedSteps} steps skipped by the loss scaler` : '') + valNote + (e.test ? `; test loss ${e.test.loss.toFixed(4)} top-1 ${(100 * e.test.top1).toFixed(2)}% top-5 ${(100 * e.test.top5).toFixed(2)}%` : '') +
            (m ? `; EMA test top-1 ${(100 * m.top1).toFixed(2)}%` : '') +
            (skipped ? `; ${skipped} unreadable images skipped so far${job ? ' on rank 0' : ''} (--bad-images skip)` : '') + runEta(e.epoch + 1));
        if (log) {
          const records = readMetrics(log.path);
          writePlot(path.join(out, 'plot.svg'), epochHistory(records), { title: `${model.name} on ${run.dataset}`, subtitle: `batch ${run.batchSize}, lr ${run.lr} ${schedule.config.type}, seed ${run.seed}`, labels: plotLabels });
          writeFileAtomicSync(path.join(out, 'metrics.csv'), metricsCsv(records));
        }
        if (a.stopAfterEpoch !== undefined && e.epoch + 1 >= a.stopAfterEpoch && e.epoch + 1 < run.epochs) {
          say(`stopping after epoch ${e.epoch + 1} as asked (--stop-after-epoch); continue with --resume ${ckptFile}`);
          trainer.stop();
        } else if (run.earlyStopPatience !== undefined && e.epoch + 1 - best.epoch >= run.earlyStopPatience && e.epoch + 1 < run.epochs) {
          say(`early stop after epoch ${e.epoch + 1}: no better validation top-1 in ${run.earlyStopPatience} epoch${run.earlyStopPatience > 1 ? 's' : ''} ` +
              `(--early-stop-patience); best.safetensors holds epoch ${best.epoch} (validation top-1 ${(100 * best.acc).toFixed(2)}%)`);
          trainer.stop();
        }
      },
    },
  });

  // Ctrl-C or SIGTERM: stop after the step in flight (Trainer.interrupt), report what the checkpoint on
  // disk holds; a second signal exits at once (every file write is atomic or a whole appended line).
  let signal: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (job) {
      // Ranks stop at different steps, and one waiting in a step's gradient exchange for a stopped rank would
      // wait out the group's timeout: a rank of a job exits now. What is lost is the same as below: the
      // partial epoch, redone exactly on resume.
      process.stderr.write(`\ncrunet train: ${sig}: rank ${job.rank} exits now` +
        (root ? `; ${ckptFile} holds the last whole epoch. Continue with: crunet train --nproc-per-node N --resume ${out}\n` : '\n'));
      process.exit(signalExitCode(sig));
    }
    if (signal) {
      process.stderr.write(`\ncrunet train: second signal (${sig}): exiting now; ${ckptFile} holds the last whole epoch\n`);
      process.exit(signalExitCode(sig));
    }
    signal = sig;
    process.stderr.write(`\ncrunet train: ${sig}: stopping after the step in flight (a second signal exits at once)\n`);
    trainer.interrupt();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let result, final: EvalStats | undefined;
  try {
    // The state the run starts from, in its --out: a run stopped before its first epoch ends can be resumed too.
    if (!ckpt || path.resolve(ckpt.path) !== path.resolve(ckptFile)) await checkpoint(startEpoch, startStep);
    // A run killed between an epoch's checkpoint and its evaluation lost that eval line: evaluate it now.
    if (ckpt && startEpoch > 0 && (await rootSays(job, !!log && !numberEpochsFrom1(readMetrics(log.path)).some((r) => r.type === 'eval' && r.epoch === startEpoch)))) {
      say(`${log!.path} has no evaluation of epoch ${startEpoch} (the run stopped before it): evaluating it first`);
      const t = await trainer.evaluate(testLoader, startEpoch - 1);
      if (!trainer.isInterrupted) evalLine(startEpoch - 1, startStep, (final = t));
    }
    result = await trainer.fit();
    // A resumed run that was already complete trains nothing: evaluate what it holds.
    if (!result.interrupted) final = result.epochs.at(-1)?.test ?? final ?? (await trainer.evaluate(testLoader));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await trainLoader.close();
    await testLoader.close();
    await valLoader?.close();
    log?.close();
    tb?.close();
    session.dispose();
  }
  if (signal) {
    bar.end();
    const i = result.interrupted;
    const kept = loadCheckpoint(ckptFile).meta;
    const holds = kept.epoch === 0 ? 'the run\'s initial state' : `epoch ${kept.epoch} (step ${kept.step})`;
    // Stopped in the validation pass, the epoch's checkpoint was not written yet: its steps are lost too.
    const lost = (i?.during === 'training' || (i?.during === 'evaluation' && kept.epoch <= i.epoch)) && i.steps > 0
      ? `; the ${i.steps} steps of epoch ${i.epoch + 1} are lost and are redone, exactly, on resume`
      : i?.during === 'evaluation' ? `; the evaluation of epoch ${i.epoch + 1} is redone on resume` : '';
    process.stderr.write(`crunet train: stopped by ${signal}${i ? ` in epoch ${i.epoch + 1}/${run.epochs}` : ''}: ${ckptFile} holds ${holds}${lost}. ` +
      `Continue with: crunet train --resume ${out}\n`);
    return signalExitCode(signal);
  }
  const epoch = result.epochs.at(-1) ? result.epochs.at(-1)!.epoch + 1 : startEpoch;
  const trained = result.epochs.reduce((s, e) => s + e.train.images, 0);
  const trainSeconds = result.epochs.reduce((s, e) => s + e.train.seconds, 0);
  final = final!;
  const summary = {
    model: model.name, dataset: run.dataset, epoch, epochs: run.epochs, testLoss: final.loss, top1: final.top1, top5: final.top5,
    imagesPerSec: trainSeconds > 0 ? trained / trainSeconds : 0, wallSeconds: (performance.now() - t0) / 1000, params, out,
    ...(lastEma ? { emaTop1: lastEma.top1, emaTestLoss: lastEma.loss } : {}),
  };
  say(`${epoch < run.epochs ? `after epoch ${epoch} of ${run.epochs}: ` : ''}test accuracy ${(100 * final.top1).toFixed(2)}% (top-5 ${(100 * final.top5).toFixed(2)}%), loss ${final.loss.toFixed(4)}; ` +
      `${summary.imagesPerSec.toFixed(0)} train img/s; ${summary.wallSeconds.toFixed(0)} s in all; results in ${out}`);
  if (a.json && root) console.log(JSON.stringify(summary));
  return 0;
}
