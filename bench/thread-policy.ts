// OpenMP thread policies on a shared machine: images/s of a short fixed training workload (crunet_small,
// batch 128, synthetic data) under each policy, idle-ish and beside a busy loop on one core, interleaved
// (A B C ... A B C ...) so that other load on the machine falls on every policy alike.
// Usage: npx tsx bench/thread-policy.ts [--steps 20] [--reps 2] [--cap 40]
// Each measurement runs in a child process: OpenMP reads OMP_* and GOMP_* once, when libgomp loads.
import { spawn, spawnSync } from 'node:child_process';
import * as os from 'node:os';
// The addon (and libgomp with it) loads on first use, in child() only, after the environment is set.
import { compile, setNumThreads } from '../lib/index.js';
import { create } from '../lib/models/index.js';

const opt = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};

async function child(): Promise<void> {
  const steps = Number(process.env.STEPS), cap = Number(process.env.CAP);
  if (process.env.THREADS) setNumThreads(Number(process.env.THREADS));
  const batch = 128;
  const model = create('crunet_small');
  const s = await compile(model, { batchSize: batch, optimizer: { lr: 0.01, momentum: 0.9 } });
  const [c, h, w] = model.graph.ir.inputs[0]!.shape as [number, number, number];
  const images = Float32Array.from({ length: batch * c * h * w }, (_, i) => Math.sin(i));
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  for (let i = 0; i < 2; i++) await s.step(images, labels);
  const t0 = performance.now();
  let done = 0;
  // A collapsed policy can run 20x slower: stop at the cap and rate the steps done.
  while (done < steps && performance.now() - t0 < cap * 1000) await s.step(images, labels), done++;
  const sec = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ imagesPerSec: (done * batch) / sec, steps: done, seconds: sec }));
  s.dispose();
}

const POLICIES: { name: string; env: Record<string, string> }[] = [
  { name: '1 thread', env: { THREADS: '1' } },
  // libgomp's own default (spin 300k, then sleep), named explicitly: crunet sets passive when neither is set.
  { name: '2 threads, libgomp default', env: { THREADS: '2', GOMP_SPINCOUNT: '300000' } },
  { name: '2 threads, OMP_WAIT_POLICY=passive', env: { THREADS: '2', OMP_WAIT_POLICY: 'passive' } },
  { name: '2 threads, OMP_WAIT_POLICY=active', env: { THREADS: '2', OMP_WAIT_POLICY: 'active' } },
  { name: '2 threads, GOMP_SPINCOUNT=10000', env: { THREADS: '2', GOMP_SPINCOUNT: '10000' } },
];

function measure(env: Record<string, string>, steps: number, cap: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const clean = { ...process.env };
    for (const k of ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'OMP_NUM_THREADS']) delete clean[k];
    const p = spawn(process.execPath, ['-r', 'tsx/cjs', __filename, '--child'], {
      env: { ...clean, ...env, STEPS: String(steps), CAP: String(cap) }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!).imagesPerSec) : reject(new Error(`child exited ${code}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function driver(): Promise<void> {
  const steps = opt('steps', 20), reps = opt('reps', 2), cap = opt('cap', 40);
  console.log(`${os.cpus().length} cores, availableParallelism ${os.availableParallelism()}; ${steps} steps of crunet_small batch 128 (cap ${cap} s)`);
  for (const loaded of [false, true]) {
    const rates = POLICIES.map(() => [] as number[]);
    const loads: string[] = [];
    for (let r = 0; r < reps; r++) {
      for (const [i, p] of POLICIES.entries()) {
        // The hog is bounded by timeout(1) should this script die, and killed as a process group (timeout
        // and its shell) after the measurement: killing timeout alone would leave the shell spinning.
        const hog = loaded ? spawn('timeout', [String(cap + 60), 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore', detached: true }) : undefined;
        try {
          rates[i]!.push(await measure(p.env, steps, cap));
        } finally {
          if (hog?.pid) process.kill(-hog.pid, 'SIGKILL');
        }
        loads.push(load());
      }
    }
    console.log(`\n${loaded ? 'beside a busy loop on one core' : 'idle-ish'} (load averages seen: ${loads[0]} ... ${loads.at(-1)})`);
    for (const [i, p] of POLICIES.entries()) console.log(`  ${p.name.padEnd(38)} median ${median(rates[i]!).toFixed(0).padStart(4)} img/s  (${rates[i]!.map((x) => x.toFixed(0)).join(', ')})`);
  }
  spawnSync('uptime', { stdio: 'inherit' });
}

(process.argv.includes('--child') ? child() : driver()).catch((e) => {
  console.error(e);
  process.exit(1);
});
