import type { AttrValue, DType, GraphIR, InputIR, NodeIR, OpName } from './ir.js';
import { Parameter, kaimingNormal, linearDefault } from './parameter.js';

/** A tensor flowing through the graph: a graph input or the output of one node. Shapes are per sample. */
export class Value {
  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** The builder that made it: values of two builders cannot be mixed. */
    readonly owner: GraphBuilder,
  ) {}
}

export type Pair = number | [number, number];

export interface Conv2dOptions {
  outChannels: number;
  kernel: Pair;
  stride?: Pair;
  padding?: Pair;
  groups?: number;
  bias?: boolean;
  /** Pass an existing Parameter to share it with other layers (a CRU factor set). */
  weight?: Parameter;
  biasParam?: Parameter;
  name?: string;
}

export interface BatchNormOptions {
  /** PyTorch's convention: running = (1 - momentum) * running + momentum * batch. 0.1 is MXNet's 0.9. */
  momentum?: number;
  eps?: number;
  name?: string;
}

export interface PoolOptions {
  kernel: Pair;
  stride?: Pair;
  padding?: Pair;
  name?: string;
}

export interface AvgPoolOptions extends PoolOptions {
  /** PyTorch's count_include_pad (default true). */
  countIncludePad?: boolean;
}

export interface LinearOptions {
  outFeatures: number;
  weight?: Parameter;
  biasParam?: Parameter;
  name?: string;
}

/** A finished graph: the IR that compile() takes, plus what the builder knew (shapes, parameters). */
export interface Graph {
  ir: GraphIR;
  /** Per-sample shape of every value, by name. */
  shapes: Map<string, readonly number[]>;
  /** Every distinct Parameter, in first-use order. */
  parameters: Parameter[];
}

/**
 * The largest integer attribute (channels, features, kernel, stride, padding, groups) and per-sample
 * dimension: 2^24, the engine's bound (kMaxDim in native/core/shape.h), checked here too so that the
 * mistake is reported where the layer is added.
 */
export const MAX_DIM = 2 ** 24;

// The builder's errors, as everywhere in the library (docs/ARCHITECTURE.md, "Where errors come from"):
// a TypeError when an argument is the wrong kind of thing (not a number, a Value of another builder, a
// tensor of the wrong dtype or rank), a RangeError when it is the right kind but its value is not allowed
// (out of range, sizes that do not fit together, a name already taken). Both read "expected ..., but
// received ...". Callers branch on the class: the CLI's settings checks make them usage errors (exit code 2).

/** How a received value reads in a message: numbers as JS writes them (NaN, Infinity), the rest as JSON. */
function shown(v: unknown): string {
  if (typeof v === 'number' || v === undefined) return String(v);
  if (Array.isArray(v)) return `[${v.map(shown).join(',')}]`;
  return JSON.stringify(v) ?? String(v);
}

/** A TypeError when `v` is not a number (or the caller's `isKind` says it is the wrong kind), else a RangeError. */
function argError(v: unknown, message: string, isKind = typeof v === 'number'): TypeError | RangeError {
  return isKind ? new RangeError(message) : new TypeError(message);
}

function pair(v: Pair, what: string, op: string): [number, number] {
  const p: unknown = typeof v === 'number' ? [v, v] : v;
  const isPair = Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'number');
  if (!isPair || !p.every((x: number) => Number.isInteger(x) && x >= 0 && x <= MAX_DIM)) {
    throw argError(v, `${op}: expected ${what} to be an integer in [0, ${MAX_DIM}] or a pair of them, but received ${shown(v)}`, isPair);
  }
  return p as [number, number];
}

function positiveDim(v: number, what: string, where: string): void {
  if (!Number.isInteger(v) || v <= 0 || v > MAX_DIM) {
    throw argError(v, `${where}: expected ${what} to be an integer in [1, ${MAX_DIM}], but received ${shown(v)}`);
  }
}

/** An error naming the smallest input a window fits in: h + 2p >= k. */
function tooSmall(where: string, h: number, w: number, kh: number, kw: number, ph: number, pw: number): RangeError {
  const need = `${Math.max(1, kh - 2 * ph)}x${Math.max(1, kw - 2 * pw)}`;
  return new RangeError(`${where}: expected an input of at least ${need} for kernel ${kh}x${kw} with padding ${ph}x${pw}, but received ${h}x${w}`);
}

function outSize(size: number, k: number, s: number, p: number): number {
  return Math.floor((size + 2 * p - k) / s) + 1;
}

/**
 * Builds a graph layer by layer, tracking per-sample shapes so that parameters get their shapes and
 * mistakes are caught where they are made. Layer names follow PyTorch's state-dict style:
 * a conv named "layer1.0.conv1" owns "layer1.0.conv1.weight".
 */
