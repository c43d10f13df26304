// Engine overhead: a ResNeXt-style unit (pre-activation, 256 -> 128 (32 groups) -> 256 at 56x56) trained
// at batch 32. Compares, in one run, the step time seen from JS with (a) the time inside the session's
// kernels and (b) the time inside the oneDNN primitives they call. Usage: npx tsx bench/engine-overhead.ts [--steps N] [--batch B]
import * as os from 'node:os';
import { compile, GraphBuilder } from '../lib/index.js';
import { native } from '../lib/engine/native.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

async function main() {
  const steps = arg('steps', 10);
  const batch = arg('batch', 32);
  const g = new GraphBuilder();
  const x = g.input('images', [256, 56, 56]);
  const y = g.input('labels', [], 'i32');
  const pre = (v: typeof x, name: string) => g.relu(g.batchNorm(v, { name }));
  let t = g.conv2d(pre(x, 'bn1'), { outChannels: 128, kernel: 1, name: 'conv1' });
  t = g.conv2d(pre(t, 'bn2'), { outChannels: 128, kernel: 3, padding: 1, groups: 32, name: 'conv2' });
  t = g.conv2d(pre(t, 'bn3'), { outChannels: 256, kernel: 1, name: 'conv3' });
  const out = g.add(x, t, 'add');
  const logits = g.linear(g.globalAvgPool(out), { outFeatures: 10, name: 'fc' });
  const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });

  const s = await compile(graph, { batchSize: batch, profile: true, optimizer: { lr: 0.01, momentum: 0.9 } });
  const images = Float32Array.from({ length: batch * 256 * 56 * 56 }, (_, i) => Math.sin(i));
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  for (let i = 0; i < 3; i++) await s.step(images, labels); // warm-up: JIT, page faults
  s.resetProfile();
  const prim0 = native().primitiveSeconds();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await s.step(images, labels);
  const stepMs = (performance.now() - t0) / steps;
  const primMs = ((native().primitiveSeconds() - prim0) * 1000) / steps;
  const prof = s.profile();
  const kernelMs = prof.reduce((a, p) => a + p.forwardMs + p.backwardMs, 0) / steps;
  s.dispose();

  console.log(`engine overhead: ResNeXt unit 256-128(g32)-256 at 56x56, batch ${batch}, ${steps} steps`);
  console.log(`machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores; ${new Date().toISOString()}`);
  console.log('per node (ms per step, forward / backward):');
  for (const p of prof) {
    console.log(`  ${p.name.padEnd(22)} ${p.op.padEnd(20)} ${(p.forwardMs / steps).toFixed(2).padStart(8)} ${(p.backwardMs / steps).toFixed(2).padStart(8)}  ${p.impl}`);
  }
  console.log(`step (seen from JS)          ${stepMs.toFixed(2)} ms`);
  console.log(`sum of kernel calls          ${kernelMs.toFixed(2)} ms   step / kernels    = ${(stepMs / kernelMs).toFixed(3)}`);
  console.log(`sum of oneDNN primitives     ${primMs.toFixed(2)} ms   step / primitives = ${(stepMs / primMs).toFixed(3)}`);
  console.log(JSON.stringify({ bench: 'engine-overhead', batch, steps, stepMs, kernelMs, primitiveMs: primMs, ratioKernels: stepMs / kernelMs, ratioPrimitives: stepMs / primMs }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
