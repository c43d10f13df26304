// Both builds of the addon, loaded by explicit path (CRUNET_ADDON) in child processes within one test
// run: the cmake-js build in build/Release (which the rest of the suite uses) and the node-gyp build,
// which .ci/run moves to build-gyp/Release so that build/Release keeps exactly one .node file
// (node-gyp-build loads the first it finds there). Each names its build system and runs the same
// seeded training step; the losses agree.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertDistCurrent, node, ROOT } from './support/spawn.js';

const BUILDS = [
  { system: 'cmake-js', file: path.join(ROOT, 'build', 'Release', 'crunet.node') },
  { system: 'node-gyp', file: path.join(ROOT, 'build-gyp', 'Release', 'crunet.node') },
];

// One conv -> BN -> ReLU -> GAP -> linear step at batch 4 on fixed data; prints what the parent compares.
const STEP = `
const { compile, GraphBuilder, buildInfo } = require('./dist/lib/index.js');
(async () => {
  const g = new GraphBuilder();
  const x = g.input('images', [3, 8, 8]), y = g.input('labels', [], 'i32');
  const h = g.relu(g.batchNorm(g.conv2d(x, { outChannels: 8, kernel: 3, padding: 1, name: 'conv' }), { name: 'bn' }));
  const logits = g.linear(g.globalAvgPool(h), { outFeatures: 4, name: 'fc' });
  const s = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 4, seed: 7, optimizer: { lr: 0.1, momentum: 0.9 } });
  const images = Float32Array.from({ length: 4 * 192 }, (_, i) => Math.sin(i * 0.37));
  const first = await s.step(images, new Int32Array([0, 1, 2, 3]));
  const second = await s.step(images, new Int32Array([0, 1, 2, 3]));
  console.log(JSON.stringify({ buildSystem: buildInfo().buildSystem, losses: [first.loss, second.loss] }));
  s.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('the cmake-js and node-gyp builds of the addon', () => {
  before(() => assertDistCurrent());

  it('build/Release holds exactly one addon (node-gyp-build loads the first it finds)', () => {
    const nodes = fs.readdirSync(path.join(ROOT, 'build', 'Release')).filter((f) => f.endsWith('.node'));
    assert.deepEqual(nodes, ['crunet.node']);
  });

  it('each build, loaded by path, names its build system; the same step gives the same losses', function () {
    const present = BUILDS.filter((b) => fs.existsSync(b.file));
    const missing = BUILDS.filter((b) => !fs.existsSync(b.file)).map((b) => `${b.system} (${b.file})`);
    // CI builds both (.ci/run sets CRUNET_TEST_BOTH_BUILDS=1); a developer tree usually has only cmake-js.
    if (missing.length && process.env.CRUNET_TEST_BOTH_BUILDS === '1') assert.fail(`not built: ${missing.join(', ')}`);
    assert.ok(present.length > 0, 'no addon built');
    const results = present.map((b) => {
      const r = node(['-e', STEP], { CRUNET_ADDON: b.file });
      assert.equal(r.code, 0, `${b.file}: ${r.err}`);
      const res = JSON.parse(r.out.trim().split('\n').at(-1)!) as { buildSystem: string; losses: number[] };
      assert.equal(res.buildSystem, b.system, `${b.file} says it was built with ${res.buildSystem}`);
      assert.ok(res.losses.every(Number.isFinite), JSON.stringify(res));
      return res;
    });
    if (results.length < 2) this.skip();  // only one build here: it loaded by path and named itself
    // Same sources, compiler and oneDNN: the same kernels, so the losses agree to float32 rounding.
    const [a, b] = results;
    a!.losses.forEach((l, i) => assert.ok(Math.abs(l - b!.losses[i]!) <= 1e-6 * Math.abs(l), `step ${i + 1}: cmake-js ${l}, node-gyp ${b!.losses[i]}`));
  });
});
