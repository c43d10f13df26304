// Training as ranks of a job, end to end: the launcher, the environment, the process group, the sharded
// loaders, the Trainer's sums over ranks and `crunet train`'s rank handling (lib/cli/train-rank.ts). One
// rank trains exactly as a plain process; two ranks (a user's script under crunet launch) as one process at
// the global batch; a run resumed on another world size keeps its global batch.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { launchedThreads, resumedBatchSize, resumedThreads, storedWorldSize } from '../lib/cli/train-rank.js';
import { native } from '../lib/engine/native.js';
import type { CheckpointInfo } from '../lib/train/checkpoint.js';
import { loadCheckpoint, readMetrics } from '../lib/train/index.js';
import { runCrunet, startCrunet, waitFor } from './support/cli-child.js';
import { node } from './support/spawn.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

const FASHION = '/usr/share/datasets/fashion-mnist';

/** `node -r tsx/cjs args` to its end (one thread, as each launched worker here); its stdout. */
async function runNode(args: string[]): Promise<string> {
  const r = node(['-r', 'tsx/cjs', ...args], { OMP_NUM_THREADS: '1' }, 600_000);
  assert.equal(r.code, 0, r.err);
  return r.out;
}

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
  it("a resumed run keeps its checkpoint's threads on the same world size only", () => {
    assert.equal(resumedThreads(3, meta(2), 2), 3);
    assert.equal(resumedThreads(3, meta(), 1), 3);
    assert.equal(resumedThreads(3, meta(), 2), undefined);
    assert.equal(resumedThreads(3, meta(4), 2), undefined);
  });
  it('--dist-timeout and --sync-batch-norm are for a distributed run: a usage error in a single process', async () => {
    for (const flag of [['--dist-timeout', '60'], ['--sync-batch-norm']]) {
      const r = await runCrunet(['train', '--epochs', '1', ...flag], { deadlineMs: 300_000 });
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, new RegExp(`${flag[0]}: expected a distributed run \\(--nproc-per-node N, .*\\), but this is a single process`));
    }
    const bad = await runCrunet(['train', '--dist-timeout', '0'], { deadlineMs: 300_000 });
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /--dist-timeout: expected an integer in \[1, 2147483\], but received '0'/);
  });
  it("a launched worker's threads default to the launcher's share", () => {
    assert.equal(launchedThreads({ RANK: '0', WORLD_SIZE: '2', OMP_NUM_THREADS: '3' }), 3);
    assert.equal(launchedThreads({ OMP_NUM_THREADS: '3' }), undefined, 'a plain run keeps its own default');
    assert.equal(launchedThreads({ RANK: '0', WORLD_SIZE: '2', OMP_NUM_THREADS: 'x' }), undefined);
  });
});

