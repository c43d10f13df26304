// Data-parallel training on Gloo (lib/dist, native/dist; docs/ARCHITECTURE.md "Several processes"): two
// worker processes (test/support/dist-worker.ts, one thread each) against one process at the global batch,
// and the failures that must end in a clear Error within a bounded time, never a hang.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { buildInfo, compile, dist, setNumThreads } from '../lib/index.js';
import { childEnv } from './support/child-env.js';
import { distNet, globalBatch, shard, type DistModel } from './support/dist-net.js';

const WORKER = path.join(__dirname, 'support', 'dist-worker.ts');
const ROOT = path.resolve(__dirname, '..');

interface Outcome { code: number | null; signal: string | null; out: string; err: string; ms: number }

/** A TCP port that was free a moment ago. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once the child has printed a line matching `pattern` on stdout. */
function printed(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    child.stdout!.on('data', (d) => {
      seen += d;
      if (pattern.test(seen)) resolve();
    });
  });
}

const live = new Set<ChildProcess>();

/** Starts one worker; it is SIGKILLed after `killAfterMs` (the test then fails on its outcome). */
function worker(job: Record<string, unknown>, killAfterMs = 60_000): { child: ChildProcess; done: Promise<Outcome> } {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const done = new Promise<Outcome>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, out, err, ms: Date.now() - t0 });
    });
  });
  return { child, done };
}

const base = { timeoutMs: 20_000, model: 'plain', perRank: 32, steps: 5, lr: 0.1, momentum: 0.9 };

function params(o: Outcome): Map<string, Float32Array> {
  const last = o.out.trim().split('\n').pop()!;
  const p = JSON.parse(last).params as Record<string, string>;
  return new Map(Object.entries(p).map(([k, v]) => {
    const b = Buffer.from(v, 'base64');
    return [k, new Float32Array(b.buffer, b.byteOffset, b.length / 4)];
  }));
}

/** One process at the global batch: the same data, the same seed, the same steps. */
async function reference(model: DistModel, batch: number, steps: number, opt: { lr: number; momentum: number },
  data: (step: number) => { images: Float32Array; labels: Int32Array } = (i) => globalBatch(i, batch)): Promise<Map<string, Float32Array>> {
  const s = await compile(distNet(model), { batchSize: batch, seed: 0, optimizer: opt });
  for (let i = 0; i < steps; i++) {
    const b = data(i);
    await s.step(b.images, b.labels);
  }
  const out = new Map(s.parameterNames().map((n) => [n, s.getParameter(n)]));
  s.dispose();
  return out;
}

/** The largest |a - b| / (atol + rtol |b|) over every parameter, with where. */
function worst(got: Map<string, Float32Array>, want: Map<string, Float32Array>, atol: number, rtol: number): { ratio: number; where: string } {
  let ratio = 0, where = '';
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [k, w] of want) {
    const g = got.get(k)!;
    for (let i = 0; i < w.length; i++) {
      const r = Math.abs(g[i]! - w[i]!) / (atol + rtol * Math.abs(w[i]!));
      if (!(r <= ratio)) (ratio = r), (where = `${k}[${i}]: ${g[i]} vs ${w[i]}`);
    }
  }
  return { ratio, where };
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

const hasGloo = (() => {
  try {
    return buildInfo().gloo;
  } catch {
    return false;
  }
})();

