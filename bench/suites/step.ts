// Whole-step suite: training images/s and peak memory of one model, crunet and the PyTorch peer in one
// invocation, taking turns step by step.
//
// Both sides get the same network (the peer builds it from crunet's graph IR and asserts the parameter
// count), the same initial values (crunet's, copied to the peer; its inference logits on two samples are
// compared before timing), the same batch of data in host memory (images[i] = sin(i), labels[i] =
// i mod classes), the same optimizer (SGD, momentum 0.9, Nesterov, weight decay 1e-4 where the IR says
// so), W warm-up steps each, then N timed steps each, alternating (crunet first on even turns, PyTorch
// first on odd ones, a 100 ms pause between turns so that idle OpenMP threads stop spinning).
// images/s = batch / median step time. Each step is timed around the whole call as a user sees it:
// crunet's `await session.step(images, labels)` (upload, forward, loss, backward, SGD update);
// PyTorch's zero_grad, forward, loss, backward, optimizer.step and loss.item().
// Peak memory (CPU): the process's resident high-water mark (VmHWM, Linux /proc/self/status) above its
// RSS when the measurement started (the high-water mark reset through /proc/self/clear_refs), measured
// the same way in both processes, from before the data and the network exist to the end of the timed
// steps; crunet also reports its planned peak (session.memory().plannedPeakBytes: activation arena,
// parameters with gradients and momenta, kernel scratch). On a GPU: crunet's planned peak and
// torch.cuda.max_memory_allocated.
// PyTorch's memory format: with --peer-format both (the CPU default) the peer runs once in each format,
// each phase alternating with crunet, and the faster one is reported as "pytorch".
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compile, type Session } from '../../lib/index.js';
import { create, nodeMacs } from '../../lib/models/index.js';
import { busyProcesses, machineInfo, RssWatermark, type MachineInfo } from '../lib/machine.js';
import { PytorchPeer, type PeerFormat, type PeerInfo, type PeerName } from '../lib/peer.js';
import { median, round } from '../lib/stats.js';
import { measurePeak, type PeakResult } from './peak.js';

export interface SideResult {
  imagesPerSec: number;
  peakBytes: number;
  medianStepMs: number;
  stepsMs: number[];
  /** How peakBytes was measured. */
  peakHow: string;
  /** Achieved training GFLOP/s and its percent of the GEMM peak measured in this run. */
  gflops: number;
  percentOfPeak: number;
  firstLoss?: number;
  lastLoss?: number;
}

export interface CrunetSide extends SideResult {
  plannedPeakBytes: number;
  rssPeakBytes: number;
  memory: Record<string, number>;
  compileMs: number;
  /** Per-op kernel time of one step (session profiler, mean over the timed steps). */
  profile?: { byOp: { op: string; nodes: number; forwardMs: number; backwardMs: number }[]; top: { name: string; op: string; forwardMs: number; backwardMs: number; impl: string }[]; kernelMs: number };
}

export interface PytorchSide extends SideResult {
  format: PeerFormat;
  info: PeerInfo;
  gemmGflops?: number;
  logitsMaxAbsDiff?: number;
  profile?: { ops: { name: string; selfMs: number; calls: number }[]; totalSelfMs: number };
}

export interface StepResultJSON {
  model: string;
  device: string;
  suite: 'step';
  precision: string;
  batch: number;
  /** CUDA only: cudnn.benchmark on both sides. */
  cudnnBenchmark?: boolean;
  crunet: CrunetSide | { error: string };
  pytorch: PytorchSide | { unavailable: string } | { error: string } | { skipped: string } | null;
  /** crunet images/s over PyTorch images/s (above 1: crunet is faster). */
  ratio: number | null;
  /** crunet peak bytes over PyTorch peak bytes (below 1: crunet needs less). */
  memoryRatio: number | null;
  /** Every PyTorch format tried, with its own ratio (each phase alternated with crunet). */
  pytorchFormats?: Record<string, PytorchSide | { error: string }>;
  params: number;
  trainGflopPerStep: number;
  steps: number;
  warmup: number;
  peak: PeakResult;
  machine: MachineInfo;
  loadAfter: number;
  busyAfter: string[];
}

