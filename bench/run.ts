// crunet's benchmark runner: `npm run bench -- [options]`.
//
//   --suite step|ops|peak|all   step (default): training images/s and peak memory of one model, crunet and
//                               PyTorch alternating; ops: per-layer conv/BN/ReLU times (Benchmark.js);
//                               peak: the machine's GEMM and copy peaks; all: every suite and model the
//                               performance page shows, written to bench/results/ (implies --save)
//   --model M[,M...]            step: one model (default crunet_small); ops: models whose layers to time
//                               (default crunet56,resnext50_32x4d)
//   --batch B                   default 128 for 28x28/32x32 models; 224x224: 32 on cpu, 256 on cuda
//   --device cpu|cuda|cuda:N    default cpu
//   --precision fp32|bf16|fp16  default fp32
//   --peer pytorch|none         default pytorch (bench/peers/pytorch_peer.py)
//   --peer-format channels_last|contiguous|both   PyTorch's memory format (default both on cpu, channels_last on cuda)
//   --steps N --warmup W        step suite; defaults 16/3 for small models, 4/2 for 224x224 on cpu
//   --max-time S                ops suite: Benchmark.js maxTime per case in seconds (default 0.4)
//   --filter REGEX              ops suite: only layers whose key matches
//   --threads T                 PyTorch threads (default: crunet's OpenMP thread count)
//   --cudnn-benchmark on|off    CUDA, step suite: cudnn.benchmark for crunet and PyTorch alike (default on, as
//                               PyTorch benchmark scripts and `crunet bench`)
//   --json                      print the result as one JSON object on stdout (progress goes to stderr)
//   --save / --out FILE         write the result to bench/results/<suite>-<...>.json / FILE
//   --wait-idle [S]             before measuring, wait up to S seconds (default 900) for a 1-minute load < 1.3
// scripts/perf-doc.ts turns bench/results/*.json into docs/PERFORMANCE.md.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInfo } from '../lib/index.js';
import { create, list } from '../lib/models/index.js';
import { busyProcesses, cpuBusy, describeMachine, machineInfo, waitForIdle } from './lib/machine.js';
import { PEER_FORMATS, PEERS, PytorchPeer, type PeerFormat, type PeerName } from './lib/peer.js';
import { gib } from './lib/stats.js';
import { runOps } from './suites/ops.js';
import { measurePeak } from './suites/peak.js';
import { runStep, type StepResultJSON } from './suites/step.js';

const SUITES = ['step', 'ops', 'peak', 'all'] as const;
const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
const FLAGS = ['suite', 'model', 'batch', 'device', 'precision', 'peer', 'peer-format', 'steps', 'warmup', 'max-time', 'filter', 'threads', 'cudnn-benchmark', 'json', 'save', 'out', 'wait-idle'];
const BOOLEAN = new Set(['json', 'save']);
const RESULTS = path.join(__dirname, 'results');

class UsageError extends Error {}

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(a)}; options are --${FLAGS.join(', --')}`);
    const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (!FLAGS.includes(k)) throw new UsageError(`unknown option --${k}; valid options: --${FLAGS.join(', --')}`);
    if (BOOLEAN.has(k)) out.set(k, 'true');
    else if (inline !== undefined) out.set(k, inline);
    else if (k === 'wait-idle' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) out.set(k, '900');
    else if (argv[i + 1] === undefined) throw new UsageError(`option --${k} needs a value`);
    else out.set(k, argv[++i]!);
  }
  return out;
}

function choice<T extends string>(what: string, v: string, valid: readonly T[]): T {
  if (!(valid as readonly string[]).includes(v)) throw new UsageError(`unknown ${what} ${JSON.stringify(v)}; valid ${what}s: ${valid.join(', ')}`);
  return v as T;
}

function positiveInt(what: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${what}: expected a positive integer, but received ${JSON.stringify(v)}`);
  return n;
}

function positiveNumber(what: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!(n > 0)) throw new UsageError(`--${what}: expected a positive number, but received ${JSON.stringify(v)}`);
  return n;
}

function checkDevice(d: string): string {
  if (d === 'cpu' || /^cuda(:\d+)?$/.test(d)) return d;
  throw new UsageError(`unknown device ${JSON.stringify(d)}; valid devices: cpu, cuda, cuda:N`);
}

