// Data parallel on one machine: 2 processes x 1 thread (Gloo, crunet.dist) against 1 process x 2 threads
// at the same global batch, images/s side by side, with the bytes reduced per step and the bandwidth the
// reduction achieved (timed alone, outside the steps: overlapped with backward it costs less). Synthetic
// data; the two layouts are run alternately (A B A B) so that other load falls on both alike.
// Usage: npx tsx bench/dist-scaling.ts [--model crunet_small] [--batch 64] [--steps 10] [--reps 1]
//   --batch is the global batch: each of the 2 ranks takes half.
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { compile, dist, setNumThreads } from '../lib/index.js';
import { create } from '../lib/models/index.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};

interface Result { imagesPerSec: number; steps: number; seconds: number; reducedBytes?: number; allreduceMs?: number }

/** One measurement, in this (child) process: ENV says which layout and which rank. */
async function child(): Promise<void> {
  const model = arg('model', 'crunet_small'), global = Number(arg('batch', '64')), steps = Number(arg('steps', '10'));
  const world = Number(process.env.WORLD_SIZE ?? 1), rank = Number(process.env.RANK ?? 0);
  setNumThreads(Number(process.env.THREADS));
  const group = world > 1
    ? await dist.initProcessGroup({ rank, worldSize: world, masterAddr: '127.0.0.1', masterPort: Number(process.env.MASTER_PORT), timeoutMs: 600_000 })
    : undefined;
  const batch = global / world;
  const m = create(model);
  const s = await compile(m, { batchSize: batch, optimizer: { lr: 0.01, momentum: 0.9 }, ...(group ? { distributed: { group } } : {}) });
  const [c, h, w] = m.graph.ir.inputs[0]!.shape as [number, number, number];
  const images = Float32Array.from({ length: batch * c * h * w }, (_, i) => Math.sin(i + rank));
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  await s.step(images, labels);  // warm-up
  if (group) await group.barrier();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await s.step(images, labels);
  if (group) await group.barrier();
  const seconds = (performance.now() - t0) / 1000;
  const r: Result = { imagesPerSec: (steps * global) / seconds, steps, seconds };
  if (group) {
    // The gradients' size, reduced alone a few times: the cost without overlap.
    const trainable = m.graph.ir.params.filter((p) => p.trainable).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    const buf = new Float32Array(trainable);
    await group.allreduce(buf);
    const t1 = performance.now();
    for (let i = 0; i < 3; i++) await group.allreduce(buf);
    r.reducedBytes = trainable * 4;
    r.allreduceMs = (performance.now() - t1) / 3;
    group.destroy();
  }
  s.dispose();
  if (rank === 0) console.log(JSON.stringify(r));
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

/** Runs `world` children with `threads` threads each; rank 0's result. */
async function layout(world: number, threads: number): Promise<Result> {
  const port = String(await freePort());
  const runs = Array.from({ length: world }, (_, rank) => new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', __filename, ...process.argv.slice(2), '--child'], {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_PORT: port, THREADS: String(threads) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`rank ${rank} of ${world} exited with ${code}`))));
  }));
  const outs = await Promise.all(runs);
  return JSON.parse(outs[0]!.trim().split('\n').pop()!);
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) return child();
  const reps = Number(arg('reps', '1'));
  console.log(`model ${arg('model', 'crunet_small')}, global batch ${arg('batch', '64')}, ${arg('steps', '10')} timed steps, ${reps} rep(s)`);
  const rows: string[] = [];
  for (let i = 0; i < reps; i++) {
    const one = await layout(1, 2);
    const two = await layout(2, 1);
    const mb = two.reducedBytes! / 2 ** 20;
    rows.push(`rep ${i + 1}: 1 x 2 threads ${one.imagesPerSec.toFixed(1)} img/s | 2 x 1 thread ${two.imagesPerSec.toFixed(1)} img/s ` +
      `(${(two.imagesPerSec / one.imagesPerSec).toFixed(2)}x) | ${mb.toFixed(2)} MB reduced per step; alone ${two.allreduceMs!.toFixed(1)} ms, ` +
      `${(mb / (two.allreduceMs! / 1000)).toFixed(0)} MB/s`);
    console.log(rows[rows.length - 1]);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
