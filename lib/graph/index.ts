export * from './ir.js';
export { Parameter, kaimingNormal, linearDefault } from './parameter.js';
export { GraphBuilder, Value } from './builder.js';
export type { Graph, Conv2dOptions, BatchNormOptions, PoolOptions, AvgPoolOptions, LinearOptions, Pair } from './builder.js';