const small = (model: string) => create(model).graph.ir.inputs[0]!.shape[1]! <= 64;

function defaultBatch(model: string, device: string): number {
  return small(model) ? 128 : device === 'cpu' ? 32 : 256;
}

function save(file: string, data: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(data, null, 1) + '\n');
  console.error(`wrote ${path.relative(process.cwd(), file)}`);
}

function stepSummary(r: StepResultJSON): string {
  const lines = [`${r.model} ${r.device} ${r.precision} batch ${r.batch}:`];
  if ('error' in r.crunet) lines.push(`  crunet   ERROR ${r.crunet.error}`);
  else lines.push(`  crunet   ${r.crunet.imagesPerSec.toFixed(1).padStart(8)} images/s  (median step ${r.crunet.medianStepMs.toFixed(1)} ms, ${r.crunet.percentOfPeak} % of peak)  peak memory ${gib(r.crunet.peakBytes)} (planned ${gib(r.crunet.plannedPeakBytes)})`);
  for (const [f, p] of Object.entries(r.pytorchFormats ?? {})) {
    if ('error' in p) lines.push(`  pytorch  ${f}: ERROR ${p.error}`);
    else lines.push(`  pytorch  ${p.imagesPerSec.toFixed(1).padStart(8)} images/s  (median step ${p.medianStepMs.toFixed(1)} ms, ${p.percentOfPeak} % of peak)  peak memory ${gib(p.peakBytes)}  [${f}, torch ${p.info.torch}]`);
  }
  if (r.pytorch && !('imagesPerSec' in r.pytorch)) lines.push(`  pytorch  ${Object.values(r.pytorch)[0]}`);
  if (r.ratio !== null) lines.push(`  ratio (crunet / pytorch images/s) ${r.ratio.toFixed(3)}; memory ratio (crunet / pytorch) ${r.memoryRatio?.toFixed(3)}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const suite = choice('suite', args.get('suite') ?? 'step', SUITES);
  const device = checkDevice(args.get('device') ?? 'cpu');
  const precision = choice('precision', args.get('precision') ?? 'fp32', PRECISIONS);
  const peerName: PeerName = choice('peer', args.get('peer') ?? 'pytorch', PEERS);
  const fmtArg = args.get('peer-format') ?? (device === 'cpu' ? 'both' : 'channels_last');
  const peerFormats: PeerFormat[] = choice('peer format', fmtArg, [...PEER_FORMATS, 'both'] as const) === 'both' ? [...PEER_FORMATS] : [fmtArg as PeerFormat];
  const models = (args.get('model') ?? (suite === 'ops' ? 'crunet56,resnext50_32x4d' : 'crunet_small')).split(',');
  const valid = list().map((m) => m.name);
  for (const m of models) choice('model', m, valid);
  if (suite === 'step' && models.length !== 1) throw new UsageError(`--suite step takes one model, but received ${models.join(',')}`);
  const threads = positiveInt('threads', args.get('threads'), buildInfo().threads);
  const json = args.has('json');
  const log = (s: string) => console.error(s);
  const idle = args.get('wait-idle');
  if (idle !== undefined) await waitForIdle(1.3, positiveInt('wait-idle', idle, 900), log);
  const busyNow = await cpuBusy(2000);
  const machine = machineInfo(busyNow);
  log(describeMachine(machine));

  if (suite === 'all') return runAll(args, log);

  if (suite === 'step') {
    const model = models[0]!;
    const r = await runStep({
      model, device, precision, peer: peerName, peerFormats, threads, log, cpuBusyBefore: busyNow,
      cudnnBenchmark: choice('cudnn-benchmark setting', args.get('cudnn-benchmark') ?? 'on', ['on', 'off', '1', '0'] as const).match(/^(on|1)$/) !== null,
      batch: positiveInt('batch', args.get('batch'), defaultBatch(model, device)),
      steps: positiveInt('steps', args.get('steps'), small(model) || device !== 'cpu' ? 16 : 4),
      warmup: positiveInt('warmup', args.get('warmup'), small(model) ? 3 : 2),
    });
    const ordered = r;
    if (args.has('save')) save(path.join(RESULTS, `step-${model}-${device.replace(':', '')}-${precision}.json`), ordered);
    if (args.get('out')) save(path.resolve(args.get('out')!), ordered);
    if (json) console.log(JSON.stringify(ordered));
    else console.log(stepSummary(r));
    return;
  }

  // peak and ops share one peer (channels_last on cpu unless told otherwise: the faster format in the step suite).
  let peer: PytorchPeer | undefined;
  let peerStatus: string | undefined;
  if (peerName === 'pytorch') {
    const started = await PytorchPeer.start({ device, threads, format: fmtArg === 'both' ? 'channels_last' : peerFormats[0]! });
    if ('unavailable' in started) {
      peerStatus = started.unavailable;
      log(started.unavailable);
    } else peer = started;
  }
  try {
    const peak = await measurePeak({ device, peer, log });
    let result: Record<string, unknown>;
    if (suite === 'peak') {
      result = { suite, device, ...peak, pytorch: peer?.info ?? { unavailable: peerStatus ?? 'not requested' }, machine, loadAfter: os.loadavg()[0], busyAfter: busyProcesses() };
    } else {
      const filter = args.get('filter');
      const ops = await runOps({
        models, device, peer, peak, log,
        batch: positiveInt('batch', args.get('batch'), defaultBatch(models[0]!, device)),
        maxTime: positiveNumber('max-time', args.get('max-time'), 0.4),
        filter: filter ? new RegExp(filter) : undefined,
      });
      result = { suite, ...ops, peak, pytorch: peer?.info ?? { unavailable: peerStatus ?? 'not requested' }, machine, loadAfter: os.loadavg()[0], busyAfter: busyProcesses() };
    }
    const name = suite === 'peak' ? `peak-${device.replace(':', '')}.json` : `ops-${device.replace(':', '')}.json`;
    if (args.has('save')) save(path.join(RESULTS, name), result);
    if (args.get('out')) save(path.resolve(args.get('out')!), result);
    if (json) console.log(JSON.stringify(result));
    else if (suite === 'peak') console.log(`peak: GEMM ${peak.peakGflops.toFixed(1)} GFLOP/s (crunet/oneDNN)${peak.gemm.pytorch && 'gflops' in peak.gemm.pytorch ? `, PyTorch ${peak.gemm.pytorch.gflops.toFixed(1)} GFLOP/s` : ''}; copy ${peak.peakGBps.toFixed(1)} GB/s`);
  } finally {
    await peer?.close();
  }
}

/**
 * Every number the performance page shows, each step model in its own process (so that one model's
 * freed memory does not hide the next one's peak), written to bench/results/.
 */
async function runAll(args: Map<string, string>, log: (s: string) => void): Promise<void> {
  const tsx = path.join(__dirname, '..', 'node_modules', '.bin', 'tsx');
  const pass = ['device', 'peer', 'peer-format', 'threads', 'wait-idle'].flatMap((k) => (args.has(k) ? [`--${k}`, args.get(k)!] : []));
  const runs: string[][] = [
    ['--suite', 'ops', '--model', 'crunet56,resnext50_32x4d', ...(args.has('max-time') ? ['--max-time', args.get('max-time')!] : [])],
    ['--suite', 'step', '--model', 'crunet_small'],
    ['--suite', 'step', '--model', 'crunet56'],
    ['--suite', 'step', '--model', 'resnext50_32x4d'],
    ['--suite', 'step', '--model', 'crunet_small', '--precision', 'bf16'],
    ['--suite', 'step', '--model', 'crunet56', '--precision', 'bf16'],
    ['--suite', 'step', '--model', 'resnext50_32x4d', '--precision', 'bf16'],
  ];
  const failed: string[] = [];
  for (const r of runs) {
    const argv = [path.join(__dirname, 'run.ts'), ...r, ...pass, '--save'];
    log(`\n== ${argv.slice(1).join(' ')}`);
    const p = spawnSync(tsx, argv, { stdio: 'inherit' });
    if (p.status !== 0) failed.push(r.join(' '));
  }
  if (failed.length) throw new Error(`failed: ${failed.join('; ')}`);
  log('all suites done; regenerate the page with: npm run bench:doc');
}

main().catch((e) => {
  if (e instanceof UsageError) console.error(`bench: ${e.message}`);
  else console.error(e);
  process.exit(e instanceof UsageError ? 2 : 1);
});
