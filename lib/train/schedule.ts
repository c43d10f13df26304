// Learning-rate schedules, computed in TypeScript and passed to Session.step({lr}) every step.
// The learning rate is a pure function of the global step (0-based: the step about to run) and the
// steps per epoch, so a resumed run continues exactly where it stopped, and the config is plain JSON
// (it goes into checkpoints).
//
// The definitions are PyTorch's (torch.optim.lr_scheduler), in closed form, with t the global step,
// E = floor(t / stepsPerEpoch) the epoch, and lr the base learning rate:
//   constant   lr
//   step       StepLR stepped per epoch:       lr * gamma ^ floor(E / stepSize)
//   multistep  MultiStepLR stepped per epoch:  lr * gamma ^ (number of milestones <= E)
//   cosine     CosineAnnealingLR stepped per step over T = totalSteps - W steps, after the warmup:
//              minLr + (lr - minLr) * (1 + cos(pi * min(t - W, T) / T)) / 2
//              (PyTorch's closed form rises again past T; here it stays at minLr)
// Warmup (LinearLR, total_iters = W, end_factor 1) over the first W steps:
//   factor(t) = startFactor + (1 - startFactor) * t / W        for t < W, else 1
//   constant, step, multistep: lr(t) = main(t) * factor(t)    (ChainedScheduler: milestones stay
//                                                               absolute epochs)
//   cosine:                    lr(t) = lr * factor(t) for t < W, then the cosine above
//                                                              (SequentialLR: the cosine starts after
//                                                               the warmup and still ends at totalSteps)
// startFactor defaults to LinearLR's 1/3.

export interface WarmupConfig {
  /** Warmup length in steps, or in epochs (times stepsPerEpoch); give one. */
  steps?: number;
  epochs?: number;
  /** The first step's factor of the base lr (LinearLR's start_factor, default 1/3). */
  startFactor?: number;
}

interface Common {
  /** Base learning rate. */
  lr: number;
  warmup?: WarmupConfig;
  /** Saved with the config so lrAt needs nothing else; createSchedule fills it in. */
  stepsPerEpoch?: number;
}

export type ScheduleConfig =
  | (Common & { type: 'constant' })
  /** Multiply by gamma every stepSize epochs. */
  | (Common & { type: 'step'; stepSize: number; gamma?: number })
  /** Multiply by gamma at each milestone epoch. */
  | (Common & { type: 'multistep'; milestones: number[]; gamma?: number })
  /** Anneal to minLr (default 0) at the end of training: give totalSteps, or epochs (x stepsPerEpoch). */
  | (Common & { type: 'cosine'; totalSteps?: number; epochs?: number; minLr?: number });

export type ScheduleType = ScheduleConfig['type'];
export const SCHEDULE_TYPES: readonly ScheduleType[] = ['constant', 'step', 'multistep', 'cosine'];

/** A validated schedule bound to its steps per epoch. */
export interface Schedule {
  /** The config with stepsPerEpoch filled in (JSON: save it, and createSchedule(it) later). */
  readonly config: ScheduleConfig;
  readonly stepsPerEpoch: number | undefined;
  /** Warmup length in steps (0 without warmup). */
  readonly warmupSteps: number;
  lrAt(step: number): number;
}

function fail(msg: string): never {
  throw new RangeError(`schedule: ${msg}`);
}

const isPosInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;
const isNonNegInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isRate = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

/**
 * Checks a config and binds it to a number of steps per epoch (needed by step, multistep, cosine over
 * epochs and warmup in epochs). Errors name the field and the value received.
 */
