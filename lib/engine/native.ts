// Loads the addon (node-gyp-build: build/Release or prebuilds/; platform.ts says what to do when there is
// none that runs here) and types its one export table
// (native/addon/addon.cc). Nothing else in lib/ touches the addon directly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { GraphIR } from '../graph/ir.js';
import {
  addonLoadMessage, cudaLibraryChoice, CUDA_LIBRARY, CUDA_NEEDS, CUDA_PACKAGE, findCudaPackage, isPrebuilt, isSourceCheckout, missingBundled,
  platformFacts, prebuiltProblem,
} from './platform.js';

export interface NativeMemory {
  arenaBytes: number;
  naiveBytes: number;
  parameterBytes: number;
  scratchBytes: number;
  plannedPeakBytes: number;
  buffers: number;
}

/** One candidate of a cuDNN algorithm search, as the search saw it. */
export interface AlgorithmCandidate {
  algo: string;
  math: string;
  workspace: number;
  /** Measured time in benchmark mode; -1 when not run. */
  ms: number;
  deterministic: boolean;
  /** Why it was not usable (out of memory, run failed), or null. */
  skipped: string | null;
}

/** The algorithm a convolution uses in one direction, and how it was chosen. */
export interface AlgorithmChoice {
  direction: 'forward' | 'backward-data' | 'backward-filter';
  algo: string;
  math: string;
  workspace: number;
  ms: number;
  mode: 'heuristic' | 'benchmark';
  /** Found in the process's cache (another convolution of the same key searched first) or a cache file. */
  cached: boolean;
  fromFile: boolean;
  candidates: AlgorithmCandidate[];
}

/** What compile did with the cuDNN algorithm cache file. */
export interface AlgorithmCacheReport {
  file: string;
  /** Entries read from the file (0 when it was absent or written for another GPU/driver/cuDNN), -1 on error. */
  loaded: number;
  /** Entries written back, -1 on error. */
  saved: number;
  notes: string;
}

export interface NativeNodeProfile {
  name: string;
  op: string;
  impl: string;
  /** Kernel::report_json(): a JSON array of the choices made at compile time (cuDNN algorithm searches); read it with algorithmChoices(). */
  report?: string;
  forwardMs: number;
  backwardMs: number;
  calls: number;
}

export type Feed = Float32Array | Int32Array;

/** A NativeNodeProfile's report: the JSON the CUDA convolution writes (native/cuda/conv_algo.cc), of this shape. */
export function algorithmChoices(report: string): AlgorithmChoice[] {
  return JSON.parse(report);
}

export interface NativeSession {
  /** lossScale is 0 without loss scaling (skipped is then false); gradNorm is absent after an accumulating or skipped step. */
  step(feeds: Feed[], lr?: number, accumulate?: boolean): Promise<{ loss: number; correct: number; topkCorrect: number; gradNorm?: number; skipped: boolean; lossScale: number }>;
  forward(feeds: Feed[], ema?: boolean): Promise<Float32Array[]>;
  gradients(feeds: Feed[], seed: Float32Array): Promise<{
    outputs: Float32Array[];
    inputGrads: (Float32Array | null)[];
    paramGrads: (Float32Array | null)[];
  }>;
  params(): { name: string; shape: number[]; trainable: boolean; weightDecay: boolean }[];
  values(): { name: string; shape: number[]; dtype: string }[];
  getParameter(index: number): Float32Array;
  setParameter(index: number, values: Float32Array): void;
  getOptimizerState(index: number, buffer: number): Float32Array;
  setOptimizerState(index: number, buffer: number, values: Float32Array): void;
  getUpdates(): number;
  setUpdates(n: number): void;
  getEma(index: number): Float32Array;
  setEma(index: number, values: Float32Array): void;
  setOptimizer(o: Partial<NativeOptimizer>): void;
  /** null without loss scaling. */
  lossScaler(): { scale: number; growthTracker: number } | null;
  setLossScaler(state: { scale: number; growthTracker: number }): void;
  memory(): NativeMemory;
  profile(): NativeNodeProfile[];
  resetProfile(): void;
  setProfiling(on: boolean): void;
  dispose(): void;
  /** Set by compile on CUDA sessions with a cuDNN algorithm cache file (native/addon/session_wrap.cc). */
  readonly algorithmCache?: AlgorithmCacheReport;
}

