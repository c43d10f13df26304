// crunet bench: what a user asks of a device before training on it. For every distinct convolution
// shape of a model: the implementation (oneDNN's on the CPU; on CUDA each direction's cuDNN algorithm
// and the search behind it: every candidate's time and workspace), the kernel times of a few profiled
// steps, and the whole training step's images/s (unprofiled steps) at a batch size and precision.
import { parseArgs } from 'node:util';
import { buildInfo, compile, type AlgorithmChoice, type NodeProfile, type Precision } from '../engine/index.js';
import type { NodeIR } from '../graph/ir.js';
import { create, type Model } from '../models/index.js';
import { UsageError, usage } from './errors.js';
import { intFlag, precisionFlag, precisionHelp } from './flags.js';
import { MAX_THREADS, applyThreads, threadsHelp } from './threads.js';
import { parseModelOptions } from './model-options.js';

export const BENCH_HELP = `Usage: crunet bench [options]

Benchmarks a model's training step on a device: per distinct convolution shape, the implementation
(CUDA: every cuDNN algorithm tried per direction, its time and workspace, and the one chosen) and the
kernel times of up to 3 profiled steps; then the whole step's images/s (median of --steps after --warmup,
timed without profiling).

Options:
  --model NAME            model (default crunet56; 'crunet summary --list' lists them)
  --model-options JSON    the model's options, e.g. '{"inputSize":160}'
  --device D              cpu (default), cuda, cuda:N
  --batch-size B          batch size (default 32)
  ${threadsHelp(26)}
  ${precisionHelp(26)}
  --steps N               timed steps (default 10)
  --warmup N              untimed steps first (default 3)
  --no-benchmark          CUDA: cuDNN heuristics instead of timing the candidates (benchmark is on here,
                          as in PyTorch benchmark scripts)
  --benchmark-limit N     CUDA: candidates timed per direction (default 10; 0: all)
  --deterministic         CUDA: deterministic algorithms only
  --no-tf32               CUDA: no TF32 tensor-core math for fp32 convolutions
  --cache-file F          CUDA: cuDNN algorithm cache file, read before the searches and written after
  --json                  one JSON object instead of the tables`;

interface BenchArgs {
  model: string;
  modelOptions: Record<string, unknown>;
  device: string;
  batch: number;
  precision: Precision;
  steps: number;
  warmup: number;
  benchmark: boolean;
  benchmarkLimit: number;
  deterministic: boolean;
  allowTF32: boolean;
  cacheFile?: string;
  threads?: number;
  json: boolean;
}

