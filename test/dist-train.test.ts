// `crunet train` as ranks of a job (lib/cli/train-rank.ts): the batch a resumed run's processes take, and a
// launched run end to end: one rank through the launcher, the environment, the process group, the sharded
// loaders and the sums over ranks trains and evaluates exactly as a plain process does.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { launchedThreads, resumedBatchSize, storedWorldSize } from '../lib/cli/train-rank.js';
import { native } from '../lib/engine/native.js';
import type { CheckpointInfo } from '../lib/train/checkpoint.js';
import { loadCheckpoint, readMetrics } from '../lib/train/index.js';
import { runCrunet } from './support/cli-child.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

const FASHION = '/usr/share/datasets/fashion-mnist';

describe('crunet train on several processes: settings', () => {
  const meta = (worldSize?: number) => ({ ...(worldSize !== undefined ? { worldSize } : {}) }) as unknown as CheckpointInfo;
  it('a resumed run keeps its global batch on another world size', () => {
    assert.equal(storedWorldSize(meta()), 1);
    assert.equal(resumedBatchSize(meta(2), 'ck', 32, 2), 32);
    assert.equal(resumedBatchSize(meta(2), 'ck', 32, 4), 16);
    assert.equal(resumedBatchSize(meta(2), 'ck', 32, 1), 64);
    assert.equal(resumedBatchSize(meta(), 'ck', 64, 2), 32);
    assert.throws(() => resumedBatchSize(meta(2), 'ck', 30, 8),
      /--resume: ck is from a run of 2 processes at batch 30 \(global batch 60\), which 8 processes cannot share equally: resume it on a world size that divides 60/);
  });
  it("a launched worker's threads default to the launcher's share", () => {
    assert.equal(launchedThreads({ WORLD_SIZE: '2', OMP_NUM_THREADS: '3' }), 3);
    assert.equal(launchedThreads({ OMP_NUM_THREADS: '3' }), undefined, 'a plain run keeps its own default');
    assert.equal(launchedThreads({ WORLD_SIZE: '2', OMP_NUM_THREADS: 'x' }), undefined);
  });
});

describe('crunet train --nproc-per-node: end to end', function () {
  this.timeout(0); // each child has its own deadline (a hang bound)
  afterEach(removeTestTempDirs);
  before(function () {
    const gloo = typeof (native() as { initProcessGroup?: unknown }).initProcessGroup === 'function';
    if (!gloo || !fs.existsSync(FASHION)) {
      console.log(`    (skipped: ${gloo ? `no Fashion-MNIST at ${FASHION}` : 'this addon has no Gloo process groups'})`);
      this.skip();
    }
  });

  it('one rank through the launcher trains and evaluates exactly as a plain process; only it writes --out', async () => {
    const dir = testTempDir('dist-train');
    const run = ['--epochs', '2', '--limit-train', '256', '--limit-test', '100', '--batch-size', '64', '--threads', '1'];
    const plain = await runCrunet(['train', ...run, '--out', path.join(dir, 'plain')], { deadlineMs: 600_000 });
    assert.equal(plain.code, 0, plain.err);
    const port = String(20000 + (process.pid % 20000));
    const launched = await runCrunet(['train', '--nproc-per-node', '1', '--master-port', port, ...run, '--out', path.join(dir, 'ddp')], { deadlineMs: 600_000 });
    assert.equal(launched.code, 0, launched.err);
    assert.match(launched.out, /^\[rank0\]: crunet train: .*batch 64 per process x 1 processes/m);
    const evals = (d: string) => readMetrics(path.join(dir, d, 'metrics.jsonl')).filter((r) => r.type === 'eval' || r.type === 'epoch')
      .map((r) => ({ type: r.type, epoch: r.epoch, step: r.step, loss: r.loss, acc: r.acc, top5: (r as { top5?: number }).top5 }));
    assert.equal(evals('plain').length, 4);
    assert.deepEqual(evals('ddp'), evals('plain'));
    assert.equal(loadCheckpoint(path.join(dir, 'ddp', 'checkpoint.safetensors')).meta.worldSize, 1);
  });

  it("a single process's run resumed on 2 ranks keeps its global batch and steps; rank 1 writes nothing", async () => {
    const dir = testTempDir('dist-resume');
    const first = await runCrunet(['train', '--epochs', '2', '--stop-after-epoch', '1', '--limit-train', '256', '--limit-test', '100', '--batch-size', '64', '--threads', '1', '--out', dir], { deadlineMs: 600_000 });
    assert.equal(first.code, 0, first.err);
    const port = String(20000 + ((process.pid + 7) % 20000));
    const r = await runCrunet(['train', '--nproc-per-node', '2', '--master-port', port, '--resume', dir], { deadlineMs: 600_000 });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^\[rank0\]: crunet train: .*batch 32 per process x 2 processes/m);
    assert.match(r.out, /^\[rank0\]: resuming from .* after epoch 1 \(step 4\)/m);
    assert.doesNotMatch(r.out, /^\[rank1\]: /m, 'rank 1 prints nothing');
    const ck = loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta;
    assert.deepEqual([ck.epoch, ck.step, ck.worldSize, ck.session.batchSize], [2, 8, 2, 32]);
    const epochs = readMetrics(path.join(dir, 'metrics.jsonl')).filter((m) => m.type === 'epoch').map((m) => [m.epoch, m.step]);
    assert.deepEqual(epochs, [[1, 4], [2, 8]]);
  });
});
