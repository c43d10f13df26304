// A named model: its recipe, resolved options, graph and per-stage layout, with the counts summary() needs.

import type { Graph } from '../graph/index.js';
import { graphMacs } from './macs.js';
import { buildNetwork, type Section } from './network.js';
import { resolveOptions, type ModelOptions, type ResolvedOptions, type Template } from './options.js';
import { summaryTable, type StageStats } from './summary.js';

/** What the paper (or the source it cites) reports for a model: ImageNet-1k top-1 error, single 224 crop. */
export interface Reported {
  top1Error: number;
  /** "MB" as the paper prints it: MiB of float32 weights plus BN running statistics. */
  sizeMB?: number;
  source: string;
}

export interface Recipe {
  name: string;
  description: string;
  /** No released definition exists: the layout is a documented guess. */
  guess?: boolean;
  reported?: Reported;
  template: Template;
}

/** What a checkpoint stores to rebuild its model: `models.fromJSON(model.toJSON())`. */
export interface ModelJSON {
  name: string;
  options: ModelOptions;
}

export class Model {
  readonly name: string;
  readonly description: string;
  readonly options: ResolvedOptions;
  readonly graph: Graph;
  readonly sections: readonly Section[];
  readonly reported?: Reported;
  readonly guess: boolean;

  constructor(recipe: Recipe, options: ModelOptions = {}) {
    const resolved = resolveOptions(recipe.name, recipe.template, options);
    const built = buildNetwork(resolved.spec);
    this.name = recipe.name;
    this.description = recipe.description;
    this.options = resolved.options;
    this.graph = built.graph;
    this.sections = built.sections;
    this.reported = recipe.reported;
    this.guess = recipe.guess ?? false;
  }

  /** Trainable parameters, each shared Parameter once (BN running statistics excluded), as papers count. */
  parameterCount(): number {
    return this.graph.parameters.filter((p) => p.trainable).reduce((a, p) => a + p.size, 0);
  }

  /** All stored floats: trainable parameters plus BN running statistics. */
  stateSize(): number {
    return this.graph.parameters.reduce((a, p) => a + p.size, 0);
  }

  /** Multiply-adds of one forward pass of one sample at the model's input size (convolutions and fc only). */
  macs(): number {
    return graphMacs(this.graph);
  }

  /** Per-stage parameters and multiply-adds; a parameter is counted in the first stage that uses it. */
  stages(): StageStats[] {
    const counted = new Set<string>();
    const byName = new Map(this.graph.parameters.map((p) => [p.name, p]));
    const nodes = new Map(this.graph.ir.nodes.map((n) => [n.name, n]));
    return this.sections.map(({ nodes: names, ...section }) => {
      let params = 0;
      for (const name of names) {
        for (const p of nodes.get(name)!.params) {
          const param = byName.get(p)!;
          if (counted.has(p) || !param.trainable) continue;
          counted.add(p);
          params += param.size;
        }
      }
      return { ...section, params, macs: graphMacs(this.graph, names) };
    });
  }

  /** The per-stage table in the style of the paper's Table 1. */
  summary(): string {
    return summaryTable(this);
  }

  toJSON(): ModelJSON {
    return { name: this.name, options: structuredClone(this.options) };
  }
}