describe('training on several processes: end to end', function () {
  this.timeout(0); // each child has its own deadline (a hang bound)
  afterEach(removeTestTempDirs);
  before(function () {
    if (typeof (native() as { initProcessGroup?: unknown }).initProcessGroup !== 'function') {
      console.log('    (skipped: this addon has no Gloo process groups)');
      this.skip();
    }
  });
  const needsData = (ctx: Mocha.Context) => {
    if (fs.existsSync(FASHION)) return;
    console.log(`    (skipped: no Fashion-MNIST at ${FASHION})`);
    ctx.skip();
  };

  it('one rank through the launcher trains and evaluates exactly as a plain process; only it writes --out', async function () {
    needsData(this);
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

  it('2 ranks x batch 16 through crunet launch train and evaluate as 1 process x batch 32: equal evaluation counts', async () => {
    // A network without batch norm, the Trainer, sharded loaders (augmentation on) and the group from the
    // environment. The gradients are averaged over the ranks instead of summed over one batch: float32
    // sums in another order, so losses agree to a relative 1e-4 (after 3 epochs), and the counts exactly.
    const script = path.join(__dirname, 'support', 'dist-train-script.ts');
    const one = await runNode([script, '32']);
    const port = String(20000 + ((process.pid + 13) % 20000));
    const two = await runCrunet(['launch', '--nproc-per-node', '2', '--master-port', port, '--', script, '32'], { deadlineMs: 600_000 });
    assert.equal(two.code, 0, two.err);
    type Epoch = { train: { loss: number; acc: number; images: number }; test: { loss: number; top1: number; top5: number; images: number } };
    const a = JSON.parse(one) as Epoch[];
    const b = JSON.parse(/^\[rank0\]: (\[.*\])$/m.exec(two.out)![1]!) as Epoch[];
    assert.equal(a.length, 3);
    const close = (x: number, y: number, what: string) => assert.ok(Math.abs(x - y) <= 1e-4 * Math.abs(y), `${what}: ${x} vs ${y}`);
    for (let e = 0; e < 3; e++) {
      const [p, q] = [a[e]!, b[e]!];
      assert.equal(q.train.images, p.train.images);
      close(q.train.loss, p.train.loss, `epoch ${e} training loss`);
      assert.equal(q.test.images, 101);
      assert.equal(Math.round(q.test.top1 * 101), Math.round(p.test.top1 * 101), `epoch ${e} top-1 count`);
      assert.equal(Math.round(q.test.top5 * 101), Math.round(p.test.top5 * 101), `epoch ${e} top-5 count`);
      close(q.test.loss, p.test.loss, `epoch ${e} test loss`);
    }
  });

  it('Ctrl-C to a 2-rank crunet train ends both ranks at once, none left behind; --resume finishes the run', async function () {
    needsData(this);
    const dir = testTempDir('dist-sigint');
    const port = String(20000 + ((process.pid + 29) % 20000));
    const c = startCrunet(['train', '--nproc-per-node', '2', '--master-port', port, '--epochs', '2', '--limit-train', '2048', '--limit-test', '64',
      '--batch-size', '16', '--threads', '1', '--out', dir], { deadlineMs: 600_000 });
    // After the first epoch's checkpoint, in the second epoch's steps.
    await waitFor(c, 'the first epoch', () => /^\[rank0\]: epoch 1\/2: /m.test(c.out()), 600_000);
    const workers = fs.readFileSync(`/proc/${c.child.pid}/task/${c.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number)
      .filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('train'));
    assert.equal(workers.length, 2, 'two workers');
    c.child.kill('SIGINT');
    const r = await c.done;
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /^\[rank0\]: crunet train: SIGTERM: rank 0 exits now; .*checkpoint\.safetensors holds the last whole epoch/m);
    assert.match(r.err, /crunet launch: stopped by SIGINT: rank 0 exited with code 143, rank 1 exited with code 143/);
    for (const p of workers) assert.ok(!fs.existsSync(`/proc/${p}`) || /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8')), `worker ${p} still runs`);
    assert.equal(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.epoch, 1);
    const resumed = await runCrunet(['train', '--nproc-per-node', '2', '--master-port', port, '--resume', dir], { deadlineMs: 600_000 });
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.out, /^\[rank0\]: resuming from .* after epoch 1 \(step 64\)/m);
    assert.equal(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.epoch, 2);
  });

  it("a single process's run resumed on 2 ranks keeps its global batch and steps, takes the launcher's threads; rank 1 writes nothing", async function () {
    needsData(this);
    const dir = testTempDir('dist-resume');
    const first = await runCrunet(['train', '--epochs', '2', '--stop-after-epoch', '1', '--limit-train', '256', '--limit-test', '100', '--batch-size', '64', '--threads', '3', '--out', dir], { deadlineMs: 600_000 });
    assert.equal(first.code, 0, first.err);
    const port = String(20000 + ((process.pid + 7) % 20000));
    // No --threads: the checkpoint's 3 were one process's; each of the 2 takes the launcher's share (here 1).
    // --sync-batch-norm and --dist-timeout reach the ranks' sessions and process groups (a usage error otherwise).
    const r = await runCrunet(['train', '--nproc-per-node', '2', '--master-port', port, '--resume', dir, '--sync-batch-norm', '--dist-timeout', '120'],
      { env: { OMP_NUM_THREADS: '1' }, deadlineMs: 600_000 });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^\[rank0\]: crunet train: .*batch 32 per process x 2 processes, .*, 1 thread; writing/m);
    assert.match(r.out, /^\[rank0\]: resuming from .* after epoch 1 \(step 4\)/m);
    assert.doesNotMatch(r.out, /^\[rank1\]: /m, 'rank 1 prints nothing');
    const ck = loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta;
    assert.deepEqual([ck.epoch, ck.step, ck.worldSize, ck.session.batchSize], [2, 8, 2, 32]);
    const epochs = readMetrics(path.join(dir, 'metrics.jsonl')).filter((m) => m.type === 'epoch').map((m) => [m.epoch, m.step]);
    assert.deepEqual(epochs, [[1, 4], [2, 8]]);
  });
});
