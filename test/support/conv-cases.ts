// The fixed conv2d cases both op suites run (test/ops.test.ts against the float64 reference, and
// test/gpu/ops.test.ts on CUDA against the CPU): plain, strided, padded, 1x1 and 7x7, grouped (4 and 32
// groups), depthwise, rectangular, with and without bias. [batch, per-sample [C, H, W], options].
import type { Conv2dOptions } from '../../lib/graph/index.js';

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
