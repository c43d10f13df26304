import { joinDataParallel, rankFacts } from '../dist/ddp.js';
import { duringStep, nativeGroup, type ProcessGroup } from '../dist/process-group.js';
import { checkLabelSmoothing, type Graph } from '../graph/builder.js';
import type { AttrValue, GraphIR } from '../graph/ir.js';
import {
  algorithmChoices, native, type AlgorithmCacheReport, type AlgorithmChoice, type Feed, type NativeLossScale, type NativeMemory, type NativeOptimizer, type NativeSession,
} from './native.js';

export type { AlgorithmCacheReport, AlgorithmCandidate, AlgorithmChoice } from './native.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';

/**
 * Data-parallel training (DDP's semantics; docs/ARCHITECTURE.md, "Several processes"): every rank compiles
 * the same model with its own shard of each batch. compile() checks across the group that the models,
 * batch sizes and precisions agree (an Error naming the rank and what differs) and copies rank 0's
 * parameters and batch-norm statistics to every rank; each step() then averages the gradients over the
 * ranks before the update, so N ranks at batch B train as one process at batch N x B (without batch norm).
 */
export interface DistributedOptions {
  /** The group of this job's processes (crunet.dist.initProcessGroup). */
  group: ProcessGroup;
  /** Gradients are reduced in buckets of about this many megabytes (default 25, as DDP's bucket_cap_mb). */
  bucketMB?: number;
  /**
   * Batch norm's training statistics over the global batch (every rank's shard; PyTorch's SyncBatchNorm)
   * instead of each rank's own (default false, as DDP). Turns off the batchNorm-relu fusion.
   */
  syncBatchNorm?: boolean;
}

/** The update rules of the native step (docs/ARCHITECTURE.md, "A training step"). */
export const OPTIMIZER_TYPES = ['sgd', 'adamw', 'lamb'] as const;
export type OptimizerType = (typeof OPTIMIZER_TYPES)[number];

/** The names of each rule's state buffers per trainable parameter (PyTorch's state keys), as checkpoints store them. */
export const OPTIMIZER_STATE: Record<OptimizerType, readonly string[]> = { sgd: ['momentum'], adamw: ['exp_avg', 'exp_avg_sq'], lamb: ['exp_avg', 'exp_avg_sq'] };

/**
 * Settings for a set of parameters (a PyTorch parameter group). A parameter takes the first group whose
 * `match` accepts its name; parameters no group matches keep the defaults.
 */
export interface ParamGroup {
  /** A RegExp tested against the parameter's name (e.g. /^fc\./), or a predicate on the name. */
  match: RegExp | ((name: string) => boolean);
  /** The group's learning rate is the schedule's times lrScale (default 1). */
  lrScale?: number;
  /** The group's weight decay (default: the optimizer's for weights, 0 for batch-norm and bias parameters). */
  weightDecay?: number;
}

/**
 * The optimizer, fused into step(). type 'sgd' (default) is torch.optim.SGD (dampening 0); 'adamw' is
 * torch.optim.AdamW (amsgrad off) with its defaults: betas [0.9, 0.999], eps 1e-8, weightDecay 0.01,
 * decoupled from the gradient. 'lamb' is timm's Lamb (defaults betas [0.9, 0.999], eps 1e-6, weightDecay
 * 0.01; the layer-wise trust ratio on parameters with weight decay, unclipped; timm clips the gradient at
 * global norm 1 by default: set clipGradNorm 1 for that). Weight decay applies to parameters built with weightDecay true (weights,
 * not batch-norm or bias parameters) unless a group says otherwise.
 */
export interface OptimizerOptions {
  type?: OptimizerType;
  lr: number;
  /** SGD: momentum in [0, 1] (default 0) and Nesterov's variant. */
  momentum?: number;
  nesterov?: boolean;
  /** AdamW and LAMB: the moving averages' coefficients, each in [0, 1) (default [0.9, 0.999]), and the denominator's eps > 0 (default 1e-8; LAMB 1e-6). */
  betas?: readonly [number, number];
  eps?: number;
  /** Default 0 for SGD, 0.01 for AdamW and LAMB. */
  weightDecay?: number;
  /**
   * Clip the gradient to this global L2 norm before the update (torch.nn.utils.clip_grad_norm_ over every
   * trainable gradient; the accumulated mean gradient when accumulating). 0 or absent: no clipping.
   */
  clipGradNorm?: number;
  groups?: readonly ParamGroup[];
}

/** The optimizer's settings as they were called before AdamW existed. */
export type SgdOptions = OptimizerOptions;

/** timm's ModelEmaV2: a moving average of every parameter (batch-norm statistics included), updated after each optimizer update; it starts from the weights set before the first update. */
export interface EmaOptions {
  /** ema = decay * ema + (1 - decay) * weights; in [0, 1] (timm's default 0.9998). */
  decay: number;
  /** Use min(decay, (1 + u) / (10 + u)) after u updates (TensorFlow's ExponentialMovingAverage num_updates rule; timm's ModelEmaV2 has no warmup), so that the average forgets the initial weights early on. */
  warmup?: boolean;
}

