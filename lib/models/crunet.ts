// The CRU-Nets of docs/MODELS.md section 4: ResNeXt-50-style trunks whose 28x28 and/or 14x14 stages are made
// of Collective Residual Units. All pre-activation, BN momentum 0.1 (MXNet's 0.9) and eps 1e-3 as released.

import type { Recipe, Reported } from './model.js';
import type { ResolvedOptions, Template } from './options.js';
import { IMAGENET_OUTS, IMAGENET_STRIDES } from './spec.js';

const SOURCE = 'CRU-Net paper (Chen et al., IJCAI 2018), single 224 crop';

interface Layout {
  units: number[];
  cru: boolean[];
  D: number[];
  width: number;
  groups: ResolvedOptions['groups'];
  outs?: number[];
}

function crunet(l: Layout): Template {
  return {
    family: 'imagenet', stemWidth: 64, units: l.units, outs: l.outs ?? IMAGENET_OUTS, strides: IMAGENET_STRIDES, cru: l.cru,
    defaults: {
      classes: 1000, inputSize: 224, channels: 3, width: l.width, groups: l.groups,
      bnMomentum: 0.1, bnEps: 1e-3, preActivation: true, L: 6, D: l.D,
    },
  };
}

const AT14 = [false, false, true, false];
const AT28x14 = [false, true, true, false];
const reported = (top1Error: number, sizeMB: number): Reported => ({ top1Error, sizeMB, source: SOURCE });

export const CRUNETS: Recipe[] = [
  {
    name: 'crunet56',
    description: 'CRU-Net-56 @x14 32x4d: ResNeXt-50 32x4d with a CRU conv4 (D=640, one factor set of 6)',
    reported: reported(21.9, 98),
    template: crunet({ units: [3, 4, 6, 3], cru: AT14, D: [640], width: 128, groups: 32 }),
  },
  {
    name: 'crunet56_136x1d',
    description: 'CRU-Net-56 @x14 136x1d (documented guess: no released definition): the ResNeXt-50 136x1d trunk with the D=640 CRU conv4',
    guess: true,
    reported: reported(21.7, 98),
    template: crunet({ units: [3, 4, 6, 3], cru: AT14, D: [640], width: 136, groups: 'depthwise' }),
  },
  {
    name: 'crunet116',
    description: 'CRU-Net-116 @x28x14 32x4d: 3,6,18,3 units, CRU conv3 (D=352, one set of 6) and conv4 (D=704, three sets of 6)',
    reported: reported(20.6, 168),
    template: crunet({ units: [3, 6, 18, 3], cru: AT28x14, D: [352, 704], width: 128, groups: 32 }),
  },
  {
    name: 'crunet116_wide',
    description: 'CRU-Net-116 @x28x14 wider 64x4d (documented guess: no released definition): 64x4d plain stages, CRU widths 576/1152',
    guess: true,
    reported: reported(20.3, 318),
    template: crunet({ units: [3, 6, 18, 3], cru: AT28x14, D: [576, 1152], width: 256, groups: 64 }),
  },
  {
    name: 'crunet56_tiny',
    description: 'CRU-Net-56 tiny (documented guess: no released definition): stage widths halved to 128/256/512/1024, 32x4d plain stages, D=512 CRU conv4',
    guess: true,
    reported: reported(22.9, 48),
    template: crunet({ units: [3, 4, 6, 3], cru: AT14, D: [512], width: 128, groups: 32, outs: [128, 256, 512, 1024] }),
  },
];
