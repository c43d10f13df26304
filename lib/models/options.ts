// User options -> a checked, fully resolved option set (what toJSON stores) and the NetSpec it builds.
// Every rejection names the model, the option, the constraint and the value received.

import type { NetSpec, StageSpec } from './spec.js';

export interface ModelOptions {
  /** Number of classes of the fc layer (default 1000 for ImageNet models, 10 for small ones). */
  classes?: number;
  /** Square input side (default 224 for ImageNet models, 28 for small ones). */
  inputSize?: number;
  /** Input channels (default 3; small models: 1 at 28x28, the MNIST family, else 3). */
  channels?: number;
  /** CRU factor-set length L: consecutive units sharing one input factor and core (CRU-Nets only). */
  L?: number;
  /**
   * CRU width D (CRU-Nets only): one number per CRU stage, or one number for the last CRU stage with the
   * earlier CRU stages scaled in the model's proportions (CRU-Net-116: D = 704 gives 352 at conv3).
   */
  D?: number | number[];
  /** Bottleneck width W of the first non-CRU stage; it doubles per stage (ResNeXt 32x4d: 128). */
  width?: number;
  /** Groups R of the non-CRU 3x3 cores ('depthwise' = W, the Nx1d unit). */
  groups?: number | 'depthwise';
  /** BatchNorm momentum in PyTorch's convention (0.1 = MXNet's 0.9). */
  bnMomentum?: number;
  bnEps?: number;
  /** Build a baseline in the pre-activation (CRU-Net) style; CRU-Nets are pre-activation only. */
  preActivation?: boolean;
}

export type ResolvedOptions = Required<Omit<ModelOptions, 'L' | 'D'>> & { L?: number; D?: number[] };

/** A model's fixed layout plus the defaults of everything an option may change. */
export interface Template {
  family: 'imagenet' | 'small';
  stemWidth: number;
  units: number[];
  outs: number[];
  strides: number[];
  /** Which stages are CRU stages. */
  cru: boolean[];
  defaults: ResolvedOptions;
}

const COMMON = ['classes', 'inputSize', 'channels', 'width', 'groups', 'bnMomentum', 'bnEps', 'preActivation'] as const;
const CRU_ONLY = ['L', 'D'] as const;

