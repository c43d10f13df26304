// The CLI as a process: OpenMP's environment, --threads, thread counts in checkpoints, SIGINT and SIGTERM.
// Each run is a child process (test/support/cli-child.ts), killed at its deadline or after its test.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCheckpoint } from '../lib/train/index.js';
import { runCrunet, startCrunet, waitFor } from './support/cli-child.js';

const FASHION = '/usr/share/datasets/fashion-mnist';
const withData = fs.existsSync(FASHION) ? it : it.skip;

describe('crunet CLI as a process', function () {
  // A loaded machine makes these slow, not wrong: each child has a deadline of its own (a hang bound).
  this.timeout(0);
  const dirs: string[] = [];
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-proc-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('makes OpenMP threads sleep at barriers (passive) unless the user chose a wait policy', async () => {
    const env = { OMP_DISPLAY_ENV: 'verbose', OMP_WAIT_POLICY: undefined, GOMP_SPINCOUNT: undefined };
    const dflt = await runCrunet(['info'], { env });
    assert.equal(dflt.code, 0, dflt.err);
    assert.match(dflt.err, /OMP_WAIT_POLICY = 'PASSIVE'/);
    assert.match(dflt.err, /GOMP_SPINCOUNT = '0'/);
    const asked = await runCrunet(['info'], { env: { ...env, OMP_WAIT_POLICY: 'active' } });
    assert.match(asked.err, /OMP_WAIT_POLICY = 'ACTIVE'/);
  });

  it('bench and eval take --threads', async () => {
    const b = await runCrunet(['bench', '--model', 'crunet_small', '--batch-size', '2', '--steps', '1', '--warmup', '0', '--threads', '1', '--json']);
    assert.equal(b.code, 0, b.err);
    assert.match(JSON.parse(b.out).build, /, 1 threads$/);
    const e = await runCrunet(['eval', '--checkpoint', 'x', '--threads', '0']);
    assert.equal(e.code, 2);
    assert.match(e.err, /--threads: expected an integer in \[1, 1024\], but received '0'/);
    const many = await runCrunet(['bench', '--threads', '100000']);
    assert.equal(many.code, 2);
    assert.match(many.err, /--threads: expected an integer in \[1, 1024\], but received '100000'/);
  });

  withData('records the thread count in the checkpoint; a resume keeps it, and warns when --threads differs', async () => {
    const dir = tmp();
    const run = ['--epochs', '2', '--limit-train', '256', '--limit-test', '64', '--batch-size', '64', '--out', dir];
    const one = await runCrunet(['train', ...run, '--threads', '1', '--stop-after-epoch', '1']);
    assert.equal(one.code, 0, one.err);
    assert.equal(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.threads, 1);
    const other = await runCrunet(['train', '--resume', dir, '--threads', '2']);
    assert.equal(other.code, 0, other.err);
    assert.match(other.err, /warning: .*checkpoint\.safetensors was trained with 1 threads and this run has 2: it continues the run, but its results will differ in the last bits/);
    // Without --threads the resumed run takes the checkpoint's count: no warning.
    const two = await runCrunet(['train', ...run, '--threads', '1', '--stop-after-epoch', '1']);
    assert.equal(two.code, 0, two.err);
    const same = await runCrunet(['train', '--resume', dir]);
    assert.equal(same.code, 0, same.err);
    assert.match(same.out, /cpu, 1 thread; writing/);
    assert.doesNotMatch(same.err, /warning/);
  });

  /** Starts a run of 2 epochs of 16 steps and returns once it is in the middle of its second epoch. */
  async function midEpoch(dir: string) {
    const c = startCrunet(['train', '--epochs', '2', '--limit-train', '512', '--limit-test', '64', '--batch-size', '32', '--out', dir]);
    // The progress lines (every 25 % without a terminal) of epoch 2 say that it has begun.
    await waitFor(c, 'the second epoch', () => /epoch 2\/2 step \d+\/16/.test(c.err()));
    return c;
  }

  withData('SIGINT mid-epoch: stops after the step, says what the checkpoint holds and how to resume, exits 130; the resume finishes the run', async () => {
    const dir = tmp();
    const c = await midEpoch(dir);
    c.child.kill('SIGINT');
    const r = await c.done;
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /SIGINT: stopping after the step in flight \(a second signal exits at once\)/);
    const m = /stopped by SIGINT in epoch 2\/2: (\S+) holds epoch 1 \(step 16\); the (\d+) steps of epoch 2 are lost and are redone, exactly, on resume\. Continue with: crunet train --resume (\S+)/.exec(r.err);
    assert.ok(m, r.err);
    assert.equal(m[1], path.join(dir, 'checkpoint.safetensors'));
    assert.ok(Number(m[2]) >= 4 && Number(m[2]) < 16, m[2]);
    assert.equal(loadCheckpoint(m[1]!).meta.epoch, 1);
    const resumed = await runCrunet(['train', '--resume', m[3]!, '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(JSON.parse(resumed.out.trim().split('\n').at(-1)!).epoch, 2);
  });

  withData('SIGTERM exits 143 the same way; a second signal exits at once', async () => {
    const dir = tmp();
    const c = await midEpoch(dir);
    c.child.kill('SIGTERM');
    const r = await c.done;
    assert.equal(r.code, 143, r.err);
    assert.match(r.err, /stopped by SIGTERM in epoch 2\/2: .* holds epoch 1 \(step 16\)/);

    // Two signals at once, so that the second comes while the first waits for its step (two of the same
    // kind could merge into one pending signal).
    const dir2 = tmp();
    const c2 = await midEpoch(dir2);
    c2.child.kill('SIGINT');
    c2.child.kill('SIGTERM');
    const r2 = await c2.done;
    // 143 from process.exit; Node may instead end the process by the pending SIGINT (130) as it exits.
    assert.ok(r2.code === 143 || r2.code === 130, `exit ${r2.code}\n${r2.err}`);
    // The kernel may deliver the two in either order: whichever comes second exits at once.
    assert.match(r2.err, /second signal \(SIG(TERM|INT)\): exiting now; .*checkpoint\.safetensors holds the last whole epoch/);
    assert.doesNotMatch(r2.err, /stopped by SIG(INT|TERM) in epoch/);
    assert.equal(loadCheckpoint(path.join(dir2, 'checkpoint.safetensors')).meta.epoch, 1);
  });

  withData('a signal in the first epoch leaves the run\'s initial state to resume from', async () => {
    const dir = tmp();
    const c = startCrunet(['train', '--epochs', '1', '--limit-train', '512', '--limit-test', '64', '--batch-size', '32', '--out', dir]);
    await waitFor(c, 'the first epoch', () => /epoch 1\/1 step \d+\/16/.test(c.err()));
    c.child.kill('SIGINT');
    const r = await c.done;
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /holds the run's initial state; the \d+ steps of epoch 1 are lost/);
    const meta = loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta;
    assert.deepEqual([meta.epoch, meta.step], [0, 0]);
  });
});
