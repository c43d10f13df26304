import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadPlan, plannedRuns, shellWord } from '../experiment/plan.js';
import { checkOutFolder, PLAN_FILE, RESULTS_FILE, runExperiment, runStatus, writeReport } from '../experiment/runner.js';
import { UsageError } from './errors.js';
import { intFlag } from './flags.js';
import { MAX_THREADS } from './threads.js';

export const EXPERIMENT_HELP = `Usage: crunet experiment <plan.json> [options]
       crunet experiment report <plan.json> [--out DIR] [--page FILE]

Runs a plan's grid of (model, recipe, seed) training runs one after another, each a 'crunet train' run in
its own directory under --out (<label>-seed<S>). Run the same command again after a stop (Ctrl-C, a
kill, a reboot): finished runs are skipped, an unfinished one continues from its last whole epoch
(--resume, exact on the CPU with the same threads). The output folder records its plan (${PLAN_FILE}); a
different plan is refused, naming the difference. After every finished run it writes ${RESULTS_FILE}
(per model: mean, standard deviation, min and max over seeds of the last epoch's test top-1 and loss;
images/s, parameters, MACs) and a Markdown page with a chart of the test curves (mean and min-max band).

'report' rewrites ${RESULTS_FILE} and the page from the runs finished so far (marked partial when some are
not), without training.

A plan (see experiments/*.json):
  {"name": "...", "title": "...", "description": "...", "dataset": "fashion-mnist", "seeds": [1, 2, 3],
   "models": ["crunet_small", {"label": "L", "model": "resnet_small", "options": {"width": 36}}],
   "recipe": {"epochs": 15, "augment": true, "labelSmoothing": 0.1, ...}}
A recipe takes crunet train's settings by name (epochs, batchSize, lr, schedule, stepSize, milestones,
warmupEpochs, optimizer, betas, eps, clipGradNorm, accumulate, ema, emaWarmup, momentum, nesterov, weightDecay,
labelSmoothing, augment, erase, limitTrain, limitTest, valSplit); the others are train's defaults, recorded with the runs. "recipes": [{"name": ..., ...}] runs several.

Options:
  --out DIR        output folder (default runs/<plan name>)
  --threads N      CPU threads of every run (default: train's: a resumed run keeps its own count)
  --page FILE      the Markdown page (default DIR/REPORT.md); the chart is written next to it (.svg)
  --dry-run        list the runs, where each stands and its crunet train command; train nothing`;

export async function experimentCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args, strict: true, allowPositionals: true,
    options: { out: { type: 'string' }, threads: { type: 'string' }, page: { type: 'string' }, 'dry-run': { type: 'boolean' } },
  });
  const report = positionals[0] === 'report';
  const files = report ? positionals.slice(1) : positionals;
  if (files.length !== 1) throw new UsageError(`expected one plan file, but received ${files.length ? files.join(' ') : 'none'}`);
  if (report && (v.threads !== undefined || v['dry-run'])) throw new UsageError('report trains nothing: --threads and --dry-run do not apply');
  const planFile = files[0]!;
  const plan = loadPlan(planFile);
  const opts = {
    planFile, out: v.out ?? path.join('runs', plan.name),
    ...(v.threads !== undefined ? { threads: intFlag(v.threads, '--threads', 1, MAX_THREADS)! } : {}),
    ...(v.page !== undefined ? { page: v.page } : {}),
  };

  if (report) {
    if (checkOutFolder(plan, opts.out, false) === 'new') throw new UsageError(`${opts.out} holds no runs of ${planFile} (no ${PLAN_FILE}): nothing to report`);
    const r = writeReport(plan, opts);
    console.log(`crunet experiment report: ${r.runsFinished} of ${r.runsPlanned} runs finished${r.complete ? '' : ' (partial results)'}; ` +
      `wrote ${path.join(opts.out, RESULTS_FILE)} and ${opts.page ?? path.join(opts.out, 'REPORT.md')}`);
    for (const g of r.groups) {
      const t = g.testTop1;
      console.log(`  ${g.group}: ${g.seedsFinished.length} of ${g.seedsPlanned.length} seeds` + (t ? `, test top-1 ${(100 * t.mean).toFixed(2)} % (min ${(100 * t.min).toFixed(2)}, max ${(100 * t.max).toFixed(2)})` : ''));
    }
    return 0;
  }
  if (v['dry-run']) {
    const state = checkOutFolder(plan, opts.out, false);
    const runs = plannedRuns(plan);
    console.log(`crunet experiment: ${plan.name}: ${runs.length} runs into ${opts.out}${state === 'new' ? ' (a new folder)' : ''}`);
    for (const r of runs) {
      const s = state === 'new' ? { state: 'new' as const } : runStatus(opts.out, r);
      const where = s.state === 'finished' ? 'finished' : s.state === 'resume' ? `continues after epoch ${s.epoch}` : 'to run';
      console.log(`  ${r.index + 1}. ${r.group} seed ${r.seed}: ${where}\n     crunet train ${r.trainArgs.map(shellWord).join(' ')} --out ${path.join(opts.out, r.dir)}` +
        (opts.threads ? ` --threads ${opts.threads}` : ''));
    }
    return 0;
  }
  return runExperiment(plan, opts);
}
