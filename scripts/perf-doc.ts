// Regenerates docs/PERFORMANCE.md from the results the benchmarks wrote (bench/results/*.json), so that
// the page is never typed by hand: every number, table and analysis sentence below comes from those files.
// Usage: npm run bench:doc   (after `npm run bench:all`, or single `npm run bench -- ... --save` runs)
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OpResult, OpsResult } from '../bench/suites/ops.js';
import type { PeakResult } from '../bench/suites/peak.js';
import type { CrunetSide, PytorchSide, StepResultJSON } from '../bench/suites/step.js';
import type { MachineInfo } from '../bench/lib/machine.js';
import type { PeerInfo } from '../bench/lib/peer.js';

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const OUT = path.join(ROOT, 'docs', 'PERFORMANCE.md');

type OpsFile = OpsResult & { suite: 'ops'; peak: PeakResult; pytorch: PeerInfo | { unavailable: string }; machine: MachineInfo; loadAfter: number; busyAfter?: string[] };

/** Models with a whole-step target on the CPU (the issue): ratio >= 1.0 (stretch 1.3), memory <= PyTorch's. */
const TARGETS: Record<string, { ratio: number; stretch: number }> = {
  crunet_small: { ratio: 1.0, stretch: 1.3 },
  crunet56: { ratio: 1.0, stretch: 1.3 },
};
const STEP_ORDER = ['crunet_small', 'crunet56', 'resnext50_32x4d'];

const f = (x: number | undefined | null, d = 1) => (x === undefined || x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));
/** images/s with three significant digits at least (5.12, 47.6, 476). */
const ips = (x: number) => f(x, x < 10 ? 2 : x < 100 ? 1 : 0);
const gib = (b: number | undefined) => (b === undefined ? '-' : `${(b / 2 ** 30).toFixed(2)} GiB`);
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const isCrunet = (c: StepResultJSON['crunet']): c is CrunetSide => 'imagesPerSec' in c;
const isTorch = (p: StepResultJSON['pytorch'] | PytorchSide | { error: string } | undefined): p is PytorchSide => !!p && 'imagesPerSec' in p;

function read(): { steps: StepResultJSON[]; ops?: OpsFile } {
  if (!fs.existsSync(RESULTS)) throw new Error(`perf-doc: no ${path.relative(ROOT, RESULTS)}; run npm run bench:all first`);
  const steps: StepResultJSON[] = [];
  let ops: OpsFile | undefined;
  for (const file of fs.readdirSync(RESULTS).filter((x) => x.endsWith('.json')).sort()) {
    const j = JSON.parse(fs.readFileSync(path.join(RESULTS, file), 'utf8'));
    if (j.suite === 'step') steps.push(j);
    else if (j.suite === 'ops' && j.device === 'cpu') ops = j;
  }
  const rank = (s: StepResultJSON) => (STEP_ORDER.indexOf(s.model) + 1 || 99) * 10 + (s.precision === 'fp32' ? 0 : 1);
  steps.sort((a, b) => rank(a) - rank(b));
  return { steps, ops };
}

