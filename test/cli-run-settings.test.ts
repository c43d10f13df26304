import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { UsageError } from '../lib/cli/errors.js';
import { checkDataMatches, checkpointFile, resumeSettings, storedSettings, trainMeta, type RunSettings } from '../lib/cli/run-settings.js';
import type { Dataset } from '../lib/data/index.js';
import type { CheckpointInfo } from '../lib/train/checkpoint.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const data = (name: string, shape: [number, number, number], classes: string[]) => ({ name, shape, classes }) as unknown as Dataset;

const run: RunSettings = {
  model: 'crunet_small', dataset: 'fashion-mnist', epochs: 42, batchSize: 128, lr: 0.2, schedule: 'cosine', warmupEpochs: 0.3,
  momentum: 0.9, nesterov: true, weightDecay: 5e-4, labelSmoothing: 0.1, augment: true, erase: 0.5, seed: 0,
  mixup: 0.2, cutmix: 1, mixProb: 0.8, mixSwitchProb: 0.5, autoAugment: 'randaugment:2,9', validation: 0.1, earlyStopPatience: 3, precision: 'fp32',
  optimizer: 'sgd', clipGradNorm: 1, accumulate: 2, ema: 0.999, emaWarmup: true,
};

/** A checkpoint's metadata as 'crunet train' writes it after `epoch` epochs of `run`. */
function info(r: RunSettings, extra: Record<string, unknown> = {}): CheckpointInfo {
  return {
    model: { name: r.model, options: { classes: 10, channels: 1, inputSize: 28, width: 48 } },
    epoch: 1, step: 468,
    schedule: { type: 'cosine', lr: r.lr, epochs: r.epochs, warmup: { steps: 140 }, stepsPerEpoch: 468 },
    optimizer: { type: r.optimizer as 'sgd', lr: r.lr, momentum: r.momentum, nesterov: r.nesterov, weightDecay: r.weightDecay, clipGradNorm: r.clipGradNorm },
    format: 1, version: '0.1.0', savedAt: '2026-11-25T17:26:45.789Z', session: { device: 'cpu', batchSize: r.batchSize, precision: 'fp32' },
    optimizerState: true,
    ...extra,
  };
}