/** The optimizer as the addon reads it (native/addon/session_wrap.cc, read_optimizer). */
export interface NativeOptimizer {
  type: 'sgd' | 'adamw' | 'lamb';
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  clipGradNorm: number;
  /** Per parameter, in graph order: its group's weight decay and learning-rate multiplier. */
  paramWeightDecay: number[];
  paramLrScale: number[];
}

/** The loss scaler's settings (native/core/loss_scaler.h); fields left out take GradScaler's defaults. */
export interface NativeLossScale {
  dynamic: boolean;
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
}

export interface NativeCompileOptions extends NativeOptimizer {
  batchSize: number;
  device: string;
  seed: number;
  inputGrads: boolean;
  reuseMemory: boolean;
  profile: boolean;
  fuse: boolean;
  /** A moving average of the weights with this decay (absent: none). */
  emaDecay?: number;
  emaWarmup?: boolean;
  precision: 'fp32' | 'bf16' | 'fp16';
  /** Absent: no loss scaling. */
  lossScale?: NativeLossScale;
  /** cuDNN algorithm choice (CUDA devices only); fields left out come from CRUNET_CUDNN_* or the defaults. */
  cudnn?: { benchmark?: boolean; deterministic?: boolean; benchmarkLimit?: number; allowTF32?: boolean; cacheFile?: string };
  /** Average the gradients across a process group's ranks in buckets of bucketBytes (native/dist/gradient_buckets.h); syncBatchNorm: batch statistics over every rank's batch. */
  distributed?: { group: NativeProcessGroup; bucketBytes: number; syncBatchNorm: boolean };
}

/** Versions of the CUDA pieces: as loaded at run time, and the headers the CUDA library was built with. */
export interface CudaVersions {
  driver: string;
  runtime: string;
  cudnn: string;
  cublas: string;
  compiledRuntime: string;
  compiledCudnn: string;
  compiledCublas: string;
}

export interface BuildInfo {
  compiler: string;
  buildSystem: string;
  napiVersion: number;
  cxxStandard: number;
  onednn: { version: string; isa: string; threading: string };
  threads: number;
  /** Whether the CUDA backend library (libcrunet_cuda.so) exists next to the addon (or at CRUNET_CUDA_LIBRARY). */
  cuda: boolean;
  cudaLibrary: string;
  /** The CUDA library's own description (CUDA, cuDNN, cuBLAS versions, GPU targets), when it loads. */
  cudaBuild?: string;
  cudaVersions?: CudaVersions;
  cudaDevices: number;
  /** Why no CUDA device can be used (library not built or not loadable, no driver, no device). */
  cudaUnavailableReason?: string;
  /** Whether the addon was built with Gloo (process groups, crunet.dist). */
  gloo: boolean;
}

export interface DeviceInfo {
  id: string;
  type: 'cpu' | 'cuda';
  name: string;
  cores?: number;
  isa?: string;
  /** CUDA devices: compute capability ("9.0"), memory, multiprocessors, PCI bus id and library versions. */
  computeCapability?: string;
  memoryBytes?: number;
  /**
   * Free device memory now (cudaMemGetInfo), only for devices a session of this process has compiled on:
   * asking any other device would create a CUDA context there, which holds memory for the process's life.
   */
  freeBytes?: number;
  multiprocessors?: number;
  pciBusId?: string;
  versions?: CudaVersions;
}

/** One row of the native op table: what an op takes (shapes and attribute meanings are shape inference's). */
export interface NativeOpDef {
  name: string;
  /** Inputs in order; optional ones only at the end; differentiable false for data (labels, soft targets). */
  inputs: { name: string; dtype: 'f32' | 'i32'; optional: boolean; differentiable: boolean }[];
  /** Parameter slots in order; optional ones only at the end; trainable false for state (running statistics). */
  params: { name: string; optional: boolean; trainable: boolean }[];
  attributes: { name: string; required: boolean }[];
}

/** What a kernel keeps for backward (defaults: nothing saved, every input read, the output not read). */
export interface NativeKernelNeeds {
  savedBytes?: number;
  readsInputs?: boolean[];
  readsOutput?: boolean;
}
/** Where a kernel writes a gradient: a schedule buffer, a parameter's own gradient, or nowhere (null). */
export type NativeGradDest = { buffer: number } | { param: string } | null;
export interface NativeBackwardPass {
  target: string;
  seedInLossKernel: boolean;
  calls: { node: string; outGrad: number; inGrad: NativeGradDest[]; paramGrad: NativeGradDest[]; accumulate: { into: NativeGradDest; from: number; count: number }[] }[];
  zeroFirst: string[];
  paramsReached: string[];
}
/** Buffer numbers index `buffers`; -1 means none. */
export interface NativeSchedule {
  buffers: { bytes: number; first: number; last: number }[];
  values: { name: string; data: number; grad: number }[];
  saved: number[];
  loss?: NativeBackwardPass;
  output?: NativeBackwardPass;
}

