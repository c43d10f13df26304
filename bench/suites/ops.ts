// Per-op suite: every distinct convolution, batch norm and ReLU shape of the chosen models, timed one
// layer at a time with the `benchmark` package (deferred cases: each call waits for the device), crunet
// and the PyTorch peer one after the other for each layer.
//
// How each direction is measured on crunet (Note [per-op timing]): one-op graphs compiled with
// profile: true; every Benchmark call is one Session.gradients() (forward + backward) and the time
// recorded is the session profiler's kernel time of that call, not the call's upload/download:
//   - forward:          the conv's forward kernel (it includes reordering the weights into the layout
//                       the primitive chose, as every training step does);
//   - backward-data:    a graph whose conv weight is NOT trainable, compiled with inputGrads: backward
//                       then runs backward-data alone;
//   - backward-weights: a trainable weight without inputGrads: backward runs backward-weights alone
//                       (plus the reorder of dW back to PyTorch's layout when the primitive chose another).
//   - batch norm (alone, or fused with the following ReLU as the CPU backend runs it) and ReLU: forward,
//     and backward with the input gradient and (batch norm) the scale/shift gradients. A batch norm reads
//     the output of a ReLU node that is not counted (the backend fuses a batch norm that reads a graph
//     input with nothing, see native/core/fusion.h).
// PyTorch (bench/peers/pytorch_peer.py, op_prepare/op_rep): F.conv2d forward, then torch.autograd.grad
// for the input alone (backward-data) and the weight alone (backward-weights), each timed around the
// call, in the peer's memory format; batch norm is F.batch_norm (+ in-place F.relu) with its backward.
// Times are medians over all calls; GFLOP/s = 2 x multiply-adds x batch / time; percent of peak against
// the GEMM peak measured at the start of the same run; memory-bound ops report GB/s of the minimal
// traffic (forward: read x, write y; backward: read x and dy, write dx) against the copy bandwidth.
import Benchmark from 'benchmark';
import { compile, type Session } from '../../lib/index.js';
import { create } from '../../lib/models/index.js';
import { collectLayers, layerBytes, layerGraph, type Layer } from '../lib/layers.js';
import type { PytorchPeer } from '../lib/peer.js';
import { median, round } from '../lib/stats.js';
import type { PeakResult } from './peak.js';

export interface Directions {
  fwd: number;
  bwdData?: number;
  bwdWeights?: number;
  /** batch norm / ReLU: the whole backward. */
  bwd?: number;
}

export interface OpResult extends Omit<Layer, 'nodes'> {
  exampleNodes: Record<string, string>;
  crunet: (Directions & { impl: string; calls: number; benchmark: string[] }) | { error: string };
  pytorch?: (Directions & { calls: number; benchmark: string }) | { error: string };
  /** GFLOP/s (convolutions) or GB/s (memory-bound ops) per direction. */
  crunetRate?: Directions;
  pytorchRate?: Directions;
  /** PyTorch time / crunet time per direction: above 1, crunet is faster. */
  ratio?: Directions;
}

export interface OpsResult {
  models: string[];
  batch: number;
  device: string;
  maxTime: number;
  layers: OpResult[];
  /** Per model: sum over its layers of uses x median time, per op and direction (ms per step). */
  totals: Record<string, Record<string, { crunet: number; pytorch?: number }>>;
}

interface BenchCase {
  name: string;
  prepare: () => Promise<void>;
  call: () => Promise<void>;
}

/** Runs cases through one Benchmark.Suite (deferred), after two warm-up calls each; returns "name x ops/sec ±rme". */
async function runSuite(cases: BenchCase[], maxTime: number): Promise<string[]> {
  for (const c of cases) {
    await c.prepare();
    await c.call();
    await c.call();
  }
  const lines: string[] = [];
  let failure: unknown;
  await new Promise<void>((resolve) => {
    const suite = new Benchmark.Suite();
    for (const c of cases) {
      suite.add(c.name, {
        defer: true,
        minSamples: 5,
        maxTime,
        fn: (d: Benchmark.Deferred) => {
          c.call().then(() => d.resolve(), (e: unknown) => {
            // An error cannot cross Benchmark.js: stop the suite and rethrow it below.
            failure ??= e;
            suite.abort();
            d.resolve();
          });
        },
      });
    }
    suite.on('cycle', (e: Benchmark.Event) => lines.push(String(e.target)));
    suite.on('complete', () => resolve());
    suite.on('abort', () => resolve());
    suite.run({ async: true });
  });
  if (failure) throw failure;
  return lines;
}

function kernelTimes(s: Session): { fwd: number; bwd: number; impl: string } {
  const p = s.profile().filter((e) => e.name.startsWith('op'));
  s.resetProfile();
  return {
    fwd: p.reduce((a, e) => a + e.forwardMs, 0),
    bwd: p.reduce((a, e) => a + e.backwardMs, 0),
    impl: p.map((e) => e.impl).join(' | '),
  };
}

