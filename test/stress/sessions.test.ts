// Stress (npm run test:stress, not npm test): many compile/dispose cycles and many small steps must
// not grow the process. The bound: resident memory may grow by less than 50 MiB after a warm-up (the
// allocator's and V8's steady state), where a leak of one step's or one session's buffers per
// iteration would add hundreds of MiB.
import { strict as assert } from 'node:assert';
import { compile } from '../../lib/index.js';
import { smallNet } from '../support/small-net.js';

const MiB = 1024 * 1024;
const BOUND = 50 * MiB;

const rss = () => process.memoryUsage().rss;

describe('stress: sessions', () => {
  it('200 compile/dispose cycles (with a step each): RSS grows < 50 MiB after 20 cycles of warm-up', async () => {
    const graph = smallNet({ width: 32, size: 16 });
    const images = new Float32Array(8 * 3 * 16 * 16).fill(0.5);
    const labels = new Int32Array(8);
    let base = 0;
    for (let i = 0; i < 200; i++) {
      if (i === 20) base = rss();
      const s = await compile(graph, { batchSize: 8, seed: i });
      await s.step(images, labels);
      s.dispose();
    }
    const growth = rss() - base;
    assert.ok(growth < BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB over 180 cycles`);
  });

  it('10,000 small steps: RSS grows < 50 MiB after 500 steps of warm-up', async () => {
    const s = await compile(smallNet({ width: 8, size: 6 }), { batchSize: 4, seed: 1, optimizer: { lr: 0.01, momentum: 0.9 } });
    try {
      const images = Float32Array.from({ length: 4 * 3 * 36 }, (_, i) => Math.sin(i));
      const labels = new Int32Array([0, 1, 2, 3]);
      let base = 0;
      for (let i = 0; i < 10_000; i++) {
        if (i === 500) base = rss();
        const r = await s.step(images, labels);
        assert.ok(Number.isFinite(r.loss));
      }
      const growth = rss() - base;
      assert.ok(growth < BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB over 9,500 steps`);
    } finally {
      s.dispose();
    }
  });
});
