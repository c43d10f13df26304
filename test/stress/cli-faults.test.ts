// crunet train under process faults (npm run test:stress): kill -9, SIGINT and SIGTERM at random moments,
// a disk that fills up, an output directory that turns read-only before a resume. After each fault the checkpoint on disk
// is the old or the new valid one, never a torn file, and resuming ends with the very parameters of an
// uninterrupted run (same build, same thread count: bit for bit).
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCheckpoint } from '../../lib/train/index.js';
import { readMetrics } from '../../lib/train/metrics-log.js';
import { runCrunet, startCrunet, waitFor } from '../support/cli-child.js';

const FASHION = '/usr/share/datasets/fashion-mnist';
const withData = fs.existsSync(FASHION) ? it : it.skip;
// 3 epochs of 8 steps; one thread, so that every run is bit-identical to every other.
const RUN = ['--epochs', '3', '--limit-train', '256', '--limit-test', '64', '--batch-size', '32', '--seed', '5', '--threads', '1'];

/** A seeded generator (mulberry32), so that a failure names the seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Every tensor of a checkpoint, as bytes by name (loadCheckpoint verifies the file's digest). */
function tensors(file: string): Map<string, Buffer> {
  const c = loadCheckpoint(file);
  return new Map([...c.tensors].map(([k, t]) => [k, Buffer.from(t.bytes)]));
}

/** The metrics of a run as an uninterrupted run writes them (run lines and times left out). */
function trace(dir: string) {
  return readMetrics(path.join(dir, 'metrics.jsonl')).filter((r) => r.type !== 'run')
    .map(({ type, epoch, step, lr, loss, acc, top5 }) => ({ type, epoch, step, lr, loss, acc, top5 }));
}

/**
 * Files other than the run's own. A kill -9 in the middle of an atomic write leaves its temporary file
 * (.NAME.tmp-PID-RAND, never the file itself): `killed` allows those.
 */
function strays(dir: string, killed = false): string[] {
  return fs.readdirSync(dir).filter((f) => !['checkpoint.safetensors', 'metrics.jsonl', 'plot.svg'].includes(f) && !(killed && /^\..*\.tmp-\d+-[0-9a-f]{8}$/.test(f)));
}

function tryMount(dir: string, opts: string): string | undefined {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? undefined : (r.stderr || r.error?.message || `exit ${r.status}`).trim();
}