function table(head: string[], rows: (string | number)[][], align?: string): string {
  const a = align ?? head.map((_, i) => (i === 0 ? 'l' : 'r')).join('');
  const sep = [...a].map((c) => (c === 'r' ? '---:' : '---'));
  return [`| ${head.join(' | ')} |`, `| ${sep.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function machineLine(m: MachineInfo, torch?: PeerInfo, extra = ''): string {
  const blas = torch?.blas?.replace(/.*Math Kernel Library Version (\S+).*/, 'MKL $1') ?? 'BLAS ?';
  const t = torch ? `; PyTorch ${torch.torch} (Python ${torch.python}, ${torch.threads} threads, its oneDNN ${torch.mkldnnVersion?.split(' ')[0] ?? '?'} ${torch.mkldnn ? 'enabled' : 'disabled'}, ${blas}, CPU capability ${torch.cpuCapability})` : '';
  return `${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.os}; ${m.date.slice(0, 16).replace('T', ' ')} UTC; Node ${m.node}, crunet ${m.crunet}${m.gitCommit ? ` (${m.gitCommit})` : ''}, oneDNN ${m.onednn} (${m.isa}), ${m.threads} threads, ${m.compiler}${t}; load ${m.loadBefore.toFixed(2)} at start${extra}. Command: \`${m.command}\``;
}

// ---- the step suite ------------------------------------------------------------------------------

function verdict(s: StepResultJSON): string[] {
  const t = TARGETS[s.model];
  if (!t || s.precision !== 'fp32' || !isCrunet(s.crunet) || !isTorch(s.pytorch) || s.ratio === null) return [];
  const out: string[] = [];
  const r = s.ratio;
  if (r >= t.stretch) out.push(`**${s.model}: speed target met, stretch too**: ${f(r, 2)}x PyTorch's images/s (target ${t.ratio}, stretch ${t.stretch}).`);
  else if (r >= t.ratio) out.push(`**${s.model}: speed target met** (${f(r, 2)}x PyTorch's images/s); the stretch target ${t.stretch} is missed by ${pct(t.stretch / r - 1)} of crunet's speed.`);
  else out.push(`**${s.model}: speed target MISSED**: ${f(r, 2)}x PyTorch's images/s; crunet needs ${pct(1 / r - 1)} more speed to reach 1.0 (see "Where the time goes").`);
  const m = s.memoryRatio!;
  if (m <= 1) out.push(`**${s.model}: memory target met**: peak ${gib(s.crunet.peakBytes)} against PyTorch's ${gib(s.pytorch.peakBytes)} (${f(m, 2)}x).`);
  else out.push(`**${s.model}: memory target MISSED**: peak ${gib(s.crunet.peakBytes)} against PyTorch's ${gib(s.pytorch.peakBytes)}, ${pct(m - 1)} more.`);
  return out;
}

function stepSection(steps: StepResultJSON[]): string {
  const fp32 = steps.filter((s) => s.precision === 'fp32' && s.device === 'cpu');
  const rows = fp32.map((s) => {
    const c = isCrunet(s.crunet) ? s.crunet : undefined;
    const p = isTorch(s.pytorch) ? s.pytorch : undefined;
    return [
      s.model, s.batch,
      c ? `${ips(c.imagesPerSec)} (${f(c.medianStepMs, 0)} ms)` : `error: ${(s.crunet as { error: string }).error}`,
      p ? `${ips(p.imagesPerSec)} (${f(p.medianStepMs, 0)} ms, ${p.format})` : s.pytorch ? Object.values(s.pytorch)[0] as string : '-',
      s.ratio !== null ? `**${f(s.ratio, 2)}**` : '-',
      c ? `${f(c.percentOfPeak, 0)} %` : '-', p ? `${f(p.percentOfPeak, 0)} %` : '-',
      c ? `${gib(c.peakBytes)} (plan ${gib(c.plannedPeakBytes)})` : '-', p ? gib(p.peakBytes) : '-',
      s.memoryRatio !== null ? f(s.memoryRatio, 2) : '-',
    ];
  });
  const out: string[] = ['## Whole training step (CPU, fp32)', ''];
  out.push(table(['model', 'batch', 'crunet images/s (median step)', 'PyTorch images/s (median step, format)', 'ratio', 'crunet % of peak', 'PyTorch % of peak', 'crunet peak memory', 'PyTorch peak memory', 'memory ratio'], rows));
  out.push('', 'ratio = crunet images/s / PyTorch images/s (above 1: crunet is faster); memory ratio = crunet peak / PyTorch peak (below 1: crunet needs less). ' +
    '% of peak = training FLOP/s (2 x batch x the multiply-adds of forward, backward-data and backward-weights of every convolution and the classifier; the stem has no backward-data) over the f32 GEMM peak measured at the end of the same run. ' +
    'Peak memory is each process\'s resident high-water mark above its resident size before the data and the network existed (VmHWM after a clear_refs reset, /proc/self/status), measured the same way in both processes; "plan" is crunet\'s own planned peak (activation arena + parameters, gradients and momenta + kernel scratch).');

  // The PyTorch memory formats, each its own phase alternating with crunet.
  const fmtRows: (string | number)[][] = [];
  for (const s of fp32) {
    for (const [name, p] of Object.entries(s.pytorchFormats ?? {})) {
      if (isTorch(p)) fmtRows.push([s.model, name, ips(p.imagesPerSec), f(p.medianStepMs, 0), gib(p.peakBytes), isCrunet(s.crunet) ? f(s.crunet.imagesPerSec / p.imagesPerSec, 2) : '-', p.logitsMaxAbsDiff !== undefined ? p.logitsMaxAbsDiff.toExponential(1) : '-']);
      else fmtRows.push([s.model, name, `error: ${p.error}`, '', '', '', '']);
    }
  }
  if (fmtRows.length) {
    out.push('', '### PyTorch in both memory formats', '',
      'The peer ran once per memory format (torch.channels_last and the default contiguous NCHW), each phase taking turns with crunet; the faster format is the "PyTorch" column above. ' +
      'Before timing, each peer loaded crunet\'s initial parameters and the two networks\' inference logits on two samples were compared (largest difference in the last column), besides the parameter-count assertion.', '',
      table(['model', 'PyTorch format', 'images/s', 'median step ms', 'peak memory', 'crunet / this', 'logits max abs diff'], fmtRows));
  }

  const other = steps.filter((s) => s.precision !== 'fp32' || s.device !== 'cpu');
  if (other.length) {
    out.push('', '### Other precisions and devices', '');
    out.push(table(['model', 'device', 'precision', 'crunet', 'PyTorch'], other.map((s) => [
      s.model, s.device, s.precision,
      isCrunet(s.crunet) ? `${ips(s.crunet.imagesPerSec)} images/s` : `not supported: ${(s.crunet as { error: string }).error}`,
      isTorch(s.pytorch) ? `${ips(s.pytorch.imagesPerSec)} images/s` : s.pytorch ? `not measured: ${Object.values(s.pytorch)[0]}` : '-',
    ])));
    out.push('', 'No number appears without its side-by-side peer: where crunet cannot run a configuration the peer is not timed either.');
  }

  if (!steps.some((s) => s.device.startsWith('cuda'))) {
    out.push('', 'GPU (batch 256): not measured yet: this machine has no GPU. On a GPU machine, `npm run bench -- --suite step --model crunet56 --device cuda --save` ' +
      '(batch 256 by default on cuda; PyTorch in channels_last with cudnn.benchmark, peak memory = crunet\'s planned peak against torch.cuda.max_memory_allocated) adds the rows here.');
  }
  out.push('', '### Runs', '', 'Each run records the machine as it found it: the 1-minute load average (which, within `npm run bench:all`, still carries the previous suite of the same run for a minute) and the share of the cores busy in the 2 s just before it started, which is the measure of other load; other processes above 20 % of a core are named.', '');
  for (const s of steps) {
    const p = isTorch(s.pytorch) ? s.pytorch : undefined;
    const c = isCrunet(s.crunet) ? s.crunet : undefined;
    const busy = (s.machine.cpuBusyBefore !== undefined ? ` (${f(100 * s.machine.cpuBusyBefore, 0)} % of the cores busy in the 2 s before)` : '') +
      (s.machine.busyBefore.length ? ` (other processes: ${s.machine.busyBefore.join(', ')})` : '');
    const plan = c ? `warm-up ${s.warmup} steps per side, then ${s.steps} turns per PyTorch format (crunet takes a turn in each phase)` : `not run (${(s.crunet as { error: string }).error})`;
    out.push(`- **${s.model} ${s.device} ${s.precision}, batch ${s.batch}**: ${plan}` +
      (c ? `; crunet steps (ms) ${c.stepsMs.map((x) => x.toFixed(0)).join(', ')}` : '') +
      (p ? `; PyTorch ${p.format} steps (ms) ${p.stepsMs.map((x) => x.toFixed(0)).join(', ')}` : '') +
      (c && p ? `; loss of the first training step (same initial weights, same batch): crunet ${f(c.firstLoss, 6)}, PyTorch ${f(p.firstLoss, 6)}` : '') +
      `. ${machineLine(s.machine, p?.info ?? Object.values(s.pytorchFormats ?? {}).find(isTorch)?.info, `${busy}, ${s.loadAfter.toFixed(2)} at the end`)}` +
      (Number.isFinite(s.peak.peakGflops) ? ` GEMM peak in this run: ${f(s.peak.peakGflops)} GFLOP/s (oneDNN)${p?.gemmGflops ? `, PyTorch torch.mm ${f(p.gemmGflops)} GFLOP/s` : ''}.` : ''));
  }
  return out.join('\n');
}

// ---- where the time goes ---------------------------------------------------------------------------

const TORCH_CATEGORIES: [string, RegExp][] = [
  ['conv2d backward', /convolution_backward|ConvolutionBackward/i],
  ['conv2d forward', /convolution|conv2d/i],
  ['batchNorm backward', /batch_norm_backward|BatchNormBackward/i],
  ['batchNorm forward', /batch_norm/i],
  ['relu backward', /threshold_backward|ReluBackward/i],
  ['relu forward', /relu|clamp_min/i],
  ['pooling', /pool/i],
  ['linear + loss', /addmm|aten::mm|linear|cross_entropy|log_softmax|nll_loss|AddmmBackward|MmBackward|LogSoftmax|NllLoss/i],
  ['add (residuals, grad accumulation, SGD)', /aten::add|_foreach|aten::mul|Optimizer|SGD|aten::lerp/i],
  ['autograd engine and dispatch', /autograd|AccumulateGrad|Backward0|detach|aten::empty|aten::to$|_to_copy|resize_|as_strided|zero/i],
];

function torchCategories(p: PytorchSide): Map<string, number> {
  const out = new Map<string, number>();
  for (const op of p.profile?.ops ?? []) {
    const cat = TORCH_CATEGORIES.find(([, re]) => re.test(op.name))?.[0] ?? 'other';
    out.set(cat, (out.get(cat) ?? 0) + op.selfMs);
  }
  return out;
}

function timeSection(steps: StepResultJSON[]): string {
  const out: string[] = ['## Where the time goes (one step, per op)', '',
    'crunet: the session profiler\'s kernel time per node (compiled with profile: true, which adds two clock reads per kernel), summed by op and averaged over the timed steps; batchNorm includes the ReLU fused into it. ' +
    'The rest of the step ("outside kernels") is the upload and NaN scan of the batch, the copy of the batch-norm running statistics kept for a non-finite-loss rollback, gradient accumulation of shared weights and the SGD update. ' +
    'PyTorch: one extra step under torch.profiler after the timed ones, self CPU time grouped by op (its profiler adds some overhead of its own, so its total is a little above its median step).', ''];
  for (const s of steps.filter((x) => x.precision === 'fp32' && x.device === 'cpu')) {
    if (!isCrunet(s.crunet) || !s.crunet.profile) continue;
    const c = s.crunet, prof = c.profile!;
    const p = isTorch(s.pytorch) ? s.pytorch : undefined;
    const tc = p ? torchCategories(p) : undefined;
    out.push(`### ${s.model}, batch ${s.batch}`, '');
    const rows: (string | number)[][] = prof.byOp.map((e) => [e.op, e.nodes, f(e.forwardMs), f(e.backwardMs), pct((e.forwardMs + e.backwardMs) / c.medianStepMs)]);
    const meanStep = c.stepsMs.reduce((a, b) => a + b, 0) / c.stepsMs.length;
    const outside = meanStep - prof.kernelMs;
    rows.push(['outside kernels (mean step - kernel time)', '', '', f(outside), pct(Math.max(0, outside) / meanStep)]);
    rows.push(['**step (median)**', '', '', `**${f(c.medianStepMs, 0)}**`, '100 %']);
    out.push('crunet:', '', table(['op', 'nodes', 'forward ms', 'backward ms', 'share of step'], rows));
    if (tc && p) {
      const trows = [...tc].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, f(v), pct(v / p.profile!.totalSelfMs)]);
      trows.push(['**profiled step (sum of self times)**', `**${f(p.profile!.totalSelfMs, 0)}**`, '100 %']);
      out.push('', `PyTorch (${p.format}):`, '', table(['op group', 'self ms', 'share'], trows));
    }
    out.push('', 'crunet\'s most expensive nodes:', '', table(['node', 'op', 'forward ms', 'backward ms', 'oneDNN implementation'],
      prof.top.slice(0, 8).map((t) => [t.name, t.op, f(t.forwardMs), f(t.backwardMs), `\`${t.impl}\``]), 'llrrl'), '');
  }
  return out.join('\n');
}

