// The fixed op cases both op suites run (test/ops.test.ts against the float64 reference, and
// test/gpu/ops.test.ts on CUDA against the CPU), and the input generators they share.
// Each case: [batch, per-sample shape, options(, input generator)].
import type { BatchNormOptions, Conv2dOptions, PoolOptions } from '../../lib/graph/index.js';
import { normal32, type TestRng } from './random.js';

/** Draws n input values (default: normal32). */
export type InputGen = ((rng: TestRng, n: number) => Float32Array) & { label?: string };

/** Normal inputs of a given mean and spread, named in the test titles. */
export const normalInput = (mean: number, std: number): InputGen =>
  Object.assign((rng: TestRng, n: number) => normal32(rng, n, mean, std), { label: `input N(${mean}, ${std}^2)` });

/** Values in {-1, -0.5, 0, 0.5, 1}: exact zeros, where ReLU's gradient is 0. */
export const halves: InputGen = (rng, n) => Float32Array.from({ length: n }, () => rng.int(-2, 2) / 2);
/** 0/1 values: ties inside pooling windows. */
export const ties: InputGen = (rng, n) => Float32Array.from({ length: n }, () => rng.int(0, 1));

/** Plain, strided, padded, 1x1 and 7x7, grouped (4 and 32 groups), depthwise, rectangular, with and without bias. */
export const CONV_CASES: readonly [number, number[], Conv2dOptions][] = [
  [2, [16, 7, 9], { outChannels: 16, kernel: 3, padding: 1 }],
  [1, [8, 7, 9], { outChannels: 12, kernel: 3, stride: 2, padding: 1, bias: true }],
  [3, [16, 8, 8], { outChannels: 32, kernel: 1 }],
  [2, [8, 9, 7], { outChannels: 8, kernel: 1, stride: 2, bias: true }],
  [4, [4, 7, 9], { outChannels: 4, kernel: 7, padding: 1 }],
  [1, [2, 7, 9], { outChannels: 3, kernel: 7, bias: true }],
  [2, [3, 11, 13], { outChannels: 8, kernel: 7, stride: 2, padding: 3 }],
  [2, [16, 7, 9], { outChannels: 16, kernel: 3, padding: 1, groups: 4 }],
  [3, [16, 7, 9], { outChannels: 32, kernel: 3, stride: 2, padding: 1, groups: 4, bias: true }],
  [2, [32, 7, 9], { outChannels: 32, kernel: 1, groups: 4 }],
  [4, [8, 9, 7], { outChannels: 8, kernel: 3, stride: 2, groups: 4 }],
  [2, [64, 7, 9], { outChannels: 64, kernel: 3, padding: 1, groups: 32 }],
  [1, [64, 9, 7], { outChannels: 128, kernel: 3, stride: 2, padding: 1, groups: 32, bias: true }],
  [3, [32, 7, 9], { outChannels: 64, kernel: 1, stride: 2, groups: 32 }],
  [2, [16, 7, 9], { outChannels: 16, kernel: 3, padding: 1, groups: 16 }],
  [3, [24, 8, 10], { outChannels: 24, kernel: 3, stride: 2, padding: 1, groups: 24, bias: true }],
  [1, [8, 7, 9], { outChannels: 16, kernel: 3, padding: 1, groups: 8 }],
  [4, [8, 7, 9], { outChannels: 8, kernel: 7, padding: 1, groups: 8 }],
  [2, [32, 7, 9], { outChannels: 32, kernel: 3, groups: 32 }],
  [1, [4, 5, 6], { outChannels: 6, kernel: [1, 3], stride: [1, 2], padding: [0, 1] }],
  [2, [6, 1, 1], { outChannels: 4, kernel: 1, bias: true }],
];

export const BATCH_NORM_CASES: readonly [number, number[], BatchNormOptions, InputGen?][] = [
  [2, [8, 7, 9], {}],
  [1, [4, 5, 5], {}],
  [4, [16, 3, 3], { momentum: 0.3, eps: 1e-3 }],
  [3, [32, 1, 1], {}],
  [4, [10], {}],
  [2, [6], { momentum: 0.5 }],
  [3, [64, 4, 4], { momentum: 1 }],
  [3, [8, 4, 4], {}, normalInput(3, 0.5)], // mean far from 0: variance by E[x^2] - E[x]^2 loses digits
  [4, [8, 6, 6], {}, normalInput(100, 1)], // mean 100 against std 1: float sums of x lose the mean
];

export const RELU_CASES: readonly [number, number[], InputGen?][] = [[2, [4, 7, 9]], [3, [10]], [1, [3, 5, 5], halves]];

export const MAX_POOL_CASES: readonly [number, number[], PoolOptions][] = [
  [2, [4, 7, 9], { kernel: 2 }],
  [1, [8, 7, 9], { kernel: 3, stride: 2, padding: 1 }],
  [3, [3, 8, 8], { kernel: 3, stride: 1, padding: 1 }],
  [2, [5, 9, 7], { kernel: [3, 2], stride: [2, 1], padding: [1, 0] }],
  [4, [2, 6, 6], { kernel: 2, stride: 1 }],
  [2, [16, 11, 11], { kernel: 3, stride: 2 }],
];

/** Each runs with countIncludePad true and false. */
export const AVG_POOL_CASES: readonly [number, number[], PoolOptions][] = [
  [2, [4, 7, 9], { kernel: 2 }],
  [1, [8, 7, 9], { kernel: 3, stride: 2, padding: 1 }],
  [3, [3, 8, 8], { kernel: 3, stride: 1, padding: 1 }],
  [2, [5, 9, 7], { kernel: [3, 2], stride: [2, 1], padding: [1, 1] }],
  [4, [2, 5, 5], { kernel: 2, stride: 2, padding: 1 }],
];