async function crunetLayer(l: Layer, batch: number, device: string, maxTime: number): Promise<OpResult['crunet']> {
  const sessions: Session[] = [];
  try {
    const per = l.input.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: batch * per }, (_, i) => Math.sin(i * 0.37));
    const variants = l.op === 'conv2d' ? [{ frozen: true, inputGrads: true, what: 'bwdData' }, { frozen: false, inputGrads: false, what: 'bwdWeights' }] : [{ frozen: false, inputGrads: true, what: 'bwd' }];
    const fwd: number[] = [];
    const bwd: Record<string, number[]> = {};
    let impl = '';
    const cases: BenchCase[] = [];
    for (const v of variants) {
      const graph = layerGraph(l, v.frozen);
      const outPer = graph.shapes.get(graph.ir.outputs[0]!)!.reduce((a, b) => a * b, 1);
      const seed = Float32Array.from({ length: batch * outPer }, (_, i) => Math.cos(i * 0.11));
      let s!: Session;
      bwd[v.what] = [];
      cases.push({
        name: `crunet ${l.key} fwd+${v.what}`,
        prepare: async () => {
          s = await compile(graph, { batchSize: batch, device, profile: true, inputGrads: v.inputGrads, optimizer: { lr: 0 } });
          sessions.push(s);
        },
        call: async () => {
          await s.gradients(x, seed);
          const t = kernelTimes(s);
          fwd.push(t.fwd);
          bwd[v.what]!.push(t.bwd);
          impl = t.impl;
        },
      });
    }
    const lines = await runSuite(cases, maxTime);
    const out: Directions = { fwd: median(fwd) };
    for (const [k, xs] of Object.entries(bwd)) (out as unknown as Record<string, number>)[k] = median(xs);
    return { ...out, impl, calls: fwd.length, benchmark: lines };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    for (const s of sessions) s.dispose();
  }
}

