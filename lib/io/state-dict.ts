// Plain state dicts: the {name: tensor} files PyTorch's model.state_dict() saves (safetensors.torch's
// save_file), in and out of a Session.
//
// crunet names its parameters as torchvision does (conv1.weight, layer1.0.bn1.running_var, fc.bias, ...;
// docs/MODELS.md) and keeps them in PyTorch's layout (conv weight [O, C/groups, kh, kw], linear weight
// [out, in]), so a state dict maps one to one with no renaming and no transposition. The one tensor
// PyTorch has that crunet does not is BatchNorm's `num_batches_tracked` (a step counter used only when
// momentum is None): it is ignored on the way in, and written on the way out so that torch's
// load_state_dict(strict=True) finds every key it expects.
import type { Session } from '../engine/session.js';
import type { TensorToWrite } from '../train/safetensors.js';

/** A tensor as a state dict holds it: shape and values (a ReadTensor from readSafetensors fits). */
export interface StateTensor {
  shape: readonly number[];
  data: Float32Array;
  /** The stored dtype, when known ('F32', 'F16', ...): integer tensors are refused as parameters. */
  dtype?: string;
}

/** A state dict: a Map, or an object by name (readSafetensors(...).tensors is a Map). */
export type StateDict = Map<string, StateTensor> | Record<string, StateTensor>;

export interface LoadStateDictOptions {
  /**
   * true (default): the state dict must hold exactly the session's parameters (num_batches_tracked
   * aside), or nothing is loaded. false: load what matches and report the rest, as PyTorch's
   * load_state_dict(strict=False). A tensor of the wrong shape is refused either way, as in PyTorch.
   */
  strict?: boolean;
  /** Names the source in messages (a file path, usually). */
  source?: string;
}

/** What load_state_dict returns in PyTorch: the keys that did not match. */
export interface LoadStateDictResult {
  /** Session parameters the state dict does not have (left as they were). */
  missingKeys: string[];
  /** State dict tensors the session has no place for (num_batches_tracked excluded). */
  unexpectedKeys: string[];
  /** Parameters loaded. */
  loaded: string[];
}

/** Why a state dict does not fit; `problems` lists every mismatch. */
export class StateDictError extends Error {
  constructor(readonly problems: string[], readonly missingKeys: string[], readonly unexpectedKeys: string[], head: string) {
    super(`${head}:\n  ${problems.join('\n  ')}\nNothing was loaded.`);
    this.name = 'StateDictError';
  }
}

/** BatchNorm's step counter in PyTorch state dicts. */
export const NUM_BATCHES_TRACKED = 'num_batches_tracked';
const isCounter = (name: string) => name === NUM_BATCHES_TRACKED || name.endsWith(`.${NUM_BATCHES_TRACKED}`);

/** Float dtypes a parameter may be stored as (converted to float32 on reading). */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

