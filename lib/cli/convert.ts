import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { compile } from '../engine/index.js';
import { loadStateDict } from '../io/state-dict.js';
import { create } from '../models/index.js';
import { TORCHVISION_IMAGENET } from '../predict/preprocess.js';
import { saveCheckpoint } from '../train/checkpoint.js';
import { readSafetensors } from '../train/safetensors.js';
import { UsageError } from './errors.js';
import { parseModelOptions } from './model-options.js';

export const CONVERT_HELP = `Usage: crunet convert --model NAME --state-dict WEIGHTS.safetensors --out CKPT [options]

Makes a crunet checkpoint from a plain PyTorch state dict saved as safetensors
(safetensors.torch.save_file(model.state_dict(), path)). crunet's models use torchvision's parameter
names and layouts, so torchvision's resnet50, resnet101 and resnext50_32x4d weights load one to one;
BatchNorm's num_batches_tracked is ignored. F16, BF16 and F64 tensors are converted to float32.
Every missing, unexpected or mis-shaped tensor is listed and nothing is written.

Options:
  --model NAME            the architecture ('crunet summary --list')
  --model-options JSON    its options, e.g. '{"classes":10}'
  --state-dict FILE       the weights
  --out CKPT              the checkpoint to write (replaced atomically)
  --no-strict             load the tensors whose names and shapes match, list the rest (missing keys keep
                          crunet's initial values), as PyTorch's load_state_dict(strict=False)
  --class-names FILE      a text file with one class name per line, stored for 'crunet predict'
  --preprocessing P       what 'crunet predict' does to images: torchvision (ImageNet's mean and std, resize
                          256, centre crop 224: what torchvision's weights expect; the default for
                          3-channel 224x224 models) or none`;

export async function convertCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: {
      model: { type: 'string' }, 'model-options': { type: 'string' }, 'state-dict': { type: 'string' }, out: { type: 'string' },
      'no-strict': { type: 'boolean' }, 'class-names': { type: 'string' }, preprocessing: { type: 'string' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  for (const f of ['model', 'state-dict', 'out'] as const) if (!v[f]) throw new UsageError(`--${f} is required`);
  const model = create(v.model!, parseModelOptions(v['model-options'], []));
  const { channels, inputSize, classes } = model.options;
  const fitsTorchvision = channels === 3 && inputSize === 224;
  const pre = v.preprocessing ?? (fitsTorchvision ? 'torchvision' : 'none');
  if (pre !== 'torchvision' && pre !== 'none') throw new UsageError(`--preprocessing: expected torchvision or none, but received '${pre}'`);
  if (pre === 'torchvision' && !fitsTorchvision) {
    throw new UsageError(`--preprocessing torchvision makes 3x224x224 inputs, but ${model.name} takes ${channels}x${inputSize}x${inputSize}`);
  }
  let classNames: string[] | undefined;
  if (v['class-names']) {
    classNames = fs.readFileSync(v['class-names'], 'utf8').split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (classNames.length !== classes) throw new UsageError(`${v['class-names']} names ${classNames.length} classes, but ${model.name} has ${classes}`);
  }
  const sd = readSafetensors(v['state-dict']!);
  // The session only carries the weights into the checkpoint, but a session is compiled for training,
  // whose batch norm needs two values per channel: at batch 1 a last stage of 1x1 (resnet50 at 32x32)
  // has one. Batch 2 always has two.
  const session = await compile(model, { batchSize: 2 });
  try {
    const strict = !v['no-strict'];
    const r = loadStateDict(session, sd.tensors, { strict, source: v['state-dict'] });
    await saveCheckpoint(v.out!, session, {
      model: model.toJSON(), epoch: 0, step: 0, convertedFrom: v['state-dict'],
      ...(pre === 'torchvision' ? { preprocessing: TORCHVISION_IMAGENET } : {}), ...(classNames ? { classNames } : {}),
    }, { optimizerState: false });
    console.log(`crunet convert: loaded ${r.loaded.length} of ${session.parameterNames().length} parameters of ${model.name} from ${v['state-dict']}; wrote ${v.out}`);
    if (r.missingKeys.length) console.log(`missing keys (left at crunet's initial values): ${r.missingKeys.join(', ')}`);
    if (r.unexpectedKeys.length) console.log(`unexpected keys (ignored): ${r.unexpectedKeys.join(', ')}`);
  } finally {
    session.dispose();
  }
  return 0;
}
