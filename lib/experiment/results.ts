// An experiment's results: each finished run's result.json (written when its training ends), and the
// per-group statistics over seeds that results.json and the generated page show. Final numbers are the
// last epoch's test results, never an epoch picked by its test score.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInfo, version } from '../engine/index.js';
import { fromJSON } from '../models/index.js';
import { loadCheckpoint, writeFileAtomicSync } from '../train/checkpoint.js';
import { epochHistory, numberEpochsFrom1, readMetrics, type MetricsRecord } from '../train/metrics-log.js';
import { planIdentity, plannedRuns, type Plan, type PlannedRun } from './plan.js';

/** The marker of a finished run, in its directory. */
export const RESULT_FILE = 'result.json';

export interface Machine {
  cpu: string;
  cpus: number;
  threads: number;
  isa: string;
  node: string;
  crunet: string;
}

/** What result.json holds. */
export interface RunResult {
  group: string;
  model: string;
  options: Record<string, unknown>;
  recipe: string;
  seed: number;
  epochs: number;
  /** The last epoch's test results (plain cross-entropy; top-1 and top-5 as fractions). */
  testLoss: number;
  testTop1: number;
  testTop5: number;
  /** Training images per second over all epochs (the mean of the epochs' rates weighted by their images). */
  imagesPerSec: number;
  trainSeconds: number;
  params: number;
  macs: number;
  /** Unix seconds of the run's first and last metrics line. */
  started: number;
  finished: number;
  /** The machine of the invocation that finished the run. */
  machine: Machine;
}

export interface Stats {
  n: number;
  mean: number;
  /** The sample standard deviation (n - 1 in the denominator); null for one value. */
  std: number | null;
  min: number;
  max: number;
}

/** Mean, sample standard deviation, min and max of a non-empty list. */
export function stats(values: readonly number[]): Stats {
  if (values.length === 0) throw new RangeError('stats: expected at least one value, but received none');
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : null;
  return { n, mean, std, min: Math.min(...values), max: Math.max(...values) };
}

export function machine(threads: number): Machine {
  const b = buildInfo();
  return { cpu: os.cpus()[0]?.model ?? 'unknown', cpus: os.availableParallelism(), threads, isa: b.onednn.isa, node: process.version, crunet: version() };
}

const metricsOf = (dir: string) => path.join(dir, 'metrics.jsonl');

/** The last-epoch numbers of a run whose training ended: from its metrics and checkpoint. */
export function runResult(run: PlannedRun, dir: string): RunResult {
  // Epochs counted from 1, also in logs of older versions that counted from 0.
  const records = numberEpochsFrom1(readMetrics(metricsOf(dir)));
  const epochs = run.recipe.epochs as number;
  const last = records.filter((r) => r.type === 'eval' && r.epoch === epochs).at(-1);
  if (!last || typeof last.loss !== 'number' || typeof last.acc !== 'number') {
    throw new Error(`${metricsOf(dir)} has no test result of the last epoch (${epochs}): the run has not finished`);
  }
  const trained = records.filter((r) => r.type === 'epoch' && typeof r.imagesPerSec === 'number' && typeof r.seconds === 'number');
  const seconds = trained.reduce((s, r) => s + (r.seconds as number), 0);
  const images = trained.reduce((s, r) => s + (r.imagesPerSec as number) * (r.seconds as number), 0);
  const meta = loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta;
  const model = fromJSON(meta.model as { name: string; options: Record<string, unknown> });
  const times = records.map((r) => r.time).filter((t): t is number => typeof t === 'number');
  return {
    group: run.group, model: run.model.model, options: run.model.options, recipe: run.recipe.name, seed: run.seed, epochs,
    testLoss: last.loss, testTop1: last.acc, testTop5: (last.top5 as number) ?? NaN,
    imagesPerSec: seconds > 0 ? images / seconds : 0, trainSeconds: seconds,
    params: model.parameterCount(), macs: model.macs(), started: Math.min(...times), finished: Math.max(...times),
    machine: machine(typeof meta.threads === 'number' ? meta.threads : 0),
  };
}

