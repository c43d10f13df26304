import { parseArgs } from 'node:util';
import { createPredictor } from '../predict/predictor.js';
import { UsageError } from './errors.js';
import { intFlag } from './flags.js';
import { checkpointFile, imageLimitFlags, imageLimitsHelp } from './run-settings.js';
import { MAX_THREADS, applyThreads, threadsHelp } from './threads.js';

export const PREDICT_HELP = `Usage: crunet predict --checkpoint CKPT [options] IMAGE...

Classifies image files (PNG, JPEG, WebP, GIF, TIFF, AVIF) with a checkpoint's model: the most probable
classes, with their names and probabilities. The images get the preprocessing the checkpoint records
(its training data's normalisation and input size; for image folders the resize and centre crop).

Options:
  --checkpoint CKPT   a checkpoint.safetensors (from 'crunet train' or 'crunet convert'), or its run directory
  --top-k K           classes shown per image (default 5)
  --batch-size B      images per forward pass (default 16)
  --json              one JSON line per image: {file, top: [{index, name, probability}, ...]}
  ${imageLimitsHelp(22)}
  --device D          cpu (default)
  ${threadsHelp(22)}`;

export async function predictCommand(args: string[]): Promise<number> {
  const { values: v, positionals: images } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: {
      checkpoint: { type: 'string' }, 'top-k': { type: 'string' }, 'batch-size': { type: 'string' }, json: { type: 'boolean' },
      'max-image-bytes': { type: 'string' }, 'max-image-pixels': { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' },
    },
  });
  if (!v.checkpoint) throw new UsageError('--checkpoint CKPT is required');
  if (!images.length) throw new UsageError('give one or more image files to classify');
  const topK = intFlag(v['top-k'], '--top-k', 1) ?? 5;
  const batchSize = intFlag(v['batch-size'], '--batch-size', 1) ?? 16;
  applyThreads(intFlag(v.threads, '--threads', 1, MAX_THREADS));
  const predictor = await createPredictor(checkpointFile(v.checkpoint), { device: v.device ?? 'cpu', batchSize, ...imageLimitFlags(v) });
  try {
    // A batch at a time, so that results print as they come and an undecodable image stops at its batch.
    for (let i = 0; i < images.length; i += batchSize) {
      for (const r of await predictor.predict(images.slice(i, i + batchSize), { topK })) {
        if (v.json) {
          console.log(JSON.stringify({ file: r.source, top: r.top }));
          continue;
        }
        const width = Math.max(...r.top.map((t) => t.name.length));
        console.log(r.source);
        for (const t of r.top) console.log(`  ${t.name.padEnd(width)}  ${(100 * t.probability).toFixed(2).padStart(6)}%`);
      }
    }
  } finally {
    predictor.dispose();
  }
  return 0;
}
