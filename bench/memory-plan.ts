// Memory plan of a training step: planned arena (buffers reused after their last use) against the
// naive sum of every intermediate tensor, plus parameters and scratch.
// Usage: npx tsx bench/memory-plan.ts [--model resnext50_32x4d] [--batch 32] [--step]
import * as os from 'node:os';
import { compile } from '../lib/index.js';
import { create } from '../lib/models/index.js';

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
}
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

async function main() {
  const name = opt('model', 'resnext50_32x4d');
  const batch = Number(opt('batch', '32'));
  const model = create(name);
  const t0 = performance.now();
  const s = await compile(model, { batchSize: batch, optimizer: { lr: 0.1, momentum: 0.9 } });
  const compileMs = performance.now() - t0;
  const m = s.memory();
  console.log(`memory plan: ${name} training step, batch ${batch}, input ${model.graph.ir.inputs[0]!.shape.join('x')}`);
  console.log(`machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores; ${new Date().toISOString()}; compile ${compileMs.toFixed(0)} ms`);
  console.log(`buffers planned              ${m.buffers}`);
  console.log(`naive sum of intermediates   ${gib(m.naiveBytes)}`);
  console.log(`planned arena                ${gib(m.arenaBytes)}   arena / naive = ${m.reuseRatio.toFixed(3)}`);
  console.log(`parameter state              ${gib(m.parameterBytes)}   (values, gradients, momenta, BN statistics and their snapshot)`);
  console.log(`scratch (largest kernel)     ${gib(m.scratchBytes)}`);
  console.log(`planned peak                 ${gib(m.plannedPeakBytes)}`);
  let stepMs: number | undefined;
  if (process.argv.includes('--step')) {
    const [c, h, w] = model.graph.ir.inputs[0]!.shape as [number, number, number];
    const images = Float32Array.from({ length: batch * c * h * w }, (_, i) => Math.sin(i));
    const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
    await s.step(images, labels);
    const t1 = performance.now();
    const r = await s.step(images, labels);
    stepMs = performance.now() - t1;
    console.log(`one step: ${stepMs.toFixed(0)} ms (${((batch * 1000) / stepMs).toFixed(1)} images/s), loss ${r.loss.toFixed(3)}; process RSS ${gib(process.memoryUsage().rss)}`);
  }
  console.log(JSON.stringify({ bench: 'memory-plan', model: name, batch, ...m, stepMs }));
  s.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