export function parseBenchArgs(args: string[]): BenchArgs {
  const { values: v, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: {
      model: { type: 'string' }, 'model-options': { type: 'string' }, device: { type: 'string' },
      'batch-size': { type: 'string' }, precision: { type: 'string' }, steps: { type: 'string' }, warmup: { type: 'string' },
      'no-benchmark': { type: 'boolean' }, 'benchmark-limit': { type: 'string' }, deterministic: { type: 'boolean' },
      'no-tf32': { type: 'boolean' }, 'cache-file': { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const device = v.device ?? 'cpu';
  const cudnnFlags = (['no-benchmark', 'benchmark-limit', 'deterministic', 'no-tf32', 'cache-file'] as const).filter((f) => v[f] !== undefined);
  if (device === 'cpu' && cudnnFlags.length) throw new UsageError(`--${cudnnFlags[0]} applies to CUDA devices (--device cuda), not the CPU`);
  const precision = precisionFlag(v.precision) ?? 'fp32';
  return {
    model: v.model ?? 'crunet56',
    modelOptions: parseModelOptions(v['model-options'], []),
    device,
    batch: intFlag(v['batch-size'], '--batch-size', 1) ?? 32,
    precision,
    steps: intFlag(v.steps, '--steps', 1) ?? 10,
    warmup: intFlag(v.warmup, '--warmup', 0) ?? 3,
    benchmark: !v['no-benchmark'],
    benchmarkLimit: intFlag(v['benchmark-limit'], '--benchmark-limit', 0) ?? 10,
    deterministic: !!v.deterministic,
    allowTF32: !v['no-tf32'],
    cacheFile: v['cache-file'],
    threads: intFlag(v.threads, '--threads', 1, MAX_THREADS),
    json: !!v.json,
  };
}

/** One distinct convolution shape of the model and what ran for it. */
export interface ConvShapeReport {
  /** Per-sample input [C, H, W]. */
  input: number[];
  outChannels: number;
  kernel: number[];
  stride: number[];
  padding: number[];
  groups: number;
  /** The nodes with this shape (a shared factor's uses included). */
  nodes: string[];
  /** Kernel times summed over the nodes, per step (mean of up to 3 profiled steps after the timed ones). */
  forwardMs: number;
  backwardMs: number;
  /** The implementation of the first node of the shape (all nodes of one shape get the same). */
  impl: string;
  algorithms?: AlgorithmChoice[];
}

export interface BenchReport {
  model: string;
  params: number;
  input: number[];
  device: string;
  precision: Precision;
  batch: number;
  build: string;
  convolutions: ConvShapeReport[];
  step: { medianMs: number; imagesPerSec: number; stepsMs: number[]; warmup: number; compileMs: number };
  algorithmCache?: { file: string; loaded: number; saved: number; notes: string };
}

function convKey(node: NodeIR, input: readonly number[]): string {
  const a = node.attrs;
  return JSON.stringify([input, a.outChannels, a.kernel, a.stride, a.padding, a.groups]);
}

/** The median (NaN for none). bench/lib/stats.ts re-exports it for the benchmark suites. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs the benchmark; throws what compile or a step throws. */
export async function runBench(a: BenchArgs, model: Model = create(a.model, a.modelOptions)): Promise<BenchReport> {
  const cpu = a.device === 'cpu';
  const graph = model.graph;
  const input = graph.ir.inputs.find((i) => i.dtype === 'f32')!.shape;
  const classes = model.options.classes;
  const t0 = performance.now();
  const session = await compile(model, {
    device: a.device, batchSize: a.batch, precision: a.precision,
    // Whole steps are timed without kernel timing (on a GPU it synchronizes around every kernel); a few
    // profiled steps follow.
    profile: false,
    optimizer: { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
    ...(cpu ? {} : {
      cudnn: {
        benchmark: a.benchmark, benchmarkLimit: a.benchmarkLimit, deterministic: a.deterministic, allowTF32: a.allowTF32,
        ...(a.cacheFile ? { cacheFile: a.cacheFile } : {}),
      },
    }),
  });
  const compileMs = performance.now() - t0;
  try {
    const perSample = input.reduce((x, y) => x * y, 1);
    const images = Float32Array.from({ length: a.batch * perSample }, (_, i) => Math.sin(i * 0.37));
    const labels = Int32Array.from({ length: a.batch }, (_, i) => i % classes);
    for (let i = 0; i < a.warmup; i++) await session.step(images, labels);
    const stepsMs: number[] = [];
    for (let i = 0; i < a.steps; i++) {
      const s0 = performance.now();
      await session.step(images, labels);
      stepsMs.push(performance.now() - s0);
    }
    const profiled = Math.min(a.steps, 3);
    session.setProfiling(true);
    session.resetProfile();
    for (let i = 0; i < profiled; i++) await session.step(images, labels);
    session.setProfiling(false);
    const profile = new Map<string, NodeProfile>(session.profile().map((p) => [p.name, p]));
    const shapes = new Map<string, ConvShapeReport>();
    for (const node of graph.ir.nodes) {
      if (node.op !== 'conv2d') continue;
      const x = graph.shapes.get(node.inputs[0]!)!;
      const key = convKey(node, x);
      const p = profile.get(node.name);
      let r = shapes.get(key);
      if (!r) {
        r = {
          input: [...x], outChannels: node.attrs.outChannels as number, kernel: node.attrs.kernel as number[],
          stride: node.attrs.stride as number[], padding: node.attrs.padding as number[], groups: node.attrs.groups as number,
          nodes: [], impl: p?.impl ?? '', forwardMs: 0, backwardMs: 0,
          ...(p?.algorithms ? { algorithms: p.algorithms } : {}),
        };
        shapes.set(key, r);
      }
      r.nodes.push(node.name);
      if (p) {
        r.forwardMs += p.forwardMs / profiled;
        r.backwardMs += p.backwardMs / profiled;
      }
    }
    const med = median(stepsMs);
    const info = buildInfo();
    return {
      model: model.name, params: model.parameterCount(), input: [...input], device: a.device, precision: a.precision, batch: a.batch,
      build: cpu ? `oneDNN ${info.onednn.version} (${info.onednn.isa}), ${info.threads} threads` : info.cudaBuild ?? '',
      convolutions: [...shapes.values()],
      step: { medianMs: med, imagesPerSec: (a.batch * 1000) / med, stepsMs, warmup: a.warmup, compileMs },
      ...(session.algorithmCache ? { algorithmCache: session.algorithmCache } : {}),
    };
  } finally {
    session.dispose();
  }
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(0)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function formatBench(r: BenchReport): string {
  const out: string[] = [];
  out.push(`crunet bench: ${r.model} (${r.params.toLocaleString('en-US')} parameters), ${r.input.join('x')}, batch ${r.batch}, ${r.device}, ${r.precision}; ${r.build}`);
  const n = r.convolutions.reduce((s, c) => s + c.nodes.length, 0);
  out.push(`convolutions: ${r.convolutions.length} distinct shapes in ${n} nodes`);
  out.push(`  ${'input'.padEnd(14)} ${'out'.padStart(5)} ${'kernel'.padEnd(6)} ${'stride'.padEnd(6)} ${'groups'.padStart(6)} ${'nodes'.padStart(5)}` +
    ` ${'fwd ms'.padStart(8)} ${'bwd ms'.padStart(8)}  implementation`);
  for (const c of r.convolutions) {
    const head = `  ${c.input.join('x').padEnd(14)} ${String(c.outChannels).padStart(5)} ${c.kernel.join('x').padEnd(6)} ${c.stride.join('x').padEnd(6)} ` +
      `${String(c.groups).padStart(6)} ${String(c.nodes.length).padStart(5)} ${c.forwardMs.toFixed(2).padStart(8)} ${c.backwardMs.toFixed(2).padStart(8)}`;
    if (!c.algorithms) {
      out.push(`${head}  ${c.impl}`);
      continue;
    }
    out.push(head);
    for (const d of c.algorithms) {
      const chosen = `${d.algo} (${d.math}${d.ms >= 0 ? `, ${d.ms.toFixed(3)} ms` : ''}, ${bytes(d.workspace)}, ${d.mode}${d.cached ? (d.fromFile ? ', from cache file' : ', cached') : ''})`;
      out.push(`      ${d.direction.padEnd(16)} ${chosen}`);
      for (const k of d.candidates) {
        out.push(`        ${k.algo === d.algo && k.skipped === null ? '*' : ' '} ${k.algo.padEnd(24)} ${k.ms >= 0 ? `${k.ms.toFixed(3)} ms` : '-'.padStart(8)}  ${bytes(k.workspace).padStart(9)}` +
          `${k.deterministic ? '  deterministic' : ''}${k.skipped ? `  skipped: ${k.skipped}` : ''}`);
      }
    }
  }
  const f = r.convolutions.reduce((s, c) => s + c.forwardMs, 0), b = r.convolutions.reduce((s, c) => s + c.backwardMs, 0);
  out.push(`  all convolutions: forward ${f.toFixed(1)} ms, backward ${b.toFixed(1)} ms per profiled step`);
  if (r.algorithmCache) out.push(`cuDNN algorithm cache: ${r.algorithmCache.notes}`);
  const hits = r.convolutions.flatMap((c) => c.algorithms ?? []).filter((d) => d.cached).length;
  const searched = r.convolutions.flatMap((c) => c.algorithms ?? []).length;
  if (searched) out.push(`cuDNN algorithm cache hits: ${hits} of ${searched} choices (the rest were searched)`);
  out.push(`whole step: median ${r.step.medianMs.toFixed(1)} ms = ${r.step.imagesPerSec.toFixed(1)} images/s ` +
    `(${r.step.stepsMs.length} steps after ${r.step.warmup} warm-up; compile ${(r.step.compileMs / 1000).toFixed(1)} s)`);
  return out.join('\n');
}

export async function benchCommand(args: string[]): Promise<number> {
  const a = parseBenchArgs(args);
  applyThreads(a.threads);
  const r = await runBench(a, usage(() => create(a.model, a.modelOptions)));
  console.log(a.json ? JSON.stringify(r) : formatBench(r));
  return 0;
}