function entries(sd: StateDict): [string, StateTensor][] {
  if (sd instanceof Map) return [...sd];
  if (sd && typeof sd === 'object') return Object.entries(sd);
  throw new TypeError(`loadStateDict: expected a Map or an object of tensors by name, but received ${sd === null ? 'null' : typeof sd}`);
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Loads a plain state dict into a session (parameters and BN running statistics), as PyTorch's
 * model.load_state_dict. Everything is checked before the first value is written: on refusal the session
 * is unchanged and the error (a StateDictError) lists every missing, unexpected and mis-shaped tensor.
 */
export function loadStateDict(session: Session, stateDict: StateDict, opts: LoadStateDictOptions = {}): LoadStateDictResult {
  const strict = opts.strict ?? true;
  if (typeof strict !== 'boolean') throw new TypeError(`loadStateDict: expected strict to be a boolean, but received ${JSON.stringify(strict)}`);
  if (session.isDisposed) throw new Error('loadStateDict: this session was disposed');
  const params = new Map(session.graph.params.map((p) => [p.name, p]));
  const given = new Map(entries(stateDict).filter(([name]) => !isCounter(name)));
  const missingKeys = session.parameterNames().filter((n) => !given.has(n));
  const unexpectedKeys = [...given.keys()].filter((n) => !params.has(n));
  const bad: string[] = [];
  for (const [name, t] of given) {
    const p = params.get(name);
    if (!p) continue;
    if (!t || !Array.isArray(t.shape) || !(t.data instanceof Float32Array)) {
      bad.push(`${name}: expected {shape, data: Float32Array}, but received ${t === null ? 'null' : typeof t}`);
    } else if (t.dtype !== undefined && !FLOAT_DTYPES.has(t.dtype)) {
      bad.push(`${name}: dtype ${t.dtype} is not a floating-point type (a parameter is F32, F16, BF16 or F64)`);
    } else if (!sameShape(t.shape, p.shape)) {
      bad.push(`size mismatch for ${name}: the state dict has shape ${fmt(t.shape)}, the model ${fmt(p.shape)}`);
    } else if (t.data.length !== p.shape.reduce((a, d) => a * d, 1)) {
      bad.push(`${name}: shape ${fmt(t.shape)} needs ${p.shape.reduce((a, d) => a * d, 1)} values, but the data has ${t.data.length}`);
    }
  }
  if (bad.length || (strict && (missingKeys.length || unexpectedKeys.length))) {
    const problems = [
      ...bad,
      ...(strict ? missingKeys.map((n) => `missing key ${n}`) : []),
      ...(strict ? unexpectedKeys.map((n) => `unexpected key ${n}`) : []),
    ];
    const prefix = commonPrefix(missingKeys, given);
    if (prefix) problems.push(`every missing key is present with the prefix '${prefix}' (a model wrapped in nn.DataParallel or another module when saved): strip it from the names`);
    const source = opts.source ? `${opts.source}` : 'the state dict';
    throw new StateDictError(problems, missingKeys, unexpectedKeys,
      `loadStateDict: ${source} does not fit the model (${problems.length} problem${problems.length > 1 ? 's' : ''}; ` +
        `${given.size} tensors given, ${params.size} parameters expected${strict ? '' : ', strict: false loads matching names only when their shapes fit'})`);
  }
  const loaded: string[] = [];
  for (const [name, t] of given) {
    if (!params.has(name)) continue;
    session.setParameter(name, t.data);
    loaded.push(name);
  }
  return { missingKeys, unexpectedKeys, loaded };
}

/** The prefix P such that every missing key k is given as P + k ('module.' from nn.DataParallel), if any. */
function commonPrefix(missing: string[], given: Map<string, unknown>): string | undefined {
  const first = missing[0];
  if (first === undefined) return undefined;
  const match = [...given.keys()].find((k) => k.length > first.length && k.endsWith(`.${first}`));
  const prefix = match?.slice(0, match.length - first.length);
  return prefix && missing.every((k) => given.has(prefix + k)) ? prefix : undefined;
}

export interface StateDictOptions {
  /** The value of every BatchNorm's num_batches_tracked (default 0; a checkpoint's step is a good one). */
  numBatchesTracked?: number;
}

/**
 * The session's parameters and BN statistics as a plain state dict, in the graph's parameter order, with a
 * `num_batches_tracked` (int64 scalar) per BatchNorm, as torch's state_dict() has: what
 * safetensors.torch.load_file + model.load_state_dict(strict=True) accept for the same architecture.
 */
export function stateDict(session: Session, opts: StateDictOptions = {}): Map<string, TensorToWrite> {
  const graph = session.graph;
  const values = new Map(graph.params.map((p) => [p.name, { shape: [...p.shape], data: session.getParameter(p.name) }]));
  return withCounters(graph, values, opts);
}

/** The same from tensors already in memory (a checkpoint's), for a graph. */
export function stateDictFromTensors(
  graph: Session['graph'],
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>,
  opts: StateDictOptions = {},
): Map<string, TensorToWrite> {
  const values = new Map<string, TensorToWrite>();
  const missing: string[] = [];
  for (const p of graph.params) {
    const t = tensors.get(p.name);
    if (!t) missing.push(p.name);
    else if (!sameShape(t.shape, p.shape)) missing.push(`${p.name} (shape ${fmt(t.shape)}, expected ${fmt(p.shape)})`);
    else values.set(p.name, { shape: [...p.shape], data: t.data });
  }
  if (missing.length) throw new Error(`stateDict: the tensors do not fit the model: ${missing.join(', ')}`);
  return withCounters(graph, values, opts);
}

/**
 * The keys of the state dict of a graph, in order, with shapes and dtypes: every parameter (F32) and,
 * after each BatchNorm's running_var, its num_batches_tracked (I64, shape []), as torch's state_dict() lists them.
 */
export function stateDictKeys(graph: Session['graph']): [name: string, shape: number[], dtype: 'F32' | 'I64'][] {
  const bnOf = new Map<string, string>();
  for (const node of graph.nodes) if (node.op === 'batchNorm') bnOf.set(node.params[3]!, node.name);
  const out: [string, number[], 'F32' | 'I64'][] = [];
  for (const p of graph.params) {
    out.push([p.name, [...p.shape], 'F32']);
    const bn = bnOf.get(p.name);
    if (bn !== undefined) out.push([`${bn}.${NUM_BATCHES_TRACKED}`, [], 'I64']);
  }
  return out;
}

function withCounters(graph: Session['graph'], values: Map<string, TensorToWrite>, opts: StateDictOptions): Map<string, TensorToWrite> {
  const n = opts.numBatchesTracked ?? 0;
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`stateDict: numBatchesTracked must be a non-negative integer, but received ${n}`);
  const out = new Map<string, TensorToWrite>();
  for (const [name, shape, dtype] of stateDictKeys(graph)) {
    out.set(name, dtype === 'I64' ? { shape, data: BigInt64Array.of(BigInt(n)) } : values.get(name)!);
  }
  return out;
}