export function writeRunResult(dir: string, result: RunResult): void {
  writeFileAtomicSync(path.join(dir, RESULT_FILE), JSON.stringify(result, null, 2) + '\n');
}

/** A finished run's result, or undefined while it has none. */
export function readRunResult(dir: string): RunResult | undefined {
  const file = path.join(dir, RESULT_FILE);
  if (!fs.existsSync(file)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunResult;
  } catch (e) {
    throw new Error(`${file} is damaged (${(e as Error).message}): remove it and rerun the experiment to redo the run's evaluation`);
  }
}

/** Per epoch: the test top-1 and loss over the finished seeds. */
export interface CurvePoint {
  epoch: number;
  top1: Stats;
  loss: Stats;
}

export interface GroupResults {
  group: string;
  model: string;
  options: Record<string, unknown>;
  recipe: string;
  seedsPlanned: number[];
  seedsFinished: number[];
  params?: number;
  macs?: number;
  testTop1?: Stats;
  testLoss?: Stats;
  imagesPerSec?: Stats;
  runs: RunResult[];
  curve: CurvePoint[];
}

export interface ExperimentResults {
  plan: Record<string, unknown>;
  /** False while some runs have not finished: the statistics then cover the finished ones only. */
  complete: boolean;
  runsPlanned: number;
  runsFinished: number;
  generated: string;
  groups: GroupResults[];
}

/** The results of the finished runs in `out`, grouped per model (and recipe). */
export function collectResults(plan: Plan, out: string): ExperimentResults {
  const runs = plannedRuns(plan);
  const groups = new Map<string, { planned: PlannedRun[]; done: { run: PlannedRun; result: RunResult }[] }>();
  for (const run of runs) {
    const g = groups.get(run.group) ?? { planned: [], done: [] };
    g.planned.push(run);
    const result = readRunResult(path.join(out, run.dir));
    if (result) g.done.push({ run, result });
    groups.set(run.group, g);
  }
  const finished = [...groups.values()].reduce((s, g) => s + g.done.length, 0);
  return {
    plan: { name: plan.name, ...planIdentity(plan) },
    complete: finished === runs.length,
    runsPlanned: runs.length,
    runsFinished: finished,
    generated: new Date().toISOString(),
    groups: [...groups.entries()].map(([group, g]) => {
      const first = g.planned[0]!;
      const rs = g.done.map((d) => d.result);
      const base: GroupResults = {
        group, model: first.model.model, options: first.model.options, recipe: first.recipe.name,
        seedsPlanned: g.planned.map((r) => r.seed), seedsFinished: rs.map((r) => r.seed), runs: rs,
        curve: curve(g.done.map((d) => readMetrics(metricsOf(path.join(out, d.run.dir))))),
      };
      if (!rs.length) return base;
      return {
        ...base, params: rs[0]!.params, macs: rs[0]!.macs,
        testTop1: stats(rs.map((r) => r.testTop1)), testLoss: stats(rs.map((r) => r.testLoss)), imagesPerSec: stats(rs.map((r) => r.imagesPerSec)),
      };
    }),
  };
}

/** The epochs every given run has a test result of, with their statistics over the runs. */
function curve(logs: MetricsRecord[][]): CurvePoint[] {
  if (!logs.length) return [];
  const histories = logs.map((l) => new Map(epochHistory(l).filter((p) => p.testAcc !== undefined && p.testLoss !== undefined).map((p) => [p.epoch, p])));
  const epochs = [...histories[0]!.keys()].filter((e) => histories.every((h) => h.has(e))).sort((a, b) => a - b);
  return epochs.map((epoch) => ({
    epoch,
    top1: stats(histories.map((h) => h.get(epoch)!.testAcc!)),
    loss: stats(histories.map((h) => h.get(epoch)!.testLoss!)),
  }));
}