(hasGloo ? describe : describe.skip)('distributed: data parallel on Gloo, 2 processes', function () {
  this.timeout(180_000);
  before(() => setNumThreads(1));
  afterEach(() => {
    for (const c of live) c.kill('SIGKILL');  // a failed assertion leaves no worker behind
  });

  // Float32 summation order is the only difference: rank r sums its 32 samples' gradients and the two
  // means are averaged, the reference sums 64 at once. After 5 momentum steps that is about one ulp of a
  // weight (worst seen: 1.5e-8 on 0.089, this AVX2 host, 3 Dec 2026); 1e-5 relative plus 1e-6
  // absolute (values near 0) leaves a wide margin, while summing instead of averaging is off by ~1e-2.
  const ATOL = 1e-6, RTOL = 1e-5;

  it('a BN-free model: 2 ranks x batch 32 equal 1 process x batch 64 after 5 steps (rank 1 starts from other weights)', async () => {
    const port = await freePort();
    const [a, b] = [worker({ ...base, port, rank: 0, worldSize: 2 }), worker({ ...base, port, rank: 1, worldSize: 2, seed: 7 })];
    const [r0, r1] = await Promise.all([a.done, b.done]);
    assert.equal(r0.code, 0, r0.err);
    assert.equal(r1.code, 0, r1.err);
    const want = await reference('plain', 64, 5, base);
    const p0 = params(r0), p1 = params(r1);
    const w = worst(p0, want, ATOL, RTOL);
    assert.ok(w.ratio <= 1, `rank 0 vs 1 x 64: ${w.where}`);
    // Both ranks apply the same averaged gradients: bitwise equal parameters.
    for (const [k, v] of p0) assert.deepEqual(Buffer.from(v.buffer, v.byteOffset, v.byteLength), Buffer.from(p1.get(k)!.buffer, p1.get(k)!.byteOffset, p1.get(k)!.byteLength), k);
    // And training moved them: the comparison is not between two copies of the initial weights.
    const init = await reference('plain', 64, 0, base);
    assert.ok(worst(p0, init, ATOL, RTOL).ratio > 100);
  });

  it('with a fixed loss scale (scaled gradients averaged, then unscaled) 2 x 32 still equal 1 x 64 unscaled', async () => {
    const port = await freePort();
    const job = { ...base, port, worldSize: 2, lossScale: 1024 };
    const [r0, r1] = await Promise.all([worker({ ...job, rank: 0 }).done, worker({ ...job, rank: 1 }).done]);
    assert.equal(r0.code, 0, r0.err);
    assert.equal(r1.code, 0, r1.err);
    const w = worst(params(r0), await reference('plain', 64, 5, base), ATOL, RTOL);  // a power of two: exact
    assert.ok(w.ratio <= 1, `rank 0 vs 1 x 64: ${w.where}`);
  });

  it("a shared factor's update (its gradient, reduced once) equals the single-process one, with several buckets", async () => {
    const port = await freePort();
    // Buckets of 2 KB: the factor's 2304 bytes fill one alone, and the other gradients make several more.
    const job = { ...base, model: 'shared', steps: 1, lr: 1, momentum: 0, port, worldSize: 2, bucketMB: 2048 / 2 ** 20 };
    const [r0, r1] = await Promise.all([worker({ ...job, rank: 0 }).done, worker({ ...job, rank: 1 }).done]);
    assert.equal(r0.code, 0, r0.err);
    assert.equal(r1.code, 0, r1.err);
    const before = await reference('shared', 64, 0, job);
    const after = await reference('shared', 64, 1, job);
    // lr 1, no momentum: before - after is the gradient, for the factor and every other parameter.
    const grad = (p: Map<string, Float32Array>) => new Map([...p].map(([k, v]) => [k, v.map((x, i) => before.get(k)![i]! - x)]));
    const w = worst(grad(params(r0)), grad(after), 1e-6, 1e-4);
    assert.ok(w.ratio <= 1, w.where);
    const factor = grad(params(r0)).get('factor.weight')!;
    assert.ok(Math.max(...factor.map(Math.abs)) > 1e-4);  // the factor was trained
  });

  it('syncBatchNorm: with batch norm, 2 ranks x batch 32 equal 1 process x batch 64 after 5 steps, running statistics included', async () => {
    const port = await freePort();
    const job = { ...base, model: 'bn', port, worldSize: 2, syncBatchNorm: true };
    const [r0, r1] = await Promise.all([worker({ ...job, rank: 0 }).done, worker({ ...job, rank: 1 }).done]);
    assert.equal(r0.code, 0, r0.err);
    assert.equal(r1.code, 0, r1.err);
    const want = await reference('bn', 64, 5, base);
    // The reference normalizes in oneDNN's fused kernel, the ranks in crunet's own synchronized one; the
    // worst difference seen is still about one ulp (1.5e-8 on 0.078), as without batch norm.
    const w = worst(params(r0), want, ATOL, RTOL);
    assert.ok(w.ratio <= 1, `rank 0 vs 1 x 64: ${w.where}`);
    assert.deepEqual(params(r1), params(r0));
  });

  it("without syncBatchNorm each rank's running statistics are its own shard's", async () => {
    const port = await freePort();
    const job = { ...base, model: 'bn', port, worldSize: 2, steps: 1 };
    const [r0, r1] = await Promise.all([worker({ ...job, rank: 0 }).done, worker({ ...job, rank: 1, seed: 3 }).done]);
    assert.equal(r0.code, 0, r0.err);
    assert.equal(r1.code, 0, r1.err);
    for (const [rank, r] of [[0, r0], [1, r1]] as const) {
      // One step from rank 0's initial weights on this rank's 32 samples: the statistics of that forward.
      const own = await reference('bn', 32, 1, base, (i) => shard(globalBatch(i, 64), rank, 32));
      const got = params(r);
      for (const name of ['bn1.running_mean', 'bn1.running_var', 'bn2.running_mean', 'bn2.running_var']) {
        const w = worst(new Map([[name, got.get(name)!]]), new Map([[name, own.get(name)!]]), ATOL, RTOL);
        assert.ok(w.ratio <= 1, `rank ${rank}: ${w.where}`);
      }
    }
    // The shards differ, so the ranks' statistics do too (the comparison above could tell them apart).
    const a = params(r0).get('bn1.running_mean')!, b = params(r1).get('bn1.running_mean')!;
    assert.ok(a.some((x, i) => Math.abs(x - b[i]!) > 1e-4));
  });

  it('a NaN input on rank 1 only: that step fails on both ranks naming rank 1, at once, and the ranks stay in step', async () => {
    const port = await freePort();
    // A long timeout: failing by it would take 120 s; the agreement takes one exchange.
    const job = { ...base, port, worldSize: 2, steps: 4, timeoutMs: 120_000, nanAt: { rank: 1, step: 1 } };
    const [r0, r1] = await Promise.all([worker({ ...job, rank: 0 }, 100_000).done, worker({ ...job, rank: 1 }, 100_000).done]);
    for (const [r, o] of [[0, r0], [1, r1]] as const) {
      assert.equal(o.code, 0, `rank ${r}: ${o.err}`);
      assert.match(o.err, /STEP 1 ERROR: step failed on rank 1 of 2, so every rank skipped it \(rank 1: input \S+: element 5 \(sample 0\) is NaN/, `rank ${r}`);
      assert.doesNotMatch(o.err, /STEP [023] ERROR/, `rank ${r}`);
      assert.ok(o.ms < 60_000, `rank ${r} took ${o.ms} ms`);
    }
    // Both skipped the same step, so the later steps paired up: the ranks end with equal parameters.
    const p0 = params(r0), p1 = params(r1);
    for (const [k, v] of p0) assert.deepEqual(p1.get(k), v, k);
  });

  for (const [killed, survivor] of [[1, 0], [0, 1]] as const) {
    it(`rank ${killed} killed mid-run: rank ${survivor} fails within the timeout, naming rank ${killed}`, async () => {
      const port = await freePort();
      const job = { ...base, port, worldSize: 2, steps: 10_000, timeoutMs: 15_000 };
      const ranks = [worker({ ...job, rank: 0 }), worker({ ...job, rank: 1 })];
      await printed(ranks[killed]!.child, /step 2\b/);
      ranks[killed]!.child.kill('SIGKILL');
      const r = await ranks[survivor]!.done;
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, new RegExp(`ERROR: step: (averaging the gradients across ranks|agreeing with the other ranks on whether this step can go on) failed: allreduce failed on rank ${survivor}: rank ${killed} left the job`));
      assert.ok(r.ms < 60_000, `took ${r.ms} ms`);
    });
  }

  it('process.exit() during a step that waits for a hung rank ends the process at once, not after the timeout', async () => {
    const port = await freePort();
    const job = { ...base, port, worldSize: 2, steps: 10_000, timeoutMs: 60_000 };
    const a = worker({ ...job, rank: 0 }), b = worker({ ...job, rank: 1 });
    await printed(b.child, /step 2\b/);
    b.child.kill('SIGSTOP');  // hung, not dead: its sockets stay open, rank 0 waits in its exchange
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    a.child.kill('SIGUSR2');
    const r0 = await a.done;
    b.child.kill('SIGKILL');
    assert.equal(r0.code, 3, r0.err);
    assert.ok(Date.now() - t0 < 10_000, `exit took ${Date.now() - t0} ms`);
  });

  it('a wrong master port: rank 1 cannot reach the rendezvous, rank 0 names rank 1 as missing', async () => {
    const port = await freePort(), other = await freePort();
    const job = { ...base, worldSize: 2, timeoutMs: 3000 };
    const [r0, r1] = await Promise.all([worker({ ...job, port, rank: 0 }).done, worker({ ...job, port: other, rank: 1 }).done]);
    assert.equal(r1.code, 1);
    assert.match(r1.err, new RegExp(`ERROR: rank 1: cannot reach the rendezvous at 127\\.0\\.0\\.1:${other} within 3000 ms \\(Connection refused\\)`));
    assert.equal(r0.code, 1);
    assert.match(r0.err, /ERROR: rank 0: the rendezvous at 127\.0\.0\.1:\d+ timed out after 3000 ms: rank 1 of world size 2 did not join/);
  });

  it("rank 0's port in use: an Error saying so", async () => {
    const port = await freePort();
    const blocker = net.createServer().listen(port);
    await new Promise((r) => blocker.once('listening', r));
    try {
      const r0 = await worker({ ...base, port, rank: 0, worldSize: 2, timeoutMs: 3000 }).done;
      assert.equal(r0.code, 1);
      assert.ok(r0.err.includes(`ERROR: rank 0 cannot host the rendezvous on port ${port}: the port is in use by another process`), r0.err);
    } finally {
      blocker.close();
    }
  });

  it('mismatched world sizes: both ranks fail at once, saying which', async () => {
    const port = await freePort();
    const [r0, r1] = await Promise.all([worker({ ...base, port, rank: 0, worldSize: 2 }).done, worker({ ...base, port, rank: 1, worldSize: 3 }).done]);
    for (const r of [r0, r1]) {
      assert.equal(r.code, 1);
      assert.match(r.err, /the ranks disagree on the world size: rank [01] was started with [23], rank [01] with [23]/);
      assert.ok(r.ms < 15_000, `took ${r.ms} ms`);  // not the 20 s timeout
    }
  });

  it('a rank whose model differs (shapes, batch size, parameter count): an Error on every rank naming rank 1 and what differs', async () => {
    const port = await freePort();
    const [r0, r1] = await Promise.all([worker({ ...base, port, rank: 0, worldSize: 2 }).done, worker({ ...base, port, rank: 1, worldSize: 2, width: 6 }).done]);
    for (const r of [r0, r1]) {
      assert.equal(r.code, 1);
      assert.match(r.err, /rank 1's model differs from rank 0's: parameter conv1\.weight is \[6, 3, 3, 3\] on rank 1, \[8, 3, 3, 3\] on rank 0/);
    }
    const port2 = await freePort();
    const [b0, b1] = await Promise.all([worker({ ...base, port: port2, rank: 0, worldSize: 2 }).done, worker({ ...base, port: port2, rank: 1, worldSize: 2, perRank: 16 }).done]);
    for (const r of [b0, b1]) {
      assert.equal(r.code, 1);
      assert.ok(r.err.includes("rank 1's model differs from rank 0's: batch size 16 on rank 1, 32 on rank 0"), r.err);
    }
    const port3 = await freePort();
    const [c0, c1] = await Promise.all([worker({ ...base, port: port3, rank: 0, worldSize: 2 }).done, worker({ ...base, port: port3, rank: 1, worldSize: 2, model: 'bn' }).done]);
    for (const r of [c0, c1]) {
      assert.equal(r.code, 1);
      assert.ok(r.err.includes("rank 1's model differs from rank 0's: 12 parameters on rank 1, 4 on rank 0; parameter bn1.weight [8] is on rank 1 but not on rank 0"), r.err);
    }
  });

  it('a one-rank job trains as a plain session, with and without syncBatchNorm, and gradients() runs', async () => {
    const g = await dist.initProcessGroup({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort(), timeoutMs: 5000 });
    for (const syncBatchNorm of [false, true]) {
      const s = await compile(distNet('bn'), { batchSize: 16, optimizer: base, distributed: { group: g, syncBatchNorm, bucketMB: 0.001 } });
      for (let i = 0; i < 3; i++) {
        const b = globalBatch(i, 16);
        await s.step(b.images, b.labels);
      }
      const running = s.step(globalBatch(3, 16).images, globalBatch(3, 16).labels);
      const e = await rejection(g.allreduce(new Float32Array(1)));
      assert.match(e.message, /^allreduce: a step of a data-parallel session on this group is running; await it first/);
      await running;
      await g.allreduce(new Float32Array(1));  // free again once the step is done
      const b = globalBatch(9, 16);
      const grads = await s.gradients(b.images, new Float32Array(16 * 4).fill(1));
      const got = new Map(s.parameterNames().map((n) => [n, s.getParameter(n)]));
      s.dispose();
      const want = await reference('bn', 16, 4, base);
      const w = worst(got, want, ATOL, RTOL);
      assert.ok(w.ratio <= 1, `syncBatchNorm ${syncBatchNorm}: ${w.where}`);
      assert.ok(Object.keys(grads.paramGrads).length > 0);
    }
    g.destroy();
  });

  it('the group API in one process: world size 1 collectives are the identity; argument errors', async () => {
    const g = await dist.initProcessGroup({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort(), timeoutMs: 5000 });
    const a = new Float32Array([1, -2, 3]);
    await g.allreduce(a);
    assert.deepEqual([...a], [1, -2, 3]);
    assert.deepEqual((await g.allgather(new Uint8Array([5, 6]))).map((x) => [...x]), [[5, 6]]);
    const e1 = await rejection(g.allreduce(new Int32Array(2) as never));
    assert.ok(e1 instanceof TypeError, String(e1));
    assert.equal(e1.message, 'allreduce: expected a Float32Array or Float64Array, but received Int32Array');
    const e2 = await rejection(g.broadcast(a, 1));
    assert.ok(e2 instanceof RangeError, String(e2));
    assert.equal(e2.message, 'broadcast: expected root in [0, 0], but received 1');
    g.destroy();
    assert.equal((await rejection(g.barrier())).message, 'barrier: this process group was destroyed');
    const e4 = await rejection(compile(distNet('plain'), { batchSize: 4, distributed: { group: g } }));
    assert.equal(e4.message, 'compile: distributed.group was destroyed');
    const e5 = await rejection(dist.initProcessGroup({ rank: 1, worldSize: 2, masterAddr: 'no-such-host.invalid', masterPort: 29500, timeoutMs: 2000 }));
    assert.match(e5.message, /^rank 1: cannot resolve the master address 'no-such-host\.invalid': /);
    const e3 = await rejection(dist.initProcessGroup({ rank: 2, worldSize: 2, masterAddr: 'x', masterPort: 1 }));
    assert.ok(e3 instanceof RangeError, String(e3));
    assert.equal(e3.message, 'initProcessGroup: expected rank in [0, 1], but received 2');
  });
});
