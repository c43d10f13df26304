import { strict as assert } from 'node:assert';
import { UsageError } from '../lib/cli/errors.js';
import { intFlag, numberFlag } from '../lib/cli/flags.js';
import { parseTrainArgs } from '../lib/cli/train.js';

describe('cli: numeric flags', () => {
  it('absent flags are undefined; present ones are parsed as numbers', () => {
    assert.equal(numberFlag(undefined, '--lr'), undefined);
    assert.equal(numberFlag('0.05', '--lr', { min: 0 }), 0.05);
    assert.equal(numberFlag('1e-4', '--weight-decay', { min: 0 }), 1e-4);
    assert.equal(intFlag('1e3', '--limit', 1), 1000);
    assert.equal(intFlag('-3', '--D'), -3);
  });

  it('refuses what is not a finite number of the right kind, naming the flag and the text', () => {
    const bad: [() => unknown, RegExp][] = [
      [() => intFlag('2.5', '--epochs', 1), /^--epochs: expected an integer >= 1, but received '2\.5'$/],
      [() => intFlag('0', '--limit', 1), /^--limit: expected an integer >= 1, but received '0'$/],
      [() => intFlag('', '--batch-size', 1), /^--batch-size: expected an integer >= 1, but received ''$/],
      [() => intFlag(' ', '--seed', 0), /--seed: expected an integer >= 0/],
      [() => numberFlag('Infinity', '--lr', { min: 0 }), /--lr: expected a number >= 0, but received 'Infinity'/],
      [() => numberFlag('0.1x', '--lr'), /^--lr: expected a number, but received '0\.1x'$/],
      [() => numberFlag('-0.5', '--erase', { min: 0 }), /--erase: expected a number >= 0/],
    ];
    for (const [f, re] of bad) assert.throws(f, (e: unknown) => e instanceof UsageError && re.test((e as Error).message));
  });

  it('crunet train reads its numeric flags through them', () => {
    const a = parseTrainArgs(['--epochs', '7', '--lr', '0.05', '--milestones', '3,5', '--limit-test', '100']);
    assert.deepEqual([a.given.epochs, a.given.lr, a.given.milestones, a.given.limitTest], [7, 0.05, [3, 5], 100]);
    assert.throws(() => parseTrainArgs(['--milestones', '3,x']), /--milestones: expected an integer >= 1, but received 'x'/);
    assert.throws(() => parseTrainArgs(['--epochs', '']), /--epochs: expected an integer >= 1, but received ''/);
  });
});

describe('cli: crunet train optimizer flags', () => {
  it('parses the optimizer, its settings, clipping, accumulation and the moving average', () => {
    const a = parseTrainArgs(['--optimizer', 'adamw', '--betas', '0.9,0.95', '--eps', '1e-6', '--clip-grad-norm', '1', '--accumulate', '4', '--ema', '0.9998', '--ema-warmup']);
    assert.deepEqual(
      [a.given.optimizer, a.given.betas, a.given.eps, a.given.clipGradNorm, a.given.accumulate, a.given.ema, a.given.emaWarmup],
      ['adamw', [0.9, 0.95], 1e-6, 1, 4, 0.9998, true],
    );
  });

  it('refuses values out of range with a usage error naming the flag and the valid range', () => {
    const bad: [string[], RegExp][] = [
      [['--optimizer', 'adam'], /^--optimizer: expected one of sgd, adamw, lamb, but received 'adam'$/],
      [['--betas', '0.9,1'], /^--betas: expected B1,B2 with each in \[0, 1\), e\.g\. 0\.9,0\.999, but received '0\.9,1'$/],
      [['--betas=-0.1,0.9'], /--betas: expected B1,B2 with each in \[0, 1\)/],
      [['--betas', '0.9'], /--betas: expected B1,B2/],
      [['--eps', '0'], /^--eps: expected a number > 0, but received '0'$/],
      [['--eps=-1'], /^--eps: expected a number >= 0, but received '-1'$/],
      [['--clip-grad-norm', '0'], /^--clip-grad-norm: expected a number > 0 \(leave the flag out for no clipping\), but received '0'$/],
      [['--accumulate', '0'], /^--accumulate: expected an integer >= 1, but received '0'$/],
      [['--accumulate', '1.5'], /^--accumulate: expected an integer >= 1/],
      [['--ema=-0.1'], /^--ema: expected a number in \[0, 1\], but received '-0\.1'$/],
      [['--ema', '1.5'], /^--ema: expected a number in \[0, 1\], but received '1\.5'$/],
      [['--ema-warmup'], /--ema-warmup warms up the moving average of --ema DECAY: give --ema too/],
      [['--momentum', '1.5'], /^--momentum: expected a number in \[0, 1\], but received '1\.5'$/],
    ];
    for (const [args, re] of bad) assert.throws(() => parseTrainArgs(args), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), args.join(' '));
  });
});