describe('stress: crunet train under process faults', function () {
  this.timeout(0); // each child has its own deadline (test/support/cli-child.ts)
  const dirs: string[] = [];
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-stress-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  let reference: { dir: string; wallMs: number } | undefined;
  async function uninterrupted() {
    if (reference) return reference;
    const dir = tmp();
    const t0 = Date.now();
    const r = await runCrunet(['train', ...RUN, '--out', dir]);
    assert.equal(r.code, 0, r.err);
    reference = { dir, wallMs: Date.now() - t0 };
    return reference;
  }

  withData('kill -9, SIGINT and SIGTERM at 20 random moments: always a valid checkpoint, and the resumed run ends as the uninterrupted one', async () => {
    const ref = await uninterrupted();
    const want = tensors(path.join(ref.dir, 'checkpoint.safetensors'));
    const seed = Number(process.env.CRUNET_STRESS_SEED ?? Date.now() % 100000);
    const random = rng(seed);
    const ctx = (s: string) => `${s} (CRUNET_STRESS_SEED=${seed})`;
    let dir = tmp();
    const finished = (d: string) => {
      const got = tensors(path.join(d, 'checkpoint.safetensors'));
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), ctx('tensor names'));
      for (const [k, v] of want) assert.ok(v.equals(got.get(k)!), ctx(`${k} differs from the uninterrupted run's`));
      assert.deepEqual(trace(d), trace(ref.dir), ctx('metrics'));
    };
    const faults = { SIGKILL: 0, SIGINT: 0, SIGTERM: 0 };
    for (let landed = 0; landed < 20; ) {
      const ckpt = path.join(dir, 'checkpoint.safetensors');
      const before = fs.existsSync(ckpt) ? loadCheckpoint(ckpt).meta : undefined;
      const c = startCrunet(['train', ...(before ? ['--resume', dir] : [...RUN, '--out', dir])]);
      const sig = (['SIGKILL', 'SIGKILL', 'SIGINT', 'SIGTERM'] as const)[Math.floor(random() * 4)]!;
      // Within the first 70 % of a whole run's time: a resumed run has less to do, and one that ends
      // before its fault does not count.
      const delay = random() * 0.7 * ref.wallMs;
      const timer = setTimeout(() => c.child.kill(sig), delay);
      const r = await c.done;
      clearTimeout(timer);
      if (r.code === 0) {
        finished(dir); // it ended before the fault: a whole run, as the reference
        dir = tmp();
        continue;
      }
      landed++;
      faults[sig]++;
      const code = { SIGKILL: 137, SIGINT: 130, SIGTERM: 143 }[sig];
      assert.equal(r.code, code, ctx(`${sig} after ${delay.toFixed(0)} ms: exit ${r.code}\n${r.err}`));
      assert.deepEqual(strays(dir, sig === 'SIGKILL'), [], ctx(`after ${sig}`));
      if (fs.existsSync(ckpt)) {
        const after = loadCheckpoint(ckpt).meta; // throws on a torn or corrupt file
        assert.ok(!before || after.step >= before.step, ctx('the checkpoint went back'));
        assert.ok(after.step % 8 === 0, ctx(`a checkpoint of step ${after.step}, not an epoch's end`));
      }
      const metrics = path.join(dir, 'metrics.jsonl');
      if (fs.existsSync(metrics)) readMetrics(metrics); // parses (a torn last line is skipped)
    }
    const r = await runCrunet(['train', '--resume', dir]);
    assert.equal(r.code, 0, ctx(r.err));
    finished(dir);
    console.log(`      faults: ${JSON.stringify(faults)}, seed ${seed}`);
  });

  withData('a disk that fills up: an error naming the file and the cause; the previous checkpoint stays valid and resumable', async () => {
    const ref = await uninterrupted();
    const size = fs.statSync(path.join(ref.dir, 'checkpoint.safetensors')).size;
    const dir = tmp();
    // Room for one checkpoint and the metrics, not for the next one's temporary file beside it.
    const err = tryMount(dir, `size=${Math.ceil((size * 1.5) / 4096) * 4}k`);
    if (err) {
      console.log(`      (skipped: cannot mount a tmpfs: ${err})`);
      return;
    }
    try {
      const r = await runCrunet(['train', ...RUN, '--out', dir]);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /checkpoint\.safetensors.*(no space left on device|ENOSPC)/i);
      assert.doesNotMatch(r.err, /\n\s+at /, 'a message, not a stack trace');
      assert.deepEqual(strays(dir), []);
      const kept = loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta;
      assert.equal(kept.epoch, 0, 'the initial state, the one checkpoint that fitted');
      readMetrics(path.join(dir, 'metrics.jsonl'));
    } finally {
      spawnSync('umount', ['-l', dir]);
    }
  });

  withData('an output directory that turns read-only between a stop and its resume: a clear error, the checkpoint intact, the run resumable', async () => {
    const ref = await uninterrupted();
    const want = tensors(path.join(ref.dir, 'checkpoint.safetensors'));
    const dir = tmp();
    const err = tryMount(dir, 'size=64m');
    if (err) {
      console.log(`      (skipped: cannot mount a tmpfs: ${err})`);
      return;
    }
    try {
      const one = await runCrunet(['train', ...RUN, '--out', dir, '--stop-after-epoch', '1']);
      assert.equal(one.code, 0, one.err);
      // The kernel refuses to remount read-only while a file is open for writing: so between two processes.
      const ro = spawnSync('mount', ['-o', 'remount,ro', dir], { encoding: 'utf8' });
      assert.equal(ro.status, 0, ro.stderr);
      const refused = await runCrunet(['train', '--resume', dir]);
      assert.equal(refused.code, 1, refused.err);
      assert.match(refused.err, new RegExp(`cannot write to ${dir}: read-only file system`));
      assert.doesNotMatch(refused.err, /\n\s+at /, 'a message, not a stack trace');
      spawnSync('mount', ['-o', 'remount,rw', dir]);
      assert.deepEqual(strays(dir), []);
      assert.equal(loadCheckpoint(path.join(dir, 'checkpoint.safetensors')).meta.epoch, 1);
      const resumed = await runCrunet(['train', '--resume', dir]);
      assert.equal(resumed.code, 0, resumed.err);
      const got = tensors(path.join(dir, 'checkpoint.safetensors'));
      for (const [k, v] of want) assert.ok(v.equals(got.get(k)!), `${k} differs from the uninterrupted run's`);
    } finally {
      spawnSync('umount', ['-l', dir]);
    }
  });
});