/**
 * cuDNN algorithm choice on CUDA devices, with PyTorch's meanings (torch.backends.cudnn.*). Fields left out
 * come from CRUNET_CUDNN_BENCHMARK, CRUNET_CUDNN_DETERMINISTIC, CRUNET_CUDNN_BENCHMARK_LIMIT and
 * CRUNET_CUDNN_ALLOW_TF32, else the defaults.
 */
export interface CudnnOptions {
  /** Time the candidate algorithms of each convolution at compile time and keep the fastest (default false). */
  benchmark?: boolean;
  /** Only algorithms with bitwise reproducible results (default false). */
  deterministic?: boolean;
  /** Candidates timed per convolution when benchmarking; 0 tries all (default 10). */
  benchmarkLimit?: number;
  /** Let fp32 convolutions use TF32 tensor cores (default true, as PyTorch's cudnn.allow_tf32). */
  allowTF32?: boolean;
  /**
   * A file that keeps the algorithm choices between processes (default CRUNET_CUDNN_CACHE_FILE, else none):
   * read before the searches, rewritten atomically after them. It is only used on the GPU, driver and cuDNN
   * it was written with; Session.algorithmCache says what was loaded and saved.
   */
  cacheFile?: string;
}

/** A node's profile: its implementation, its times when compiled with profile: true, its algorithm choices. */
export interface NodeProfile {
  name: string;
  op: string;
  impl: string;
  forwardMs: number;
  backwardMs: number;
  calls: number;
  /** cuDNN convolutions: the algorithm per direction and the search behind it. */
  algorithms?: AlgorithmChoice[];
}

/**
 * Dynamic loss scaling with PyTorch's torch.amp.GradScaler semantics; fields left out take its defaults.
 * docs/ARCHITECTURE.md, "Precision", describes what a step does with it.
 */
export interface LossScaleOptions {
  /** The first scale (default 2^16). */
  initScale?: number;
  /** Multiplies the scale after growthInterval steps in a row without an overflow (> 1; default 2). */
  growthFactor?: number;
  /** Multiplies the scale after a step whose gradients overflowed (in (0, 1); default 0.5). */
  backoffFactor?: number;
  /** Good steps in a row before the scale grows (a positive integer; default 2000). */
  growthInterval?: number;
}

/** The loss scaler's state, as checkpoints keep it. */
export interface LossScalerState {
  scale: number;
  /** Good steps since the scale last changed. */
  growthTracker: number;
}

export interface CompileOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. A device that cannot be used is an error, never a fall back. */
  device?: string;
  /** The batch every step() takes (forward() also accepts fewer samples). */
  batchSize: number;
  /**
   * The compute precision (default 'fp32'). A precision the device cannot compute in is an Error naming
   * the device, the precision and what the device supports; there is no silent fall back to fp32.
   */
  precision?: Precision;
  /**
   * Loss scaling: 'dynamic' (PyTorch's GradScaler: seed the backward with the scale, unscale the gradients
   * before the update, skip a step whose gradients hold an inf or NaN and halve the scale, double it after
   * 2000 good steps), a number (a fixed scale; overflowing steps are still skipped), an object (dynamic
   * with other settings) or false. Default: 'dynamic' for fp16, false otherwise.
   */
  lossScale?: 'dynamic' | number | false | LossScaleOptions;
  /** Seeds parameter initialisation. */
  seed?: number;
  optimizer?: OptimizerOptions;
  /** Keep a moving average of the weights (forward's and Trainer.evaluate's `ema` use it). */
  ema?: EmaOptions;
  /** Also compute gradients of the f32 graph inputs in gradients(). */
  inputGrads?: boolean;
  /** Let buffers with disjoint lifetimes share memory (default true); off only to measure what it saves. */
  reuseMemory?: boolean;
  /** Time every kernel call (see Session.profile()). */
  profile?: boolean;
  /** Fuse batchNorm -> relu pairs into one kernel where the backend can (default true; same results). */
  fuse?: boolean;
  /** cuDNN algorithm settings for 'cuda' devices (ignored on the CPU). */
  cudnn?: CudnnOptions;
  /**
   * Label smoothing of the loss, in [0, 1): step() trains towards (1 - e) onehot + e / K and reports that
   * loss (PyTorch's CrossEntropyLoss(label_smoothing=e)). Replaces the value the graph was built with.
   */
  labelSmoothing?: number;
  /**
   * Train towards soft targets (mixup, cutmix): the loss gets an f32 input `targets` of per-sample shape
   * [classes], which every step() then takes (its `targets` option); label smoothing applies to them as to
   * one-hot labels, and the labels still give the correct counts. A copy of the graph is changed; a graph
   * whose loss already takes soft targets needs no option.
   */
  softTargets?: boolean;
  /** Train as one rank of a data-parallel job (CPU sessions, Gloo). */
  distributed?: DistributedOptions;
}

export interface StepResult {
  loss: number;
  correct: number;
  /** The global L2 norm of the (mean accumulated) gradient before clipping; absent after an accumulating step. */
  gradNorm?: number;
  /** Labels within the k largest logits, when the loss was built with topk > 0. */
  topkCorrect?: number;
  /** With loss scaling: the gradients overflowed, so nothing was updated (and the scale backed off). */
  skipped?: boolean;
  /** With loss scaling: the scale this step's backward was seeded with. */
  lossScale?: number;
}

