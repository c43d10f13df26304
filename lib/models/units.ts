// The block-term unit: one builder for the ResNet bottleneck (R = 1), the ResNeXt unit (R groups), the
// Nx1d unit (R = width, depthwise) and the Collective Residual Unit (docs/MODELS.md sections 1-3).
//
// Layer names follow torchvision's Bottleneck (conv1/bn1 ... conv3/bn3, downsample.N) so that published
// post-activation weights map one to one. Pre-activation names a BN after the conv it feeds (bn1 -> conv1)
// and its projection shortcut as nn.Sequential(BN, ReLU, Conv) would: downsample.0 / .1 / .2.

import { GraphBuilder, Parameter, Value, kaimingNormal } from '../graph/index.js';
import type { BnConfig } from './spec.js';

/**
 * The tensors a factor set of L Collective Residual Units shares: the 1x1 input factor (D x C) and the
 * depthwise 3x3 core (D x 1 x 3 x 3). Every BN and every other 1x1 belongs to one unit.
 */
export interface FactorSet {
  input: Parameter;
  core: Parameter;
}

export interface UnitSpec {
  /** Name prefix of every layer of the unit, e.g. "layer3.0". */
  name: string;
  /** Output (trunk) width C. */
  out: number;
  /** Bottleneck width W, or the CRU width D. */
  width: number;
  /** Groups R of the 3x3 core (a CRU core is always depthwise: R = D). */
  groups: number;
  /** Carried by the 3x3 core (and the projection shortcut) of a stage's first unit. */
  stride: number;
  preActivation: boolean;
  bn: BnConfig;
  /** Makes the unit a Collective Residual Unit of this factor set. */
  factors?: FactorSet;
}

/** torchvision initialises convolutions He-normal over fan-out: out channels x kernel area. */
function convInit(shape: number[]) {
  return kaimingNormal(shape[0]! * shape[2]! * shape[3]!);
}

/** Creates the shared tensors of one CRU factor set for trunk width C and CRU width D. */
export function factorSet(g: GraphBuilder, name: string, trunk: number, width: number): FactorSet {
  const inShape = [width, trunk, 1, 1];
  const coreShape = [width, 1, 3, 3];
  return {
    input: g.param(`${name}.conv1.weight`, inShape, { init: convInit(inShape) }),
    core: g.param(`${name}.conv2.weight`, coreShape, { init: convInit(coreShape) }),
  };
}

/** BN then ReLU, as every pre-activation layer starts. */
function bnRelu(g: GraphBuilder, x: Value, bn: BnConfig, bnName: string, reluName: string): Value {
  return g.relu(g.batchNorm(x, { ...bn, name: bnName }), reluName);
}

/** Builds one residual unit on `x` and returns its output ([out, H/stride, W/stride]). */
export function blockTermUnit(g: GraphBuilder, x: Value, u: UnitSpec): Value {
  if (u.factors) return collectiveUnit(g, x, u, u.factors);
  return u.preActivation ? preActUnit(g, x, u) : postActUnit(g, x, u);
}

function needsProjection(x: Value, u: UnitSpec): boolean {
  return x.shape[0] !== u.out || u.stride !== 1;
}

function postActUnit(g: GraphBuilder, x: Value, u: UnitSpec): Value {
  const n = u.name;
  const bn = (v: Value, name: string) => g.batchNorm(v, { ...u.bn, name: `${n}.${name}` });
  let h = g.conv2d(x, { outChannels: u.width, kernel: 1, name: `${n}.conv1` });
  h = g.relu(bn(h, 'bn1'), `${n}.relu1`);
  h = g.conv2d(h, { outChannels: u.width, kernel: 3, padding: 1, stride: u.stride, groups: u.groups, name: `${n}.conv2` });
  h = g.relu(bn(h, 'bn2'), `${n}.relu2`);
  h = bn(g.conv2d(h, { outChannels: u.out, kernel: 1, name: `${n}.conv3` }), 'bn3');
  let shortcut = x;
  if (needsProjection(x, u)) {
    shortcut = bn(g.conv2d(x, { outChannels: u.out, kernel: 1, stride: u.stride, name: `${n}.downsample.0` }), 'downsample.1');
  }
  return g.relu(g.add(h, shortcut, `${n}.add`), `${n}.relu3`);
}

function preActUnit(g: GraphBuilder, x: Value, u: UnitSpec): Value {
  const n = u.name;
  let h = g.conv2d(bnRelu(g, x, u.bn, `${n}.bn1`, `${n}.relu1`), { outChannels: u.width, kernel: 1, name: `${n}.conv1` });
  h = g.conv2d(bnRelu(g, h, u.bn, `${n}.bn2`, `${n}.relu2`), {
    outChannels: u.width, kernel: 3, padding: 1, stride: u.stride, groups: u.groups, name: `${n}.conv2`,
  });
  h = g.conv2d(bnRelu(g, h, u.bn, `${n}.bn3`, `${n}.relu3`), { outChannels: u.out, kernel: 1, name: `${n}.conv3` });
  return g.add(h, preActShortcut(g, x, u), `${n}.add`);
}

/** The unit input itself, or its own BN, ReLU and a 1x1 projection at the unit's stride. */
function preActShortcut(g: GraphBuilder, x: Value, u: UnitSpec, weight?: Parameter): Value {
  if (!needsProjection(x, u)) return x;
  const n = `${u.name}.downsample`;
  const a = bnRelu(g, x, u.bn, `${n}.0`, `${n}.1`);
  return g.conv2d(a, { outChannels: u.out, kernel: 1, stride: u.stride, weight, name: `${n}.2` });
}

/**
 * docs/MODELS.md section 2. In a stage's first unit the projection P (Cin -> C) is used twice, each use after its
 * own BN and ReLU: at stride 1 to feed the branch (so the shared 1x1 always sees C channels) and at the
 * unit's stride as the shortcut. The stride then sits in the shared depthwise core, the branch's only one.
 */
function collectiveUnit(g: GraphBuilder, x: Value, u: UnitSpec, f: FactorSet): Value {
  const n = u.name;
  let t = x;
  let projection: Parameter | undefined;
  if (needsProjection(x, u)) {
    const shape = [u.out, x.shape[0]!, 1, 1];
    projection = g.param(`${n}.proj.weight`, shape, { init: convInit(shape) });
    t = g.conv2d(bnRelu(g, x, u.bn, `${n}.bn0`, `${n}.relu0`), { outChannels: u.out, kernel: 1, weight: projection, name: `${n}.proj` });
  }
  // Nothing between the shared 1x1 and the shared core (docs/MODELS.md section 2, step b).
  let h = g.conv2d(bnRelu(g, t, u.bn, `${n}.bn1`, `${n}.relu1`), { outChannels: u.width, kernel: 1, weight: f.input, name: `${n}.conv1` });
  h = g.conv2d(h, { outChannels: u.width, kernel: 3, padding: 1, stride: u.stride, groups: u.width, weight: f.core, name: `${n}.conv2` });
  h = g.conv2d(bnRelu(g, h, u.bn, `${n}.bn3`, `${n}.relu3`), { outChannels: u.width, kernel: 1, name: `${n}.conv3` });
  h = g.conv2d(bnRelu(g, h, u.bn, `${n}.bn4`, `${n}.relu4`), { outChannels: u.out, kernel: 1, name: `${n}.conv4` });
  return g.add(h, preActShortcut(g, x, u, projection), `${n}.add`);
}