// ---- the per-op suite --------------------------------------------------------------------------------

function opsSection(ops: OpsFile): string {
  const peak = ops.peak;
  const torch = 'torch' in ops.pytorch ? ops.pytorch : undefined;
  const short = (m: string) => (m === 'resnext50_32x4d' ? 'rx50' : m === 'crunet56' ? 'c56' : m);
  const uses = (l: OpResult) => ops.models.map((m) => `${l.uses[m] ?? 0}`).join(' / ');
  const out: string[] = ['## Per layer: every convolution, batch norm and ReLU shape', '',
    `${ops.models.join(' and ')} at batch ${ops.batch} on the CPU; each distinct shape once (uses = how many nodes of ${ops.models.map(short).join(' / ')} have it). ` +
    'Measured with the `benchmark` package (deferred cases; Benchmark.js maxTime ' + ops.maxTime + ' s per case after two warm-up calls), crunet and PyTorch taking turns layer by layer; times are medians of every call\'s kernel time. ' +
    'crunet: one-op graphs and the session profiler; backward-data is timed on a graph whose weight is not trainable (so backward computes only dX), backward-weights on one without input gradients (only dW). The forward time includes reordering the weights into the primitive\'s layout, as every training step does. ' +
    'PyTorch: F.conv2d, then torch.autograd.grad for the input alone and for the weight alone (autograd passes the output mask to the convolution backward), each timed around the call, in channels_last. ' +
    `GFLOP/s = 2 x multiply-adds x batch / time; % of peak against the ${f(peak.peakGflops)} GFLOP/s f32 GEMM (oneDNN matmul, ${peak.gemm.n}^3) measured at the start of the run` +
    (peak.gemm.pytorch && 'gflops' in peak.gemm.pytorch ? ` (PyTorch's torch.mm: ${f(peak.gemm.pytorch.gflops)} GFLOP/s)` : '') +
    `. Batch norm and ReLU are memory-bound: GB/s of the least traffic they need (forward: read x, write y; backward: read x and dy, write dx) against the ${f(peak.peakGBps)} GB/s copy bandwidth measured beside it (small tensors that stay in cache can exceed it). ` +
    'ratio = PyTorch time / crunet time (above 1: crunet is faster).', '',
    `Machine: ${machineLine(ops.machine, torch, `, ${ops.loadAfter.toFixed(2)} at the end`)}`, ''];

  const convs = ops.layers.filter((l) => l.op === 'conv2d');
  const row = (l: OpResult): (string | number)[] => {
    const c = 'error' in l.crunet ? undefined : l.crunet;
    const p = l.pytorch && !('error' in l.pytorch) ? l.pytorch : undefined;
    const r = l.crunetRate;
    return [
      `\`${l.key}\``, uses(l),
      c ? `${f(c.fwd, 2)} / ${f(c.bwdData, 2)} / ${f(c.bwdWeights, 2)}` : `error: ${(l.crunet as { error: string }).error}`,
      r ? `${f(r.fwd, 0)} / ${f(r.bwdData, 0)} / ${f(r.bwdWeights, 0)}` : '-',
      r ? `${f((100 * r.fwd) / peak.peakGflops, 0)} / ${f((100 * r.bwdData!) / peak.peakGflops, 0)} / ${f((100 * r.bwdWeights!) / peak.peakGflops, 0)}` : '-',
      p ? `${f(p.fwd, 2)} / ${f(p.bwdData, 2)} / ${f(p.bwdWeights, 2)}` : l.pytorch ? `error: ${(l.pytorch as { error: string }).error}` : '-',
      l.ratio ? `${f(l.ratio.fwd, 2)} / ${f(l.ratio.bwdData, 2)} / ${f(l.ratio.bwdWeights, 2)}` : '-',
      // "fwd=brgconv_1x1:avx512_core bwd_data=jit_1x1:avx512_core ..." -> "brgconv_1x1 / jit_1x1 / ..."
      c ? c.impl.split(' ').map((x) => x.replace(/^\w+=/, '').replace(/:avx512_core$/, '')).join(' / ') : '-',
    ];
  };
  out.push('### Convolutions (forward / backward-data / backward-weights)', '',
    table(['layer (C_in->C_out kxk/stride groups pad @HxW)', `uses ${ops.models.map(short).join(' / ')}`, 'crunet ms', 'crunet GFLOP/s', 'crunet % of peak', 'PyTorch ms', 'ratio', 'crunet oneDNN kernels (avx512_core)'], convs.map(row), 'lrrrrrrl'));

  const mem = ops.layers.filter((l) => l.op !== 'conv2d');
  out.push('', '### Batch norm (alone, or with the ReLU the CPU backend fuses into it) and ReLU (forward / backward)', '',
    table(['layer', `uses ${ops.models.map(short).join(' / ')}`, 'crunet ms', 'crunet GB/s', 'crunet % of copy bw', 'PyTorch ms', 'ratio'], mem.map((l) => {
      const c = 'error' in l.crunet ? undefined : l.crunet;
      const p = l.pytorch && !('error' in l.pytorch) ? l.pytorch : undefined;
      const r = l.crunetRate;
      return [`\`${l.key}\``, uses(l), c ? `${f(c.fwd, 2)} / ${f(c.bwd, 2)}` : 'error', r ? `${f(r.fwd)} / ${f(r.bwd)}` : '-',
        r ? `${f((100 * r.fwd) / peak.peakGBps, 0)} / ${f((100 * r.bwd!) / peak.peakGBps, 0)}` : '-',
        p ? `${f(p.fwd, 2)} / ${f(p.bwd, 2)}` : '-', l.ratio ? `${f(l.ratio.fwd, 2)} / ${f(l.ratio.bwd, 2)}` : '-'];
    })));

  out.push('', '### Per-layer times summed over one step', '',
    'uses x median time per layer, by op and direction (the stem convolution has no backward-data in a step). Compare with the whole-step medians above: the remainder is pooling, additions, the classifier, the loss, the SGD update and the engine.', '');
  const keys = [...new Set(Object.values(ops.totals).flatMap((t) => Object.keys(t)))];
  out.push(table(['op, direction', ...ops.models.flatMap((m) => [`${short(m)} crunet ms`, `${short(m)} PyTorch ms`])],
    [...keys.map((k) => [k, ...ops.models.flatMap((m) => [f(ops.totals[m]?.[k]?.crunet), f(ops.totals[m]?.[k]?.pytorch)])]),
      ['**sum**', ...ops.models.flatMap((m) => {
        const t = Object.values(ops.totals[m] ?? {});
        return [`**${f(t.reduce((a, e) => a + e.crunet, 0), 0)}**`, `**${f(t.reduce((a, e) => a + (e.pytorch ?? 0), 0), 0)}**`];
      })]]));
  return out.join('\n');
}

