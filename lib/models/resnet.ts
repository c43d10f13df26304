// The baselines: ResNet-50/101 and ResNeXt-50 32x4d as published (post-activation, torchvision's layout
// and names, so their weights map one to one), ResNet-200 (pre-activation, He et al. 2016) and ResNeXt-50
// 136x1d (the paper's depthwise baseline, pre-activation like the rest of its MXNet code).

import type { Recipe } from './model.js';
import type { ResolvedOptions, Template } from './options.js';
import { IMAGENET_OUTS, IMAGENET_STRIDES } from './spec.js';

/** PyTorch's BatchNorm defaults. */
const TORCH_BN = { bnMomentum: 0.1, bnEps: 1e-5 };

function imagenet(units: number[], o: Pick<ResolvedOptions, 'width' | 'groups' | 'preActivation'>): Template {
  return {
    family: 'imagenet', stemWidth: 64, units, outs: IMAGENET_OUTS, strides: IMAGENET_STRIDES, cru: [false, false, false, false],
    defaults: { classes: 1000, inputSize: 224, channels: 3, ...TORCH_BN, ...o },
  };
}

const POST = { preActivation: false };

export const BASELINES: Recipe[] = [
  {
    name: 'resnet50',
    description: 'ResNet-50 (He et al. 2015), torchvision layout, post-activation: 3,4,6,3 bottlenecks, W64 R1',
    template: imagenet([3, 4, 6, 3], { width: 64, groups: 1, ...POST }),
  },
  {
    name: 'resnet101',
    description: 'ResNet-101 (He et al. 2015), torchvision layout, post-activation: 3,4,23,3 bottlenecks, W64 R1',
    template: imagenet([3, 4, 23, 3], { width: 64, groups: 1, ...POST }),
  },
  {
    name: 'resnet200',
    description: 'ResNet-200, pre-activation (He et al. 2016, fb.resnet.torch): 3,24,36,3 bottlenecks, W64 R1',
    reported: { top1Error: 21.7, source: 'He et al. 2016, as cited by the CRU-Net paper' },
    template: imagenet([3, 24, 36, 3], { width: 64, groups: 1, preActivation: true }),
  },
  {
    name: 'resnext50_32x4d',
    description: 'ResNeXt-50 32x4d (Xie et al. 2017), torchvision layout, post-activation: 3,4,6,3 units, W128 R32',
    template: imagenet([3, 4, 6, 3], { width: 128, groups: 32, ...POST }),
  },
  {
    name: 'resnext50_136x1d',
    description: 'ResNeXt-50 136x1d (the CRU-Net paper\'s depthwise baseline), pre-activation: 3,4,6,3 units, W136 depthwise',
    template: imagenet([3, 4, 6, 3], { width: 136, groups: 'depthwise', preActivation: true }),
  },
];
