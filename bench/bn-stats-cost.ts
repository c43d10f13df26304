// The cost of batch norm's own training statistics (native/cpu/batch_norm.cc batch_stats: one extra
// read of the input, double accumulators). Times step() of input -> batchNorm -> global pool -> linear
// -> loss, whose time is dominated by batch norm; run it on two builds to compare:
//   npx tsx bench/bn-stats-cost.ts
import { compile, GraphBuilder } from '../lib/index.js';

async function main(): Promise<void> {
  for (const [c, hw, batch] of [[64, 32, 32], [256, 14, 32]] as const) {
    const g = new GraphBuilder();
    const x = g.input('x', [c, hw, hw]);
    const y = g.input('labels', [], 'i32');
    const logits = g.linear(g.globalAvgPool(g.batchNorm(x, { name: 'bn' })), { outFeatures: 10, name: 'fc' });
    const s = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: batch, fuse: false });
    const images = Float32Array.from({ length: batch * c * hw * hw }, (_, i) => Math.sin(i) + 100);
    const labels = new Int32Array(batch);
    for (let i = 0; i < 5; i++) await s.step(images, labels);
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = process.hrtime.bigint();
      await s.step(images, labels);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    console.log(`x[${batch},${c},${hw},${hw}]: step median ${times[15]!.toFixed(2)} ms, min ${times[0]!.toFixed(2)} ms`);
    s.dispose();
  }
}

void main();