export interface Gradients {
  outputs: Float32Array[];
  inputGrads: Record<string, Float32Array>;
  paramGrads: Record<string, Float32Array>;
}

/** Feeds by graph input name, or (for the common case) images alone / images and labels. */
export type Feeds = Feed | Record<string, Feed>;

export interface MemoryReport extends NativeMemory {
  /** Planned arena bytes over the naive sum of all intermediate tensors: < 1 means the plan reuses memory. */
  reuseRatio: number;
}

/** Anything compile() accepts: a built graph, or a model that carries one. */
export type Compilable = Graph | { graph: Graph };

function toIR(m: Compilable): GraphIR {
  const g = 'ir' in m ? m : m?.graph;
  if (!g || !('ir' in g)) throw new TypeError(`compile: expected a Graph (GraphBuilder.build()) or a model with a .graph, but received ${typeName(m)}`);
  return g.ir;
}

/** The graph with its loss's label smoothing set to `e` (a copy: the caller's graph is left as built). */
function withLabelSmoothing(ir: GraphIR, e: number): GraphIR {
  checkLabelSmoothing(e, 'compile');
  if (!ir.loss) {
    if (e > 0) throw new RangeError(`compile: expected labelSmoothing 0 for a graph without a loss, but received ${e}`);
    return ir;
  }
  const nodes = ir.nodes.map((n) => {
    if (n.name !== ir.loss) return n;
    const attrs: Record<string, AttrValue> = { ...n.attrs, labelSmoothing: e };
    if (e === 0) delete attrs.labelSmoothing;  // as the builder writes an unsmoothed loss
    return { ...n, attrs };
  });
  return { ...ir, nodes };
}

/** The graph with an f32 input feeding its loss's soft targets (a copy: the caller's graph is left as built). */
function withSoftTargets(ir: GraphIR): GraphIR {
  const loss = ir.nodes.find((n) => n.name === ir.loss);
  if (!loss) throw new TypeError('compile: expected a graph with a loss for softTargets, but received one without');
  if (loss.inputs.length === 3) return ir;
  const logits = ir.nodes.find((n) => n.name === loss.inputs[0]);
  const classes = logits?.op === 'linear' ? Number(logits.attrs.outFeatures) : ir.inputs.find((i) => i.name === loss.inputs[0])?.shape[0];
  if (!classes) throw new TypeError(`compile: expected the loss's logits to come from a linear node or an input for softTargets, but received ${loss.inputs[0]}`);
  let name = 'targets';
  const taken = new Set([...ir.inputs.map((i) => i.name), ...ir.nodes.map((n) => n.name)]);
  for (let i = 2; taken.has(name); i++) name = `targets${i}`;
  return {
    ...ir,
    inputs: [...ir.inputs, { name, shape: [classes], dtype: 'f32' }],
    nodes: ir.nodes.map((n) => (n === loss ? { ...n, inputs: [...n.inputs, name] } : n)),
  };
}

/**
 * A loss scale the engine can use: a positive float32 whose inverse is a float32 too (the step multiplies
 * the gradients by 1/scale; native/core/loss_scaler.h).
 */
function usableScale(x: number): boolean {
  const f = Math.fround(x);
  return Number.isFinite(x) && f > 0 && Number.isFinite(f) && Number.isFinite(Math.fround(1 / f));
}
const USABLE_SCALE = 'a finite number > 0 in float32 whose inverse is finite too (above 2^-128)';

/** compile's lossScale as the addon takes it: undefined for off, else the scaler's settings. */
function lossScaleOptions(v: CompileOptions['lossScale'], precision: Precision): NativeLossScale | undefined {
  const at = 'compile: lossScale';
  if (v === undefined) v = precision === 'fp16' ? 'dynamic' : false;
  if (v === false) return undefined;
  if (v === 'dynamic') return { dynamic: true };
  if (typeof v === 'number') {
    if (!usableScale(v)) throw new RangeError(`${at}: expected a fixed scale that is ${USABLE_SCALE}, but received ${v}`);
    return { dynamic: false, initScale: v };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new TypeError(`${at}: expected 'dynamic', a number, false or {initScale, growthFactor, backoffFactor, growthInterval}, but received ${typeof v === 'string' ? JSON.stringify(v) : typeName(v)}`);
  }
  const known = ['initScale', 'growthFactor', 'backoffFactor', 'growthInterval'];
  for (const k of Object.keys(v)) if (!known.includes(k)) throw new RangeError(`${at}: expected fields ${known.join(', ')}, but received '${k}'`);
  const num = (k: keyof LossScaleOptions, ok: (x: number) => boolean, want: string) => {
    const x = v[k];
    if (x === undefined) return;
    if (typeof x !== 'number') throw new TypeError(`${at}.${k}: expected a number, but received ${typeName(x)}`);
    if (!ok(x)) throw new RangeError(`${at}.${k}: expected ${want}, but received ${x}`);
  };
  num('initScale', usableScale, USABLE_SCALE);
  num('growthFactor', (x) => Number.isFinite(x) && x > 1, 'a finite number > 1');
  num('backoffFactor', (x) => x > 0 && x < 1, 'a number in (0, 1)');
  num('growthInterval', (x) => Number.isInteger(x) && x >= 1 && x < 2 ** 31, 'an integer in [1, 2^31)');
  return { dynamic: true, ...v };
}

