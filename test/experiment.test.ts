// crunet experiment: a tiny plan (2 models x 2 seeds, 2 short epochs on a small synthetic IDX set) run
// whole, and run again killed (SIGKILL) in the middle of its second run and continued; the statistics
// against the runs' own metrics; a changed plan refused; the plan checks; the shipped plans.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPlan, parsePlan, plannedRuns } from '../lib/experiment/plan.js';
import { runResult, stats, type ExperimentResults, type RunResult } from '../lib/experiment/results.js';
import { create } from '../lib/models/index.js';
import { readMetrics, type MetricsRecord } from '../lib/train/metrics-log.js';
import { writeIdxSet } from './fixtures/data.js';
import { runCrunet, startCrunet, waitFor } from './support/cli-child.js';

const ROOT = path.resolve(__dirname, '..');

describe('crunet experiment', function () {
  // A loaded machine makes the runs slow, not wrong: each child has its own deadline (a hang bound).
  this.timeout(0);
  let tmp: string, planFile: string, whole: string;
  const plan = (over: Record<string, unknown> = {}) => ({
    name: 'tiny', dataset: `idx:${path.join(tmp, 'data')}`, seeds: [3, 7], models: ['crunet_small', 'resnext_small'],
    // 12 steps per epoch: the kill below lands within the second epoch of the second run.
    recipe: { epochs: 2, batchSize: 32, limitTrain: 384, limitTest: 32, augment: true, labelSmoothing: 0.1 },
    ...over,
  });
  const writePlan = (name: string, p: object) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, JSON.stringify(p, null, 2));
    return f;
  };
  const experiment = (args: string[]) => runCrunet(['experiment', ...args]);
  const results = (out: string): ExperimentResults => JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const runDirs = (out: string) => plannedRuns(loadPlan(planFile)).map((r) => path.join(out, r.dir));
  const lastEval = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl')).filter((r) => r.type === 'eval').at(-1)!;
  /** A run's trajectory: the training and test numbers of every epoch (no times). */
  const trajectory = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl'))
    .filter((r) => r.type === 'epoch' || r.type === 'eval')
    .map((r: MetricsRecord) => ({ type: r.type, epoch: r.epoch, step: r.step, loss: r.loss, acc: r.acc, top5: r.top5, lr: r.lr }));
  /** A run's result without what depends on the clock or the machine. */
  const outcome = ({ imagesPerSec: _i, trainSeconds: _t, started: _s, finished: _f, machine: _m, ...rest }: RunResult) => rest;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-experiment-'));
    writeIdxSet(path.join(tmp, 'data'), { n: 400, m: 64, h: 28, w: 28 });
    planFile = writePlan('plan.json', plan());
    whole = path.join(tmp, 'whole');
    const r = await experiment([planFile, '--out', whole, '--threads', '1']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /all 4 runs finished/);
    assert.match(r.out, /1 of 4 runs finished; about [\d:]+ to go at this invocation's pace/);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes per-model mean, standard deviation, min and max of the runs\' last-epoch test results', () => {
    const r = results(whole);
    assert.equal(r.complete, true);
    assert.equal(r.runsFinished, 4);
    assert.deepEqual(r.groups.map((g) => g.group), ['crunet_small', 'resnext_small']);
    for (const g of r.groups) {
      const dirs = [3, 7].map((s) => path.join(whole, `${g.group}-seed${s}`));
      const evals = dirs.map(lastEval);
      assert.deepEqual(evals.map((e) => e.epoch), [2, 2], 'the last epoch (counted from 1), not a chosen one');
      for (const [key, field] of [['testTop1', 'acc'], ['testLoss', 'loss']] as const) {
        const [a, b] = evals.map((e) => e[field] as number);
        const s = g[key]!;
        assert.equal(s.n, 2);
        assert.ok(Math.abs(s.mean - (a! + b!) / 2) < 1e-12, `${g.group} ${key} mean`);
        // Two values: the sample standard deviation is |a - b| / sqrt(2).
        assert.ok(Math.abs(s.std! - Math.abs(a! - b!) / Math.SQRT2) < 1e-12, `${g.group} ${key} std`);
        assert.equal(s.min, Math.min(a!, b!));
        assert.equal(s.max, Math.max(a!, b!));
      }
      const model = create(g.model, { classes: 10, channels: 1, inputSize: 28 });
      assert.equal(g.params, model.parameterCount());
      assert.equal(g.macs, model.macs());
      assert.ok(g.imagesPerSec!.mean > 0);
      assert.deepEqual(g.curve.map((p) => p.epoch), [1, 2]);
      assert.equal(g.curve[1]!.top1.mean, g.testTop1!.mean);
    }
    // The same seed gives every model the same settings, and so the same data order and augmentation
    // (a function of the seed and the data set: lib/data/loader.ts); only the model differs.
    const args = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl')).find((x) => x.type === 'run')!.args as Record<string, unknown>;
    const [c3, , x3] = runDirs(whole);
    assert.deepEqual({ ...args(c3!), model: 'm' }, { ...args(x3!), model: 'm' });
    assert.notDeepEqual(args(c3!), args(x3!));
    // The page and its chart: a mean line and a band per model in each of the two panels.
    const page = fs.readFileSync(path.join(whole, 'REPORT.md'), 'utf8');
    assert.doesNotMatch(page, /Partial/);
    assert.match(page, /!\[[^\]]*\]\(REPORT\.svg\)/);
    for (const g of r.groups) assert.ok(page.includes(`| ${g.group} | 2 of 2 | ${(100 * g.testTop1!.mean).toFixed(2)} ± ${(100 * g.testTop1!.std!).toFixed(2)} |`), page);
    const svg = fs.readFileSync(path.join(whole, 'REPORT.svg'), 'utf8');
    assert.equal(svg.match(/class="mean"/g)?.length, 4);
    assert.equal(svg.match(/class="band"/g)?.length, 4);
    // The x axis counts epochs from 1: the first point of each curve (epoch 1) sits on the tick labelled 1.
    // (One tick labelled 1 per panel; the curves are listed panel by panel.)
    const ticks1 = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="middle" font-size="11" fill="#444">1<\/text>/g)].map((m) => m[1]);
    const firstPoints = [...svg.matchAll(/<path class="mean" d="M([\d.]+),/g)].map((m) => m[1]);
    assert.equal(ticks1.length, 2, svg);
    assert.deepEqual(firstPoints, [ticks1[0], ticks1[0], ticks1[1], ticks1[1]]);
  });

  it('reads the last epoch\'s test result from logs of older versions too, which counted epochs from 0', () => {
    const run = plannedRuns(loadPlan(planFile))[0]!;
    const dir = path.join(tmp, 'old-log');
    fs.cpSync(path.join(whole, run.dir), dir, { recursive: true });
    const file = path.join(dir, 'metrics.jsonl');
    const records = readMetrics(file);
    assert.ok(records.some((r) => r.type === 'run' && r.epochsFrom === 1));
    const old = records.map(({ epochsFrom: _e, ...r }) => (typeof r.epoch === 'number' ? { ...r, epoch: r.epoch - 1 } : r));
    fs.writeFileSync(file, old.map((r) => JSON.stringify(r) + '\n').join(''));
    const fromNew = runResult(run, path.join(whole, run.dir)), fromOld = runResult(run, dir);
    assert.deepEqual(outcome(fromOld), outcome(fromNew));
    assert.equal(fromNew.testTop1, lastEval(path.join(whole, run.dir)).acc);
  });

  it('a killed experiment continues where it stopped: finished runs are not redone, the results equal the uninterrupted run\'s', async () => {
    const out = path.join(tmp, 'killed');
    const c = startCrunet(['experiment', planFile, '--out', out, '--threads', '1']);
    const [first, second] = runDirs(out);
    // The second run has finished its first epoch (its test line is written after the checkpoint).
    await waitFor(c, 'the second run\'s first epoch', () => fs.existsSync(path.join(second!, 'metrics.jsonl')) &&
      readMetrics(path.join(second!, 'metrics.jsonl')).some((r) => r.type === 'eval' && r.epoch === 1));
    c.child.kill('SIGKILL');
    await c.done;
    assert.ok(fs.existsSync(path.join(first!, 'result.json')), 'the first run finished before the kill');
    assert.ok(!fs.existsSync(path.join(second!, 'result.json')), 'the kill came before the second run finished');
    const before = { result: fs.readFileSync(path.join(first!, 'result.json')), mtime: fs.statSync(path.join(first!, 'result.json')).mtimeMs, metrics: fs.readFileSync(path.join(first!, 'metrics.jsonl')) };

    // What is finished so far: marked partial.
    const rep = await experiment(['report', planFile, '--out', out]);
    assert.equal(rep.code, 0, rep.err);
    assert.match(rep.out, /1 of 4 runs finished \(partial results\)/);
    const partial = results(out);
    assert.equal(partial.complete, false);
    assert.deepEqual(partial.groups.map((g) => g.seedsFinished), [[3], []]);
    assert.match(fs.readFileSync(path.join(out, 'REPORT.md'), 'utf8'), /\*\*Partial results:\*\* 1 of 4 runs have finished/);

    const dry = await experiment([planFile, '--out', out, '--dry-run']);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /1\. crunet_small seed 3: finished\n[^\n]*\n  2\. crunet_small seed 7: continues after epoch 1\n[^\n]*\n  3\. resnext_small seed 3: to run/);

    const again = await experiment([planFile, '--out', out, '--threads', '1']);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /run 1\/4: crunet_small seed 3: finished before, skipped/);
    assert.match(again.out, /run 2\/4: crunet_small seed 7: continuing after epoch 1/);
    assert.deepEqual(fs.readFileSync(path.join(first!, 'result.json')), before.result);
    assert.equal(fs.statSync(path.join(first!, 'result.json')).mtimeMs, before.mtime);
    assert.deepEqual(fs.readFileSync(path.join(first!, 'metrics.jsonl')), before.metrics);
    // The second run was continued from its checkpoint after epoch 1, not started again.
    assert.deepEqual(readMetrics(path.join(second!, 'metrics.jsonl')).filter((r) => r.type === 'run').map((r) => r.startEpoch), [0, 1]);

    for (const [a, b] of runDirs(whole).map((d, i) => [d, runDirs(out)[i]!])) assert.deepEqual(trajectory(b!), trajectory(a!), b);
    const [w, k] = [results(whole), results(out)];
    assert.equal(k.complete, true);
    for (const [gw, gk] of w.groups.map((g, i) => [g, k.groups[i]!] as const)) {
      assert.deepEqual([gk.testTop1, gk.testLoss, gk.curve], [gw.testTop1, gw.testLoss, gw.curve]);
      assert.deepEqual(gk.runs.map(outcome), gw.runs.map(outcome));
    }
  });

  it('refuses a changed plan for an existing output folder, naming the difference', async () => {
    const planBefore = fs.readFileSync(path.join(whole, 'plan.json'), 'utf8');
    const longer = writePlan('longer.json', plan({ recipe: { ...plan().recipe, epochs: 3 } }));
    const r = await experiment([longer, '--out', whole, '--threads', '1']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /holds the runs of another plan: recipes\[0\]\.epochs: the output folder's runs were made with 2, the plan asks for 3\./);
    const other = writePlan('other.json', plan({ seeds: [3, 8], models: ['crunet_small', 'resnet_small'] }));
    for (const args of [[other, '--out', whole], [other, '--out', whole, '--dry-run'], ['report', other, '--out', whole]]) {
      const o = await experiment(args);
      assert.equal(o.code, 2, o.err);
      assert.match(o.err, /seeds\[1\]: the output folder's runs were made with 7, the plan asks for 8; models\[1\]\.label: .*"resnext_small".*"resnet_small"/);
    }
    assert.equal(fs.readFileSync(path.join(whole, 'plan.json'), 'utf8'), planBefore);
    // A title is not part of what the runs depend on.
    const retitled = writePlan('retitled.json', plan({ title: 'Another title' }));
    const t = await experiment(['report', retitled, '--out', whole]);
    assert.equal(t.code, 0, t.err);
    assert.match(fs.readFileSync(path.join(whole, 'REPORT.md'), 'utf8'), /^# Another title$/m);
  });

  it('a dry run lists the runs and their train commands and writes nothing', async () => {
    const out = path.join(tmp, 'dry');
    const r = await experiment([planFile, '--out', out, '--dry-run', '--threads', '2']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /tiny: 4 runs into .*dry \(a new folder\)/);
    assert.equal(r.out.match(/: to run\n {5}crunet train --model \S+ --dataset idx:\S+ --seed \d .*--epochs 2 .*--label-smoothing 0\.1 .*--augment --out \S+ --threads 2\n/g)?.length, 4, r.out);
    assert.ok(!fs.existsSync(out));
  });

  it('checks a plan before any run, naming the field', () => {
    const base = plan();
    const bad: [object, RegExp][] = [
      [{ ...base, recipe: { ...base.recipe, epochs: undefined } }, /recipe\.epochs: expected a fixed number of epochs/],
      [{ ...base, recipe: { ...base.recipe, lerningRate: 0.1 } }, /recipe\.lerningRate: expected one of the settings epochs, batchSize, /],
      [{ ...base, recipe: { ...base.recipe, augment: 'yes' } }, /recipe\.augment: expected a boolean, but received "yes"/],
      // Results are the last planned epoch's, which an early-stopped run never reaches.
      [{ ...base, recipe: { ...base.recipe, validation: 0.1, earlyStopPatience: 2 } }, /recipe\.earlyStopPatience: expected one of the settings/],
      [{ ...base, recipe: { ...base.recipe, labelSmoothing: 1.5 } }, /run crunet_small-seed3: --label-smoothing: expected a number in \[0, 1\), but received '1\.5'/],
      [{ ...base, seeds: [1, 1] }, /seeds: expected distinct seeds, but received \[1,1\]/],
      [{ ...base, seeds: [-1] }, /seeds: expected integers in \[0, 2\^32\), but received -1/],
      [{ ...base, models: ['crunet_small', 'crunet_small'] }, /models: expected distinct labels .*"crunet_small"/],
      [{ ...base, models: ['resnet_tiny'] }, /models\[0\]: models: unknown model "resnet_tiny"/],
      [{ ...base, models: [{ model: 'resnet_small', options: { D: 64 } }] }, /models\[0\]: .*option D applies only to CRU-Net models/],
      [{ ...base, name: '../x' }, /name: expected a name of letters, digits/],
      [{ ...base, recipes: [{ name: 'a', epochs: 1 }] }, /recipe: expected exactly one of "recipe" .* or "recipes"/],
      [{ ...base, recipe: { ...base.recipe, optimizer: 'adamw', betas: [1, 0.9] } }, /--betas: expected B1,B2 with each in \[0, 1\)/],
    ];
    for (const [p, re] of bad) assert.throws(() => parsePlan(p, 'plan.json'), (e: Error) => re.test(e.message) && e.message.startsWith('plan.json: '), re.source);
    // An AdamW recipe takes AdamW's defaults and no SGD momentum.
    const adamw = plannedRuns(parsePlan({ ...base, recipe: { name: 'adamw', epochs: 1, optimizer: 'adamw', ema: 0.999, emaWarmup: true } }))[0]!.trainArgs.join(' ');
    assert.match(adamw, /--optimizer adamw .*--ema 0\.999 --ema-warmup/);
    assert.match(adamw, /--lr 0\.001 /);
    assert.doesNotMatch(adamw, /--momentum|nesterov/);
    const two = parsePlan({ ...base, recipe: undefined, recipes: [{ name: 'short', epochs: 1 }, { name: 'long', epochs: 2 }] });
    assert.deepEqual(plannedRuns(two).map((r) => r.dir), ['crunet_small-short-seed3', 'crunet_small-short-seed7', 'crunet_small-long-seed3', 'crunet_small-long-seed7',
      'resnext_small-short-seed3', 'resnext_small-short-seed7', 'resnext_small-long-seed3', 'resnext_small-long-seed7']);
  });

  it('stats: mean, sample standard deviation (n - 1), min and max', () => {
    const v = [0.91, 0.93, 0.9, 0.94];
    const mean = (0.91 + 0.93 + 0.9 + 0.94) / 4;
    const s = stats(v);
    assert.ok(Math.abs(s.mean - mean) < 1e-15);
    assert.ok(Math.abs(s.std! - Math.sqrt(((0.91 - mean) ** 2 + (0.93 - mean) ** 2 + (0.9 - mean) ** 2 + (0.94 - mean) ** 2) / 3)) < 1e-15);
    assert.deepEqual([s.n, s.min, s.max], [4, 0.9, 0.94]);
    assert.equal(stats([0.5]).std, null);
    assert.throws(() => stats([]), RangeError);
  });

  it('the shipped plans: Fashion-MNIST, 3 seeds, one recipe for all models, parameter-matched models', () => {
    const files = fs.readdirSync(path.join(ROOT, 'experiments')).filter((f) => f.endsWith('.json'));
    assert.ok(files.includes('fmnist-small.json'), files.join(', '));
    for (const f of files) {
      const p = loadPlan(path.join(ROOT, 'experiments', f));
      assert.equal(p.dataset, 'fashion-mnist', f);
      assert.equal(p.seeds.length, 3, f);
      assert.equal(p.recipes.length, 1, f);
      const r = p.recipes[0]!;
      assert.ok(r.augment === true && (r.labelSmoothing as number) > 0 && r.limitTrain === undefined && r.limitTest === undefined, f);
      // Within 6 % of each other's parameters (the zoo's small models' budget), at Fashion-MNIST's shape.
      const counts = p.models.map((m) => create(m.model, { ...m.options, classes: 10, channels: 1, inputSize: 28 }).parameterCount());
      assert.ok(Math.max(...counts) / Math.min(...counts) < 1.06, `${f}: ${p.models.map((m, i) => `${m.label} ${counts[i]}`).join(', ')}`);
    }
  });
});
