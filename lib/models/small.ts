// Small-image models for 28x28 (Fashion-MNIST) and 32x32 (CIFAR) inputs: a 3x3 stride-1 stem of 32 without
// max-pool, then three stages (widths 32/128/256, 1/3/3 units) at 1, 1/2 and 1/4 of the input side
// (docs/MODELS.md section 4, last paragraph). All pre-activation, as the CRU-Nets.
//
// Budgets at 10 classes (MACs scale with the input area; summary() gives them at any size):
//                  params    MACs 28x28  MACs 32x32
//   crunet_small   329,578   39.5 M      52.2 M     CRU at 14x14 (D=64, one factor set of 3), as CRU-Net-56 @x14
//   resnext_small  340,522   31.4 M      41.7 M     the same trunk with ResNeXt units, W32/64/128, R=8
//   resnet_small   348,502   31.3 M      41.4 M     the same trunk with ResNet bottlenecks, W18/36/72
// The baselines stay within 6 % of crunet_small's parameters, so accuracy differences are not a matter
// of size. The CRU's extra multiply-adds are its first unit's projection and shared 1x1 at 28x28, as
// in CRU-Net-56. Kept light on purpose: crunet_small is the default for training on a 2-core CPU.

import type { Recipe } from './model.js';
import type { ResolvedOptions, Template } from './options.js';

function small(cru: boolean[], o: Pick<ResolvedOptions, 'width' | 'groups' | 'bnMomentum' | 'bnEps'> & { L?: number; D?: number[] }): Template {
  return {
    family: 'small', stemWidth: 32, units: [1, 3, 3], outs: [32, 128, 256], strides: [1, 2, 2], cru,
    defaults: { classes: 10, inputSize: 28, channels: 1, preActivation: true, ...o },
  };
}

export const SMALL: Recipe[] = [
  {
    name: 'crunet_small',
    description: 'small CRU-Net for 28x28/32x32 (the Fashion-MNIST default): 3x3 stem 32, stages 32/128/256, CRU at 1/2 resolution (D=64, one set of 3)',
    template: small([false, true, false], { width: 32, groups: 8, bnMomentum: 0.1, bnEps: 1e-3, L: 3, D: [64] }),
  },
  {
    name: 'resnext_small',
    description: 'small pre-activation ResNeXt for 28x28/32x32: 3x3 stem 32, stages 32/128/256, W32 R8 (crunet_small\'s parameter budget)',
    template: small([false, false, false], { width: 32, groups: 8, bnMomentum: 0.1, bnEps: 1e-5 }),
  },
  {
    name: 'resnet_small',
    description: 'small pre-activation ResNet for 28x28/32x32: 3x3 stem 32, stages 32/128/256, W18 R1 (crunet_small\'s parameter budget)',
    template: small([false, false, false], { width: 18, groups: 1, bnMomentum: 0.1, bnEps: 1e-5 }),
  },
];
