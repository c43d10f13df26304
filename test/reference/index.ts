// The float64 reference ops (one file per op, forward and backward side by side), the whole-graph
// reference interpreter, the reference SGD update, and the comparison helpers.
export * from './add.js';
export * from './batchNorm.js';
export * from './check.js';
export * from './conv2d.js';
export * from './graph.js';
export * from './linear.js';
export * from './pool.js';
export * from './relu.js';
export * from './sgd.js';
export * from './softmaxCrossEntropy.js';