/**
 * Re-throws a native failure as an error of the same class (the addon throws Error, TypeError and
 * RangeError) whose stack shows the caller's await.
 */
function rethrow(e: unknown): never {
  const err = e instanceof Error ? e : new Error(String(e));
  const Class = err instanceof RangeError ? RangeError : err instanceof TypeError ? TypeError : Error;
  throw new Class(err.message, { cause: err });
}

/** How a received value reads in an error message: its class ("Float64Array") or its typeof. */
function typeName(v: unknown): string {
  if (v === null) return 'null';
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}

/**
 * Compiles a graph for a device and batch size: shape inference, one kernel per node, the memory plan
 * and parameter storage, all in native code off the JS thread.
 */
export async function compile(model: Compilable, opts: CompileOptions): Promise<Session> {
  let ir = toIR(model);
  if (!opts || typeof opts !== 'object') throw new TypeError(`compile: expected options {batchSize, ...}, but received ${typeName(opts)}`);
  if (opts.labelSmoothing !== undefined) ir = withLabelSmoothing(ir, opts.labelSmoothing);
  if (opts.softTargets) ir = withSoftTargets(ir);
  const precision = opts.precision ?? 'fp32';
  if (!['fp32', 'bf16', 'fp16'].includes(precision)) {
    throw new RangeError(`compile: expected precision 'fp32', 'bf16' or 'fp16', but received ${JSON.stringify(precision)}`);
  }
  const device = opts.device ?? 'cpu';
  const lossScale = lossScaleOptions(opts.lossScale, precision);
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new RangeError(`compile: expected batchSize to be a positive integer, but received ${opts.batchSize}`);
  }
  const optimizer = checkOptimizer(opts.optimizer ?? { lr: 0.1 }, 'compile: optimizer');
  const ema = opts.ema === undefined ? undefined : checkEma(opts.ema);
  const distributed = opts.distributed === undefined ? undefined : checkDistributed(opts.distributed);
  let handle: NativeSession;
  try {
    handle = await native().compile(ir, {
      batchSize: opts.batchSize,
      device,
      seed: opts.seed ?? 0,
      inputGrads: opts.inputGrads ?? false,
      reuseMemory: opts.reuseMemory ?? true,
      profile: opts.profile ?? false,
      fuse: opts.fuse ?? true,
      ...nativeOptimizer(optimizer, ir),
      ...(ema ? { emaDecay: ema.decay, emaWarmup: ema.warmup ?? false } : {}),
      precision,
      ...(lossScale !== undefined ? { lossScale } : {}),
      ...(opts.cudnn !== undefined ? { cudnn: opts.cudnn } : {}),
      ...(distributed ? { distributed: { group: nativeGroup(distributed.group), bucketBytes: distributed.bucketMB * 2 ** 20, syncBatchNorm: distributed.syncBatchNorm } } : {}),
    });
  } catch (e) {
    rethrow(e);
  }
  const session = new Session(handle, ir, opts.batchSize, device, precision, optimizer, ema, distributed?.group);
  if (distributed) {
    const store = {
      parameters: () => handle.params(),
      getParameter: (name: string) => session.getParameter(name),
      setParameter: (name: string, v: Float32Array) => session.setParameter(name, v),
    };
    try {
      await joinDataParallel(distributed.group, rankFacts(ir, store, opts.batchSize, precision, device, distributed.syncBatchNorm,
        { bucketMB: distributed.bucketMB, lossScale: lossScale ?? false, optimizer, ema: ema ?? false }), store);
    } catch (e) {
      session.dispose();
      throw e;
    }
  }
  return session;
}

/** compile's `distributed` option, checked, with its defaults. */
function checkDistributed(d: DistributedOptions): Required<DistributedOptions> {
  if (!d || typeof d !== 'object') throw new TypeError(`compile: expected distributed to be {group, bucketMB?}, but received ${typeName(d)}`);
  const group = d.group;
  if (!group || typeof group !== 'object' || typeof group.allreduce !== 'function') {
    throw new TypeError(`compile: expected distributed.group to be a process group (crunet.dist.initProcessGroup()), but received ${typeName(group)}`);
  }
  if (group.isDestroyed) throw new Error('compile: distributed.group was destroyed');
  const bucketMB = d.bucketMB ?? 25;
  if (typeof bucketMB !== 'number' || !(bucketMB > 0 && bucketMB <= 1e6)) {
    throw new RangeError(`compile: expected distributed.bucketMB to be a number in (0, 1e6], but received ${bucketMB}`);
  }
  const syncBatchNorm = d.syncBatchNorm ?? false;
  if (typeof syncBatchNorm !== 'boolean') throw new TypeError(`compile: expected distributed.syncBatchNorm to be a boolean, but received ${typeName(syncBatchNorm)}`);
  return { group, bucketMB, syncBatchNorm };
}

const finiteAtLeast0 = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;

/**
 * Checks what only TypeScript checks (type, betas, eps, clipGradNorm, groups); lr, momentum and weightDecay
 * are checked by the addon, which also knows float32's range.
 */
