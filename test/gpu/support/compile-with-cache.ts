// Child process for test/gpu/algorithms.test.ts: compiles one grouped convolution on CUDA with a cuDNN
// algorithm cache file, in a fresh process (so that the in-memory cache is empty), and prints what
// compile did with the file and the algorithms chosen, as one JSON line.
// Usage: node -r tsx/cjs compile-with-cache.ts CACHE_FILE
import { compile, GraphBuilder } from '../../../lib/index.js';

async function main() {
  const g = new GraphBuilder();
  const x = g.input('images', [16, 12, 12]);
  const y = g.input('labels', [], 'i32');
  const t = g.conv2d(x, { outChannels: 32, kernel: 3, padding: 1, groups: 4, name: 'conv' });
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4, name: 'fc' });
  const s = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), {
    device: process.env.CRUNET_TEST_DEVICE ?? 'cuda:0', batchSize: 4, cudnn: { benchmark: true, cacheFile: process.argv[2] },
  });
  console.log(JSON.stringify({ cache: s.algorithmCache, algorithms: s.profile().find((p) => p.name === 'conv')?.algorithms }));
  s.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
