// The model zoo: `models.create(name, options)`, the block-term unit builder and the summary renderers.
export { create, list, fromJSON } from './registry.js';
export { Model } from './model.js';
export type { ModelJSON, Recipe, Reported } from './model.js';
export type { ModelOptions, ResolvedOptions } from './options.js';
export { blockTermUnit, factorSet } from './units.js';
export type { FactorSet, UnitSpec } from './units.js';
export type { Section } from './network.js';
export { graphMacs, nodeMacs } from './macs.js';
export { summaryTable, summaryJSON, compareTable, modelTable, formatMacs, formatCount } from './summary.js';
export type { StageStats, SummaryJSON, TableOptions } from './summary.js';
