// cuDNN algorithm choice as Session.profile() reports it: the candidates of each direction's search,
// the benchmark limit and the deterministic filter, and the algorithm cache file across processes.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compile, GraphBuilder, type AlgorithmChoice, type CudnnOptions } from '../../lib/index.js';
import { GPU } from './compare.js';

function conv(name: string) {
  const g = new GraphBuilder();
  const x = g.input('images', [32, 14, 14]);
  const y = g.input('labels', [], 'i32');
  const t = g.conv2d(x, { outChannels: 64, kernel: 3, padding: 1, groups: 8, name });
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}

async function choices(cudnn: CudnnOptions, name: string): Promise<AlgorithmChoice[]> {
  // A node name per test keeps sessions apart only in the report: the cache is keyed by shapes and
  // options, so every test uses options no other test uses.
  const s = await compile(conv(name), { device: GPU, batchSize: 8, cudnn });
  try {
    const a = s.profile().find((p) => p.name === name)!.algorithms;
    assert.ok(a, `${name}: profile() has the algorithm report`);
    return a;
  } finally {
    s.dispose();
  }
}

describe('cuDNN algorithm choice', () => {
  it('benchmark: times at most benchmarkLimit candidates per direction and picks the fastest', async () => {
    const a = await choices({ benchmark: true, benchmarkLimit: 3, allowTF32: false }, 'bench3');
    assert.deepEqual(a.map((d) => d.direction), ['forward', 'backward-data', 'backward-filter']);
    for (const d of a) {
      assert.equal(d.mode, 'benchmark');
      assert.equal(d.cached, false);
      assert.ok(d.candidates.length >= 1 && d.candidates.length <= 3, `${d.direction}: ${d.candidates.length} candidates`);
      const usable = d.candidates.filter((c) => c.skipped === null);
      assert.ok(usable.every((c) => c.ms > 0), `${d.direction}: every usable candidate was timed`);
      const fastest = usable.reduce((b, c) => (c.ms < b.ms ? c : b));
      assert.equal(d.algo, fastest.algo, `${d.direction}: the fastest candidate wins`);
      assert.equal(d.ms, fastest.ms);
      console.log(`      ${d.direction}: ${d.candidates.map((c) => `${c.algo} ${c.ms.toFixed(3)} ms ${c.workspace} B${c.skipped ? ` (${c.skipped})` : ''}`).join('; ')}`);
    }
  });

  it('deterministic: only deterministic candidates, and a limit of 1 still finds one', async () => {
    const a = await choices({ benchmark: true, benchmarkLimit: 1, deterministic: true, allowTF32: false }, 'det1');
    for (const d of a) {
      assert.ok(d.candidates.length >= 1, d.direction); // 1 unless the first could not get its workspace
      assert.ok(d.candidates.every((c) => c.deterministic), `${d.direction}: ${JSON.stringify(d.candidates)}`);
    }
  });

  it('heuristics: the first usable candidate in cuDNN\'s order, not timed', async () => {
    const a = await choices({ benchmark: false, allowTF32: false }, 'heur');
    for (const d of a) {
      assert.equal(d.mode, 'heuristic');
      assert.equal(d.ms, -1);
      assert.equal(d.candidates.at(-1)!.algo, d.algo);
      assert.ok(d.candidates.slice(0, -1).every((c) => c.skipped !== null), 'candidates before the chosen one were skipped, with a reason');
    }
  });

  it('a cache file carries the choices to the next process, and is ignored for another GPU/driver/cuDNN', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-algo-'));
    const file = path.join(dir, 'cudnn-algorithms.txt');
    const child = path.join(__dirname, 'support', 'compile-with-cache.ts');
    const run = () => {
      const r = spawnSync(process.execPath, ['-r', 'tsx/cjs', child, file], { encoding: 'utf8', cwd: path.resolve(__dirname, '..', '..') });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { cache: { loaded: number; saved: number; notes: string }; algorithms: AlgorithmChoice[] };
    };
    try {
      const first = run();
      assert.equal(first.cache.loaded, 0, first.cache.notes);
      assert.ok(first.cache.saved >= 3, first.cache.notes);
      assert.ok(first.algorithms.every((d) => !d.fromFile && d.mode === 'benchmark'));
      const second = run();
      assert.equal(second.cache.loaded, first.cache.saved, second.cache.notes);
      assert.equal(second.cache.saved, 0, 'nothing new was searched, so the file is not rewritten');
      assert.ok(second.algorithms.every((d) => d.fromFile && d.cached), JSON.stringify(second.algorithms));
      assert.deepEqual(second.algorithms.map((d) => d.algo), first.algorithms.map((d) => d.algo));

      const lines = fs.readFileSync(file, 'utf8').split('\n');
      lines[1] = 'Some Other GPU\t1\t1';
      fs.writeFileSync(file, lines.join('\n'));
      const third = run();
      assert.equal(third.cache.loaded, -1);
      assert.match(third.cache.notes, /was written for Some Other GPU\/1\/1, this device is .*; it is left as it is/);
      assert.ok(third.algorithms.every((d) => !d.fromFile));
      assert.equal(fs.readFileSync(file, 'utf8'), lines.join('\n'), 'another device\'s file is not overwritten');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