// ---- analysis: sentences computed from the results --------------------------------------------------

function analysis(steps: StepResultJSON[], ops?: OpsFile): string {
  const out: string[] = ['## Analysis', ''];
  const fp32 = steps.filter((s) => s.precision === 'fp32' && s.device === 'cpu' && isCrunet(s.crunet));
  for (const s of fp32) {
    const c = s.crunet as CrunetSide;
    const prof = c.profile;
    if (!prof) continue;
    const conv = prof.byOp.find((e) => e.op === 'conv2d');
    const bn = prof.byOp.find((e) => e.op === 'batchNorm');
    const share = (e?: { forwardMs: number; backwardMs: number }) => (e ? (e.forwardMs + e.backwardMs) / c.medianStepMs : 0);
    const meanStep = c.stepsMs.reduce((a, b) => a + b, 0) / c.stepsMs.length;
    let line = `- **${s.model}**: convolutions take ${pct(share(conv))} of crunet's step, batch norm (+ fused ReLU) ${pct(share(bn))}, everything outside the kernels ${pct(Math.max(0, meanStep - prof.kernelMs) / meanStep)}; the step runs at ${f(c.percentOfPeak, 0)} % of the GEMM peak`;
    if (isTorch(s.pytorch) && s.pytorch.profile) {
      const tc = torchCategories(s.pytorch);
      const tConv = (tc.get('conv2d forward') ?? 0) + (tc.get('conv2d backward') ?? 0);
      const tBn = (tc.get('batchNorm forward') ?? 0) + (tc.get('batchNorm backward') ?? 0) + (tc.get('relu forward') ?? 0) + (tc.get('relu backward') ?? 0);
      const cConv = conv ? conv.forwardMs + conv.backwardMs : 0;
      const cBn = (bn ? bn.forwardMs + bn.backwardMs : 0) + (prof.byOp.find((e) => e.op === 'relu')?.forwardMs ?? 0) + (prof.byOp.find((e) => e.op === 'relu')?.backwardMs ?? 0);
      line += `. Against PyTorch (${s.pytorch.format}): convolutions ${f(cConv, 0)} ms vs ${f(tConv, 0)} ms, batch norm and ReLU ${f(cBn, 0)} ms vs ${f(tBn, 0)} ms, PyTorch's autograd engine and dispatch ${f(tc.get('autograd engine and dispatch') ?? 0, 0)} ms`;
    }
    out.push(line + '.');
  }
  if (ops) {
    const convs = ops.layers.filter((l) => l.op === 'conv2d' && !('error' in l.crunet));
    // Weighted efficiency by kind: 1x1, grouped 3x3, depthwise 3x3, other.
    const kind = (l: OpResult) => (l.attrs.kernel![0] === 1 ? '1x1' : l.attrs.groups === l.input[0] ? 'depthwise 3x3' : l.attrs.groups! > 1 ? 'grouped 3x3' : `dense ${l.attrs.kernel![0]}x${l.attrs.kernel![1]}`);
    const m0 = ops.models.includes('crunet56') ? 'crunet56' : ops.models[0]!;
    const groups = new Map<string, { flop: number; c: number; p: number }>();
    for (const l of convs) {
      const n = l.uses[m0] ?? 0;
      if (!n) continue;
      const c = l.crunet as { fwd: number; bwdData: number; bwdWeights: number };
      const p = l.pytorch && !('error' in l.pytorch) ? (l.pytorch as { fwd: number; bwdData: number; bwdWeights: number }) : undefined;
      const g = groups.get(kind(l)) ?? { flop: 0, c: 0, p: 0 };
      g.flop += n * 3 * 2 * l.macs * ops.batch;
      g.c += n * (c.fwd + c.bwdData + c.bwdWeights);
      g.p += p ? n * (p.fwd + p.bwdData + p.bwdWeights) : NaN;
      groups.set(kind(l), g);
    }
    out.push('', `Convolutions of ${m0} by kind (all three directions, weighted by uses; per-layer suite):`, '',
      table(['kind', 'crunet ms per step', 'crunet GFLOP/s', '% of peak', 'PyTorch ms per step', 'ratio'],
        [...groups].sort((a, b) => b[1].c - a[1].c).map(([k, g]) => [k, f(g.c, 0), f(g.flop / 1e6 / g.c, 0), f((100 * g.flop) / 1e6 / g.c / ops.peak.peakGflops, 0), f(g.p, 0), f(g.p / g.c, 2)])));
    // Where crunet loses most against PyTorch, in ms per step of the chosen model.
    const losses: { what: string; ms: number; ratio: number; impl: string }[] = [];
    for (const l of ops.layers) {
      if ('error' in l.crunet || !l.pytorch || 'error' in l.pytorch) continue;
      for (const k of ['fwd', 'bwdData', 'bwdWeights', 'bwd'] as const) {
        const c = l.crunet[k], p = l.pytorch[k];
        const n = k === 'bwdData' ? (l.uses[m0] ?? 0) - (l.imageInput[m0] ?? 0) : (l.uses[m0] ?? 0);
        if (c === undefined || p === undefined || !n || c <= p) continue;
        const prefix = { fwd: 'fwd=', bwdData: 'bwd_data=', bwdWeights: 'bwd_weights=', bwd: '' }[k];
        const impl = (l.op === 'conv2d' ? l.crunet.impl.split(' ').find((x) => x.startsWith(prefix)) : undefined) ?? l.crunet.impl;
        losses.push({ what: `\`${l.key}\` ${k} x${n}`, ms: n * (c - p), ratio: p / c, impl });
      }
    }
    losses.sort((a, b) => b.ms - a.ms);
    const lost = losses.reduce((a, e) => a + e.ms, 0);
    if (losses.length) {
      out.push('', `Layers where crunet is slower than PyTorch in ${m0} (ms lost per step = uses x time difference; ${f(lost, 0)} ms in all):`, '',
        table(['layer, direction, uses', 'ms lost per step', 'ratio', 'crunet implementation'], losses.slice(0, 10).map((e) => [e.what, f(e.ms), f(e.ratio, 2), `\`${e.impl}\``]), 'lrrl'));
    }
  }
  return out.join('\n');
}

