import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { epochHistory, metricsCsv, numberEpochsFrom1, MetricsLog, readMetrics } from '../lib/train/metrics-log.js';

describe('metrics log (JSONL)', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-metrics-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('appends one JSON object per line, in the file as soon as write returns', () => {
    const file = path.join(dir, 'metrics.jsonl');
    const log = new MetricsLog(file, { now: () => 1700000000123 });
    log.write({ type: 'run', model: 'resnet20' });
    log.write({ type: 'step', epoch: 0, step: 50, lr: 0.1, loss: 1.5, acc: 0.4, imagesPerSec: 812.5 });
    // Readable before close: nothing is buffered in the process.
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.deepEqual(JSON.parse(lines[1]!), { type: 'step', epoch: 0, step: 50, lr: 0.1, loss: 1.5, acc: 0.4, imagesPerSec: 812.5, time: 1700000000.123 });
    log.write({ type: 'epoch', epoch: 0, step: 100, loss: NaN, acc: 0.5, time: 5 });
    log.close();
    log.close(); // harmless
    assert.throws(() => log.write({ type: 'step' }), /write after close/);
    const recs = readMetrics(file);
    assert.equal(recs.length, 3);
    assert.equal(recs[2]!.loss, null); // JSON has no NaN
    assert.equal(recs[2]!.time, 5);
    // Appending goes on after the existing lines.
    const again = new MetricsLog(file);
    again.write({ type: 'eval', epoch: 0, step: 100, loss: 1.1, acc: 0.6, top5: 0.9 });
    again.close();
    assert.equal(readMetrics(file).length, 4);
    const fresh = new MetricsLog(file, { truncate: true });
    fresh.close();
    assert.deepEqual(readMetrics(file), []);
  });

  it('a full disk is an error naming the log (a real ENOSPC from /dev/full)', function () {
    if (!fs.existsSync('/dev/full')) this.skip(); // Linux only
    const file = path.join(dir, 'metrics.jsonl');
    fs.symlinkSync('/dev/full', file);
    const log = new MetricsLog(file, { fsync: 'never' });
    assert.throws(() => log.write({ type: 'step', step: 1 }), (e: Error) =>
      e.message.includes(`metrics log ${file}: cannot append to it: ENOSPC`) && (e.cause as NodeJS.ErrnoException).code === 'ENOSPC');
    // A character device cannot be fsynced: close says so, naming the log, and still closes it.
    assert.throws(() => log.close(), new RegExp(`metrics log ${file}: cannot fsync it`));
    assert.throws(() => log.write({ type: 'step' }), /write after close/);
  });

  it('survives a line torn by a crash: skips it and starts the next on a fresh line', () => {
    const file = path.join(dir, 'torn.jsonl');
    fs.writeFileSync(file, '{"type":"step","step":1}\n{"type":"step","st');
    assert.deepEqual(readMetrics(file).map((r) => r.step), [1]);
    const log = new MetricsLog(file);
    log.write({ type: 'step', step: 2, time: 0 });
    log.close();
    assert.deepEqual(readMetrics(file).map((r) => r.step), [1, 2]);
    fs.appendFileSync(file, '{"type":"step","step":3,}\n');
    assert.throws(() => readMetrics(file), /readMetrics: .*torn\.jsonl line 4: /);
  });

  it('on resume, drops the lines that the resumed run writes again (a step line\'s step is the steps before it)', () => {
    const file = path.join(dir, 'resume.jsonl');
    const log = new MetricsLog(file);
    // Epochs of 20 steps: the step line of step 20 is the first step of epoch 1, after the checkpoint.
    for (let s = 10; s <= 50; s += 10) log.write({ type: 'step', epoch: Math.floor(s / 20), step: s, time: 0 });
    log.write({ type: 'epoch', epoch: 0, step: 20, time: 0 });
    log.write({ type: 'eval', epoch: 0, step: 20, time: 0 });
    log.close();
    const resumed = new MetricsLog(file, { resumeAfterStep: 20 });
    resumed.write({ type: 'step', epoch: 1, step: 20, time: 1 });
    resumed.write({ type: 'step', epoch: 1, step: 30, time: 1 });
    resumed.close();
    assert.deepEqual(readMetrics(file).map((r) => `${r.type}@${r.step}`), ['step@10', 'epoch@20', 'eval@20', 'step@20', 'step@30']);
    assert.equal(readMetrics(file).at(-1)!.time, 1);
  });

  it('epochHistory merges train (epoch) and test (eval) records per epoch, the last one winning; older logs count epochs from 0', () => {
    const h = epochHistory([
      { type: 'step', epoch: 0, step: 1, loss: 9 },
      { type: 'epoch', epoch: 0, step: 10, loss: 2, acc: 0.3, lr: 0.1 },
      { type: 'eval', epoch: 0, step: 10, loss: 2.2, acc: 0.25, top5: 0.7 },
      { type: 'epoch', epoch: 1, step: 20, loss: 1.5, acc: 0.5 },
      { type: 'epoch', epoch: 1, step: 20, loss: 1.4, acc: 0.55 },
      { type: 'eval', epoch: 2, step: 30, loss: null as unknown as number, acc: 0.6 },
    ]);
    assert.deepEqual(h, [
      { epoch: 1, trainLoss: 2, trainAcc: 0.3, lr: 0.1, testLoss: 2.2, testAcc: 0.25, testTop5: 0.7 },
      { epoch: 2, trainLoss: 1.4, trainAcc: 0.55 },
      { epoch: 3, testLoss: undefined, testAcc: 0.6, testTop5: undefined },
    ]);
  });

  it('a log resumed by a newer version: lines under a run line with epochsFrom 1 count from 1, the older ones from 0', () => {
    const records = [
      { type: 'run' as const },
      { type: 'epoch' as const, epoch: 0, step: 10, loss: 2, acc: 0.3, lr: 0.1, imagesPerSec: 100 },
      { type: 'eval' as const, epoch: 0, step: 10, loss: 2.2, acc: 0.25, top5: 0.7 },
      { type: 'run' as const, epochsFrom: 1 },
      { type: 'epoch' as const, epoch: 2, step: 20, loss: 1.5, acc: 0.5 },
      { type: 'val' as const, epoch: 2, step: 20, loss: 1.6, acc: 0.45 },
      { type: 'eval' as const, epoch: 2, step: 20, loss: 1.7, acc: 0.4, top5: 0.9 },
    ];
    assert.deepEqual(numberEpochsFrom1(records).map((r) => r.epoch), [undefined, 1, 1, undefined, 2, 2, 2]);
    assert.deepEqual(epochHistory(records).map((p) => p.epoch), [1, 2]);
    assert.equal(metricsCsv(records), [
      'epoch,lr,trainLoss,trainAcc,imagesPerSec,valLoss,valAcc,testLoss,testAcc,testTop5',
      '1,0.1,2,0.3,100,,,2.2,0.25,0.7',
      '2,,1.5,0.5,,1.6,0.45,1.7,0.4,0.9',
      '',
    ].join('\n'));
  });
});
