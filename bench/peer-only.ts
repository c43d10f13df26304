// PyTorch's training images/s for a crunet model, alone: the peer's network built from the model's graph
// IR (bench/peers/models.py), trained on one random batch with SGD, optionally under AMP. This is the
// number crunet has to meet where crunet cannot run the configuration yet (bf16/fp16 on CUDA), and what
// a GPU session measures first. Usage:
//   npx tsx bench/peer-only.ts --model crunet56 --device cuda --batch 256 --amp bf16 [--format channels_last]
//                              [--steps 20] [--warmup 5] [--cudnn-benchmark 1|0] [--json]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { create } from '../lib/models/index.js';
import { PytorchPeer, type PeerFormat } from './lib/peer.js';
import { median } from './lib/stats.js';

async function main() {
  const { values: v } = parseArgs({
    options: {
      model: { type: 'string', default: 'crunet56' }, device: { type: 'string', default: 'cuda' }, batch: { type: 'string', default: '256' },
      amp: { type: 'string', default: 'bf16' }, format: { type: 'string', default: 'channels_last' },
      steps: { type: 'string', default: '20' }, warmup: { type: 'string', default: '5' }, json: { type: 'boolean' },
      'cudnn-benchmark': { type: 'string', default: '1' },
    },
  });
  const batch = Number(v.batch), steps = Number(v.steps), warmup = Number(v.warmup);
  if (!['none', 'bf16', 'fp16'].includes(v.amp!)) throw new RangeError(`--amp: expected none, bf16 or fp16, but received '${v.amp}'`);
  if (!['0', '1'].includes(v['cudnn-benchmark']!)) throw new RangeError(`--cudnn-benchmark: expected 1 or 0, but received '${v['cudnn-benchmark']}'`);
  const model = create(v.model!);
  const ir = model.graph.ir;
  const input = ir.inputs.find((i) => i.dtype === 'f32')!.shape;
  const perSample = input.reduce((a, b) => a * b, 1);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-peer-'));
  try {
    fs.writeFileSync(path.join(tmp, 'graph.json'), JSON.stringify(ir));
    const images = Float32Array.from({ length: batch * perSample }, (_, i) => Math.sin(i * 0.37));
    const labels = Int32Array.from({ length: batch }, (_, i) => i % model.options.classes);
    fs.writeFileSync(path.join(tmp, 'images.bin'), new Uint8Array(images.buffer));
    fs.writeFileSync(path.join(tmp, 'labels.bin'), new Uint8Array(labels.buffer));
    const started = await PytorchPeer.start({ device: v.device!, threads: os.cpus().length, format: v.format as PeerFormat, amp: v.amp as 'none' | 'bf16' | 'fp16', cudnnBenchmark: v['cudnn-benchmark'] === '1' });
    if ('unavailable' in started) throw new Error(`PyTorch is unavailable: ${started.unavailable}`);
    const peer = started;
    try {
      await peer.request('build', {
        ir: path.join(tmp, 'graph.json'), images: path.join(tmp, 'images.bin'), labels: path.join(tmp, 'labels.bin'),
        batch, expectParams: model.parameterCount(), seed: 0, optimizer: { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
      });
      await peer.request('steps', { n: warmup });
      const r = await peer.request<{ steps: { ms: number; loss: number }[] }>('steps', { n: steps });
      const med = median(r.steps.map((s) => s.ms));
      const mem = await peer.request<{ peakBytes: number }>('memory');
      const out = {
        bench: 'peer-only', model: model.name, params: model.parameterCount(), device: v.device, batch, amp: v.amp, format: v.format,
        medianStepMs: med, imagesPerSec: (batch * 1000) / med, peakBytes: mem.peakBytes, info: peer.info, date: new Date().toISOString(),
      };
      console.log(v.json ? JSON.stringify(out) :
        `PyTorch ${peer.info.torch} ${model.name} batch ${batch} on ${peer.info.gpu ?? v.device}, amp ${v.amp}, ${v.format}: ` +
        `median ${med.toFixed(1)} ms/step = ${out.imagesPerSec.toFixed(0)} images/s, peak ${(mem.peakBytes / 2 ** 30).toFixed(2)} GiB`);
    } finally {
      await peer.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