function checkOptimizer(o: OptimizerOptions, where: string): OptimizerOptions {
  if (!o || typeof o !== 'object') throw new TypeError(`${where}: expected an object {type, lr, ...}, but received ${typeName(o)}`);
  const type = o.type ?? 'sgd';
  if (!(OPTIMIZER_TYPES as readonly string[]).includes(type)) throw new RangeError(`${where}: expected type to be one of ${OPTIMIZER_TYPES.map((t) => `'${t}'`).join(', ')}, but received ${JSON.stringify(type)}`);
  if (o.betas !== undefined) {
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw new TypeError(`${where}: expected betas to be [beta1, beta2], but received ${JSON.stringify(o.betas)}`);
    o.betas.forEach((b, i) => {
      if (!(typeof b === 'number' && b >= 0 && b < 1)) throw new RangeError(`${where}: expected betas[${i}] to be a number in [0, 1), but received ${b}`);
    });
  }
  if (o.eps !== undefined && !(typeof o.eps === 'number' && Number.isFinite(o.eps) && o.eps > 0)) throw new RangeError(`${where}: expected eps to be a finite number > 0, but received ${o.eps}`);
  if (o.clipGradNorm !== undefined && !finiteAtLeast0(o.clipGradNorm)) throw new RangeError(`${where}: expected clipGradNorm to be a finite number >= 0 (0: no clipping), but received ${o.clipGradNorm}`);
  if (type !== 'sgd' && (o.momentum !== undefined || o.nesterov !== undefined)) throw new TypeError(`${where}: expected no momentum or nesterov for type '${type}' (they are SGD's), but received them`);
  if (type === 'sgd' && (o.betas !== undefined || o.eps !== undefined)) throw new TypeError(`${where}: expected no betas or eps for type 'sgd' (they are AdamW's and LAMB's), but received them`);
  if (o.groups !== undefined) {
    if (!Array.isArray(o.groups)) throw new TypeError(`${where}: expected groups to be an array of {match, lrScale, weightDecay}, but received ${typeName(o.groups)}`);
    o.groups.forEach((g, i) => {
      if (!g || !(g.match instanceof RegExp || typeof g.match === 'function')) throw new TypeError(`${where}: expected groups[${i}].match to be a RegExp or a function of the parameter name, but received ${typeName(g?.match)}`);
      for (const k of ['lrScale', 'weightDecay'] as const) {
        if (g[k] !== undefined && !finiteAtLeast0(g[k])) throw new RangeError(`${where}: expected groups[${i}].${k} to be a finite number >= 0, but received ${g[k]}`);
      }
    });
  }
  return { ...o, type };
}

function checkEma(e: EmaOptions): EmaOptions {
  if (!e || typeof e !== 'object') throw new TypeError(`compile: expected ema to be {decay, warmup}, but received ${typeName(e)}`);
  if (!(typeof e.decay === 'number' && e.decay >= 0 && e.decay <= 1)) throw new RangeError(`compile: expected ema.decay to be a number in [0, 1], but received ${e.decay}`);
  if (e.warmup !== undefined && typeof e.warmup !== 'boolean') throw new TypeError(`compile: expected ema.warmup to be a boolean, but received ${typeName(e.warmup)}`);
  return e;
}

/** The first group that matches a parameter, by its name. */
function groupOf(o: OptimizerOptions, name: string): ParamGroup | undefined {
  return o.groups?.find((g) => (g.match instanceof RegExp ? new RegExp(g.match.source, g.match.flags.replace('g', '')).test(name) : g.match(name)));
}

/** The addon's form: the settings with the defaults of the type, and each parameter's group resolved. */
function nativeOptimizer(o: OptimizerOptions, ir: GraphIR): NativeOptimizer {
  const type = o.type ?? 'sgd';
  const weightDecay = o.weightDecay ?? (type === 'sgd' ? 0 : 0.01);
  const groups = ir.params.map((p) => groupOf(o, p.name));
  return {
    type,
    lr: o.lr,
    momentum: o.momentum ?? 0,
    nesterov: o.nesterov ?? false,
    weightDecay,
    beta1: o.betas?.[0] ?? 0.9,
    beta2: o.betas?.[1] ?? 0.999,
    eps: o.eps ?? (type === 'lamb' ? 1e-6 : 1e-8),
    clipGradNorm: o.clipGradNorm ?? 0,
    paramWeightDecay: ir.params.map((p, i) => groups[i]?.weightDecay ?? (p.weightDecay ? weightDecay : 0)),
    paramLrScale: groups.map((g) => g?.lrScale ?? 1),
  };
}

/** A compiled graph on one device. Release its native memory with dispose() (or `using`). */
export class Session {
  private readonly paramIndex = new Map<string, number>();
  private readonly inputs: { name: string; perSample: number; dtype: 'f32' | 'i32' }[];
  /** Whether the loss counts top-k hits (step() then reports topkCorrect): fixed at compile time. */
  private readonly hasTopk: boolean;
  /** The graph input that feeds the loss's soft targets, if it takes them (compile's softTargets). */
  readonly targetsInput: string | undefined;
  private disposed = false;
  private opt: OptimizerOptions;