/** A process group's native side (native/addon/process_group_wrap.cc); lib/dist/process-group.ts checks the arguments. */
export interface NativeProcessGroup {
  allreduce(values: Float32Array | Float64Array, op: 'sum' | 'max' | 'min'): Promise<void>;
  broadcast(values: Float32Array | Float64Array | Uint8Array, root: number): Promise<void>;
  allgather(bytes: Uint8Array): Promise<Uint8Array[]>;
  barrier(): Promise<void>;
  destroy(): void;
}

export interface Addon {
  /** The class of compile's sessions; constructing it directly throws (a session comes from compile()). */
  NativeSession: abstract new (...args: never[]) => NativeSession;
  compile(graph: GraphIR, options: NativeCompileOptions): Promise<NativeSession>;
  buildInfo(): BuildInfo;
  devices(): DeviceInfo[];
  setNumThreads(n: number): void;
  /** Seconds spent inside oneDNN primitives since the addon loaded (for overhead benchmarks). */
  primitiveSeconds(): number;
  /** Stops the engine thread (at process exit): queued work is dropped, a running step stops at its next kernel. */
  shutdown(): void;
  /** The memory planner alone (native/core/memory_plan.h), for its tests; sessions plan with their backend's alignment. */
  planMemory(requests: { bytes: number; first: number; last: number }[], reuse: boolean, alignment: number): { offsets: number[]; arenaBytes: number; naiveBytes: number };
  /** The native op table (native/core/ops.h), for the test that holds lib/graph/ir.ts's OPS to it. */
  opTable(): NativeOpDef[];
  /** The schedule of a graph (native/core/schedule.h) with the given kernel needs, without a backend, for its tests. */
  schedule(graph: GraphIR, batch: number, options?: { inputGrads?: boolean; kernels?: NativeKernelNeeds[] }): NativeSchedule;
  /** Compile's tensor-size check alone with any limit (CUDA's is 2^31 - 1 elements), for its tests. */
  checkTensorElements(graph: GraphIR, batch: number, limit: number, where: string): void;
  /** Joins a process group (absent when the addon was built without Gloo). */
  initProcessGroup?(options: { rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number }): Promise<NativeProcessGroup>;
}

/** The package root: the nearest folder above this file whose package.json is crunet's. */
export function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'crunet') return dir;
    if (path.dirname(dir) === dir) throw new Error(`crunet: cannot find the package root above ${__dirname}`);
  }
}

let addon: Addon | undefined;
let loadedFrom: string | undefined;

/** The addon file this process loaded (undefined before the first use). */
export function addonFile(): string | undefined {
  return loadedFrom;
}

/**
 * OpenMP's wait policy for the addon, unless the user set one: passive. libgomp reads OMP_WAIT_POLICY and
 * GOMP_SPINCOUNT once, when the addon's loading loads it. Passive: a thread that reaches a barrier first
 * sleeps instead of spinning; on a machine where anything else runs, a spinning thread takes the core that
 * its partner needs to reach the barrier, and a step slows down many times over (bench/thread-policy.ts
 * measures it; README "Reliability"). Returns the undo, called once the addon is loaded, so that child
 * processes (the benchmarks' PyTorch peer) get the environment the user gave.
 */
export function setOpenMPWaitPolicy(env: NodeJS.ProcessEnv = process.env): () => void {
  if (env.OMP_WAIT_POLICY !== undefined || env.GOMP_SPINCOUNT !== undefined) return () => {};
  env.OMP_WAIT_POLICY = 'passive';
  return () => void delete env.OMP_WAIT_POLICY;
}

