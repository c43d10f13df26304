// models.create / list / fromJSON: the named models of the zoo.

import { CRUNETS } from './crunet.js';
import { Model, type ModelJSON, type Recipe } from './model.js';
import type { ModelOptions } from './options.js';
import { BASELINES } from './resnet.js';
import { SMALL } from './small.js';

const RECIPES = new Map<string, Recipe>([...BASELINES, ...CRUNETS, ...SMALL].map((r) => [r.name, r]));

function recipe(name: unknown): Recipe {
  const r = typeof name === 'string' ? RECIPES.get(name) : undefined;
  if (!r) {
    const message = `models: unknown model ${JSON.stringify(name)}; valid models: ${[...RECIPES.keys()].join(', ')}`;
    throw typeof name === 'string' ? new RangeError(message) : new TypeError(message);
  }
  return r;
}

/** Builds a named model, e.g. `create('crunet56', { classes: 100 })`. */
export function create(name: string, options: ModelOptions = {}): Model {
  return new Model(recipe(name), options);
}

/** Every model name with its description; `guess` marks layouts built from a documented guess. */
export function list(): { name: string; description: string; guess: boolean }[] {
  return [...RECIPES.values()].map((r) => ({ name: r.name, description: r.description, guess: r.guess ?? false }));
}

/** Rebuilds a model from `model.toJSON()` (as a checkpoint stores it). */
export function fromJSON(json: ModelJSON | string): Model {
  const j: unknown = typeof json === 'string' ? JSON.parse(json) : json;
  if (!j || typeof j !== 'object' || typeof (j as ModelJSON).name !== 'string') {
    throw new TypeError(`models.fromJSON: expected {"name", "options"}, but received ${JSON.stringify(j)}`);
  }
  return create((j as ModelJSON).name, (j as ModelJSON).options ?? {});
}
