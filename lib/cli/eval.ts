import { parseArgs } from 'node:util';
import { DataLoader, DATASET_SPECS, openDataset } from '../data/index.js';
import { limitDataset } from '../data/subset.js';
import { compile } from '../engine/index.js';
import { fromJSON } from '../models/index.js';
import { loadCheckpoint, restoreSession } from '../train/checkpoint.js';
import { ProgressBar } from '../train/progress.js';
import { Trainer, type EvalStats } from '../train/trainer.js';
import { createSchedule } from '../train/schedule.js';
import { UsageError } from './errors.js';
import { intFlag, precisionFlag, precisionHelp } from './flags.js';
import { MAX_THREADS, applyThreads, threadsHelp } from './threads.js';
import { badImagesFlag, checkDataMatches, imageLimitFlags, imageLimitsHelp, checkpointFile, storedSettings } from './run-settings.js';

export const EVAL_HELP = `Usage: crunet eval --checkpoint CKPT [options]

Evaluates a checkpoint (it rebuilds its own model) on a data set's test split: loss, top-1 and top-5.
The loss is plain cross-entropy, as the test loss 'crunet train' reports (also for runs with --label-smoothing).

Options:
  --checkpoint CKPT   a checkpoint.safetensors written by 'crunet train', or its run directory
  --dataset SPEC      ${DATASET_SPECS} (default: the one it was trained on)
  --batch-size B      (default 256)
  --limit N           evaluate on N samples (the random subset that 'crunet train --limit-test N' used)
  --ema               evaluate the moving average of the weights the checkpoint keeps ('crunet train --ema')
  --tta flip          test-time augmentation: score the mean softmax of each image and its mirror image
                      (for data sets whose classes are mirror-symmetric, e.g. Fashion-MNIST and CIFAR; not digits)
  --bad-images P      image folders: an unreadable image is fatal (fail, default) or skipped: counted and
                      left out of the scores (skip)
  ${imageLimitsHelp(22)}
  --device D          cpu (default)
  ${precisionHelp(22)}
                      (checkpoints hold fp32 weights whatever the run's precision, so any precision reads them)
  ${threadsHelp(22)}
  --json              one JSON line: {checkpoint, dataset, tta, ema, loss, top1, top5, images, skipped, seconds}`;

export async function evalCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: {
      checkpoint: { type: 'string' }, dataset: { type: 'string' }, 'batch-size': { type: 'string' },
      limit: { type: 'string' }, tta: { type: 'string' }, ema: { type: 'boolean' }, 'bad-images': { type: 'string' }, 'max-image-bytes': { type: 'string' }, 'max-image-pixels': { type: 'string' }, device: { type: 'string' }, precision: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!v.checkpoint) throw new UsageError('--checkpoint CKPT is required');
  const batch = intFlag(v['batch-size'], '--batch-size', 1) ?? 256;
  const tta = v.tta ?? 'none';
  if (tta !== 'none' && tta !== 'flip') throw new UsageError(`--tta: expected none or flip, but received '${tta}'`);
  const limit = intFlag(v.limit, '--limit', 1);
  const precision = precisionFlag(v.precision) ?? 'fp32';
  const onBadImage = badImagesFlag(v['bad-images']);
  const threads = intFlag(v.threads, '--threads', 1, MAX_THREADS);
  applyThreads(threads);
  const file = checkpointFile(v.checkpoint);
  const ckpt = loadCheckpoint(file);
  const stored = storedSettings(ckpt.meta).settings;
  const dataset = v.dataset ?? stored.dataset;
  if (!dataset) throw new UsageError(`${v.checkpoint} does not record its data set: pass --dataset`);
  const model = fromJSON(ckpt.meta.model as { name: string; options: Record<string, unknown> });
  // A folder split by --val-split at training: the same held-out images.
  const { valSplit, seed = 0 } = stored;
  const data = (await openDataset(dataset, { seed, onBadImage, ...imageLimitFlags(v), ...(valSplit !== undefined && dataset === stored.dataset ? { valSplit } : {}) })).test;
  checkDataMatches(ckpt.meta, data, file);
  // The training run drew its --limit-test subset with seed + 1: the same samples here.
  const test = limitDataset(data, limit, seed + 1);
  const ema = !!v.ema;
  if (ema && !ckpt.meta.emaState) throw new Error(`--ema: ${file} keeps no moving average of the weights (train with 'crunet train --ema DECAY')`);
  const session = await compile(model, { device: v.device ?? 'cpu', batchSize: batch, precision, ...(ema ? { ema: { decay: 1 } } : {}) });
  restoreSession(session, ckpt, { optimizerState: false, model: model.name });
  const loader = new DataLoader(test, { batchSize: batch, shuffle: false });
  const trainer = new Trainer({ session, train: loader, schedule: createSchedule({ type: 'constant', lr: 0 }), epochs: 0 });
  // Progress on stderr (a line redrawn on a terminal, a few lines otherwise), so --json's stdout stays one line.
  const bar = new ProgressBar({ stream: process.stderr });
  bar.start(1, loader.batchesPerEpoch, undefined, `eval ${model.name}`);
  let r: EvalStats;
  try {
    r = await trainer.evaluate(loader, 0, { tta, ema, onBatch: ({ batches, images }) => bar.update({ step: batches, images }) });
    bar.end(`evaluated ${r.images} images in ${r.seconds.toFixed(1)} s`);
  } finally {
    bar.end(); // after a failure: closes the line before the error is printed (a no-op once ended)
    await loader.close();
    session.dispose();
  }
  const skipped = r.skipped ? `, ${r.skipped} unreadable skipped` : '';
  if (v.json) console.log(JSON.stringify({ checkpoint: file, dataset, tta, ema, ...r }));
  else console.log(`${model.name}${ema ? ' (moving average)' : ''} from ${file} on ${dataset} (${r.images} images${skipped}${tta === 'flip' ? ', mean of each image and its mirror' : ''}): loss ${r.loss.toFixed(4)}, top-1 ${(100 * r.top1).toFixed(2)}%, top-5 ${(100 * r.top5).toFixed(2)}% (${r.seconds.toFixed(1)} s)`);
  return 0;
}