function main(): void {
  const { steps, ops } = read();
  const targets = steps.flatMap(verdict);
  const doc = [
    '# Performance',
    '',
    '<!-- Generated by scripts/perf-doc.ts from bench/results/*.json. Do not edit: re-measure with `npm run bench:all`, then `npm run bench:doc`. -->',
    '',
    'Every number here was measured side by side with its peer, PyTorch, in the same run: the benchmark runner (`bench/run.ts`) drives ' +
      'the PyTorch peer (`bench/peers/pytorch_peer.py`, networks built from crunet\'s own graph IR by `bench/peers/models.py`, which asserts the same parameter count) ' +
      'as a child process and the two take turns. The page is regenerated from the JSON results by `npm run bench:doc`; `npm run bench:all` re-measures everything ' +
      '(about 15 minutes on these 2 cores; it first waits for a 1-minute load below 1.3) and single runs are `npm run bench -- --suite step --model M --batch B --device D --peer pytorch --json`.',
    '',
    '## Targets (CPU)',
    '',
    ...(targets.length ? targets.map((t) => `- ${t}`) : ['- no step results yet']),
    '',
    stepSection(steps),
    '',
    timeSection(steps),
    '',
    analysis(steps, ops),
    '',
    fs.existsSync(path.join(ROOT, 'bench', 'results', 'NOTES.md')) ? fs.readFileSync(path.join(ROOT, 'bench', 'results', 'NOTES.md'), 'utf8').trim() : '',
    '',
    ops ? opsSection(ops) : '## Per layer\n\nNo per-op results yet (`npm run bench -- --suite ops --save`).',
    '',
  ].join('\n');
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, doc.replace(/\n{3,}/g, '\n\n'));
  console.log(`wrote ${path.relative(process.cwd(), OUT)} from ${steps.length} step result(s)${ops ? ' and the per-op result' : ''}`);
}

main();