describe('crunet train: run settings in checkpoints', () => {
  afterEach(removeTestTempDirs);
  it('recovers every setting from what a checkpoint stores (warmup from its steps)', () => {
    const meta = info(run, trainMeta(run, data('fashion-mnist', [1, 28, 28], FASHION), { augment: true, erase: 0.5 }) as Record<string, unknown>);
    const { settings, stepsPerEpoch } = storedSettings(meta);
    assert.equal(stepsPerEpoch, 468);
    const { warmupEpochs, ...rest } = settings;
    assert.equal(Math.round(warmupEpochs! * 468), 140);
    const { warmupEpochs: _, ...expected } = run;
    assert.deepEqual(rest, { ...expected, limitTrain: undefined, limitTest: undefined, valSplit: undefined });
  });

  it('reads checkpoints written before the run settings were recorded from their schedule and optimizer', () => {
    // As the 45-epoch README run's checkpoint: no runEpochs, limitTrain or classNames.
    const legacy = info(run, { dataset: 'fashion-mnist', seed: 0, augmentation: { augment: true, erase: 0.5 } });
    const s = resumeSettings({}, legacy, 'old.safetensors');
    assert.equal(s.epochs, 42); // the cosine schedule's length
    assert.equal(s.batchSize, 128);
    assert.equal(s.erase, 0.5);
    assert.equal('limitTrain' in s, false); // unknown: the flags decide
    assert.equal(resumeSettings({ limitTest: 500 }, legacy, 'old.safetensors').limitTest, 500);
    assert.equal(s.labelSmoothing, 0); // the flag did not exist yet
    assert.throws(() => resumeSettings({ labelSmoothing: 0.1 }, legacy, 'old'), /with --label-smoothing 0, but this command asks for --label-smoothing 0.1/);
    assert.deepEqual(resumeSettings({ limitTrain: 1000 }, legacy, 'old.safetensors').limitTrain, 1000);
  });

  it('takes flags that agree, refuses those that do not, naming both values', () => {
    const meta = info(run, trainMeta(run, data('f', [1, 28, 28], FASHION), { augment: true, erase: 0.5 }) as Record<string, unknown>);
    assert.equal(resumeSettings({ epochs: 42, warmupEpochs: 0.3, nesterov: true }, meta, 'c').lr, 0.2);
    const refuse = (given: Partial<RunSettings>, re: RegExp) =>
      assert.throws(() => resumeSettings(given, meta, 'c.safetensors'), (e: Error) => e instanceof UsageError && re.test(e.message));
    refuse({ nesterov: false }, /c\.safetensors is from a run with Nesterov momentum, but this command asks for --no-nesterov/);
    refuse({ weightDecay: 1e-4 }, /--weight-decay 0.0005, but this command asks for --weight-decay 0.0001/);
    refuse({ dataset: 'cifar10:/data' }, /--dataset fashion-mnist, but this command asks for --dataset cifar10:\/data/);
    refuse({ limitTrain: 100 }, /with the whole training set, but this command asks for --limit-train 100/);
    refuse({ limitTest: 100 }, /with the whole test set, but this command asks for --limit-test 100/);
    refuse({ schedule: 'step' }, /--schedule cosine, but this command asks for --schedule step/);
    refuse({ labelSmoothing: 0 }, /--label-smoothing 0.1, but this command asks for --label-smoothing 0/);
  });

  it("a resumed run keeps its precision: taken from the checkpoint's session, another one refused", () => {
    const meta = info(run, trainMeta(run, data('f', [1, 28, 28], FASHION), { augment: true, erase: 0.5 }) as Record<string, unknown>);
    const bf16 = { ...meta, session: { ...meta.session, precision: 'bf16' } };
    assert.equal(resumeSettings({}, bf16, 'c').precision, 'bf16');
    assert.equal(resumeSettings({ precision: 'bf16' }, bf16, 'c').precision, 'bf16');
    assert.throws(() => resumeSettings({ precision: 'fp32' }, bf16, 'c'), /c is from a run with --precision bf16, but this command asks for --precision fp32/);
    assert.equal(resumeSettings({}, meta, 'c').precision, 'fp32');
  });

  it('runs recorded before --label-smoothing existed had none', () => {
    const { labelSmoothing: _, ...before } = trainMeta(run, data('f', [1, 28, 28], FASHION), { augment: true, erase: 0.5 }) as Record<string, unknown>;
    const meta = info(run, before);
    assert.equal(storedSettings(meta).settings.labelSmoothing, 0);
    assert.throws(() => resumeSettings({ labelSmoothing: 0.1 }, meta, 'c'), /with --label-smoothing 0, but this command asks for --label-smoothing 0.1/);
  });

  it('refuses data of another shape, class count or class names than the model was trained on', () => {
    const meta = info(run, { classNames: FASHION });
    checkDataMatches(meta, data('fashion-mnist', [1, 28, 28], FASHION), 'c');
    const refuse = (d: Dataset, re: RegExp) => assert.throws(() => checkDataMatches(meta, d, 'c'), (e: Error) => e instanceof UsageError && re.test(e.message));
    refuse(data('cifar10', [3, 32, 32], FASHION), /c holds crunet_small for 1x28x28 images in 10 classes, but cifar10 has 3x32x32 images in 10 classes/);
    refuse(data('k', [1, 28, 28], FASHION.slice(0, 5)), /but k has 1x28x28 images in 5 classes/);
    refuse(data('mnist', [1, 28, 28], '0123456789'.split('')), /c was trained on classes T-shirt\/top, Trouser, Pullover, Dress, \.\.\., but mnist has classes 0, 1, 2, 3, \.\.\./);
    // Without recorded names only the shape is checked.
    checkDataMatches(info(run), data('mnist', [1, 28, 28], '0123456789'.split('')), 'c');
  });

  it('a checkpoint argument may be a run directory', () => {
    const dir = testTempDir('settings');
    assert.equal(checkpointFile(dir), path.join(dir, 'checkpoint.safetensors'));
    assert.equal(checkpointFile(path.join(dir, 'x.safetensors')), path.join(dir, 'x.safetensors'));
  });
});
