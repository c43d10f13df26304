// One rank of a data-parallel test job (test/dist-training.test.ts), configured by the JSON in argv[2]:
//   {rank, worldSize, port, timeoutMs, model, width?, seed?, perRank, steps, lr, momentum, bucketMB?, syncBatchNorm?, lossScale?,
//    nanAt?: {rank, step}}
// nanAt puts a NaN in one image of that rank's batch at that step; the worker then reports the step's
// error on stderr as "STEP N ERROR: message" and goes on, as a trainer that skips a bad batch would.
// It joins the group, compiles with `distributed`, trains `steps` steps on its shard of each global batch
// (test/support/dist-net.ts) and prints, as its last stdout line, {params: {name: base64 f32}}. It prints
// "step N" after each step (the kill test waits for it). Failures go to stderr as "ERROR: message" and
// exit 1. SIGUSR2 makes it call process.exit(3).
import { compile, dist, setNumThreads } from '../../lib/index.js';
import { distNet, globalBatch, shard, type DistModel } from './dist-net.js';

interface Job {
  rank: number; worldSize: number; port: number; timeoutMs: number; model: DistModel; width?: number; seed?: number;
  perRank: number; steps: number; lr: number; momentum: number; bucketMB?: number; syncBatchNorm?: boolean; lossScale?: number;
  nanAt?: { rank: number; step: number };
}

// SIGUSR2: process.exit(3) at once, as a CLI does on Ctrl-C (the test of exiting during a blocked exchange).
process.on('SIGUSR2', () => process.exit(3));

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]!) as Job;
  setNumThreads(1);
  const group = await dist.initProcessGroup({ rank: job.rank, worldSize: job.worldSize, masterAddr: '127.0.0.1', masterPort: job.port, timeoutMs: job.timeoutMs });
  const s = await compile(distNet(job.model, job.width), {
    batchSize: job.perRank, seed: job.seed ?? 0, ...(job.lossScale ? { lossScale: job.lossScale } : {}), optimizer: { lr: job.lr, momentum: job.momentum }, distributed: { group, syncBatchNorm: job.syncBatchNorm ?? false, ...(job.bucketMB ? { bucketMB: job.bucketMB } : {}) },
  });
  for (let i = 0; i < job.steps; i++) {
    const b = shard(globalBatch(i, job.perRank * job.worldSize), job.rank, job.perRank);
    if (job.nanAt?.rank === job.rank && job.nanAt.step === i) b.images[5] = NaN;
    try {
      await s.step(b.images, b.labels);
    } catch (e) {
      if (!job.nanAt) throw e;
      process.stderr.write(`STEP ${i} ERROR: ${(e as Error).message}\n`);
    }
    console.log(`step ${i}`);
  }
  const params: Record<string, string> = {};
  for (const name of s.parameterNames()) params[name] = Buffer.from(s.getParameter(name).buffer).toString('base64');
  console.log(JSON.stringify({ params }));
  s.dispose();
  group.destroy();
}

main().catch((e: Error) => {
  process.stderr.write(`ERROR: ${e.message}\n`);
  process.exit(1);
});
