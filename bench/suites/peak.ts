// The machine's measured peaks, the 100 % of every "percent of peak":
// A peak is the best of several repetitions (the fastest; on a shared machine a median can be dragged
// down by another process, and a peak is what the hardware can do), after two untimed ones.
// - compute: a large f32 GEMM through oneDNN (crunet's linear layer, a oneDNN matmul: [n,n] x [n,n]^T,
//   n = 2048 by default), timed by the session profiler (kernel time only); on a GPU the same graph
//   runs on cuBLAS. PyTorch's torch.mm (MKL on the CPU) is measured beside it when the peer runs.
// - memory bandwidth (for batch norm and ReLU): a 256 MiB copy, counted as read + write bytes:
//   Node's TypedArray.set (one thread, memmove) and, with the peer, PyTorch's tensor copy.
import { compile, GraphBuilder } from '../../lib/index.js';
import type { PytorchPeer } from '../lib/peer.js';
import { min } from '../lib/stats.js';

export interface PeakResult {
  gemm: { n: number; crunet: { gflops: number; ms: number[]; impl: string }; pytorch?: { gflops: number; ms: number[] } | { error: string } };
  copy: { mib: number; node: { gbPerSec: number; ms: number[] }; pytorch?: { gbPerSec: number; ms: number[] } | { error: string } };
  /** The 100 % used by the other suites: crunet's oneDNN GEMM, and the best copy bandwidth measured. */
  peakGflops: number;
  peakGBps: number;
  /** Set when the peak could not be measured (e.g. the device is unavailable). */
  error?: string;
}

export async function measurePeak(o: { device: string; n?: number; reps?: number; peer?: PytorchPeer; log: (s: string) => void }): Promise<PeakResult> {
  const n = o.n ?? 2048;
  const reps = o.reps ?? 10;
  const g = new GraphBuilder();
  const x = g.input('x', [n]);
  const y = g.linear(x, { outFeatures: n, name: 'gemm' });
  const s = await compile(g.build({ outputs: [y] }), { batchSize: n, device: o.device, profile: true });
  const input = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i));
  const ms: number[] = [];
  let impl = '';
  try {
    for (let i = 0; i < reps + 2; i++) {
      s.resetProfile();
      await s.forward(input);
      const p = s.profile().find((e) => e.name === 'gemm')!;
      impl = p.impl;
      if (i >= 2) ms.push(p.forwardMs);
    }
  } finally {
    s.dispose();
  }
  const flop = 2 * n ** 3;
  const crunet = { gflops: flop / (min(ms) * 1e6), ms, impl };
  o.log(`peak GEMM ${n}^3 f32, crunet (oneDNN ${impl}): ${crunet.gflops.toFixed(1)} GFLOP/s (best of ${reps})`);

  let pytorch: PeakResult['gemm']['pytorch'];
  if (o.peer) {
    try {
      const r = await o.peer.request<{ ms: number[] }>('gemm', { n, reps: reps + 2 });
      const t = r.ms.slice(2);
      pytorch = { gflops: flop / (min(t) * 1e6), ms: t };
      o.log(`peak GEMM ${n}^3 f32, PyTorch torch.mm: ${pytorch.gflops.toFixed(1)} GFLOP/s`);
    } catch (e) {
      pytorch = { error: (e as Error).message };
    }
  }

  const mib = 256;
  const a = new Float32Array(mib * 2 ** 18).fill(1);
  const b = new Float32Array(a.length);
  const cms: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    b.set(a);
    if (i >= 2) cms.push(performance.now() - t0);
  }
  const bytes = 2 * a.byteLength;
  const node = { gbPerSec: bytes / (min(cms) * 1e6), ms: cms };
  let pcopy: PeakResult['copy']['pytorch'];
  if (o.peer) {
    try {
      const r = await o.peer.request<{ ms: number[]; bytes: number }>('copy', { mib, reps: reps + 2 });
      const t = r.ms.slice(2);
      pcopy = { gbPerSec: r.bytes / (min(t) * 1e6), ms: t };
    } catch (e) {
      pcopy = { error: (e as Error).message };
    }
  }
  const peakGBps = Math.max(node.gbPerSec, pcopy && 'gbPerSec' in pcopy ? pcopy.gbPerSec : 0);
  o.log(`copy bandwidth ${mib} MiB (read + write): node ${node.gbPerSec.toFixed(1)} GB/s${pcopy && 'gbPerSec' in pcopy ? `, PyTorch ${pcopy.gbPerSec.toFixed(1)} GB/s` : ''}`);
  return { gemm: { n, crunet, pytorch }, copy: { mib, node, pytorch: pcopy }, peakGflops: crunet.gflops, peakGBps };
}
