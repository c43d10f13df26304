// Runs an experiment's grid one training run after another through `crunet train` (in this process), each
// in its own directory under the output folder. A run with result.json has finished and is skipped; a run
// with a checkpoint continues from it (train's --resume: exact on the CPU with the same threads); any other
// run starts afresh. The folder's plan.json records the plan its runs were made with: another plan is refused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../cli/errors.js';
import { trainCommand } from '../cli/train.js';
import { loadCheckpoint, writeFileAtomicSync } from '../train/checkpoint.js';
import { formatDuration } from '../train/progress.js';
import { renderPage } from './page.js';
import { planDifferences, planIdentity, plannedRuns, type Plan, type PlannedRun } from './plan.js';
import { renderCurves } from './plot.js';
import { collectResults, readRunResult, runResult, writeRunResult, type ExperimentResults } from './results.js';

export const PLAN_FILE = 'plan.json';
export const RESULTS_FILE = 'results.json';

export interface ExperimentOptions {
  /** The plan file as given (named on the generated page). */
  planFile: string;
  out: string;
  threads?: number;
  /** The Markdown page (default <out>/REPORT.md); the chart goes next to it, with .svg for .md. */
  page?: string;
  log?: (line: string) => void;
}

/**
 * Refuses an output folder that holds another plan's runs, naming the differences, or that holds
 * something else. With `create`, a missing or empty folder is made and the plan recorded in it.
 */
export function checkOutFolder(plan: Plan, out: string, create: boolean): 'new' | 'existing' {
  const file = path.join(out, PLAN_FILE);
  if (fs.existsSync(file)) {
    let stored: Record<string, unknown>;
    try {
      stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file} is damaged (${(e as Error).message}); it records which plan the runs in ${out} belong to`);
    }
    const diffs = planDifferences(planIdentity(stored as unknown as Plan), planIdentity(plan));
    if (diffs.length) {
      throw new UsageError(`${out} holds the runs of another plan: ${diffs.slice(0, 6).join('; ')}${diffs.length > 6 ? `; and ${diffs.length - 6} more` : ''}. ` +
        'Give another --out for the new plan, or restore the plan the runs were made with');
    }
    return 'existing';
  }
  if (fs.existsSync(out) && fs.readdirSync(out).length) {
    throw new UsageError(`${out} is not empty and holds no ${PLAN_FILE}: it is not an experiment's output folder; give another --out`);
  }
  if (create) {
    fs.mkdirSync(out, { recursive: true });
    writeFileAtomicSync(file, JSON.stringify(plan, null, 2) + '\n');
  }
  return 'new';
}

/** Where a run stands: finished, resumable (after which epoch), or not started. */
export function runStatus(out: string, run: PlannedRun): { state: 'finished' | 'resume' | 'new'; epoch?: number } {
  const dir = path.join(out, run.dir);
  if (readRunResult(dir)) return { state: 'finished' };
  if (!fs.existsSync(path.join(dir, 'checkpoint.safetensors'))) return { state: 'new' };
  return { state: 'resume', epoch: loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.epoch };
}

/** Writes results.json, the page and its chart from the finished runs; returns the results. */
export function writeReport(plan: Plan, opts: ExperimentOptions): ExperimentResults {
  const results = collectResults(plan, opts.out);
  writeFileAtomicSync(path.join(opts.out, RESULTS_FILE), JSON.stringify(results, null, 2) + '\n');
  const page = opts.page ?? path.join(opts.out, 'REPORT.md');
  const chart = page.replace(/\.md$/i, '') + '.svg';
  fs.mkdirSync(path.dirname(page), { recursive: true });
  const partial = results.complete ? '' : ` - PARTIAL: ${results.runsFinished} of ${results.runsPlanned} runs finished`;
  writeFileAtomicSync(chart, renderCurves(results.groups, {
    title: plan.title ?? `Experiment ${plan.name}`,
    subtitle: `${plan.dataset}: test results after each epoch, mean over seeds (line) and min-max over seeds (band)${partial}`,
  }));
  writeFileAtomicSync(page, renderPage(plan, results, { planFile: opts.planFile, out: opts.out, chart: path.basename(chart) }) + '\n');
  return results;
}

/** Runs what is left of the grid. Returns train's exit code when a run stops early (a signal), else 0. */
export async function runExperiment(plan: Plan, opts: ExperimentOptions): Promise<number> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const runs = plannedRuns(plan);
  checkOutFolder(plan, opts.out, true);
  // The plan's ETA at this invocation's pace: the mean time of the runs it trained from their start.
  const fresh: number[] = [];
  for (const run of runs) {
    const dir = path.join(opts.out, run.dir);
    const status = runStatus(opts.out, run);
    const name = `run ${run.index + 1}/${runs.length}: ${run.group} seed ${run.seed}`;
    if (status.state === 'finished') {
      log(`crunet experiment: ${name}: finished before, skipped`);
      continue;
    }
    // A resumed run passes its settings too: train refuses a checkpoint that contradicts them.
    const args = [...(status.state === 'resume' ? ['--resume', dir] : []), ...run.trainArgs, '--out', dir, ...(opts.threads ? ['--threads', String(opts.threads)] : [])];
    log(`crunet experiment: ${name}: ${status.state === 'resume' ? `continuing after epoch ${status.epoch}` : 'starting'} in ${dir}`);
    let code: number;
    const t0 = performance.now();
    try {
      code = await trainCommand(args);
    } catch (e) {
      (e as Error).message = `${name} (${dir}): ${(e as Error).message}`;
      throw e;
    }
    if (code !== 0) {
      log(`crunet experiment: stopped in ${name}; run the same command again to continue from its last whole epoch`);
      writeReport(plan, opts);
      return code;
    }
    writeRunResult(dir, runResult(run, dir));
    const r = writeReport(plan, opts);
    if (status.state === 'new') fresh.push((performance.now() - t0) / 1000);
    const left = r.runsPlanned - r.runsFinished;
    if (left && fresh.length) {
      const eta = (left * fresh.reduce((a, b) => a + b, 0)) / fresh.length;
      log(`crunet experiment: ${r.runsFinished} of ${r.runsPlanned} runs finished; about ${formatDuration(eta)} to go at this invocation's pace`);
    }
  }
  const r = writeReport(plan, opts);
  log(`crunet experiment: all ${r.runsPlanned} runs finished; results in ${path.join(opts.out, RESULTS_FILE)}, page ${opts.page ?? path.join(opts.out, 'REPORT.md')}`);
  return 0;
}