function isInt(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min;
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/** Validates `given` against the template and resolves it; throws RangeErrors and TypeErrors that name the option. */
export function resolveOptions(model: string, t: Template, given: ModelOptions = {}): { options: ResolvedOptions; spec: NetSpec } {
  // Typed explicitly so that TypeScript narrows after `if (...) fail(...)`.
  // Argument errors: a RangeError for a value not allowed, a TypeError (`kind`) for the wrong kind of thing.
  const fail: (msg: string, kind?: 'type') => never = (msg, kind) => {
    const text = `models.create('${model}'): ${msg}`;
    throw kind === 'type' ? new TypeError(text) : new RangeError(text);
  };
  if (given === null || typeof given !== 'object' || Array.isArray(given)) fail(`expected options to be an object, but received ${show(given)}`, 'type');
  const isCru = t.cru.some(Boolean);
  const allowed: readonly string[] = isCru ? [...COMMON, ...CRU_ONLY] : COMMON;
  for (const key of Object.keys(given)) {
    if ((given as Record<string, unknown>)[key] === undefined) continue;
    if ((CRU_ONLY as readonly string[]).includes(key) && !isCru) fail(`option ${key} applies only to CRU-Net models (${model} has no CRU stage)`);
    if (!allowed.includes(key)) fail(`unknown option ${key}; valid options: ${allowed.join(', ')}`);
  }
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as ModelOptions;
  const o = { ...t.defaults, ...defined } as ModelOptions;
  // Small models read 1 channel at 28x28 (Fashion-MNIST) and 3 otherwise (CIFAR), unless told.
  if (t.family === 'small' && defined.channels === undefined) o.channels = o.inputSize === 28 ? 1 : 3;

  if (!isInt(o.classes, 2)) fail(`expected option classes to be an integer >= 2, but received ${show(o.classes)}`);
  if (!isInt(o.channels, 1)) fail(`expected option channels to be an integer >= 1, but received ${show(o.channels)}`);
  const stride = (t.family === 'imagenet' ? 4 : 1) * t.strides.reduce((a, b) => a * b, 1);
  if (!isInt(o.inputSize, stride)) {
    const halvings = Math.log2(stride);
    fail(`expected option inputSize to be an integer >= ${stride}: ${model} halves the resolution ${halvings} times (total stride ${stride}), but received ${show(o.inputSize)}`);
  }
  if (typeof o.bnMomentum !== 'number' || !(o.bnMomentum >= 0 && o.bnMomentum <= 1)) fail(`expected option bnMomentum to be a number in [0, 1] (PyTorch's convention), but received ${show(o.bnMomentum)}`);
  if (typeof o.bnEps !== 'number' || !(o.bnEps > 0)) fail(`expected option bnEps to be a positive number, but received ${show(o.bnEps)}`);
  if (typeof o.preActivation !== 'boolean') fail(`expected option preActivation to be a boolean, but received ${show(o.preActivation)}`, 'type');
  if (isCru && !o.preActivation) fail('expected option preActivation to be true (CRU-Net models are pre-activation only: docs/MODELS.md section 2), but received false');
  if (!isInt(o.width, 1)) fail(`expected option width to be a positive integer, but received ${show(o.width)}`);
  if (o.groups !== 'depthwise' && !isInt(o.groups, 1)) fail(`expected option groups to be a positive integer or 'depthwise', but received ${show(o.groups)}`);
  const plainStages = t.cru.map((c, i) => (c ? -1 : i)).filter((i) => i >= 0);
  if (o.groups !== 'depthwise') {
    for (const i of plainStages) {
      const w = o.width * 2 ** i;
      if (w % o.groups) fail(`expected option groups to divide the bottleneck width of every non-CRU stage, but received ${o.groups}, and conv${i + 2}'s width is ${w} (width ${o.width} doubled per stage)`);
    }
  }

  let D: number[] | undefined;
  if (isCru) {
    if (!isInt(o.L, 1)) fail(`expected option L (the CRU factor-set length) to be an integer >= 1, but received ${show(o.L)}`);
    const names = t.cru.map((c, i) => (c ? `conv${i + 2}` : '')).filter(Boolean);
    D = resolveD(o.D, t.defaults.D!, names, fail);
  }

  const options: ResolvedOptions = {
    classes: o.classes, inputSize: o.inputSize, channels: o.channels, width: o.width, groups: o.groups,
    bnMomentum: o.bnMomentum, bnEps: o.bnEps, preActivation: o.preActivation, ...(isCru ? { L: o.L, D } : {}),
  };
  let k = 0;
  const stages: StageSpec[] = t.units.map((units, i) => {
    const base = { units, out: t.outs[i]!, stride: t.strides[i]! };
    if (t.cru[i]) return { kind: 'cru', ...base, width: D![k++]!, setLength: o.L! };
    const width = o.width! * 2 ** i;
    return { kind: 'plain', ...base, width, groups: o.groups === 'depthwise' ? width : o.groups! };
  });
  return {
    options,
    spec: {
      channels: o.channels, inputSize: o.inputSize, classes: o.classes,
      stem: { kind: t.family === 'imagenet' ? 'imagenet' : 'small', width: t.stemWidth },
      stages, preActivation: o.preActivation, bn: { momentum: o.bnMomentum, eps: o.bnEps },
    },
  };
}

/** A scalar D sets the last CRU stage and scales the others by the model's default proportions. */
function resolveD(D: number | number[] | undefined, defaults: number[], stages: string[], fail: (m: string) => never): number[] {
  if (Array.isArray(D)) {
    if (D.length !== defaults.length) fail(`expected option D to hold one width per CRU stage (${stages.join(', ')}), but received ${JSON.stringify(D)}`);
    D.forEach((d) => isInt(d, 1) || fail(`expected option D to hold positive integers, but received ${JSON.stringify(D)}`));
    return [...D];
  }
  if (!isInt(D, 1)) return fail(`expected option D (the CRU width) to be a positive integer or an array of them, but received ${show(D)}`);
  const last = defaults[defaults.length - 1]!;
  return defaults.map((d, i) => {
    const scaled = (d * D) / last;
    if (!Number.isInteger(scaled)) fail(`option D (${D}) must keep every CRU width an integer: ${stages[i]}'s would be ${D} x ${d}/${last} = ${scaled}; pass one width per CRU stage (${stages.join(', ')}) instead`);
    return scaled;
  });
}