export class GraphBuilder {
  private readonly inputs: InputIR[] = [];
  private readonly nodes: NodeIR[] = [];
  private readonly params = new Map<string, Parameter>();
  private readonly shapes = new Map<string, readonly number[]>();
  private counter = 0;

  input(name: string, shape: number[], dtype: DType = 'f32'): Value {
    this.claim(name, 'input');
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d > 0 && d <= MAX_DIM)) {
      throw argError(shape, `input ${name}: expected a shape of integers in [1, ${MAX_DIM}], but received ${shown(shape)}`, Array.isArray(shape));
    }
    if (dtype !== 'f32' && dtype !== 'i32') {
      throw new RangeError(`input ${name}: expected dtype 'f32' or 'i32', but received ${shown(dtype)}`);
    }
    this.inputs.push({ name, shape: [...shape], dtype });
    return this.value(name, shape, dtype);
  }

  /**
   * Declares a parameter to pass to layers (for sharing); layers create their own when none is given.
   * The default init is He-normal over fan-in (the product of all dims but the first).
   */
  param(name: string, shape: number[], opts: Partial<Pick<Parameter, 'init' | 'trainable' | 'weightDecay'>> = {}): Parameter {
    const fan = shape.slice(1).reduce((a, b) => a * b, 1);
    return new Parameter(name, shape, opts.init ?? kaimingNormal(fan), opts.trainable ?? true, opts.weightDecay ?? true);
  }

  conv2d(x: Value, o: Conv2dOptions): Value {
    const name = this.nodeName(o.name, 'conv2d');
    const [c, h, w] = this.expectRank(x, 3, name, 'conv2d');
    const [kh, kw] = pair(o.kernel, 'kernel', name);
    const [sh, sw] = pair(o.stride ?? 1, 'stride', name);
    const [ph, pw] = pair(o.padding ?? 0, 'padding', name);
    const groups = o.groups ?? 1;
    positiveDim(o.outChannels, 'outChannels', `conv2d ${name}`);
    if (!Number.isInteger(groups) || groups <= 0 || c! % groups || o.outChannels % groups) {
      throw argError(groups, `conv2d ${name}: expected groups to be a positive integer dividing input channels (${c}) and outChannels (${o.outChannels}), but received ${shown(groups)}`);
    }
    positiveWindow(`conv2d ${name}`, kh, kw, sh, sw);
    const oh = outSize(h!, kh, sh, ph);
    const ow = outSize(w!, kw, sw, pw);
    if (oh <= 0 || ow <= 0) throw tooSmall(`conv2d ${name}`, h!, w!, kh, kw, ph, pw);
    const wshape = [o.outChannels, c / groups, kh, kw];
    const weight = o.weight ?? new Parameter(`${name}.weight`, wshape, kaimingNormal(o.outChannels * kh * kw) /* torchvision: fan_out of [O,C/g,kh,kw] */);
    this.expectParamShape(weight, wshape, name);
    const params = [weight];
    if (o.bias || o.biasParam) {
      const b = o.biasParam ?? new Parameter(`${name}.bias`, [o.outChannels], linearDefault((c / groups) * kh * kw), true, false);
      this.expectParamShape(b, [o.outChannels], name);
      params.push(b);
    }
    return this.node(name, 'conv2d', [x], params, {
      outChannels: o.outChannels, kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw], groups, bias: params.length === 2,
    }, [o.outChannels, oh, ow]);
  }

  batchNorm(x: Value, o: BatchNormOptions = {}): Value {
    const name = this.nodeName(o.name, 'batchNorm');
    this.own(x, name);
    if ((x.shape.length !== 3 && x.shape.length !== 1) || x.dtype !== 'f32') {
      throw new TypeError(`batchNorm ${name}: expected an f32 input of per-sample shape [C,H,W] or [F], but received ${x.dtype} [${x.shape.join(',')}] (${x.name})`);
    }
    const c = x.shape[0]!;
    const momentum = o.momentum ?? 0.1;
    const eps = o.eps ?? 1e-5;
    if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) throw argError(momentum, `batchNorm ${name}: expected momentum to be a number in [0, 1], but received ${shown(momentum)}`);
    if (typeof eps !== 'number' || !(eps > 0 && eps < Infinity)) throw argError(eps, `batchNorm ${name}: expected eps to be a finite number > 0, but received ${shown(eps)}`);
    const p = (suffix: string, value: number, trainable: boolean) =>
      new Parameter(`${name}.${suffix}`, [c], { dist: 'constant', value }, trainable, false);
    return this.node(name, 'batchNorm', [x],
      [p('weight', 1, true), p('bias', 0, true), p('running_mean', 0, false), p('running_var', 1, false)],
      { momentum, eps }, x.shape);
  }

  relu(x: Value, name?: string): Value {
    return this.node(this.nodeName(name, 'relu'), 'relu', [x], [], {}, x.shape);
  }

  maxPool(x: Value, o: PoolOptions): Value {
    return this.pool('maxPool', x, o, {});
  }

  avgPool(x: Value, o: AvgPoolOptions): Value {
    return this.pool('avgPool', x, o, { countIncludePad: o.countIncludePad ?? true });
  }

  globalAvgPool(x: Value, name?: string): Value {
    const n = this.nodeName(name, 'globalAvgPool');
    const [c] = this.expectRank(x, 3, n, 'globalAvgPool');
    return this.node(n, 'globalAvgPool', [x], [], {}, [c]);
  }

  linear(x: Value, o: LinearOptions): Value {
    const name = this.nodeName(o.name, 'linear');
    const [f] = this.expectRank(x, 1, name, 'linear');
    positiveDim(o.outFeatures, 'outFeatures', `linear ${name}`);
    const weight = o.weight ?? new Parameter(`${name}.weight`, [o.outFeatures, f], linearDefault(f));
    const bias = o.biasParam ?? new Parameter(`${name}.bias`, [o.outFeatures], linearDefault(f), true, false);
    this.expectParamShape(weight, [o.outFeatures, f], name);
    this.expectParamShape(bias, [o.outFeatures], name);
    return this.node(name, 'linear', [x], [weight, bias], { outFeatures: o.outFeatures }, [o.outFeatures]);
  }

  add(a: Value, b: Value, name?: string): Value {
    const n = this.nodeName(name, 'add');
    this.own(a, n);
    this.own(b, n);
    if (a.shape.join() !== b.shape.join()) {
      throw new RangeError(`add ${n}: expected operands of the same shape, but received [${a.shape.join(',')}] and [${b.shape.join(',')}]`);
    }
    return this.node(n, 'add', [a, b], [], {}, a.shape);
  }

  /**
   * Mean softmax cross-entropy over the batch; step() also reports the top-1 (and top-k) correct count.
   * `labelSmoothing` e in [0, 1) trains towards (1 - e) onehot + e / K, as PyTorch's CrossEntropyLoss.
   * `targets`, an f32 input of per-sample shape [K], makes the loss train towards those soft targets (mixup,
   * cutmix) instead of the labels' one-hot, smoothed the same way; the labels still give the hit counts.
   */
  softmaxCrossEntropy(logits: Value, labels: Value, o: { topk?: number; labelSmoothing?: number; targets?: Value; name?: string } = {}): Value {
    const name = this.nodeName(o.name, 'softmaxCrossEntropy');
    const [k] = this.expectRank(logits, 1, name, 'softmaxCrossEntropy');
    this.own(labels, name);
    if (labels.dtype !== 'i32' || labels.shape.length !== 0) {
      throw new TypeError(`softmaxCrossEntropy ${name}: expected labels to be an i32 input of per-sample shape [], but received ${labels.dtype} [${labels.shape.join(',')}] (${labels.name})`);
    }
    const topk = o.topk ?? 0;
    if (!Number.isInteger(topk) || topk < 0 || topk > k!) {
      throw argError(topk, `softmaxCrossEntropy ${name}: expected topk to be an integer in [0, ${k}], but received ${shown(topk)}`);
    }
    const e = o.labelSmoothing ?? 0;
    checkLabelSmoothing(e, `softmaxCrossEntropy ${name}`);
    const t = o.targets;
    if (t && (t.dtype !== 'f32' || t.shape.length !== 1 || t.shape[0] !== k)) {
      throw new RangeError(`softmaxCrossEntropy ${name}: targets must be f32 of per-sample shape [${k}] (the logits'), but received ${t.dtype} [${t.shape.join(',')}]`);
    }
    return this.node(name, 'softmaxCrossEntropy', t ? [logits, labels, t] : [logits, labels], [], { topk, ...(e > 0 ? { labelSmoothing: e } : {}) }, []);
  }

  /** Finishes the graph: `outputs` are what forward() returns, `loss` is what step() minimises. */
  build(o: { outputs: Value[]; loss?: Value }): Graph {
    for (const v of [...o.outputs, ...(o.loss ? [o.loss] : [])]) this.own(v, 'build');
    const lossOp = o.loss && (this.nodes.find((n) => n.name === o.loss!.name)?.op ?? 'input');
    if (o.loss && lossOp !== 'softmaxCrossEntropy') {
      throw new TypeError(`build: expected loss to be the output of softmaxCrossEntropy, but received ${o.loss.name} (${lossOp})`);
    }
    return {
      ir: {
        inputs: this.inputs.map((i) => ({ ...i, shape: [...i.shape] })),
        params: [...this.params.values()].map((p) => p.toIR()),
        nodes: this.nodes.map((n) => ({ ...n })),
        outputs: o.outputs.map((v) => v.name),
        ...(o.loss ? { loss: o.loss.name } : {}),
      },
      shapes: new Map(this.shapes),
      parameters: [...this.params.values()],
    };
  }

  private pool(op: 'maxPool' | 'avgPool', x: Value, o: PoolOptions, extra: Record<string, AttrValue>): Value {
    const name = this.nodeName(o.name, op);
    const [c, h, w] = this.expectRank(x, 3, name, op);
    const [kh, kw] = pair(o.kernel, 'kernel', name);
    const [sh, sw] = pair(o.stride ?? o.kernel, 'stride', name);
    const [ph, pw] = pair(o.padding ?? 0, 'padding', name);
    positiveWindow(`${op} ${name}`, kh, kw, sh, sw);
    if (2 * ph > kh || 2 * pw > kw) {
      throw new RangeError(`${op} ${name}: expected padding at most half the kernel ${kh}x${kw} (PyTorch's rule), but received ${ph}x${pw}`);
    }
    const oh = outSize(h!, kh, sh, ph);
    const ow = outSize(w!, kw, sw, pw);
    if (oh <= 0 || ow <= 0) throw tooSmall(`${op} ${name}`, h!, w!, kh, kw, ph, pw);
    return this.node(name, op, [x], [], { kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw], ...extra }, [c, oh, ow]);
  }

  private node(name: string, op: OpName, inputs: Value[], params: Parameter[], attrs: Record<string, AttrValue>, shape: readonly number[]): Value {
    for (const v of inputs) this.own(v, name);
    for (const p of params) {
      const known = this.params.get(p.name);
      if (known && known !== p) {
        throw new RangeError(`${op} ${name}: expected a parameter name not taken by another Parameter of this graph, but received a different Parameter named ${p.name}`);
      }
      this.params.set(p.name, p);
    }
    this.claim(name, op);
    this.nodes.push({ name, op, inputs: inputs.map((v) => v.name), params: params.map((p) => p.name), attrs });
    return this.value(name, shape, 'f32');
  }

  private value(name: string, shape: readonly number[], dtype: DType): Value {
    this.shapes.set(name, [...shape]);
    return new Value(name, [...shape], dtype, this);
  }

  private claim(name: string, what: string): void {
    if (typeof name !== 'string' || name === '') throw argError(name, `${what}: expected a non-empty name, but received ${shown(name)}`, typeof name === 'string');
    if (this.shapes.has(name)) throw new RangeError(`${what}: expected a name not yet used in this graph, but received ${name}, already used`);
  }

  private nodeName(given: string | undefined, op: string): string {
    return given ?? `${op}_${this.counter++}`;
  }

  private own(v: Value, where: string): void {
    if (!(v instanceof Value) || v.owner !== this) {
      throw new TypeError(`${where}: expected a Value made by this GraphBuilder, but received ${v instanceof Value ? `${v.name} from another builder` : typeof v}`);
    }
  }

  private expectRank(x: Value, rank: number, name: string, op: string): number[] {
    this.own(x, name);
    if (x.shape.length !== rank || x.dtype !== 'f32') {
      const want = rank === 3 ? '[C,H,W]' : '[F]';
      throw new TypeError(`${op} ${name}: expected an f32 input of per-sample shape ${want}, but received ${x.dtype} [${x.shape.join(',')}] (${x.name})`);
    }
    return [...x.shape];
  }

  private expectParamShape(p: Parameter, shape: number[], name: string): void {
    if (p.shape.join() !== shape.join()) {
      throw new RangeError(`${name}: expected parameter ${p.name} to have shape [${shape.join(',')}], but received shape [${p.shape.join(',')}]`);
    }
  }
}

/** Label smoothing is a probability mass moved off the label: a number in [0, 1). */
export function checkLabelSmoothing(e: number, where: string): void {
  if (typeof e !== 'number' || !(e >= 0 && e < 1)) throw argError(e, `${where}: expected labelSmoothing to be a number in [0, 1), but received ${shown(e)}`);
}

function positiveWindow(where: string, kh: number, kw: number, sh: number, sw: number): void {
  if (kh === 0 || kw === 0 || sh === 0 || sw === 0) {
    throw new RangeError(`${where}: expected kernel and stride of at least 1, but received kernel ${kh}x${kw}, stride ${sh}x${sw}`);
  }
}