  constructor(
    private readonly handle: NativeSession,
    readonly graph: GraphIR,
    readonly batchSize: number,
    readonly device: string,
    readonly precision: Precision,
    optimizer: OptimizerOptions = { lr: 0.1 },
    /** The moving average's settings, when the session keeps one. */
    readonly ema?: EmaOptions,
    /** The process group of a data-parallel session (compile's distributed.group): step() exchanges on it. */
    readonly group?: ProcessGroup,
  ) {
    this.opt = optimizer;
    handle.params().forEach((p, i) => this.paramIndex.set(p.name, i));
    this.inputs = graph.inputs.map((i) => ({ name: i.name, perSample: i.shape.reduce((a, b) => a * b, 1), dtype: i.dtype }));
    const loss = graph.nodes.find((n) => n.name === graph.loss);
    this.hasTopk = Number(loss?.attrs.topk ?? 0) > 0;
    this.targetsInput = loss?.inputs[2] !== undefined && this.inputs.some((i) => i.name === loss.inputs[2]) ? loss.inputs[2] : undefined;
  }

  /**
   * One training step: forward, loss, backward (shared parameters summed over uses) and the update phase:
   * the gradient's global norm (returned as gradNorm), clipping, the optimizer's update and the moving
   * average (docs/ARCHITECTURE.md, "A training step"). With `accumulate` the gradients are only added up;
   * the next step without it updates with the mean gradient of them all.
   * The arrays are copied before step() returns, so the caller may refill them at once. Refused without
   * changing any state: inputs with NaN or Inf, labels outside [0, classes), a non-finite loss or gradient norm. When the
   * update itself makes a parameter NaN or infinite (a learning rate far too large), the step rejects
   * naming that parameter, and the update stays applied: restore a checkpoint before training on.
   * With loss scaling (compile's lossScale), a step whose gradients overflow resolves with skipped: true
   * instead, having changed nothing but the scale.
   * `targets` [batch, classes]: the soft targets, for a session compiled with softTargets (required there).
   */
  async step(feeds: Feeds, labels?: Int32Array, opts: { lr?: number; targets?: Float32Array; accumulate?: boolean } = {}): Promise<StepResult> {
    if (opts.targets !== undefined) {
      if (!this.targetsInput) throw new TypeError('step: targets were given, but this session was not compiled with softTargets');
      if (feeds instanceof Float32Array || feeds instanceof Int32Array) {
        const first = this.inputs.find((i) => i.dtype === 'f32' && i.name !== this.targetsInput)!;
        feeds = { [first.name]: feeds };
      }
      feeds = { ...(feeds as Record<string, Feed>), [this.targetsInput]: opts.targets };
    }
    const arrays = this.feeds('step', feeds, labels, this.batchSize);
    if (opts.lr !== undefined && !(Number.isFinite(opts.lr) && opts.lr >= 0)) {
      throw new RangeError(`step: expected lr to be a finite number >= 0, but received ${opts.lr}`);
    }
    if (!this.graph.loss) throw new TypeError('step: expected a session of a graph with a loss (build it with softmaxCrossEntropy as loss), but received one without');
    if (opts.accumulate !== undefined && typeof opts.accumulate !== 'boolean') throw new TypeError(`step: expected accumulate to be a boolean, but received ${typeName(opts.accumulate)}`);
    try {
      const pending = this.live('step').step(arrays, opts.lr, opts.accumulate ?? false);
      const r = await (this.group ? duringStep(this.group, pending) : pending);
      return {
        loss: r.loss,
        correct: r.correct,
        ...(r.gradNorm !== undefined ? { gradNorm: r.gradNorm } : {}),
        ...(this.hasTopk ? { topkCorrect: r.topkCorrect } : {}),
        ...(r.lossScale > 0 ? { skipped: r.skipped, lossScale: r.lossScale } : {}),
      };
    } catch (e) {
      rethrow(e);
    }
  }

  /**
   * Inference (batch norm uses running statistics): the first graph output for up to batchSize samples.
   * A smaller batch is padded inside and the result trimmed.
   */
  async forward(feeds: Feeds, opts: { ema?: boolean } = {}): Promise<Float32Array> {
    return (await this.outputs(feeds, opts))[0]!;
  }

  /** Like forward(), but every graph output. `ema`: with the moving average of the weights (compile's ema). */
  async outputs(feeds: Feeds, opts: { ema?: boolean } = {}): Promise<Float32Array[]> {
    if (opts.ema && !this.ema) throw new TypeError('forward: expected a session compiled with ema for {ema: true}, but received one without');
    const first = this.inputs.find((i) => i.dtype === 'f32' && i.name !== this.targetsInput);
    const arr = feeds instanceof Float32Array || feeds instanceof Int32Array ? feeds : first ? feeds[first.name] : undefined;
    const n = first && arr ? arr.length / first.perSample : this.batchSize;
    if (!Number.isInteger(n) || n < 1 || n > this.batchSize) {
      throw new RangeError(`forward: input ${first?.name}: expected a multiple of ${first?.perSample} elements for 1..${this.batchSize} samples, but received ${arr?.length}`);
    }
    const arrays = this.feeds('forward', feeds, undefined, n).map((a, i) => this.pad(a, this.inputs[i]!.perSample, n));
    let outs: Float32Array[];
    try {
      outs = await this.live('forward').forward(arrays, opts.ema ?? false);
    } catch (e) {
      rethrow(e);
    }
    return n === this.batchSize ? outs : outs.map((o) => o.slice(0, (o.length / this.batchSize) * n));
  }

