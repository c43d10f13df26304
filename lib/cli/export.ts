import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { toOnnx, ONNX_OPSET } from '../io/onnx.js';
import { stateDictFromTensors } from '../io/state-dict.js';
import { fromJSON } from '../models/index.js';
import { loadCheckpoint, writeFileAtomic, writeFileAtomicSync } from '../train/checkpoint.js';
import { writeSafetensorsTo } from '../train/safetensors.js';
import { UsageError } from './errors.js';
import { checkpointFile } from './run-settings.js';

export const EXPORT_HELP = `Usage: crunet export --checkpoint CKPT (--onnx MODEL.onnx | --state-dict WEIGHTS.safetensors)...

Writes a checkpoint's model for other tools (either output or both):
  --onnx FILE         the inference graph as ONNX (opset ${ONNX_OPSET}): Conv, BatchNormalization (running
                      statistics, not folded), Relu, MaxPool, AveragePool, GlobalAveragePool, Gemm, Add;
                      input 'images' [batch, C, H, W], output the logits; shared CRU factors are stored once
  --state-dict FILE   the weights as a plain PyTorch state dict in safetensors (num_batches_tracked
                      included): model.load_state_dict(safetensors.torch.load_file(FILE), strict=True)
                      loads it into torchvision's model of the same name

Options:
  --checkpoint CKPT   a checkpoint.safetensors, or its run directory`;

export async function exportCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: { checkpoint: { type: 'string' }, onnx: { type: 'string' }, 'state-dict': { type: 'string' } },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!v.checkpoint) throw new UsageError('--checkpoint CKPT is required');
  if (!v.onnx && !v['state-dict']) throw new UsageError('give --onnx FILE, --state-dict FILE or both');
  for (const f of [v.onnx, v['state-dict']]) {
    if (f !== undefined && fs.statSync(f, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${f} is a directory; give the path of the file to write`);
  }
  const file = checkpointFile(v.checkpoint);
  const ckpt = loadCheckpoint(file);
  const model = fromJSON(ckpt.meta.model as { name: string; options: Record<string, unknown> });
  const graph = model.graph.ir;
  // Checks that the tensors fit the model (a checkpoint edited or mislabelled is refused here, naming them).
  const sd = stateDictFromTensors(graph, ckpt.tensors, { numBatchesTracked: ckpt.meta.step });
  if (v.onnx) {
    const bytes = toOnnx(graph, ckpt.tensors, { name: model.name, docString: `crunet ${model.name} from ${file} (epoch ${ckpt.meta.epoch})` });
    writeFileAtomicSync(v.onnx, bytes);
    console.log(`crunet export: wrote ${v.onnx} (ONNX opset ${ONNX_OPSET}, ${bytes.byteLength} bytes): ${model.name} from ${file}`);
  }
  if (v['state-dict']) {
    await writeFileAtomic(v['state-dict'], async (sink) => {
      await writeSafetensorsTo(sink, sd, { format: 'pt' });
    });
    console.log(`crunet export: wrote ${v['state-dict']} (a PyTorch state dict of ${sd.size} tensors): ${model.name} from ${file}`);
  }
  return 0;
}
