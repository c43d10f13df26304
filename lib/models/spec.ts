// The plain-data description of a network that network.ts turns into a graph. A model recipe plus the
// user's options resolve to one NetSpec; nothing here touches the GraphBuilder.

/** BatchNorm settings in PyTorch's convention (momentum 0.1 = MXNet's 0.9). */
export interface BnConfig {
  momentum: number;
  eps: number;
}

/** A stage of plain block-term units: 1x1 -> 3x3 with R groups -> 1x1 (R = 1 ResNet, R = width Nx1d). */
export interface PlainStage {
  kind: 'plain';
  units: number;
  /** Trunk width C (every unit's output). */
  out: number;
  /** Bottleneck width W (R terms of W / R channels each). */
  width: number;
  groups: number;
  /** Stride of the first unit. */
  stride: number;
}

/** A stage of Collective Residual Units: factor sets of `setLength` units share the 1x1 input factor and the depthwise core. */
export interface CruStage {
  kind: 'cru';
  units: number;
  out: number;
  /** CRU width D (the depthwise core has D groups of 1). */
  width: number;
  setLength: number;
  stride: number;
}

export type StageSpec = PlainStage | CruStage;

export interface NetSpec {
  channels: number;
  inputSize: number;
  classes: number;
  /** 'imagenet': 7x7/2 conv, BN, ReLU, 3x3/2 max-pool. 'small': 3x3/1 conv, BN, ReLU. */
  stem: { kind: 'imagenet' | 'small'; width: number };
  stages: StageSpec[];
  preActivation: boolean;
  bn: BnConfig;
}

/** Stage output widths, strides and unit counts of the ImageNet networks (torchvision's layer1..layer4). */
export const IMAGENET_OUTS = [256, 512, 1024, 2048];
export const IMAGENET_STRIDES = [1, 2, 2, 2];