  /**
   * Training-mode forward and backward seeded with dL/d(first output); no update: parameters, momentum
   * and batch-norm running statistics are left exactly as they were. Returns the outputs, the gradients
   * of the f32 inputs (when compiled with inputGrads) and of every trainable parameter.
   */
  async gradients(feeds: Feeds, seed: Float32Array): Promise<Gradients> {
    const arrays = this.feeds('gradients', feeds, undefined, this.batchSize);
    let r;
    try {
      r = await this.live('gradients').gradients(arrays, seed);
    } catch (e) {
      rethrow(e);
    }
    const inputGrads: Record<string, Float32Array> = {};
    r.inputGrads.forEach((g, i) => g && (inputGrads[this.inputs[i]!.name] = g));
    const paramGrads: Record<string, Float32Array> = {};
    const names = this.parameterNames();
    r.paramGrads.forEach((g, i) => g && (paramGrads[names[i]!] = g));
    return { outputs: r.outputs, inputGrads, paramGrads };
  }

  parameterNames(): string[] {
    return [...this.paramIndex.keys()];
  }

  /** A copy of a parameter's values, in PyTorch's layout (conv weight [O, C/groups, kh, kw]). */
  getParameter(name: string): Float32Array {
    return this.live('getParameter').getParameter(this.index(name));
  }

  setParameter(name: string, values: Float32Array): void {
    if (!(values instanceof Float32Array)) {
      throw new TypeError(`setParameter ${name}: expected a Float32Array, but received ${typeName(values)}`);
    }
    this.live('setParameter').setParameter(this.index(name), values);
  }

  /** The optimizer's settings (compile's, then setOptimizer's). */
  get optimizer(): OptimizerOptions {
    return this.opt;
  }

  /** The names of the optimizer's state buffers per trainable parameter: ['momentum'] (SGD), ['exp_avg', 'exp_avg_sq'] (AdamW). */
  get optimizerStateNames(): readonly string[] {
    return OPTIMIZER_STATE[this.opt.type ?? 'sgd'];
  }

  /** One state buffer of a trainable parameter (default the first: SGD's momentum, AdamW's exp_avg), for checkpoints. */
  getOptimizerState(name: string, buffer?: string): Float32Array {
    return this.live('getOptimizerState').getOptimizerState(this.index(name), this.stateIndex(buffer));
  }

  setOptimizerState(name: string, values: Float32Array, buffer?: string): void {
    if (!(values instanceof Float32Array)) throw new TypeError(`setOptimizerState ${name}: expected a Float32Array, but received ${typeName(values)}`);
    this.live('setOptimizerState').setOptimizerState(this.index(name), this.stateIndex(buffer), values);
  }

  /** Optimizer updates applied so far (AdamW's bias correction and the EMA's warmup count them; checkpoints keep it). */
  get updates(): number {
    return this.live('updates').getUpdates();
  }

