import { strict as assert } from 'node:assert';
import { Rng } from '../lib/train/rng.js';

describe('Rng', () => {
  it('is xoshiro128** 1.1: matches the reference C code', () => {
    // Outputs of xoshiro128starstar.c's next() from s = {1, 2, 3, 4}.
    const r = Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 4] });
    assert.deepEqual(Array.from({ length: 8 }, () => r.nextUint32()), [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
    const q = Rng.fromState({ algorithm: 'xoshiro128**', s: [0x9e3779b9, 0x7f4a7c15, 0xdeadbeef, 0x01234567] });
    for (let i = 0; i < 1000; i++) q.nextUint32();
    assert.deepEqual(q.state().s, [2156395321, 991895496, 1038606249, 430683894]);
  });

  it('is deterministic per seed and differs between seeds', () => {
    const draw = (seed: number) => { const r = new Rng(seed); return Array.from({ length: 16 }, () => r.nextUint32()); };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
    assert.notDeepEqual(draw(1), draw(2 ** 32 + 1)); // the high half of the seed counts
    assert.notDeepEqual(draw(-1), draw(1));
    assert.throws(() => new Rng(1.5), /seed must be a safe integer, but received 1\.5/);
  });

  it('saves and restores its state, through JSON, mid-stream', () => {
    const r = new Rng(123);
    for (let i = 0; i < 37; i++) r.random();
    const saved = JSON.parse(JSON.stringify(r.state()));
    const next = [r.random(), r.int(10), r.normal(), ...r.permutation(20)];
    const t = Rng.fromState(saved);
    assert.deepEqual([t.random(), t.int(10), t.normal(), ...t.permutation(20)], next);
    const u = new Rng(0);
    u.restore(saved);
    assert.equal(u.random(), next[0]);
    assert.throws(() => u.restore({ algorithm: 'xoshiro128**', s: [0, 0, 0, 0] }), /not all 0/);
    assert.throws(() => u.restore({ algorithm: 'mt', s: [1, 2, 3, 4] } as never), /Rng\.restore: expected/);
    assert.throws(() => u.restore({ algorithm: 'xoshiro128**', s: [1, 2, 3, 2 ** 32] }), /four unsigned 32-bit words/);
  });

  it('draws in range: random in [0,1), int uniform without bias, permutations', () => {
    const r = new Rng(5);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60000; i++) {
      const x = r.random();
      assert.ok(x >= 0 && x < 1);
      counts[r.int(6)]++;
    }
    // chi-square with 5 degrees of freedom: 20.5 is the 0.999 quantile
    const chi = counts.reduce((a, c) => a + (c - 10000) ** 2 / 10000, 0);
    assert.ok(chi < 20.5, `chi-square ${chi} (${counts})`);
    assert.equal(r.int(1), 0);
    assert.ok(r.int(2 ** 32) < 2 ** 32);
    assert.throws(() => r.int(0), /n must be an integer in \[1, 2\^32\]/);
    const p = r.permutation(1000);
    assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
    assert.notDeepEqual([...p], Array.from({ length: 1000 }, (_, i) => i));
    const arr = ['a', 'b', 'c', 'd'];
    assert.equal(r.shuffle(arr), arr);
    assert.deepEqual([...arr].sort(), ['a', 'b', 'c', 'd']);
    let sum = 0, sq = 0;
    for (let i = 0; i < 20000; i++) { const z = r.normal(); sum += z; sq += z * z; }
    assert.ok(Math.abs(sum / 20000) < 0.05 && Math.abs(sq / 20000 - 1) < 0.05);
  });

  it('split() gives a different stream and advances the parent deterministically', () => {
    const a = new Rng(9), b = new Rng(9);
    const ca = a.split(), cb = b.split();
    assert.deepEqual(ca.state(), cb.state());
    assert.notDeepEqual(ca.state(), a.state());
    assert.equal(a.nextUint32(), b.nextUint32());
  });
});