/** The addon, loaded on first use; a missing or unloadable one is an Error that says what to install. */
export function native(): Addon {
  if (addon) return addon;
  const root = packageRoot();
  // CRUNET_ADDON names one build explicitly: the tests load the node-gyp and the cmake-js builds side by
  // side, and the sanitizer build is loaded this way (docs/HARDENING.md).
  const explicit = process.env.CRUNET_ADDON;
  let addonPath: string | undefined;
  if (explicit) addonPath = path.resolve(explicit);
  else {
    try {
      // node-gyp-build's order: build/Release (a build from source), then prebuilds/<platform>-<arch>.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addonPath = require('node-gyp-build').resolve(root) as string;
    } catch {
      addonPath = undefined;
    }
  }
  const version = packageVersion(root);
  // Read only when needed: process.report takes some 20 ms.
  const facts = !addonPath || isPrebuilt(root, addonPath) ? platformFacts() : undefined;
  if (!explicit && (!addonPath || (isPrebuilt(root, addonPath) && (prebuiltProblem(facts!) || missingBundled(path.dirname(addonPath)).length))))
    throw new Error(addonLoadMessage({ root, version, facts: facts!, addonPath }));
  const cuda = cudaLibraryChoice({
    version,
    pkg: findCudaPackage(root),
    besideAddon: fs.existsSync(path.join(path.dirname(addonPath!), CUDA_LIBRARY)),
    env: process.env.CRUNET_CUDA_LIBRARY || undefined,
    checkout: isSourceCheckout(root),
  });
  // The addon reads CRUNET_CUDA_LIBRARY when a CUDA device is first asked for (backend_registry.cc).
  if (cuda.library) process.env.CRUNET_CUDA_LIBRARY = cuda.library;
  const undoWaitPolicy = setOpenMPWaitPolicy();
  let raw: Addon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    raw = require(addonPath!) as Addon;
  } catch (e) {
    const first = (e as Error).message.split('\n')[0];
    if (explicit) throw new Error(`crunet: cannot load the native addon CRUNET_ADDON=${explicit}: ${first}`, { cause: e });
    throw new Error(addonLoadMessage({ root, version, facts: facts ?? platformFacts(), addonPath, loadError: first }), { cause: e });
  } finally {
    undoWaitPolicy();
  }
  // The process must not exit (process.exit(), an uncaught exception) while the engine thread is inside
  // a kernel: exit() would destroy oneDNN's static objects under it (SIGSEGV). Stop it first. Only the
  // main thread's exit ends the process; a worker's must leave the shared engine thread running.
  if (isMainThread) process.on('exit', () => raw.shutdown());
  loadedFrom = addonPath;
  addon = cuda.problem || cuda.library ? withCudaChoice(raw, cuda) : raw;
  return addon;
}

/** The version in the package.json at `root` (crunet's, from packageRoot()). */
export function packageVersion(root: string): string {
  return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
}

/** The device strings the addon takes as CUDA devices (backend_registry.cc's cuda_index); others are its to refuse. */
function isCudaDevice(device: string): boolean {
  return /^cuda(:[0-9]{1,6})?$/.test(device);
}

/**
 * The addon with the CUDA package's view added. With `choice.problem` (no CUDA library anywhere, or a
 * package of another version) the addon's own "no CUDA backend" error, which it gives after checking the
 * options, says that problem instead, unless CRUNET_CUDA_LIBRARY names a library by the time of the call.
 * With the package's library, its requirements are added to the addon's "cannot load" errors.
 */
function withCudaChoice(raw: Addon, choice: { library?: string; problem?: string }): Addon {
  const problem = () => (process.env.CRUNET_CUDA_LIBRARY ? undefined : choice.problem);
  const explain = (why: string) => {
    const p = problem();
    if (p && /^(device '[^']*': )?this build of crunet has no CUDA backend /.test(why)) return why.replace(/^(device '[^']*': )?.*$/s, `$1${p}`);
    if (choice.library && process.env.CRUNET_CUDA_LIBRARY === choice.library) {
      if (/cannot load /.test(why)) return `${why} (${CUDA_PACKAGE} needs ${CUDA_NEEDS})`;
      // Same version, other build (a package made from another commit): rebuilding is not the remedy here.
      if (/cannot use .*\(rebuild both with 'npm run build:native'\)/.test(why))
        return why.replace("rebuild both with 'npm run build:native'", `install crunet and ${CUDA_PACKAGE} from the same release`);
    }
    return why;
  };
  return {
    ...raw,
    async compile(graph, options) {
      try {
        return await raw.compile(graph, options);
      } catch (e) {
        if (e instanceof Error && isCudaDevice(options.device)) e.message = explain(e.message);
        throw e;
      }
    },
    buildInfo() {
      const b = raw.buildInfo();
      return b.cudaUnavailableReason ? { ...b, cudaUnavailableReason: explain(b.cudaUnavailableReason) } : b;
    },
  };
}
