// An experiment plan: a grid of (model, recipe, seed) training runs of `crunet train`, read from JSON.
//
//   {
//     "name": "fmnist-small",                       file-name-safe; the default output folder is runs/<name>
//     "title": "...", "description": "...",         optional, for the generated page
//     "dataset": "fashion-mnist",                   a `crunet train --dataset` spec
//     "seeds": [1, 2, 3],
//     "models": ["crunet_small", {"label": "resnet_small_w36", "model": "resnet_small", "options": {"width": 36}}],
//     "recipe": {"epochs": 15, "augment": true, "labelSmoothing": 0.1}      or "recipes": [{"name": ..., ...}]
//   }
//
// A recipe holds `crunet train` settings by their RunSettings names; what it leaves out takes train's
// defaults, resolved here, so that the plan stored with the runs names every setting they were made with
// (a later change of a default shows up as a difference, not as a silent change of recipe).
import * as fs from 'node:fs';
import { create } from '../models/index.js';
import { UsageError } from '../cli/errors.js';
import { parseTrainArgs } from '../cli/train.js';
import { ADAMW_DEFAULTS, TRAIN_DEFAULTS } from '../cli/run-settings.js';

/** The recipe settings a plan may set, with the `crunet train` flag of each. */
const RECIPE_FLAGS = {
  epochs: { flag: '--epochs', type: 'number' },
  batchSize: { flag: '--batch-size', type: 'number' },
  lr: { flag: '--lr', type: 'number' },
  schedule: { flag: '--schedule', type: 'string' },
  stepSize: { flag: '--step-size', type: 'number' },
  milestones: { flag: '--milestones', type: 'number[]' },
  warmupEpochs: { flag: '--warmup-epochs', type: 'number' },
  optimizer: { flag: '--optimizer', type: 'string' },
  betas: { flag: '--betas', type: 'number[]' },
  eps: { flag: '--eps', type: 'number' },
  clipGradNorm: { flag: '--clip-grad-norm', type: 'number' },
  accumulate: { flag: '--accumulate', type: 'number' },
  ema: { flag: '--ema', type: 'number' },
  emaWarmup: { flag: '--ema-warmup', type: 'boolean' },
  momentum: { flag: '--momentum', type: 'number' },
  nesterov: { flag: '--no-nesterov', type: 'boolean' },
  weightDecay: { flag: '--weight-decay', type: 'number' },
  labelSmoothing: { flag: '--label-smoothing', type: 'number' },
  augment: { flag: '--augment', type: 'boolean' },
  erase: { flag: '--erase', type: 'number' },
  limitTrain: { flag: '--limit-train', type: 'number' },
  limitTest: { flag: '--limit-test', type: 'number' },
  valSplit: { flag: '--val-split', type: 'number' },
  mixup: { flag: '--mixup', type: 'number' },
  cutmix: { flag: '--cutmix', type: 'number' },
  mixProb: { flag: '--mix-prob', type: 'number' },
  mixSwitchProb: { flag: '--mix-switch-prob', type: 'number' },
  randaugment: { flag: '--randaugment', type: 'string' },
  trivialaugment: { flag: '--trivialaugment', type: 'boolean' },
  validation: { flag: '--validation', type: 'number' },
  // No early stopping: an experiment reports every run's last planned epoch, which an early-stopped run lacks.
} as const;

type RecipeKey = keyof typeof RECIPE_FLAGS;
export type Recipe = { name: string } & Partial<Record<RecipeKey, number | string | boolean | number[]>>;

export interface PlanModel {
  /** The name in tables, plots and run directories (default: the zoo name). */
  label: string;
  /** The zoo model (`crunet summary --list`). */
  model: string;
  options: Record<string, unknown>;
}

export interface Plan {
  name: string;
  title?: string;
  description?: string;
  dataset: string;
  seeds: number[];
  models: PlanModel[];
  /** Resolved: every setting train would use, defaults included. */
  recipes: Recipe[];
}

