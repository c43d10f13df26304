// crunet's half of bench/torch-roundtrip.py: loads torchvision's state dict into the crunet model of the
// same name (strict), runs the fixed batch, and writes the logits, the ONNX file and the exported state dict.
//   npx tsx bench/torch-roundtrip.ts MODEL DIR     (DIR holds state_dict.safetensors and input.safetensors)
import * as path from 'node:path';
import { compile, io, models } from '../lib/index.js';

async function main(): Promise<void> {
  const [name, dir] = process.argv.slice(2);
  if (!name || !dir) throw new Error('usage: tsx bench/torch-roundtrip.ts MODEL DIR');
  const input = io.readSafetensors(path.join(dir, 'input.safetensors')).tensors.get('input')!;
  const model = models.create(name);
  const session = await compile(model, { batchSize: input.shape[0]! });
  try {
    const t0 = performance.now();
    const r = io.loadStateDict(session, io.readSafetensors(path.join(dir, 'state_dict.safetensors')).tensors);
    const loadMs = performance.now() - t0;
    const logits = await session.forward(input.data);
    await io.writeSafetensors(path.join(dir, 'crunet_logits.safetensors'), { logits: { shape: [input.shape[0]!, logits.length / input.shape[0]!], data: logits } });
    await io.writeSafetensors(path.join(dir, 'crunet_state_dict.safetensors'), io.stateDict(session));
    const bytes = io.writeOnnx(path.join(dir, 'crunet.onnx'), session.graph, (n) => session.getParameter(n), { name });
    console.log(JSON.stringify({ model: name, loaded: r.loaded.length, loadMs: Math.round(loadMs), onnxBytes: bytes }));
  } finally {
    session.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
