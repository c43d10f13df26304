// Per-node kernel times of one model's training step: where the time goes.
// Usage: npx tsx bench/profile-step.ts [--model crunet_small] [--batch 128] [--steps 5]
import * as os from 'node:os';
import { compile } from '../lib/index.js';
import { create } from '../lib/models/index.js';
import { native } from '../lib/engine/native.js';

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
}

async function main() {
  const name = opt('model', 'crunet_small');
  const batch = Number(opt('batch', '128'));
  const steps = Number(opt('steps', '5'));
  const model = create(name);
  const s = await compile(model, { batchSize: batch, profile: true, optimizer: { lr: 0.01, momentum: 0.9 } });
  const [c, h, w] = model.graph.ir.inputs[0]!.shape as [number, number, number];
  const images = Float32Array.from({ length: batch * c * h * w }, (_, i) => Math.sin(i));
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  for (let i = 0; i < 2; i++) await s.step(images, labels);
  s.resetProfile();
  const p0 = native().primitiveSeconds();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await s.step(images, labels);
  const stepMs = (performance.now() - t0) / steps;
  const primMs = ((native().primitiveSeconds() - p0) * 1000) / steps;
  const prof = s.profile();
  s.dispose();
  const byOp = new Map<string, { fwd: number; bwd: number; n: number }>();
  for (const p of prof) {
    const e = byOp.get(p.op) ?? { fwd: 0, bwd: 0, n: 0 };
    e.fwd += p.forwardMs / steps;
    e.bwd += p.backwardMs / steps;
    e.n++;
    byOp.set(p.op, e);
  }
  console.log(`${name}, batch ${batch}, ${steps} steps; ${os.cpus()[0]?.model}, ${os.cpus().length} cores; ${new Date().toISOString()}`);
  console.log(`step ${stepMs.toFixed(1)} ms = ${((batch * 1000) / stepMs).toFixed(1)} images/s; oneDNN primitives ${primMs.toFixed(1)} ms`);
  console.log('op                    nodes   forward ms  backward ms');
  for (const [op, e] of [...byOp].sort((a, b) => b[1].fwd + b[1].bwd - a[1].fwd - a[1].bwd)) {
    console.log(`${op.padEnd(22)}${String(e.n).padStart(5)}${e.fwd.toFixed(2).padStart(13)}${e.bwd.toFixed(2).padStart(13)}`);
  }
  if (process.argv.includes('--nodes')) {
    for (const p of [...prof].sort((a, b) => b.forwardMs + b.backwardMs - a.forwardMs - a.backwardMs).slice(0, 25)) {
      console.log(`  ${p.name.padEnd(34)} ${p.op.padEnd(12)} ${(p.forwardMs / steps).toFixed(2).padStart(8)} ${(p.backwardMs / steps).toFixed(2).padStart(8)}  ${p.impl}`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
