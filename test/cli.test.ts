import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { crunet } from './support/cli-capture.js';
import { devices } from '../lib/index.js';
import { create } from '../lib/models/index.js';
import { loadCheckpoint } from '../lib/train/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';


const FASHION = '/usr/share/datasets/fashion-mnist';

describe('crunet CLI', function () {
  // These run the CLI in this process: a loaded machine makes the training ones slow, not wrong, so the
  // bound is for a hang only (test/cli-process.test.ts runs what needs a process of its own).
  this.timeout(30 * 60_000);
  afterEach(removeTestTempDirs);
  it('info --json names the version, the oneDNN build and the CPU', async () => {
    const r = await crunet('info', '--json');
    assert.equal(r.code, 0);
    const info = JSON.parse(r.out);
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.match(info.build.onednn.version, /^\d+\.\d+/);
    assert.ok(info.devices.some((d: { type: string }) => d.type === 'cpu'));
  });

  it('summary --json prints the model, its parameters and MACs per stage', async () => {
    const r = await crunet('summary', 'crunet56', '--json');
    const s = JSON.parse(r.out);
    assert.equal(s.model, 'crunet56');
    assert.equal(s.params, 25_609_384);
    assert.equal(s.stages.reduce((a: number, st: { params: number }) => a + st.params, 0), s.params);
  });

  it('refuses unknown commands, options and models with a usage hint', async () => {
    assert.equal((await crunet('fly')).code, 2);
    const bad = await crunet('train', '--epochz', '3');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /Unknown option '--epochz'.*\n.*crunet train --help/);
    const model = await crunet('summary', 'resnet51');
    assert.equal(model.code, 1);
    assert.match(model.err, /unknown model "resnet51"; valid models: resnet50/);
    const schedule = await crunet('train', '--schedule', 'triangle');
    assert.match(schedule.err, /--schedule: expected one of constant, step, multistep, cosine/);
  });

  it('says how to get a missing data set', async () => {
    const r = await crunet('train', '--dataset', 'fashion-mnist:/nonexistent/fm', '--epochs', '1');
    assert.equal(r.code, 1);
    assert.match(r.err, /\/nonexistent\/fm/);
  });

  (fs.existsSync(FASHION) ? it : it.skip)('trains, writes metrics, plot and checkpoint; a stopped and resumed run logs what an uninterrupted one does', async function () {
    const whole = testTempDir('cli');
    const dir = testTempDir('cli');
    const run = ['--epochs', '2', '--limit-train', '2048', '--batch-size', '64', '--lr', '0.1', '--seed', '3', '--label-smoothing', '0.1', '--json'];
    const common = [...run, '--limit-test', '256'];
    const ref = await crunet('train', ...common, '--out', whole);
    assert.equal(ref.code, 0, ref.err);
    const r = JSON.parse(ref.out.trim().split('\n').at(-1)!);
    assert.equal(r.model, 'crunet_small');
    assert.equal(r.epoch, 2);
    for (const k of ['testLoss', 'top1', 'top5', 'imagesPerSec', 'wallSeconds', 'params']) assert.ok(Number.isFinite(r[k]), k);
    assert.ok(r.top1 > 0.3, `better than chance (0.1) after two epochs on 2048 images (top-1 ${r.top1})`);
    for (const f of ['metrics.jsonl', 'plot.svg', 'checkpoint.safetensors']) assert.ok(fs.existsSync(path.join(whole, f)), f);
    assert.match(fs.readFileSync(path.join(whole, 'plot.svg'), 'utf8'), /^(<\?xml[^>]*>\s*)?<svg[\s\S]*<\/svg>\s*$/);

    const stopped = await crunet('train', ...common, '--out', dir, '--stop-after-epoch', '1');
    assert.equal(stopped.code, 0, stopped.err);
    assert.match(stopped.err, /stopping after epoch 1 as asked/);
    assert.match(stopped.err, /epoch 1\/2: train loss .*; run ETA \d+:\d\d\n/);
    assert.equal(JSON.parse(stopped.out.trim().split('\n').at(-1)!).epoch, 1);
    // Only the checkpoint (a run directory names it): everything else, the test limit too, comes from it.
    const resumed = await crunet('train', '--resume', dir, '--json');
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.err, /resuming from .* after epoch 1 \(step 32\)/);
    const r2 = JSON.parse(resumed.out.trim().split('\n').at(-1)!);
    assert.equal(r2.epoch, 2);
    const trace = (d: string) => fs.readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((l) => l.type !== 'run').map(({ type, epoch, step, lr, loss, acc, top5 }) => ({ type, epoch, step, lr, loss, acc, top5 }));
    assert.deepEqual(trace(dir), trace(whole));
    assert.equal(r2.top1, r.top1);
    assert.equal(r2.testLoss, r.testLoss);

    // eval scores the same --limit-test subset the run did (drawn under the run's seed).
    const ev = await crunet('eval', '--checkpoint', path.join(dir, 'checkpoint.safetensors'), '--limit', '256', '--json');
    assert.equal(ev.code, 0, ev.err);
    assert.ok(Math.abs(JSON.parse(ev.out).top1 - r2.top1) < 1e-9, 'eval of the checkpoint matches the run');
    assert.ok(Math.abs(JSON.parse(ev.out).loss - r2.testLoss) < 1e-5, 'eval reports the run\'s test loss (plain cross-entropy)');
    assert.equal(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.labelSmoothing, 0.1);
    // The input normalisation travels with the weights (the README states Fashion-MNIST's).
    assert.deepEqual(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.preprocessing,
      { scale: 1 / 255, mean: [0.286], std: [0.353], layout: 'NCHW', channels: 1, size: [28, 28] });
    // Resuming a finished run trains nothing and reports its evaluation.
    const done = await crunet('train', '--resume', dir, '--json');
    assert.equal(done.code, 0, done.err);
    assert.match(done.err, /the run is complete, evaluating it/);
    assert.equal(JSON.parse(done.out.trim().split('\n').at(-1)!).top1, r2.top1);

    // A flag that contradicts the checkpoint is refused, naming both values.
    const ckpt = path.join(dir, 'checkpoint.safetensors');
    const refusals: [string[], RegExp][] = [
      [['--model', 'resnet_small'], /is from a run with --model crunet_small, but this command asks for --model resnet_small/],
      [['--epochs', '3'], /is from a run with --epochs 2, but this command asks for --epochs 3/],
      [['--lr', '0.05'], /with --lr 0.1, but this command asks for --lr 0.05/],
      [['--batch-size', '32'], /with --batch-size 64, but this command asks for --batch-size 32/],
      [['--limit-train', '1024'], /with --limit-train 2048, but this command asks for --limit-train 1024/],
      [['--seed', '4'], /with --seed 3, but this command asks for --seed 4/],
      [['--limit-test', '64'], /with --limit-test 256, but this command asks for --limit-test 64/],
      [['--label-smoothing', '0'], /with --label-smoothing 0.1, but this command asks for --label-smoothing 0/],
      [['--warmup-epochs', '1'], /with --warmup-epochs 0.3125 \(10 steps\), but this command asks for --warmup-epochs 1 \(32 steps\)/],
      // Trained without augmentation (the IDX default): a resume may not add erasing.
      [['--erase', '0.3'], /with --no-augment, but this command asks for --augment/],
    ];
    for (const [flags, re] of refusals) {
      const bad = await crunet('train', '--resume', ckpt, ...flags);
      assert.equal(bad.code, 2, flags.join(' '));
      assert.match(bad.err, re);
    }
    // The same values as stored are fine (warmup compares in steps: 0.3 epochs of 32 steps is 10).
    const same = await crunet('train', '--resume', ckpt, ...run, '--warmup-epochs', '0.3', '--limit-test', '256');
    assert.equal(same.code, 0, same.err);
  });

  it('refuses bad --erase, --model-options, --dataset, schedule and --tta values, naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['--erase', '1.5'], /--erase: expected a probability in \[0, 1\], but received '1.5'/],
      [['--erase', '0.5', '--no-augment'], /--erase needs augmentation, but --no-augment was given/],
      [['--model-options', '{width: 3}'], /--model-options is not JSON/],
      [['--model-options', '[1]'], /--model-options: expected a JSON object/],
      [['--model-options', '{"classes": 3}'], /--model-options may not set classes: the data set decides them/],
      [['--erase', '0.5', '--dataset', 'folder:/nonexistent'], /--erase is for IDX and CIFAR data sets/],
      [['--dataset', 'svhn:/data'], /unknown kind 'svhn'/],
      [['--dataset', 'cifar10'], /'cifar10' needs a directory: 'cifar10:PATH'/],
      // The schedule is checked once the data set gives the steps per epoch.
      ...(fs.existsSync(FASHION) ? [
        [['--schedule', 'multistep', '--milestones', '5,3', '--limit-train', '256'], /expected milestones \(epochs\) to be a non-decreasing list/],
        // The model is made once the data set gives classes and input size.
        [['--model', 'nope', '--limit-train', '256'], /unknown model "nope"/],
        [['--model-options', '{"width": 0}', '--limit-train', '256'], /expected option width to be a positive integer, but received 0/],
      ] as [string[], RegExp][] : []),
    ];
    for (const [args, re] of cases) {
      const r = await crunet('train', ...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, re);
    }
    const tta = await crunet('eval', '--checkpoint', 'x.safetensors', '--tta', 'rotate');
    assert.equal(tta.code, 2);
    assert.match(tta.err, /--tta: expected none or flip, but received 'rotate'/);
    for (const args of [['--model', 'nope'], ['--model-options', '{"width": 0}']]) {
      const b = await crunet('bench', ...args);
      assert.equal(b.code, 2, `bench ${args.join(' ')}: ${b.err}`);
    }
  });

  (fs.existsSync(FASHION) ? it : it.skip)('trains a model with --model-options and --erase; a resume keeps both and refuses to change them', async () => {
    const dir = testTempDir('cli');
    const common = ['--limit-train', '512', '--limit-test', '128', '--batch-size', '64', '--out', dir, '--json'];
    const one = await crunet('train', '--epochs', '2', '--stop-after-epoch', '1', '--model-options', '{"width":16,"D":32}', '--erase', '0.5', ...common);
    assert.equal(one.code, 0, one.err);
    const ckpt = path.join(dir, 'checkpoint.safetensors');
    const meta = loadCheckpoint(ckpt).meta;
    assert.deepEqual(meta.augmentation, { augment: true, erase: 0.5 });
    const opts = (meta.model as { options: Record<string, unknown> }).options;
    assert.equal(opts.width, 16);
    assert.deepEqual(opts.D, [32]);
    assert.equal(JSON.parse(one.out.trim().split('\n').at(-1)!).params, create('crunet_small', { width: 16, D: [32] }).parameterCount());

    const changed = await crunet('train', '--resume', ckpt, '--erase', '0.25', ...common);
    assert.equal(changed.code, 2);
    assert.match(changed.err, /is from a run with --erase 0.5, but this command asks for --erase 0.25/);
    const other = await crunet('train', '--resume', ckpt, '--model-options', '{"width":32}', ...common);
    assert.equal(other.code, 2);
    assert.match(other.err, /holds crunet_small with width = 16, but --model-options asks for 32/);
    const noAug = await crunet('train', '--resume', ckpt, '--no-augment', ...common);
    assert.equal(noAug.code, 2);
    assert.match(noAug.err, /is from a run with --augment, but this command asks for --no-augment/);
    // The same options as given at first (D as a number, stored resolved as [32]) are accepted.
    const two = await crunet('train', '--resume', ckpt, '--model-options', '{"width":16,"D":32}', ...common);
    assert.equal(two.code, 0, two.err);
    assert.equal(JSON.parse(two.out.trim().split('\n').at(-1)!).epoch, 2);
    assert.deepEqual(loadCheckpoint(ckpt).meta.augmentation, { augment: true, erase: 0.5 });
  });

  it('trains on an image folder split by --val-split, skipping an unreadable image under --bad-images skip', async () => {
    const dir = testTempDir('cli-folder');
    for (const [c, k] of [['cat', 0], ['dog', 1]] as const) {
      fs.mkdirSync(path.join(dir, 'images', c), { recursive: true });
      for (let i = 0; i < 4; i++) {
        const px = Buffer.alloc(32 * 32 * 3, 40 + 150 * k + 10 * i);
        await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(dir, 'images', c, `${i}.png`));
      }
    }
    const broken = path.join(dir, 'images', 'cat', 'broken.png');
    fs.writeFileSync(broken, 'not a png');
    const common = ['--dataset', `folder:${path.join(dir, 'images')}`, '--model', 'resnet_small', '--epochs', '1', '--batch-size', '2', '--val-split', '0.5', '--out', path.join(dir, 'run'), '--json'];
    const fatal = await crunet('train', ...common);
    assert.equal(fatal.code, 1);
    assert.ok(fatal.err.includes(broken), fatal.err);
    const skip = await crunet('train', ...common, '--bad-images', 'skip');
    assert.equal(skip.code, 0, skip.err);
    assert.match(skip.err, /1 unreadable images skipped so far/);
    // eval holds out the same images: the run's seed and split come from the checkpoint.
    const ev = await crunet('eval', '--checkpoint', path.join(dir, 'run'), '--batch-size', '2', '--json');
    assert.equal(ev.code, 0, ev.err);
    assert.ok(Math.abs(JSON.parse(ev.out).top1 - JSON.parse(skip.out.trim().split('\n').at(-1)!).top1) < 1e-9);
    const bad = await crunet('train', ...common, '--val-split', '1.5');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--val-split: expected a fraction in \(0, 1\), but received '1.5'/);
    // A limit for big images, from the command line: these 32x32 images are over 1000 pixels.
    fs.rmSync(broken);
    const small = await crunet('train', ...common, '--max-image-pixels', '1000');
    assert.equal(small.code, 1);
    assert.match(small.err, /32x32 is 1024 pixels, over the limit of 1000 \(maxImagePixels; .*--max-image-pixels\)/);
  });

  it('bench --json reports every convolution shape with its implementation and times, and the step rate', async () => {
    const r = await crunet('bench', '--model', 'crunet_small', '--batch-size', '4', '--steps', '2', '--warmup', '1', '--json');
    assert.equal(r.code, 0, r.err);
    const b = JSON.parse(r.out);
    const convs = create('crunet_small').graph.ir.nodes.filter((n) => n.op === 'conv2d').map((n) => n.name);
    assert.deepEqual(b.convolutions.flatMap((c: { nodes: string[] }) => c.nodes).sort(), [...convs].sort(), 'every conv node in exactly one shape');
    assert.ok(b.convolutions.length < convs.length, 'shapes are grouped');
    for (const c of b.convolutions) {
      assert.match(c.impl, /fwd=\S+ bwd_data=\S+ bwd_weights=\S+/);
      assert.ok(c.forwardMs > 0 && c.backwardMs > 0, JSON.stringify(c));
    }
    assert.equal(b.step.stepsMs.length, 2);
    assert.ok(Math.abs(b.step.imagesPerSec - (4 * 1000) / b.step.medianMs) < 1e-9);
    assert.equal(b.params, create('crunet_small').parameterCount());
    const text = await crunet('bench', '--model', 'crunet_small', '--batch-size', '2', '--steps', '1', '--warmup', '0');
    assert.match(text.out, /convolutions: \d+ distinct shapes in \d+ nodes\n[\s\S]*whole step: median [\d.]+ ms = [\d.]+ images\/s/);
  });

  it('bench names what stops it: an unusable device, an unimplemented precision, bad flags', async function () {
    if (devices().some((d) => d.type === 'cuda')) this.skip();
    const cuda = await crunet('bench', '--model', 'crunet_small', '--device', 'cuda', '--steps', '1');
    assert.equal(cuda.code, 1);
    assert.match(cuda.err, /crunet bench: device 'cuda': /);
    const bf16 = await crunet('bench', '--model', 'crunet_small', '--precision', 'bf16', '--steps', '1');
    assert.equal(bf16.code, 1);
    assert.match(bf16.err, /device 'cpu' cannot compute in bf16: .*; it supports fp32|precision bf16 on device 'cpu': crunet cannot run a graph in bf16 yet/);
    assert.match((await crunet('bench', '--precision', 'fp8')).err, /--precision: expected fp32, bf16 or fp16, but received 'fp8'/);
    assert.match((await crunet('bench', '--steps', '0')).err, /--steps: expected an integer >= 1, but received '0'/);
    assert.match((await crunet('bench', '--cache-file', 'x')).err, /--cache-file applies to CUDA devices \(--device cuda\), not the CPU/);
  });

  it('refuses seeds outside [0, 2^32) and fractional ones, naming the flag and the range', async () => {
    for (const seed of ['1e30', '4294967296', '0.5', '-1']) {
      // Small enough that a seed wrongly accepted costs seconds.
      const r = await crunet('train', `--seed=${seed}`, '--epochs', '1', '--limit-train', '64', '--limit-test', '64', '--batch-size', '64', '--out', path.join(os.tmpdir(), 'crunet-cli-seed'));
      assert.equal(r.code, 2, seed);
      assert.match(r.err, new RegExp(`--seed: expected an integer in \\[0, 4294967295\\], but received '${seed.replace('.', '\\.')}'`));
    }
  });

  (fs.existsSync(FASHION) ? it : it.skip)('a batch larger than the training set names --batch-size, the samples and the limit', async () => {
    const r = await crunet('train', '--batch-size', '1e9', '--limit-train', '300', '--epochs', '1');
    assert.equal(r.code, 2);
    assert.match(r.err, /--batch-size 1000000000 is more than the 300 training samples of fashion-mnist \(--limit-train 300\): a step needs a whole batch/);
  });

  (fs.existsSync(FASHION) ? it : it.skip)('a run stopped between its checkpoint and its evaluation gets that evaluation on resume', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-cli-'));
    const common = ['--epochs', '2', '--limit-train', '256', '--limit-test', '128', '--batch-size', '64', '--out', dir];
    assert.equal((await crunet('train', ...common, '--stop-after-epoch', '1')).code, 0);
    const file = path.join(dir, 'metrics.jsonl');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const lost = lines.find((l) => l.type === 'eval' && l.epoch === 1);
    assert.ok(lost);
    // What a kill -9 after the checkpoint's rename and before the eval line leaves.
    fs.writeFileSync(file, lines.filter((l) => l !== lost).map((l) => JSON.stringify(l) + '\n').join(''));
    const r = await crunet('train', '--resume', dir);
    assert.equal(r.code, 0, r.err);
    const evals = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'eval');
    assert.deepEqual(evals.map((l) => l.epoch), [1, 2]);
    for (const k of ['step', 'loss', 'acc', 'top5']) assert.equal(evals[0][k], lost[k], k);
    fs.rmSync(dir, { recursive: true });
  });

  it('a read-only --out is an error that says so, before any work', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-cli-ro-'));
    // root writes through file modes: a read-only mount is the one refusal that holds for every user.
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,ro', 'tmpfs', dir]);
    if (mounted.status !== 0) {
      console.log(`      (skipped: cannot mount a read-only tmpfs: ${String(mounted.stderr).trim()})`);
      fs.rmSync(dir, { recursive: true });
      return this.skip();
    }
    try {
      for (const out of [dir, path.join(dir, 'run', 'nested')]) {
        const r = await crunet('train', '--out', out, '--epochs', '1', '--limit-train', '256');
        assert.equal(r.code, 1, out);
        assert.match(r.err, new RegExp(`cannot write to ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: read-only file system`));
      }
    } finally {
      spawnSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('refuses a damaged checkpoint before doing any work', async () => {
    const dir = testTempDir('cli');
    const bad = path.join(dir, 'checkpoint.safetensors');
    fs.writeFileSync(bad, Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123]));
    const r = await crunet('train', '--resume', bad, '--epochs', '1');
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });
});
