// crunet train's toolbox flags: mixup / cutmix, RandAugment / TrivialAugment, a validation split with
// early stopping, and the files written beside metrics.jsonl (metrics.csv, TensorBoard events, best.safetensors).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crunet } from './support/cli-capture.js';
import { loadCheckpoint } from '../lib/train/index.js';
import { maskedCrc32c } from '../lib/train/tensorboard.js';
import { tensorBoardView } from './support/tensorboard-view.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';


const FASHION = '/usr/share/datasets/fashion-mnist';
const withData = fs.existsSync(FASHION) ? it : it.skip;
const trace = (d: string) => fs.readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  .filter((l) => l.type !== 'run').map(({ type, epoch, step, lr, loss, acc, top5 }) => ({ type, epoch, step, lr, loss, acc, top5 }));

describe('crunet train: mixup, cutmix, RandAugment, validation and early stopping', function () {
  this.timeout(600_000);
  after(() => removeTestTempDirs());

  it('refuses flags out of range, naming the flag and the range', async () => {
    const cases: [string[], RegExp][] = [
      [['--mixup=-1'], /--mixup: expected a number >= 0, but received '-1'/],
      [['--cutmix', 'x'], /--cutmix: expected a number >= 0, but received 'x'/],
      [['--mix-prob', '1.5'], /--mix-prob: expected a number in \[0, 1\], but received '1.5'/],
      [['--mix-switch-prob=-0.1'], /--mix-switch-prob: expected a number in \[0, 1\], but received '-0.1'/],
      [['--early-stop-patience', '0'], /--early-stop-patience: expected an integer >= 1, but received '0'/],
      [['--validation', '1'], /--validation: expected a fraction in \(0, 1\), but received '1'/],
      [['--randaugment', '2'], /--randaugment: expected N,M \(ops per image, magnitude bin\), e.g. 2,9, but received '2'/],
      [['--randaugment', '2,31'], /--randaugment M \(magnitude bin\): expected an integer in \[0, 30\], but received '31'/],
      [['--randaugment', '0,9'], /--randaugment N \(ops per image\): expected an integer in \[1, 16\], but received '0'/],
      [['--randaugment', '2,9', '--trivialaugment'], /alternatives: give one/],
      [['--trivialaugment', '--no-augment'], /--trivialaugment needs augmentation, but --no-augment was given/],
    ];
    for (const [flags, re] of cases) {
      const r = await crunet('train', ...flags);
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.err}`);
      assert.match(r.err, re);
    }
    const r = await crunet('train', '--early-stop-patience', '2', '--limit-train', '256', '--epochs', '1');
    assert.equal(r.code, 2);
    assert.match(r.err, /--early-stop-patience selects on a validation split: give --validation F too/);
  });

  withData('a stopped and resumed run with mixup, cutmix, RandAugment and a validation split logs what an uninterrupted one does', async () => {
    const whole = testTempDir('cli-toolbox'), dir = testTempDir('cli-toolbox');
    const run = ['--epochs', '2', '--limit-train', '640', '--limit-test', '128', '--batch-size', '64', '--lr', '0.1', '--seed', '3',
      '--mixup', '0.4', '--cutmix', '1', '--randaugment', '2,9', '--label-smoothing', '0.1', '--validation', '0.2', '--early-stop-patience', '5', '--json'];
    const ref = await crunet('train', ...run, '--out', whole);
    assert.equal(ref.code, 0, ref.err);
    assert.match(ref.err, /512 train \/ 128 validation \/ 128 test samples/);
    assert.match(ref.err, /epoch 2\/2: .*validation loss \d\.\d+ top-1 [\d.]+% \(best [\d.]+% at epoch [12]\)/);
    const stopped = await crunet('train', ...run, '--out', dir, '--stop-after-epoch', '1');
    assert.equal(stopped.code, 0, stopped.err);
    const resumed = await crunet('train', '--resume', dir, '--json');
    assert.equal(resumed.code, 0, resumed.err);
    assert.deepEqual(trace(dir), trace(whole));
    assert.deepEqual(trace(dir).filter((l) => l.type !== 'step').map((l) => `${l.type} ${l.epoch}`), ['epoch 1', 'val 1', 'eval 1', 'epoch 2', 'val 2', 'eval 2']);
    assert.equal(JSON.parse(resumed.out.trim().split('\n').at(-1)!).top1, JSON.parse(ref.out.trim().split('\n').at(-1)!).top1);

    const meta = loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta;
    assert.deepEqual(meta.mix, { mixup: 0.4, cutmix: 1, prob: 1, switchProb: 0.5 });
    assert.equal(meta.autoAugment, 'randaugment:2,9');
    const best = loadCheckpoint(path.join(dir, 'best.safetensors')).meta;
    assert.equal(best.epoch, (meta.earlyStop as { bestEpoch: number }).bestEpoch);
    const changed = await crunet('train', '--resume', dir, '--mixup', '0.2');
    assert.equal(changed.code, 2);
    assert.match(changed.err, /is from a run with --mixup 0.4, but this command asks for --mixup 0.2/);

    // metrics.csv: a header and one line per epoch, epochs from 1.
    const csv = fs.readFileSync(path.join(dir, 'metrics.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'epoch,lr,trainLoss,trainAcc,imagesPerSec,valLoss,valAcc,testLoss,testAcc,testTop5');
    assert.deepEqual(csv.slice(1).map((l) => l.split(',')[0]), ['1', '2']);
    // TensorBoard: a new event file per invocation (both ran in this process, likely within one second),
    // every record well framed.
    const events = fs.readdirSync(dir).filter((f) => f.startsWith('events.out.tfevents.'));
    assert.equal(events.length, 2, events.join(', '));
    for (const f of events) {
      const buf = fs.readFileSync(path.join(dir, f));
      let o = 0, n = 0;
      for (; o < buf.length; n++) {
        const len = Number(buf.readBigUInt64LE(o));
        assert.equal(buf.readUInt32LE(o + 12 + len), maskedCrc32c(buf.subarray(o + 12, o + 12 + len)), `${f}: record ${n}`);
        o += 16 + len;
      }
      assert.ok(n >= 4, `${f}: ${n} records`);
    }
    // What TensorBoard shows of the resumed run is the uninterrupted run's scalars, the first epoch's
    // included (its resume marker drops them from the first file); the throughput is a measurement.
    const shown = (d: string) => [...tensorBoardView(d)].sort(([a], [b]) => a.localeCompare(b))
      .map(([tag, points]) => [tag, points.map(([step, v]) => [step, tag === 'epoch/images_per_sec' ? 0 : v])]);
    assert.deepEqual(shown(dir), shown(whole));
    assert.deepEqual(tensorBoardView(dir).get('test/top1')!.map(([step]) => step), [8, 16]);
    const svg = fs.readFileSync(path.join(dir, 'plot.svg'), 'utf8');
    for (const name of ['train (label smoothing 0.1, mixed targets)', 'validation', 'test (plain cross-entropy)']) assert.ok(svg.includes(`>${name}</text>`), name);
  });

  withData('early stopping ends the run after --early-stop-patience epochs without a better validation top-1', async () => {
    const dir = testTempDir('cli-toolbox');
    // lr 0: the weights stay, so the validation top-1 soon stops improving (only batch norm's running
    // statistics move, settling within a few epochs); which epoch is best is read from the log.
    const r = await crunet('train', '--epochs', '8', '--limit-train', '320', '--limit-test', '64', '--batch-size', '64', '--lr', '0',
      '--validation', '0.2', '--early-stop-patience', '2', '--out', dir, '--json');
    assert.equal(r.code, 0, r.err);
    const val = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'val');
    const bestAcc = Math.max(...val.map((l) => l.acc as number));
    const best = val.find((l) => l.acc === bestAcc).epoch as number, stop = best + 2;
    assert.deepEqual(val.map((l) => l.epoch), Array.from({ length: stop }, (_, i) => i + 1), 'validated every epoch up to the stop');
    assert.ok(stop < 8, `the best epoch ${best} leaves no room for an early stop in 8 epochs`);
    assert.match(r.err, new RegExp(`early stop after epoch ${stop}: no better validation top-1 in 2 epochs \\(--early-stop-patience\\); best.safetensors holds epoch ${best} `));
    assert.equal(JSON.parse(r.out.trim().split('\n').at(-1)!).epoch, stop);
    assert.equal(loadCheckpoint(path.join(dir, 'best.safetensors')).meta.epoch, best);
    // Resuming a run that early stopping ended trains nothing more and evaluates it.
    const again = await crunet('train', '--resume', dir, '--json');
    assert.equal(again.code, 0, again.err);
    assert.match(again.err, new RegExp(`early stopping ended the run \\(best validation top-1 at epoch ${best}\\), evaluating it`));
    assert.equal(JSON.parse(again.out.trim().split('\n').at(-1)!).epoch, stop);
    assert.equal(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.epoch, stop);
  });
});
