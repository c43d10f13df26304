// The memory planner (native/core/memory_plan.cc) on its own: offsets on the backend's alignment (64 on
// the CPU, 256 on CUDA, where cuDNN's kernels assume cudaMalloc's alignment of every operand), and no two
// buffers with overlapping lifetimes sharing a byte.
import { strict as assert } from 'node:assert';
import { native } from '../lib/engine/native.js';
import { TestRng } from './support/random.js';

function requests(rng: TestRng, n: number) {
  return Array.from({ length: n }, () => {
    const first = rng.int(0, 40);
    // Sizes that are rarely multiples of anything: 1 byte to ~3 MB, odd ones included.
    return { bytes: rng.int(1, 3e6), first, last: first + rng.int(0, 12) };
  });
}

describe('memory plan', () => {
  for (const alignment of [64, 256, 4096]) {
    for (const reuse of [true, false]) {
      it(`places every buffer on a multiple of ${alignment} bytes, without collisions (reuse ${reuse})`, () => {
        const rng = new TestRng(alignment * 2 + Number(reuse));
        const req = requests(rng, 200);
        const plan = native().planMemory(req, reuse, alignment);
        assert.equal(plan.offsets.length, req.length);
        const bad = plan.offsets.filter((o) => o % alignment !== 0);
        assert.deepEqual(bad, [], `${bad.length} of ${req.length} offsets are not multiples of ${alignment}`);
        assert.equal(plan.arenaBytes % alignment, 0);
        for (let i = 0; i < req.length; i++) {
          assert.ok(plan.offsets[i]! + req[i]!.bytes <= plan.arenaBytes, `buffer ${i} ends past the arena`);
          for (let j = i + 1; j < req.length; j++) {
            const live = req[i]!.first <= req[j]!.last && req[j]!.first <= req[i]!.last;
            const overlap = plan.offsets[i]! < plan.offsets[j]! + req[j]!.bytes && plan.offsets[j]! < plan.offsets[i]! + req[i]!.bytes;
            assert.ok(!(live && overlap), `buffers ${i} and ${j} are live together and share bytes`);
          }
        }
        if (reuse) assert.ok(plan.arenaBytes < plan.naiveBytes, 'reuse saves nothing on these lifetimes');
      });
    }
  }

  it('refuses an alignment that is not a power of two, naming it', () => {
    assert.throws(() => native().planMemory([{ bytes: 10, first: 0, last: 1 }], true, 96), /memory plan: alignment 96 is not a power of two/);
  });
});