export function createSchedule(config: ScheduleConfig, stepsPerEpoch?: number): Schedule {
  if (!config || typeof config !== 'object') fail(`expected a config object, but received ${JSON.stringify(config)}`);
  const spe = stepsPerEpoch ?? config.stepsPerEpoch;
  if (spe !== undefined && !isPosInt(spe)) fail(`expected stepsPerEpoch to be a positive integer, but received ${spe}`);
  const needSpe = (why: string): number => spe ?? fail(`${why} needs stepsPerEpoch`);
  if (!isRate(config.lr)) fail(`expected lr to be a finite number >= 0, but received ${config.lr}`);
  if (!SCHEDULE_TYPES.includes(config.type)) fail(`unknown type ${JSON.stringify(config.type)} (known: ${SCHEDULE_TYPES.join(', ')})`);

  let warmupSteps = 0;
  let startFactor = 1 / 3;
  if (config.warmup !== undefined) {
    const w = config.warmup;
    if ((w.steps === undefined) === (w.epochs === undefined)) fail(`warmup needs exactly one of steps and epochs, but received ${JSON.stringify(w)}`);
    if (w.steps !== undefined) {
      if (!isNonNegInt(w.steps)) fail(`expected warmup.steps to be an integer >= 0, but received ${w.steps}`);
      warmupSteps = w.steps;
    } else {
      if (!isNonNegInt(w.epochs)) fail(`expected warmup.epochs to be an integer >= 0, but received ${w.epochs}`);
      warmupSteps = w.epochs * needSpe('warmup in epochs');
    }
    if (w.startFactor !== undefined) {
      if (!(typeof w.startFactor === 'number' && w.startFactor >= 0 && w.startFactor <= 1)) fail(`expected warmup.startFactor to be in [0, 1], but received ${w.startFactor}`);
      startFactor = w.startFactor;
    }
  }

  let main: (t: number) => number;
  const lr = config.lr;
  switch (config.type) {
    case 'constant':
      main = () => lr;
      break;
    case 'step': {
      const per = needSpe("type 'step'");
      const gamma = config.gamma ?? 0.1;
      if (!isPosInt(config.stepSize)) fail(`expected stepSize (epochs) to be a positive integer, but received ${config.stepSize}`);
      if (!isRate(gamma)) fail(`expected gamma to be a finite number >= 0, but received ${gamma}`);
      main = (t) => lr * gamma ** Math.floor(Math.floor(t / per) / config.stepSize);
      break;
    }
    case 'multistep': {
      const per = needSpe("type 'multistep'");
      const gamma = config.gamma ?? 0.1;
      const ms = config.milestones;
      if (!Array.isArray(ms) || !ms.every(isNonNegInt) || ms.some((m, i) => i > 0 && m < ms[i - 1]!)) {
        fail(`expected milestones (epochs) to be a non-decreasing list of integers >= 0, but received ${JSON.stringify(ms)}`);
      }
      if (!isRate(gamma)) fail(`expected gamma to be a finite number >= 0, but received ${gamma}`);
      main = (t) => {
        const e = Math.floor(t / per);
        let k = 0;
        while (k < ms.length && ms[k]! <= e) k++; // bisect_right, as MultiStepLR
        return lr * gamma ** k;
      };
      break;
    }
    case 'cosine': {
      const minLr = config.minLr ?? 0;
      if (!isRate(minLr)) fail(`expected minLr to be a finite number >= 0, but received ${minLr}`);
      if ((config.totalSteps === undefined) === (config.epochs === undefined)) {
        fail(`type 'cosine' needs exactly one of totalSteps and epochs, but received totalSteps ${config.totalSteps} and epochs ${config.epochs}`);
      }
      let total: number;
      if (config.totalSteps !== undefined) {
        if (!isPosInt(config.totalSteps)) fail(`expected totalSteps to be a positive integer, but received ${config.totalSteps}`);
        total = config.totalSteps;
      } else {
        if (!isPosInt(config.epochs)) fail(`expected epochs to be a positive integer, but received ${config.epochs}`);
        total = config.epochs * needSpe("type 'cosine' over epochs");
      }
      if (warmupSteps >= total) fail(`expected a warmup shorter than the cosine's ${total} steps, but received ${warmupSteps} steps`);
      const T = total - warmupSteps;
      main = (t) => minLr + ((lr - minLr) * (1 + Math.cos((Math.PI * Math.min(Math.max(t - warmupSteps, 0), T)) / T))) / 2;
      break;
    }
  }

  const W = warmupSteps;
  const factor = (t: number) => (t < W ? startFactor + ((1 - startFactor) * t) / W : 1);
  const lrAtStep = (t: number): number => {
    if (!isNonNegInt(t)) throw new RangeError(`lrAt: expected step to be an integer >= 0, but received ${t}`);
    if (config.type === 'cosine' && t >= W) return main(t);
    if (config.type === 'cosine') return lr * factor(t);
    return main(t) * factor(t);
  };
  const saved: ScheduleConfig = spe === undefined ? { ...config } : { ...config, stepsPerEpoch: spe };
  return { config: saved, stepsPerEpoch: spe, warmupSteps: W, lrAt: lrAtStep };
}

/** The learning rate of global step `step` (0-based), as a pure function of the config. */
export function lrAt(config: ScheduleConfig, step: number, stepsPerEpoch?: number): number {
  return createSchedule(config, stepsPerEpoch).lrAt(step);
}
