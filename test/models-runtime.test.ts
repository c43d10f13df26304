// CRU-Net-56 end to end on the CPU engine: inference at 224x224 and a training step. These need the
// native addon (npm run build); the graph-level checks live in models.test.ts.

import { strict as assert } from 'node:assert';
import { compile } from '../lib/index.js';
import { create } from '../lib/models/index.js';
import { TestRng, labels32, normal32 } from './support/random.js';

const PER_IMAGE = 3 * 224 * 224;

describe('models on the CPU engine: crunet56', function () {
  this.timeout(600_000);
  const model = create('crunet56');

  it('runs a forward pass at 224x224, batch 1', async () => {
    const s = await compile(model, { device: 'cpu', batchSize: 1, seed: 1 });
    try {
      const logits = await s.forward(normal32(new TestRng(1), PER_IMAGE));
      assert.equal(logits.length, 1000);
      assert.ok(logits.every(Number.isFinite), 'finite logits');
      assert.ok(logits.some((v) => v !== logits[0]), 'logits depend on the class');
    } finally {
      s.dispose();
    }
  });

  // That a shared factor is updated exactly once per step is checked against the reference SGD in
  // test/gradcheck.test.ts (a Parameter shared by three convolutions, and crunet_small's factor set).
  it('runs a training step at batch 2: the shared factor is one parameter and changes', async () => {
    const s = await compile(model, { device: 'cpu', batchSize: 2, seed: 1, optimizer: { lr: 0.01, momentum: 0.9 } });
    try {
      const rng = new TestRng(2);
      const images = normal32(rng, 2 * PER_IMAGE);
      const labels = labels32(rng, 2, 1000);
      const shared = 'layer3.shared.0.conv1.weight';
      assert.equal(s.parameterNames().filter((n) => n === shared).length, 1);
      const before = s.getParameter(shared);
      const r = await s.step(images, labels);
      assert.ok(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
      assert.ok(Number.isInteger(r.correct) && r.correct >= 0 && r.correct <= 2, `correct ${r.correct}`);
      const after = s.getParameter(shared);
      assert.equal(after.length, 640 * 1024);
      assert.ok(after.some((v, i) => v !== before[i]), 'the shared input factor was updated');
      const again = await s.step(images, labels);
      assert.ok(Number.isFinite(again.loss), `second loss ${again.loss}`);
    } finally {
      s.dispose();
    }
  });
});
