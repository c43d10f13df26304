// The cross-rank agreement check of a data-parallel compile (lib/dist/ddp.ts), without processes: every
// setting that changes what a step computes or how gradients are bucketed must be compared.
import assert from 'node:assert/strict';
import { describeDifference, rankFacts, type ParameterAccess } from '../lib/dist/ddp.js';
import type { GraphIR } from '../lib/graph/ir.js';

const ir = { inputs: [], nodes: [], outputs: [], params: [] } as unknown as GraphIR;
const store: ParameterAccess = {
  parameters: () => [{ name: 'fc.weight', shape: [10, 4], trainable: true }],
  getParameter: () => new Float32Array(40),
  setParameter: () => {},
};
const settings = { bucketMB: 25, lossScale: false, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9, groups: [{ match: /bn/, weightDecay: 0 }] }, ema: false };
const facts = (over: Record<string, unknown> = {}) => rankFacts(ir, store, 32, 'fp32', 'cpu', false, { ...settings, ...over });

describe('dist: what ranks must agree on', () => {
  it('equal facts agree', () => {
    assert.equal(describeDifference(1, facts(), facts()), undefined);
  });

  for (const [what, over, pattern] of [
    ['bucket size', { bucketMB: 1 }, /^bucketMB 1 on rank 1, 25 on rank 0$/],
    ['loss scaling', { lossScale: { initScale: 65536 } }, /^lossScale \{"initScale":65536\} on rank 1, false on rank 0$/],
    ['learning rate', { optimizer: { ...settings.optimizer, lr: 0.2 } }, /^optimizer .*"lr":0.2.* on rank 1, .*"lr":0.1.* on rank 0$/],
    ['a group\'s match', { optimizer: { ...settings.optimizer, groups: [{ match: /bias/, weightDecay: 0 }] } }, /optimizer .*\/bias\/.* on rank 1/],
    ['the moving average', { ema: { decay: 0.999 } }, /^ema \{"decay":0.999\} on rank 1, false on rank 0$/],
  ] as const) {
    it(`a different ${what} is named`, () => {
      assert.match(describeDifference(1, facts(over), facts()) ?? 'agreed', pattern);
    });
  }
});