/** One training run of the grid. */
export interface PlannedRun {
  /** Its position in the grid, from 0: models, then recipes, then seeds. */
  index: number;
  /** The results group it belongs to: the model's label, and the recipe's name when there are several. */
  group: string;
  model: PlanModel;
  recipe: Recipe;
  seed: number;
  /** Relative to the experiment's output folder. */
  dir: string;
  /** `crunet train` arguments of a fresh run, without --out and --threads. */
  trainArgs: string[];
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function describe(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/** Reads and checks a plan file; every mistake is a UsageError naming the file and the field. */
export function loadPlan(file: string): Plan {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the plan ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the plan ${file} is not JSON: ${(e as Error).message}`);
  }
  return parsePlan(json, file);
}

/** Checks a plan object (as read from `where`) and resolves its models and recipes. */
export function parsePlan(json: unknown, where = 'the plan'): Plan {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new UsageError(`${where}: ${field}: expected ${expected}, but received ${describe(got)}`);
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('the plan', 'a JSON object', json);
  const p = json as Record<string, unknown>;
  const known = ['name', 'title', 'description', 'dataset', 'seeds', 'models', 'recipe', 'recipes'];
  for (const k of Object.keys(p)) if (!known.includes(k)) fail(k, `one of the fields ${known.join(', ')}`, k);
  if (typeof p.name !== 'string' || !SAFE_NAME.test(p.name)) fail('name', 'a name of letters, digits, _ . - (it names the output folder)', p.name);
  for (const k of ['title', 'description'] as const) if (p[k] !== undefined && typeof p[k] !== 'string') fail(k, 'a string', p[k]);
  if (typeof p.dataset !== 'string' || !p.dataset) fail('dataset', "a dataset spec such as 'fashion-mnist'", p.dataset);
  const seeds = p.seeds;
  if (!Array.isArray(seeds) || seeds.length === 0) fail('seeds', 'a non-empty array of integers', seeds);
  for (const s of seeds as unknown[]) if (!(typeof s === 'number' && Number.isInteger(s) && s >= 0 && s < 2 ** 32)) fail('seeds', 'integers in [0, 2^32)', s);
  if (new Set(seeds as number[]).size !== (seeds as number[]).length) fail('seeds', 'distinct seeds', seeds);

  if (!Array.isArray(p.models) || p.models.length === 0) fail('models', 'a non-empty array of model names or {label, model, options} objects', p.models);
  const models = (p.models as unknown[]).map((m, i): PlanModel => {
    const at = `models[${i}]`;
    if (typeof m === 'string') return { label: m, model: m, options: {} };
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return fail(at, 'a model name or a {label, model, options} object', m);
    const o = m as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['label', 'model', 'options'].includes(k)) fail(`${at}.${k}`, 'one of the fields label, model, options', k);
    if (typeof o.model !== 'string') fail(`${at}.model`, 'a zoo model name', o.model);
    if (o.options !== undefined && (o.options === null || typeof o.options !== 'object' || Array.isArray(o.options))) fail(`${at}.options`, 'an object of model options', o.options);
    return { label: (o.label as string | undefined) ?? (o.model as string), model: o.model as string, options: (o.options as Record<string, unknown>) ?? {} };
  });
  models.forEach((m, i) => {
    if (!SAFE_NAME.test(m.label)) fail(`models[${i}].label`, 'a label of letters, digits, _ . - (it names run directories)', m.label);
    try {
      create(m.model, m.options); // the data set's classes and input size come later; this checks the name and options
    } catch (e) {
      throw new UsageError(`${where}: models[${i}]: ${(e as Error).message}`);
    }
  });
  const labels = models.map((m) => m.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) fail('models', 'distinct labels (give one model a "label")', dup);

  if ((p.recipe === undefined) === (p.recipes === undefined)) fail('recipe', 'exactly one of "recipe" (an object) or "recipes" (an array of objects with a name)', p.recipe ?? p.recipes);
  const given = p.recipes === undefined ? [{ name: 'recipe', ...(p.recipe as object) }] : p.recipes;
  if (!Array.isArray(given) || given.length === 0) fail('recipes', 'a non-empty array of recipe objects', given);
  const recipes = (given as unknown[]).map((r, i) => resolveRecipe(r, p.recipes === undefined ? 'recipe' : `recipes[${i}]`, fail));
  const names = recipes.map((r) => r.name);
  if (new Set(names).size !== names.length) fail('recipes', 'distinct recipe names', names);

  const plan: Plan = {
    name: p.name as string, ...(p.title !== undefined ? { title: p.title as string } : {}),
    ...(p.description !== undefined ? { description: p.description as string } : {}),
    dataset: p.dataset as string, seeds: [...(seeds as number[])], models, recipes,
  };
  // Every run's command line goes through train's own checks now, not hours into the experiment.
  for (const r of plannedRuns(plan)) {
    try {
      parseTrainArgs(r.trainArgs);
    } catch (e) {
      throw new UsageError(`${where}: run ${r.dir}: ${(e as Error).message}`);
    }
  }
  return plan;
}

function resolveRecipe(r: unknown, at: string, fail: (field: string, expected: string, got: unknown) => never): Recipe {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return fail(at, 'an object of training settings', r);
  const o = r as Record<string, unknown>;
  if (typeof o.name !== 'string' || !SAFE_NAME.test(o.name)) fail(`${at}.name`, 'a name of letters, digits, _ . -', o.name);
  for (const [k, v] of Object.entries(o)) {
    if (k === 'name' || v === undefined) continue;
    const spec = RECIPE_FLAGS[k as RecipeKey];
    if (!spec) fail(`${at}.${k}`, `one of the settings ${Object.keys(RECIPE_FLAGS).join(', ')}`, k);
    const ok = spec.type === 'number[]' ? Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number') : typeof v === spec.type;
    if (!ok) fail(`${at}.${k}`, spec.type === 'number[]' ? 'a non-empty array of numbers' : `a ${spec.type}`, v);
  }
  if (o.epochs === undefined) fail(`${at}.epochs`, 'a fixed number of epochs (an experiment does not take the default)', o.epochs);
  const { model: _m, dataset: _d, seed: _s, ...sgdDefaults } = TRAIN_DEFAULTS;
  // AdamW and LAMB recipes take their own defaults, and no momentum (crunet train refuses it for them).
  const { momentum: _mo, nesterov: _n, ...adamBase } = sgdDefaults;
  const defaults = o.optimizer !== undefined && o.optimizer !== 'sgd' ? { ...adamBase, ...ADAMW_DEFAULTS } : sgdDefaults;
  const settings = Object.fromEntries(Object.entries(o).filter(([k, v]) => k !== 'name' && v !== undefined));
  return { name: o.name as string, ...defaults, ...settings } as Recipe;
}

/** The `crunet train` flags of a recipe (every setting it names, so that no default is left implicit). */
export function recipeFlags(recipe: Recipe): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(recipe)) {
    if (k === 'name' || v === undefined) continue;
    const { flag } = RECIPE_FLAGS[k as RecipeKey];
    if (k === 'nesterov') {
      if (v === false) out.push('--no-nesterov');
    } else if (k === 'augment') out.push(v ? '--augment' : '--no-augment');
    else if (k === 'trivialaugment' || k === 'emaWarmup') {
      if (v) out.push(flag);
    }
    else if (Array.isArray(v)) out.push(flag, v.join(','));
    else out.push(flag, String(v));
  }
  return out;
}

/** A word for a POSIX shell: quoted unless it is plain. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The grid in order: models, then recipes, then seeds. */
export function plannedRuns(plan: Plan): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const several = plan.recipes.length > 1;
  for (const model of plan.models) {
    for (const recipe of plan.recipes) {
      const group = several ? `${model.label}/${recipe.name}` : model.label;
      for (const seed of plan.seeds) {
        const dir = several ? `${model.label}-${recipe.name}-seed${seed}` : `${model.label}-seed${seed}`;
        const trainArgs = [
          '--model', model.model, ...(Object.keys(model.options).length ? ['--model-options', JSON.stringify(model.options)] : []),
          '--dataset', plan.dataset, '--seed', String(seed), ...recipeFlags(recipe),
        ];
        runs.push({ index: runs.length, group, model, recipe, seed, dir, trainArgs });
      }
    }
  }
  return runs;
}

/** What decides the runs' results (not the title or description): compared with an output folder's plan. */
export function planIdentity(plan: Plan): Record<string, unknown> {
  return { dataset: plan.dataset, seeds: plan.seeds, models: plan.models, recipes: plan.recipes };
}

/**
 * The differences between the plan an output folder's runs were made with and the plan given now, one
 * line each ("recipes[0].epochs: the runs have 15, the plan asks for 20"); empty when they agree.
 */
export function planDifferences(stored: unknown, current: unknown, at = ''): string[] {
  if (JSON.stringify(stored) === JSON.stringify(current)) return [];
  const bothObjects = stored && current && typeof stored === 'object' && typeof current === 'object' && Array.isArray(stored) === Array.isArray(current);
  if (!bothObjects || (Array.isArray(stored) && (stored as unknown[]).length !== (current as unknown[]).length)) {
    return [`${at || 'the plan'}: the output folder's runs were made with ${describe(stored)}, the plan asks for ${describe(current)}`];
  }
  const s = stored as Record<string, unknown>, c = current as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(s), ...Object.keys(c)])];
  return keys.flatMap((k) => planDifferences(s[k], c[k], Array.isArray(s) ? `${at}[${k}]` : at ? `${at}.${k}` : k));
}