  set updates(n: number) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`updates: expected a non-negative integer, but received ${n}`);
    this.live('updates').setUpdates(n);
  }

  /** A copy of a parameter's moving average (compile's ema). */
  getEma(name: string): Float32Array {
    return this.live('getEma').getEma(this.index(name));
  }

  setEma(name: string, values: Float32Array): void {
    if (!(values instanceof Float32Array)) throw new TypeError(`setEma ${name}: expected a Float32Array, but received ${typeName(values)}`);
    this.live('setEma').setEma(this.index(name), values);
  }

  /** New settings of the same type (the state buffers were made for it at compile time); groups are resolved again. */
  setOptimizer(o: Partial<OptimizerOptions>): void {
    const type = this.opt.type ?? 'sgd';
    if (o.type !== undefined && o.type !== type) throw new RangeError(`setOptimizer: expected type '${type}' (fixed at compile time: the state buffers were made for it), but received ${JSON.stringify(o.type)}`);
    const next = checkOptimizer({ ...this.opt, ...o }, 'setOptimizer');
    this.live('setOptimizer').setOptimizer(nativeOptimizer(next, this.graph));
    this.opt = next;
  }

  /** The loss scaler's state (for checkpoints), or undefined for a session compiled without loss scaling. */
  lossScaler(): LossScalerState | undefined {
    return this.live('lossScaler').lossScaler() ?? undefined;
  }

  /** Restores the loss scaler's state (a checkpoint's); an Error for a session without loss scaling. */
  setLossScaler(state: LossScalerState): void {
    if (!state || typeof state !== 'object') throw new TypeError(`setLossScaler: expected {scale, growthTracker}, but received ${typeName(state)}`);
    // Both fields are required: a missing one is an error, never a silent default.
    for (const k of ['scale', 'growthTracker'] as const) {
      if (typeof state[k] !== 'number') throw new TypeError(`setLossScaler: state.${k}: expected a number, but received ${typeName(state[k])}`);
    }
    if (!usableScale(state.scale)) throw new RangeError(`setLossScaler: state.scale: expected ${USABLE_SCALE}, but received ${state.scale}`);
    if (!(Number.isInteger(state.growthTracker) && state.growthTracker >= 0 && state.growthTracker < 2 ** 31)) {
      throw new RangeError(`setLossScaler: state.growthTracker: expected an integer in [0, 2^31), but received ${state.growthTracker}`);
    }
    try {
      this.live('setLossScaler').setLossScaler(state);
    } catch (e) {
      rethrow(e);
    }
  }

  /** The memory plan: planned arena vs the naive sum of all intermediate tensors, parameters, scratch. */
  memory(): MemoryReport {
    const m = this.live('memory').memory();
    return { ...m, reuseRatio: m.arenaBytes / m.naiveBytes };
  }

  /**
   * Every node's implementation and algorithm choices, and its kernel times when compiled with
   * profile: true (zeros otherwise).
   */
  profile(): NodeProfile[] {
    return this.live('profile').profile().map(({ report, ...p }) => (report ? { ...p, algorithms: algorithmChoices(report) } : p));
  }

  /** What compile did with cudnn.cacheFile (CUDA devices with a cache file only). */
  get algorithmCache(): AlgorithmCacheReport | undefined {
    return this.handle.algorithmCache;
  }

  resetProfile(): void {
    this.live('resetProfile').resetProfile();
  }

  /**
   * Turns kernel timing on or off (compile's `profile` sets the start). On a GPU each timed kernel is
   * bracketed by stream synchronizations, which slows steps: time whole steps with it off.
   */
  setProfiling(on: boolean): void {
    this.live('setProfiling').setProfiling(on);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Frees the native memory now, or, while a step/forward/gradients call runs, as soon as it completes
   * (that call still resolves or rejects normally). Calling it again does nothing; any other call
   * afterwards throws.
   */
  dispose(): void {
    if (this.disposed) return;
    this.handle.dispose();
    this.disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private live(what: string): NativeSession {
    if (this.disposed) throw new Error(`${what}: this session was disposed`);
    return this.handle;
  }

  private stateIndex(buffer: string | undefined): number {
    if (buffer === undefined) return 0;
    const i = this.optimizerStateNames.indexOf(buffer);
    if (i < 0) throw new RangeError(`expected an optimizer state buffer of ${this.opt.type ?? 'sgd'} (${this.optimizerStateNames.join(', ')}), but received '${buffer}'`);
    return i;
  }

  private index(name: string): number {
    const i = this.paramIndex.get(name);
    if (i === undefined) {
      const some = this.parameterNames().slice(0, 8).join(', ');
      throw new RangeError(`expected a parameter of this graph (it has ${this.paramIndex.size}: ${some}${this.paramIndex.size > 8 ? ', ...' : ''}), but received unknown parameter '${name}'`);
    }
    return i;
  }

  /** Orders and checks the feeds: one typed array per graph input, of the right type and length. */
  private feeds(what: string, feeds: Feeds, labels: Int32Array | undefined, n: number): Feed[] {
    let byName: Record<string, Feed>;
    if (feeds instanceof Float32Array || feeds instanceof Int32Array) {
      const f32 = this.inputs.filter((i) => i.dtype === 'f32' && i.name !== this.targetsInput);
      const i32 = this.inputs.filter((i) => i.dtype === 'i32');
      if (f32.length !== 1 || i32.length > 1) {
        throw new TypeError(`${what}: expected an object of arrays by input name (this graph has inputs ${this.inputs.map((i) => i.name).join(', ')}), but received a single ${typeName(feeds)}`);
      }
      byName = { [f32[0]!.name]: feeds };
      if (i32[0] && labels !== undefined) byName[i32[0].name] = labels;
    } else if (ArrayBuffer.isView(feeds)) {
      // Another typed array (Float64Array, Uint8Array...): said as such, not taken for an object of arrays by name.
      throw new TypeError(`${what}: expected a Float32Array, but received ${typeName(feeds)}`);
    } else if (feeds && typeof feeds === 'object') {
      byName = { ...feeds };
      const i32 = this.inputs.find((i) => i.dtype === 'i32');
      if (labels !== undefined && i32) byName[i32.name] = labels;
    } else {
      throw new TypeError(`${what}: expected a Float32Array or an object of typed arrays by input name, but received ${typeName(feeds)}`);
    }
    return this.inputs.map((inp) => {
      const a = byName[inp.name];
      if (a === undefined && inp.dtype === 'i32' && what !== 'step') return new Int32Array(n); // labels unused outside step
      if (a === undefined && inp.name === this.targetsInput && what !== 'step') return new Float32Array(n * inp.perSample); // so are soft targets
      const want = inp.dtype === 'f32' ? Float32Array : Int32Array;
      if (!(a instanceof want)) {
        throw new TypeError(`${what}: input ${inp.name}: expected a ${want.name}, but received ${a === undefined ? 'nothing' : typeName(a)}`);
      }
      if (a.length !== n * inp.perSample) {
        throw new RangeError(`${what}: input ${inp.name}: expected ${n * inp.perSample} elements (${n} samples x ${inp.perSample}), but received ${a.length}`);
      }
      return a;
    });
  }

  private pad(a: Feed, perSample: number, n: number): Feed {
    if (n === this.batchSize) return a;
    const full = a instanceof Float32Array ? new Float32Array(this.batchSize * perSample) : new Int32Array(this.batchSize * perSample);
    full.set(a);
    return full;
  }
}