async function pytorchLayer(l: Layer, batch: number, peer: PytorchPeer, maxTime: number): Promise<NonNullable<OpResult['pytorch']>> {
  try {
    const samples: Record<string, number>[] = [];
    const lines = await runSuite([{
      name: `pytorch ${l.key}`,
      prepare: async () => {
        await peer.request('op_prepare', { op: l.op, shape: [batch, ...l.input], attrs: l.attrs });
      },
      call: async () => {
        const r = await peer.request<Record<string, number>>('op_rep');
        samples.push(r);
      },
    }], maxTime);
    await peer.request('release');
    const pick = (k: string) => (samples[0]![k] !== undefined ? median(samples.map((s) => s[k]!)) : undefined);
    const d: Directions = { fwd: pick('fwd')! };
    if (l.op === 'conv2d') {
      d.bwdData = pick('bwdData');
      d.bwdWeights = pick('bwdWeights');
    } else d.bwd = pick('bwd');
    return { ...d, calls: samples.length, benchmark: lines[0] ?? '' };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function rates(l: Layer, d: Directions, batch: number): Directions {
  const out: Directions = { fwd: 0 };
  if (l.op === 'conv2d') {
    const gflop = (2 * l.macs * batch) / 1e9;
    for (const k of ['fwd', 'bwdData', 'bwdWeights'] as const) if (d[k] !== undefined) out[k] = round(gflop / (d[k]! / 1000), 2);
  } else {
    const b = layerBytes(l, batch);
    out.fwd = round(b.fwd / 1e9 / (d.fwd / 1000), 2);
    if (d.bwd !== undefined) out.bwd = round(b.bwd / 1e9 / (d.bwd / 1000), 2);
  }
  return out;
}

export async function runOps(o: {
  models: string[];
  batch: number;
  device: string;
  maxTime: number;
  peer?: PytorchPeer;
  peak: PeakResult;
  filter?: RegExp;
  log: (s: string) => void;
}): Promise<OpsResult> {
  const layers = new Map<string, Layer>();
  for (const m of o.models) collectLayers(m, create(m).graph, layers);
  const list = [...layers.values()].filter((l) => !o.filter || o.filter.test(l.key));
  o.log(`per-op suite: ${list.length} distinct layers of ${o.models.join(', ')}, batch ${o.batch}, ${o.device}; Benchmark.js maxTime ${o.maxTime} s per case`);
  const results: OpResult[] = [];
  const fmt = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(2));
  for (const [i, l] of list.entries()) {
    const { nodes, ...rest } = l;
    const r: OpResult = { ...rest, exampleNodes: Object.fromEntries(Object.entries(nodes).map(([k, v]) => [k, v[0]!])), crunet: { error: 'not run' } };
    // crunet and PyTorch take turns layer by layer; which goes first alternates.
    const runC = async () => (r.crunet = await crunetLayer(l, o.batch, o.device, o.maxTime));
    const runP = async () => {
      if (o.peer) r.pytorch = await pytorchLayer(l, o.batch, o.peer, o.maxTime);
    };
    if (i % 2) {
      await runP();
      await runC();
    } else {
      await runC();
      await runP();
    }
    if (!('error' in r.crunet)) r.crunetRate = rates(l, r.crunet, o.batch);
    if (r.pytorch && !('error' in r.pytorch)) r.pytorchRate = rates(l, r.pytorch, o.batch);
    if (!('error' in r.crunet) && r.pytorch && !('error' in r.pytorch)) {
      const c = r.crunet, p = r.pytorch;
      const ratio: Directions = { fwd: round(p.fwd / c.fwd) };
      for (const k of ['bwdData', 'bwdWeights', 'bwd'] as const) if (c[k] !== undefined && p[k] !== undefined) ratio[k] = round(p[k]! / c[k]!);
      r.ratio = ratio;
    }
    results.push(r);
    const uses = Object.entries(l.uses).map(([m, n]) => `${m} x${n}`).join(', ');
    const c = 'error' in r.crunet ? `crunet ERROR ${r.crunet.error}` : `crunet ms fwd ${fmt(r.crunet.fwd)} bwd-d ${fmt(r.crunet.bwdData)} bwd-w ${fmt(r.crunet.bwdWeights)} bwd ${fmt(r.crunet.bwd)}`;
    const p = !r.pytorch ? '' : 'error' in r.pytorch ? ` | pytorch ERROR ${r.pytorch.error}` : ` | pytorch ms fwd ${fmt(r.pytorch.fwd)} bwd-d ${fmt(r.pytorch.bwdData)} bwd-w ${fmt(r.pytorch.bwdWeights)} bwd ${fmt(r.pytorch.bwd)}`;
    const unit = l.op === 'conv2d' ? 'GFLOP/s' : 'GB/s';
    const rate = r.crunetRate ? ` | crunet ${unit} ${[r.crunetRate.fwd, r.crunetRate.bwdData, r.crunetRate.bwdWeights, r.crunetRate.bwd].filter((x) => x !== undefined).join('/')}` +
      (l.op === 'conv2d' ? ` (${((100 * r.crunetRate.fwd) / o.peak.peakGflops).toFixed(0)} % of peak fwd)` : ` (${((100 * r.crunetRate.fwd) / o.peak.peakGBps).toFixed(0)} % of copy bandwidth fwd)`) : '';
    o.log(`[${i + 1}/${list.length}] ${l.key} (${uses}): ${c}${p}${rate}`);
  }

  // Per-model per-step totals: uses x time; the convolution reading the image has no backward-data in a step.
  const totals: OpsResult['totals'] = {};
  for (const m of o.models) {
    const t: Record<string, { crunet: number; pytorch?: number }> = {};
    const addT = (k: string, c: number | undefined, p: number | undefined, n: number) => {
      const e = (t[k] ??= { crunet: 0, ...(o.peer ? { pytorch: 0 } : {}) });
      if (c !== undefined) e.crunet += n * c;
      if (p !== undefined && e.pytorch !== undefined) e.pytorch += n * p;
    };
    for (const r of results) {
      const n = r.uses[m] ?? 0;
      if (!n || 'error' in r.crunet) continue;
      const p = r.pytorch && !('error' in r.pytorch) ? r.pytorch : undefined;
      if (r.op === 'conv2d') {
        addT('conv2d fwd', r.crunet.fwd, p?.fwd, n);
        addT('conv2d bwd-data', r.crunet.bwdData, p?.bwdData, n - (r.imageInput[m] ?? 0));
        addT('conv2d bwd-weights', r.crunet.bwdWeights, p?.bwdWeights, n);
      } else {
        addT(`${r.op} fwd`, r.crunet.fwd, p?.fwd, n);
        addT(`${r.op} bwd`, r.crunet.bwd, p?.bwd, n);
      }
    }
    for (const e of Object.values(t)) {
      e.crunet = round(e.crunet, 2);
      if (e.pytorch !== undefined) e.pytorch = round(e.pytorch, 2);
    }
    totals[m] = t;
    o.log(`${m}: per-step sums of the per-op medians (ms), crunet${o.peer ? ' / pytorch' : ''}:`);
    for (const [k, e] of Object.entries(t)) o.log(`  ${k.padEnd(22)} ${e.crunet.toFixed(1).padStart(9)}${e.pytorch !== undefined ? e.pytorch.toFixed(1).padStart(10) : ''}`);
  }
  return { models: o.models, batch: o.batch, device: o.device, maxTime: o.maxTime, layers: results, totals };
}
