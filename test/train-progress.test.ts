import { strict as assert } from 'node:assert';
import {
  etaSeconds,
  formatBar,
  formatDuration,
  formatLoss,
  formatPercent,
  formatProgressLine,
  formatProgressText,
  formatRate,
  ProgressBar,
} from '../lib/train/progress.js';

function sink(isTTY: boolean, columns = 120) {
  const out: string[] = [];
  return { out, stream: { isTTY, columns, write: (s: string) => out.push(s) } };
}

describe('progress', () => {
  it('formats durations, ETAs, rates, percentages and losses', () => {
    assert.equal(formatDuration(0), '0:00');
    assert.equal(formatDuration(7.4), '0:07');
    assert.equal(formatDuration(59.6), '1:00');
    assert.equal(formatDuration(245), '4:05');
    assert.equal(formatDuration(3723), '1:02:03');
    assert.equal(formatDuration(100 * 3600), '100:00:00');
    assert.equal(formatDuration(NaN), '--:--');
    assert.equal(formatDuration(-1), '--:--');
    assert.equal(formatDuration(Infinity), '--:--');
    assert.equal(etaSeconds(25, 100, 10), 30);
    assert.ok(Number.isNaN(etaSeconds(0, 100, 10)));
    assert.equal(etaSeconds(100, 100, 10), 0);
    assert.equal(formatRate(8.5), '8.50 img/s');
    assert.equal(formatRate(85.25), '85.3 img/s');
    assert.equal(formatRate(853), '853 img/s');
    assert.equal(formatRate(8531), '8.53k img/s');
    assert.equal(formatRate(85310), '85.3k img/s');
    assert.equal(formatRate(1.2e6, 'samples/s'), '1.20M samples/s');
    assert.equal(formatRate(NaN), '-- img/s');
    assert.equal(formatPercent(0.8753), '87.5%');
    assert.equal(formatPercent(1), '100.0%');
    assert.equal(formatPercent(NaN), '--%');
    assert.equal(formatLoss(0.43214), '0.4321');
    assert.equal(formatLoss(123.456), '123.5');
    assert.equal(formatLoss(NaN), 'NaN');
    assert.equal(formatBar(0.5, 12), '[#####-----]');
    assert.equal(formatBar(0, 6), '[----]');
    assert.equal(formatBar(1, 6), '[####]');
    assert.equal(formatBar(2, 6), '[####]');
  });

  it('fits the TTY line to the terminal width', () => {
    const s = { epoch: 3, epochs: 90, step: 120, steps: 390, imagesPerSec: 1234, loss: 0.43214, acc: 0.875, etaSeconds: 34 };
    const wide = formatProgressLine(s, 120);
    assert.match(wide, /^epoch 3\/90 \[#+-+\]  120\/390  1\.23k img\/s  loss 0\.4321  acc 87\.5%  ETA 0:34$/);
    assert.ok(wide.length < 120);
    assert.equal(formatProgressLine(s, 80), 'epoch 3/90 [###-------]  120/390  1.23k img/s  loss 0.4321  acc 87.5%  ETA 0:34');
    assert.equal(formatProgressLine(s, 70), 'epoch 3/90  120/390  1.23k img/s  loss 0.4321  acc 87.5%  ETA 0:34'); // the bar goes first
    assert.equal(formatProgressLine(s, 60), 'epoch 3/90  120/390  loss 0.4321  acc 87.5%  ETA 0:34'); // then the rate
    assert.equal(formatProgressLine(s, 50), 'epoch 3/90  120/390  loss 0.4321  ETA 0:34'); // then the accuracy
    assert.equal(formatProgressLine(s, 30), 'epoch 3/90  120/390  loss 0.4');
    assert.equal(formatProgressText(s), 'epoch 3/90 step 120/390 (30%)  1.23k img/s  loss 0.4321  acc 87.5%  ETA 0:34');
    assert.equal(formatProgressText({ epoch: 1, step: 0, steps: 10 }), 'epoch 1 step 0/10 (0%)  ETA --:--');
  });

  it('on a TTY, redraws one line in place, throttled, and closes with a summary', () => {
    const { out, stream } = sink(true);
    let now = 0;
    const bar = new ProgressBar({ stream, now: () => now, minIntervalMs: 100 });
    bar.start(1, 10, 2);
    for (let i = 1; i <= 10; i++) {
      now += 30;
      bar.update({ step: i, images: 32 * i, loss: 1 / i, acc: i / 10 });
    }
    assert.ok(out.every((s) => s.startsWith('\r') && !s.includes('\n')));
    assert.ok(out.length >= 4 && out.length <= 6, `${out.length} redraws for 10 steps at 30 ms with 100 ms throttle`);
    assert.match(out.at(-1)!, /epoch 1\/2 \[#+\]  10\/10  1\.07k img\/s  loss 0\.1000  acc 100\.0%  ETA 0:00\x1b\[K$/);
    bar.log('note');
    assert.deepEqual(out.slice(-3, -1), ['\r\x1b[K', 'note\n']);
    bar.end('epoch 1: loss 0.1');
    assert.equal(out.at(-1), '\r\x1b[Kepoch 1: loss 0.1\n');
  });

  it('not on a TTY, prints a few plain lines per epoch, however many steps', () => {
    const { out, stream } = sink(false);
    let now = 0;
    const bar = new ProgressBar({ stream, now: () => now });
    bar.start(0, 1000);
    for (let i = 1; i <= 1000; i++) {
      now += 10;
      bar.update({ step: i, images: 128 * i, loss: 0.5, acc: 0.9 });
    }
    bar.end();
    assert.equal(out.length, 4); // 25 %, 50 %, 75 % and the closing line
    assert.ok(out.every((s) => s.endsWith('\n') && !s.includes('\r') && !s.includes('\x1b')));
    assert.equal(out[0], 'epoch 0 step 250/1000 (25%)  12.8k img/s  loss 0.5000  acc 90.0%  ETA 0:08\n');
    assert.match(out[3]!, /step 1000\/1000 \(100%\)/);
    // Fewer steps than lines: each crossing prints once.
    const small = sink(false);
    const b2 = new ProgressBar({ stream: small.stream, everyPercent: 10, now: () => 0 });
    b2.start(0, 3);
    for (let i = 1; i <= 3; i++) b2.update({ step: i });
    b2.end('done');
    assert.deepEqual(small.out.map((s) => s.split('  ')[0]), ['epoch 0 step 1/3 (33%)', 'epoch 0 step 2/3 (66%)', 'done\n']);
    assert.throws(() => new ProgressBar({ everyPercent: 0 }), /expected everyPercent to be in \(0, 100\]/);
  });
});