export interface StepOptions {
  model: string;
  batch: number;
  device: string;
  precision: string;
  steps: number;
  warmup: number;
  peer: PeerName;
  peerFormats: PeerFormat[];
  threads: number;
  /** CUDA: cudnn.benchmark for crunet and PyTorch alike (a comparison needs the same setting on both sides). */
  cudnnBenchmark: boolean;
  /** Fraction of the cores busy just before the run (recorded with the machine). */
  cpuBusyBefore?: number;
  log: (s: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** FLOPs of one training step: 2 x batch x (forward + backward-weights + backward-data MACs); no dX for the image. */
function trainFlop(graph: ReturnType<typeof create>['graph'], batch: number): number {
  const inputs = new Set(graph.ir.inputs.map((i) => i.name));
  let macs = 0;
  for (const n of graph.ir.nodes) {
    const m = nodeMacs(graph, n);
    macs += inputs.has(n.inputs[0]!) ? 2 * m : 3 * m;
  }
  return 2 * batch * macs;
}

async function writeParams(s: Session, names: string[], file: string): Promise<void> {
  const fd = fs.openSync(file, 'w');
  try {
    for (const n of names) {
      const v = s.getParameter(n);
      fs.writeSync(fd, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
  } finally {
    fs.closeSync(fd);
  }
}

type NodeProfile = { name: string; op: string; impl: string; forwardMs: number; backwardMs: number };

/** Adds the session profiler's per-node times of the last call(s) to `acc` and resets the profiler. */
function takeProfile(s: Session, acc: Map<string, NodeProfile> | undefined): void {
  if (acc) {
    for (const p of s.profile()) {
      const e = acc.get(p.name) ?? { name: p.name, op: p.op, impl: p.impl, forwardMs: 0, backwardMs: 0 };
      e.forwardMs += p.forwardMs;
      e.backwardMs += p.backwardMs;
      acc.set(p.name, e);
    }
  }
  s.resetProfile();
}

function crunetProfile(acc: Map<string, NodeProfile>, steps: number): CrunetSide['profile'] {
  const prof = [...acc.values()];
  const byOp = new Map<string, { op: string; nodes: number; forwardMs: number; backwardMs: number }>();
  for (const p of prof) {
    const e = byOp.get(p.op) ?? { op: p.op, nodes: 0, forwardMs: 0, backwardMs: 0 };
    e.nodes++;
    e.forwardMs += p.forwardMs / steps;
    e.backwardMs += p.backwardMs / steps;
    byOp.set(p.op, e);
  }
  const ops = [...byOp.values()].map((e) => ({ ...e, forwardMs: round(e.forwardMs, 2), backwardMs: round(e.backwardMs, 2) }));
  ops.sort((a, b) => b.forwardMs + b.backwardMs - a.forwardMs - a.backwardMs);
  const top = prof
    .sort((a, b) => b.forwardMs + b.backwardMs - a.forwardMs - a.backwardMs)
    .slice(0, 15)
    .map((p) => ({ name: p.name, op: p.op, forwardMs: round(p.forwardMs / steps, 2), backwardMs: round(p.backwardMs / steps, 2), impl: p.impl }));
  const kernelMs = round(prof.reduce((a, p) => a + p.forwardMs + p.backwardMs, 0) / steps, 1);
  return { byOp: ops, top, kernelMs };
}

export async function runStep(o: StepOptions): Promise<StepResultJSON> {
  const machine = machineInfo(o.cpuBusyBefore);
  const model = create(o.model);
  const graph = model.graph;
  const cuda = o.device.startsWith('cuda');
  const [c, h, w] = graph.ir.inputs[0]!.shape as [number, number, number];
  const classes = graph.shapes.get(graph.ir.outputs[0]!)![0]!;
  const flop = trainFlop(graph, o.batch);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-bench-'));
  o.log(`step suite: ${o.model} (${model.parameterCount().toLocaleString('en-US')} parameters), ${c}x${h}x${w}, batch ${o.batch}, ${o.device}, ${o.precision}; warm-up ${o.warmup}, median of ${o.steps} steps per side${o.peer === 'pytorch' ? ` and PyTorch format(s) ${o.peerFormats.join(', ')}` : ''}`);

  // The GEMM peak is measured at the end: its buffers would otherwise sit in the memory baselines.
  const peak = { peakGflops: NaN } as PeakResult;
  const result: StepResultJSON = {
    model: o.model, device: o.device, suite: 'step', precision: o.precision, batch: o.batch, ...(cuda ? { cudnnBenchmark: o.cudnnBenchmark } : {}),
    crunet: { error: 'not run' }, pytorch: null, ratio: null, memoryRatio: null,
    params: model.parameterCount(), trainGflopPerStep: round(flop / 1e9, 2), steps: o.steps, warmup: o.warmup,
    peak, machine, loadAfter: 0, busyAfter: [],
  };
  const side = (stepsMs: number[]) => {
    const med = median(stepsMs);
    const gflops = flop / 1e9 / (med / 1000);
    // percentOfPeak is filled in once the peak is measured.
    return { medianStepMs: round(med, 2), imagesPerSec: round((o.batch * 1000) / med, 2), stepsMs: stepsMs.map((x) => round(x, 2)), gflops: round(gflops, 1), percentOfPeak: NaN };
  };

  // ---- crunet: compile, copy its initial values out for the peer, warm up ----
  const watermark = new RssWatermark();
  const images = Float32Array.from({ length: o.batch * c * h * w }, (_, i) => Math.sin(i));
  const labels = Int32Array.from({ length: o.batch }, (_, i) => i % classes);
  let session: Session | undefined;
  const crunetMs: number[] = [];
  let firstLoss: number | undefined, lastLoss: number | undefined;
  let compileMs = 0;
  let crunetLogits: Float32Array | undefined;
  try {
    const t0 = performance.now();
    session = await compile(model, {
      batchSize: o.batch, device: o.device, precision: o.precision as 'fp32', profile: !cuda,
      ...(cuda ? { cudnn: { benchmark: o.cudnnBenchmark } } : {}),
      optimizer: { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
    });
    compileMs = performance.now() - t0;
    if (o.peer === 'pytorch') {
      await writeParams(session, graph.ir.params.map((p) => p.name), path.join(tmp, 'params.bin'));
      crunetLogits = await session.forward(images.subarray(0, 2 * c * h * w));
    }
    for (let i = 0; i < o.warmup; i++) {
      const r = await session.step(images, labels);
      firstLoss ??= r.loss;
    }
    session.resetProfile();
  } catch (e) {
    result.crunet = { error: (e as Error).message };
    session?.dispose();
    session = undefined;
    o.log(`crunet: ${(e as Error).message}`);
  }
  // Per-node kernel times of the timed steps only (the profiler is read and reset around each step).
  const profile = cuda ? undefined : new Map<string, NodeProfile>();
  let crunetError: string | undefined;
  const crunetStep = async (timed = true) => {
    takeProfile(session!, undefined);
    const t0 = performance.now();
    let r;
    try {
      r = await session!.step(images, labels);
    } catch (e) {
      crunetError = (e as Error).message;
      throw e;
    }
    const ms = performance.now() - t0;
    if (!timed) return takeProfile(session!, undefined);
    crunetMs.push(ms);
    takeProfile(session!, profile);
    lastLoss = r.loss;
  };

  // ---- the peer: one phase per memory format, each alternating with crunet ----
  const formats: Record<string, PytorchSide | { error: string }> = {};
  let peerUnavailable: string | undefined;
  if (o.peer === 'pytorch' && !session) result.pytorch = { skipped: 'crunet could not run this configuration, so there is nothing to compare with' };
  if (o.peer === 'pytorch' && session) {
    fs.writeFileSync(path.join(tmp, 'graph.json'), JSON.stringify(graph.ir));
    fs.writeFileSync(path.join(tmp, 'images.bin'), new Uint8Array(images.buffer));
    fs.writeFileSync(path.join(tmp, 'labels.bin'), new Uint8Array(labels.buffer));
    for (const format of o.peerFormats) {
      // The peer trains in the same precision: fp32, or AMP (autocast) for bf16/fp16.
      const amp = o.precision === 'fp32' ? 'none' : (o.precision as 'bf16' | 'fp16');
      const started = await PytorchPeer.start({ device: o.device, threads: o.threads, format, amp, cudnnBenchmark: o.cudnnBenchmark });
      if ('unavailable' in started) {
        peerUnavailable = started.unavailable;
        o.log(started.unavailable);
        break;
      }
      const peer = started;
      const ms: number[] = [];
      try {
        await peer.request('build', {
          ir: path.join(tmp, 'graph.json'), images: path.join(tmp, 'images.bin'), labels: path.join(tmp, 'labels.bin'),
          batch: o.batch, expectParams: model.parameterCount(), seed: 0,
          optimizer: { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
        });
        await peer.request('load_params', { path: path.join(tmp, 'params.bin') });
        const fw = await peer.request<{ logits: number[] }>('forward', { n: 2 });
        let diff = 0, scale = 0;
        fw.logits.forEach((v, i) => {
          diff = Math.max(diff, Math.abs(v - crunetLogits![i]!));
          scale = Math.max(scale, Math.abs(crunetLogits![i]!));
        });
        if (!(diff <= 1e-3 * Math.max(1, scale))) throw new Error(`the PyTorch network's logits differ from crunet's by ${diff} (max |logit| ${scale}): not the same network`);
        o.log(`pytorch ${format}: same network (${model.parameterCount().toLocaleString('en-US')} parameters, inference logits within ${diff.toExponential(1)} of crunet's); warming up`);
        const warm = await peer.request<{ steps: { ms: number; loss: number }[] }>('steps', { n: o.warmup });
        // crunet sat idle while the peer built and warmed up: one untimed step so both start the turns warm.
        await crunetStep(false);
        const peerFirst = warm.steps[0]?.loss;
        let peerLast: number | undefined;
        for (let i = 0; i < o.steps; i++) {
          const peerStep = async () => {
            const r = await peer.request<{ steps: { ms: number; loss: number }[] }>('steps', { n: 1 });
            ms.push(r.steps[0]!.ms);
            peerLast = r.steps[0]!.loss;
          };
          for (const f of i % 2 ? [peerStep, crunetStep] : [crunetStep, peerStep]) {
            await f();
            await sleep(100);
          }
          o.log(`  turn ${i + 1}/${o.steps}: crunet ${crunetMs.at(-1)!.toFixed(1)} ms, pytorch (${format}) ${ms.at(-1)!.toFixed(1)} ms`);
        }
        const mem = await peer.request<{ peakBytes: number; how: string }>('memory');
        let prof: PytorchSide['profile'];
        try {
          prof = await peer.request<NonNullable<PytorchSide['profile']>>('profile');
          prof = { ops: prof.ops, totalSelfMs: round(prof.totalSelfMs, 1) };
        } catch {
          prof = undefined;
        }
        await peer.request('release');
        const gemm = await peer.request<{ ms: number[]; flop: number }>('gemm', { n: 2048, reps: 10 });
        formats[format] = {
          ...side(ms), format, info: peer.info, peakBytes: mem.peakBytes, peakHow: mem.how,
          gemmGflops: round(gemm.flop / (Math.min(...gemm.ms.slice(2)) * 1e6), 1), logitsMaxAbsDiff: diff,
          firstLoss: peerFirst, lastLoss: peerLast, profile: prof,
        };
      } catch (e) {
        if (crunetError) o.log(`crunet: ${crunetError}`);
        else {
          formats[format] = { error: (e as Error).message };
          o.log(`pytorch ${format}: ${(e as Error).message}`);
        }
      } finally {
        await peer.close();
      }
      if (crunetError) break;
    }
  }
  // crunet completes its own N steps when the peer could not take turns.
  try {
    while (session && !crunetError && crunetMs.length < o.steps) {
      await crunetStep();
      await sleep(100);
    }
  } catch {
    /* recorded in crunetError */
  }

  if (crunetError) result.crunet = { error: crunetError };
  else if (session && crunetMs.length) {
    const m = session.memory();
    const rss = watermark.peakDelta();
    result.crunet = {
      ...side(crunetMs),
      peakBytes: cuda ? m.plannedPeakBytes : rss,
      peakHow: cuda ? 'planned peak (session.memory().plannedPeakBytes)' : `VmHWM - VmRSS before the data and compile (/proc/self/status${watermark.resetWorked ? '; clear_refs reset the high-water mark' : ''})`,
      plannedPeakBytes: m.plannedPeakBytes,
      rssPeakBytes: rss,
      memory: { ...m },
      compileMs: round(compileMs, 0),
      firstLoss, lastLoss,
      profile: profile ? crunetProfile(profile, crunetMs.length) : undefined,
    };
  }
  session?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    result.peak = await measurePeak({ device: o.device, log: o.log });
  } catch (e) {
    result.peak = { ...result.peak, error: (e as Error).message };
    o.log(`peak: ${(e as Error).message}`);
  }
  for (const s of [result.crunet, ...Object.values(formats)]) {
    if ('gflops' in s) s.percentOfPeak = round((100 * s.gflops) / result.peak.peakGflops, 1);
  }

  // The headline PyTorch number: its faster format.
  const ok = Object.values(formats).filter((f): f is PytorchSide => !('error' in f));
  if (o.peer === 'pytorch' && result.pytorch === null) {
    if (ok.length) result.pytorch = ok.reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a));
    else if (peerUnavailable) result.pytorch = { unavailable: peerUnavailable };
    else result.pytorch = { error: Object.values(formats).map((f) => ('error' in f ? f.error : '')).join('; ') || 'no result' };
  }
  if (Object.keys(formats).length) result.pytorchFormats = formats;
  if (result.pytorch && 'imagesPerSec' in result.pytorch && 'imagesPerSec' in result.crunet) {
    result.ratio = round(result.crunet.imagesPerSec / result.pytorch.imagesPerSec, 3);
    result.memoryRatio = round(result.crunet.peakBytes / result.pytorch.peakBytes, 3);
  }
  result.loadAfter = os.loadavg()[0]!;
  result.busyAfter = busyProcesses();
  return result;
}
