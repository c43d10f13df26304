// The small network the hardening and stress tests compile: conv -> BN -> ReLU (-> `extraConvs` x
// conv -> ReLU, to make a step longer) -> global pool -> linear -> loss, on [3, size, size] images with 4
// classes. Node names conv, bn, conv0..., fc.
import { GraphBuilder } from '../../lib/index.js';

export function smallNet({ width = 8, size = 6, extraConvs = 0 }: { width?: number; size?: number; extraConvs?: number } = {}) {
  const g = new GraphBuilder();
  const x = g.input('images', [3, size, size]);
  const y = g.input('labels', [], 'i32');
  let t = g.conv2d(x, { outChannels: width, kernel: 3, padding: 1, name: 'conv' });
  t = g.relu(g.batchNorm(t, { name: 'bn' }));
  for (let i = 0; i < extraConvs; i++) t = g.relu(g.conv2d(t, { outChannels: width, kernel: 3, padding: 1, name: `conv${i}` }));
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}
