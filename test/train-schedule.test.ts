import { strict as assert } from 'node:assert';
import { createSchedule, lrAt, type ScheduleConfig } from '../lib/train/schedule.js';

/** Values computed by hand from PyTorch's definitions (see lib/train/schedule.ts). */
function expectLrs(config: ScheduleConfig, spe: number | undefined, cases: [number, number][]) {
  const s = createSchedule(config, spe);
  for (const [step, want] of cases) {
    const got = s.lrAt(step);
    assert.ok(Math.abs(got - want) <= 1e-12 * Math.max(1, Math.abs(want)), `${config.type} step ${step}: ${got}, expected ${want}`);
  }
}

describe('LR schedules', () => {
  it('constant', () => {
    expectLrs({ type: 'constant', lr: 0.1 }, undefined, [[0, 0.1], [1, 0.1], [123456, 0.1]]);
  });

  it('step: StepLR per epoch, lr * gamma^floor(epoch / stepSize)', () => {
    const c: ScheduleConfig = { type: 'step', lr: 0.1, stepSize: 30 }; // gamma defaults to 0.1 as in PyTorch
    expectLrs(c, 10, [[0, 0.1], [299, 0.1], [300, 0.1 * 0.1], [599, 0.1 * 0.1], [600, 0.1 * 0.1 * 0.1], [905, 0.1 * 0.1 ** 3]]);
    expectLrs({ type: 'step', lr: 1, stepSize: 2, gamma: 0.5 }, 3, [[5, 1], [6, 0.5], [11, 0.5], [12, 0.25]]);
  });

  it('multistep: MultiStepLR per epoch, gamma per milestone passed (a repeated milestone counts twice)', () => {
    const c: ScheduleConfig = { type: 'multistep', lr: 1, milestones: [2, 5], gamma: 0.5 };
    expectLrs(c, 3, [[0, 1], [5, 1], [6, 0.5], [14, 0.5], [15, 0.25], [300, 0.25]]);
    expectLrs({ type: 'multistep', lr: 0.1, milestones: [1, 1] }, 1, [[0, 0.1], [1, 0.1 * 0.1 * 0.1]]);
    // The CIFAR ResNet recipe: 0.1, /10 at epochs 150 and 225.
    expectLrs({ type: 'multistep', lr: 0.1, milestones: [150, 225] }, 391, [[150 * 391 - 1, 0.1], [150 * 391, 0.01], [225 * 391, 0.001]]);
  });

  it('cosine: CosineAnnealingLR closed form over the steps, staying at minLr past the end', () => {
    expectLrs({ type: 'cosine', lr: 0.1, totalSteps: 100 }, undefined, [
      [0, 0.1],
      [25, 0.05 * (1 + Math.SQRT1_2)],
      [50, 0.05],
      [75, 0.05 * (1 - Math.SQRT1_2)],
      [100, 0],
      [150, 0],
    ]);
    expectLrs({ type: 'cosine', lr: 0.1, minLr: 0.001, epochs: 10 }, 5, [[0, 0.1], [25, 0.001 + 0.099 * 0.5], [50, 0.001]]);
  });

  it('linear warmup: LinearLR from lr * startFactor (default 1/3), then the schedule', () => {
    // step with warmup: factor multiplies (milestones stay absolute epochs)
    expectLrs({ type: 'step', lr: 0.3, stepSize: 1, gamma: 0.1, warmup: { steps: 4 } }, 10, [[0, 0.1], [1, 0.15], [2, 0.2], [3, 0.25], [4, 0.3], [9, 0.3], [10, 0.03]]);
    expectLrs({ type: 'constant', lr: 1, warmup: { steps: 10, startFactor: 0 } }, undefined, [[0, 0], [5, 0.5], [10, 1]]);
    // cosine with warmup: W steps of warmup, then the cosine over the remaining totalSteps - W
    const c: ScheduleConfig = { type: 'cosine', lr: 0.1, totalSteps: 110, warmup: { steps: 10, startFactor: 0.1 } };
    expectLrs(c, undefined, [[0, 0.01], [5, 0.1 * (0.1 + 0.9 * 0.5)], [9, 0.1 * (0.1 + 0.9 * 0.9)], [10, 0.1], [60, 0.05], [110, 0], [500, 0]]);
    // warmup in epochs
    const s = createSchedule({ type: 'cosine', lr: 0.2, epochs: 5, warmup: { epochs: 1 } }, 4);
    assert.equal(s.warmupSteps, 4);
    assert.ok(Math.abs(s.lrAt(0) - 0.2 / 3) < 1e-15);
    assert.equal(s.lrAt(4), 0.2);
  });

  it('is a pure function of the step: a saved config gives the same values after a JSON round trip', () => {
    const s = createSchedule({ type: 'multistep', lr: 0.1, milestones: [3, 6], warmup: { steps: 5 } }, 7);
    assert.equal(s.config.stepsPerEpoch, 7);
    const again = createSchedule(JSON.parse(JSON.stringify(s.config)));
    for (let t = 0; t < 60; t++) assert.equal(again.lrAt(t), s.lrAt(t));
    // Order of calls does not matter.
    assert.equal(s.lrAt(50), lrAt(s.config, 50));
    assert.equal(s.lrAt(0), lrAt({ type: 'multistep', lr: 0.1, milestones: [3, 6], warmup: { steps: 5 } }, 0, 7));
  });

  it('refuses bad configs, naming the field and the value', () => {
    const bad: [unknown, number | undefined, RegExp][] = [
      [{ type: 'linear', lr: 0.1 }, 1, /schedule: unknown type "linear" \(known: constant, step, multistep, cosine\)/],
      [{ type: 'constant', lr: -1 }, 1, /expected lr to be a finite number >= 0, but received -1/],
      [{ type: 'step', lr: 0.1, stepSize: 30 }, undefined, /type 'step' needs stepsPerEpoch/],
      [{ type: 'step', lr: 0.1, stepSize: 0 }, 10, /expected stepSize \(epochs\) to be a positive integer, but received 0/],
      [{ type: 'multistep', lr: 0.1, milestones: [5, 2] }, 10, /expected milestones \(epochs\) to be a non-decreasing list of integers >= 0, but received \[5,2\]/],
      [{ type: 'cosine', lr: 0.1 }, 10, /type 'cosine' needs exactly one of totalSteps and epochs/],
      [{ type: 'cosine', lr: 0.1, totalSteps: 10, epochs: 1 }, 10, /exactly one of totalSteps and epochs/],
      [{ type: 'cosine', lr: 0.1, epochs: 3 }, undefined, /type 'cosine' over epochs needs stepsPerEpoch/],
      [{ type: 'cosine', lr: 0.1, totalSteps: 10, warmup: { steps: 10 } }, undefined, /expected a warmup shorter than the cosine's 10 steps, but received 10 steps/],
      [{ type: 'constant', lr: 0.1, warmup: { steps: 5, epochs: 1 } }, 10, /warmup needs exactly one of steps and epochs/],
      [{ type: 'constant', lr: 0.1, warmup: { steps: 5, startFactor: 2 } }, 10, /expected warmup\.startFactor to be in \[0, 1\], but received 2/],
      [{ type: 'constant', lr: 0.1 }, 2.5, /expected stepsPerEpoch to be a positive integer, but received 2\.5/],
    ];
    for (const [c, spe, re] of bad) assert.throws(() => createSchedule(c as ScheduleConfig, spe), re, JSON.stringify(c));
    assert.throws(() => createSchedule({ type: 'constant', lr: 0.1 }).lrAt(-1), /lrAt: expected step to be an integer >= 0, but received -1/);
  });
});
