// The launcher (crunet launch, lib/dist/launch.ts) and the environment its workers read (lib/dist/env.ts):
// each case starts a real launcher in a child process with 2 small worker scripts, and checks what the
// user sees and that no worker outlives the job. Every launcher is killed after its test
// (test/support/cli-child.ts), and so is every worker pid a test learned.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { splitLaunchFlags } from '../lib/cli/launch.js';
import { isDistributedEnv, readDistEnv } from '../lib/dist/env.js';
import { threadsPerWorker } from '../lib/dist/launch.js';
import { runCrunet, startCrunet, waitFor, type CliChild } from './support/cli-child.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

/** A worker that prints its pid and environment, then does what its rank's argument says. */
const WORKER = `
const e = process.env;
console.log('pid ' + process.pid + ' rank ' + e.RANK + ' of ' + e.WORLD_SIZE + ' local ' + e.LOCAL_RANK + '/' + e.LOCAL_WORLD_SIZE +
  ' master ' + e.MASTER_ADDR + ':' + e.MASTER_PORT + ' threads ' + e.OMP_NUM_THREADS);
const what = process.argv[2 + Number(e.RANK)] ?? 'ok';
const act = () => {
  if (what === 'exit3') { console.error('rank ' + e.RANK + ' gives up'); process.exit(3); }
  else if (what === 'kill') process.kill(process.pid, 'SIGKILL');
  else if (what === 'spin') for (;;);
};
if (what === 'ok') {}
else if (what === 'leave-child') {
  // A process of its own process group, left behind when the worker ends normally.
  const c = require('child_process').spawn('sleep', ['1000'], { stdio: 'ignore' });
  console.log('child ' + c.pid);
  c.unref();
}
else if (what === 'wait') setInterval(() => {}, 1000);
else if (what === 'stubborn') { process.on('SIGTERM', () => console.log('ignoring SIGTERM')); setInterval(() => {}, 1000); }
// The test says go (a file appears) once it has seen both workers start.
else if (e.GO_FILE) { const t = setInterval(() => { if (require('fs').existsSync(e.GO_FILE)) { clearInterval(t); act(); } }, 20); }
else act();
`;

/** Whether a process runs (a zombie, ended but not yet reaped by its new parent, does not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`still not ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('crunet launch', function () {
  this.timeout(0); // each child has its own deadline (a hang bound, not a speed limit)
  const pids: number[] = [];
  afterEach(() => {
    for (const p of pids.splice(0)) if (alive(p)) process.kill(p, 'SIGKILL');
    removeTestTempDirs();
  });
  let go = '';
  const script = () => {
    const dir = testTempDir('launch');
    go = path.join(dir, 'go');
    const f = path.join(dir, 'worker.js');
    fs.writeFileSync(f, WORKER);
    return f;
  };
  const workerPids = (c: CliChild) => [...c.out().matchAll(/^\[rank\d\]: pid (\d+)/gm)].map((m) => Number(m[1]));
  const start = (flags: string[], actions: string[]) => {
    const f = script();
    return startCrunet(['launch', '--nproc-per-node', '2', ...flags, '--', f, ...actions], { env: { GO_FILE: go }, deadlineMs: 300_000 });
  };
  /** Waits for both workers to print their pids, then lets them act. */
  const started = async (c: CliChild) => {
    await waitFor(c, 'both workers started', () => workerPids(c).length === 2, 300_000);
    pids.push(...workerPids(c));
    fs.writeFileSync(go, '');
    return workerPids(c);
  };

  it("gives each worker torchrun's environment and prefixes its lines with its rank", async () => {
    const r = await start(['--master-port', '29999'], []).done;
    assert.equal(r.code, 0, r.err);
    const threads = threadsPerWorker(2);
    for (const rank of [0, 1]) {
      assert.match(r.out, new RegExp(`^\\[rank${rank}\\]: pid \\d+ rank ${rank} of 2 local ${rank}/2 master 127\\.0\\.0\\.1:29999 threads ${threads}$`, 'm'));
    }
  });

  it('a user OMP_NUM_THREADS is kept; --nnodes and --node-rank number the ranks across machines', async () => {
    const c = startCrunet(['launch', '--nproc-per-node', '2', '--nnodes', '3', '--node-rank', '2', '--master-addr', 'node0.example', '--', script()],
      { env: { OMP_NUM_THREADS: '7' }, deadlineMs: 300_000 });
    const r = await c.done;
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^\[rank4\]: pid \d+ rank 4 of 6 local 0\/2 master node0\.example:29500 threads 7$/m);
    assert.match(r.out, /^\[rank5\]: pid \d+ rank 5 of 6 local 1\/2 master node0\.example:29500 threads 7$/m);
  });

  it('a worker that exits with an error ends the job: the others are stopped, the rank, its code and its last lines named', async () => {
    const c = start([], ['wait', 'exit3']);
    const ws = await started(c);
    const r = await c.done;
    assert.equal(r.code, 3, r.err); // the failed worker's own code
    assert.match(r.err, /crunet launch: the job failed: rank 1 \(local rank 1 on .*, pid \d+\) exited with code 3; then rank 0 was killed by SIGTERM/);
    assert.match(r.err, /rank 1's last 2 lines:\n {2}pid \d+ rank 1 of 2.*\n {2}rank 1 gives up/);
    assert.match(r.err, /^\[rank1\]: rank 1 gives up$/m);
    for (const p of ws) assert.ok(!alive(p), `worker ${p} still runs`);
  });

  it('a worker killed by a signal ends the job, naming the signal', async () => {
    const c = start([], ['kill', 'wait']);
    const ws = await started(c);
    const r = await c.done;
    assert.equal(r.code, 137, r.err); // 128 + SIGKILL, as a shell reports the worker's end
    assert.match(r.err, /the job failed: rank 0 \(.*\) was killed by SIGKILL; then rank 1 was killed by SIGTERM/);
    for (const p of ws) assert.ok(!alive(p), `worker ${p} still runs`);
  });

  it('a worker whose JavaScript thread is stuck past --hang-timeout ends the job', async () => {
    // 10 s: a worker's start on a loaded machine (before its first heartbeat) must not pass for a hang.
    const c = start(['--hang-timeout', '10'], ['wait', 'spin']);
    const ws = await started(c);
    const r = await c.done;
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /the job failed: rank 1 \(.*\) sent no heartbeat for \d+ s \(--hang-timeout 10 s\): its JavaScript thread is stuck/);
    for (const p of ws) assert.ok(!alive(p), `worker ${p} still runs`);
  });

  it('SIGINT to the launcher stops every worker and exits with 130', async () => {
    const c = start([], ['wait', 'wait']);
    const ws = await started(c);
    c.child.kill('SIGINT');
    const r = await c.done;
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /crunet launch: SIGINT: stopping ranks 0, 1/);
    for (const p of ws) assert.ok(!alive(p), `worker ${p} still runs`);
  });

  it('Ctrl-C while a failure stops the workers kills them at once, without the grace period', async () => {
    const c = start([], ['stubborn', 'exit3']);
    const ws = await started(c);
    await waitFor(c, 'rank 0 to ignore SIGTERM', () => /^\[rank0\]: ignoring SIGTERM$/m.test(c.out()), 60_000);
    c.child.kill('SIGINT');
    const r = await c.done;
    // The kill-at-once path says so (a wall-clock bound against the 10 s grace period would flake on a busy machine).
    assert.match(r.err, /crunet launch: SIGINT: killing rank 0 now/);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /the job failed: rank 1 .* exited with code 3; then rank 0 was killed by SIGKILL/);
    for (const p of ws) assert.ok(!alive(p), `worker ${p} still runs`);
  });

  it('workers exit by themselves when their launcher is killed (SIGKILL: it cannot stop them)', async () => {
    const c = start([], ['wait', 'wait']);
    const ws = await started(c);
    c.child.kill('SIGKILL');
    await c.done;
    await until('gone', () => ws.every((p) => !alive(p)));
  });

  it('kills what a worker left running in its process group when the job ends', async () => {
    const r = await start([], ['leave-child', 'ok']).done;
    assert.equal(r.code, 0, r.err);
    const child = Number(/^\[rank0\]: child (\d+)$/m.exec(r.out)?.[1]);
    assert.ok(child > 0, r.out);
    pids.push(child);
    await until('gone', () => !alive(child), 10_000);
  });

  it('a worker whose JavaScript thread spins dies with its launcher (SIGKILL)', async () => {
    const c = start([], ['spin', 'spin']);
    const ws = await started(c);
    await new Promise((r) => setTimeout(r, 500)); // both are in their loops
    c.child.kill('SIGKILL');
    await c.done;
    await until('gone', () => ws.every((p) => !alive(p)), 20_000);
  });

  it('refuses bad launcher flags with usage errors', async () => {
    const cases: [string[], RegExp][] = [
      [['--nproc-per-node', '2', 'x.js'], /expected the launcher's flags, then -- and the script to run/],
      [['--nproc-per-node', '2', '--'], /expected a script after --, but received nothing/],
      [['--nproc-per-node', '0', '--', 'x.js'], /--nproc-per-node: expected an integer in \[1, 1024\], but received '0'/],
      [['--nnodes', '2', '--', 'x.js'], /--nnodes: expected --nproc-per-node N as well/],
      [['--', 'x.js'], /crunet launch: expected --nproc-per-node N \(the workers on this machine\), but received none/],
      [['--nproc-per-node', '1', '--nnodes', '2', '--node-rank', '2', '--', 'x.js'], /--node-rank: expected an integer in \[0, 1\] \(--nnodes 2\), but received '2'/],
      [['--nproc-per-node', '1', '--master-port', '70000', '--', 'x.js'], /--master-port: expected an integer in \[1, 65535\], but received '70000'/],
      [['--nproc-per-node', '1', '--nnodes', '2', '--', 'x.js'], /--master-addr: expected node 0's address with --nnodes 2 \(or \$MASTER_ADDR\), but received none/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCrunet(['launch', ...args], { deadlineMs: 300_000 });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, msg);
    }
  });
});

describe('crunet train --nproc-per-node: the launcher flags', () => {
  it('are taken out of the arguments; the rest go to the workers unchanged', () => {
    const s = splitLaunchFlags(['--epochs', '2', '--nproc-per-node=2', '--master-port', '1234', '--out', 'x', '--', '--nnodes'], {});
    assert.deepEqual(s.launch, { nprocPerNode: 2, masterPort: 1234 });
    assert.deepEqual(s.rest, ['--epochs', '2', '--out', 'x', '--', '--nnodes']);
    assert.deepEqual(splitLaunchFlags(['--epochs', '2'], {}), { rest: ['--epochs', '2'] });
    assert.deepEqual(splitLaunchFlags(['--nproc-per-node', '2'], { MASTER_ADDR: 'h', MASTER_PORT: '4321' }).launch, { nprocPerNode: 2, masterAddr: 'h', masterPort: 4321 });
    assert.throws(() => splitLaunchFlags(['--nproc-per-node'], {}), /--nproc-per-node: expected a value, but received nothing/);
    assert.throws(() => splitLaunchFlags(['--nproc-per-node', '1'], { MASTER_PORT: 'x' }), /MASTER_PORT \(environment\): expected an integer in \[1, 65535\], but received 'x'/);
  });
});

describe('readDistEnv', () => {
  const full = { RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'node0', MASTER_PORT: '29500' };
  it("reads a worker's place in the job", () => {
    assert.deepEqual(readDistEnv(full), { rank: 1, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: 'node0', masterPort: 29500 });
    const { LOCAL_RANK: _l, LOCAL_WORLD_SIZE: _w, ...scheduler } = full;
    assert.deepEqual(readDistEnv(scheduler), { rank: 1, worldSize: 4, localRank: 0, localWorldSize: 1, masterAddr: 'node0', masterPort: 29500 });
  });
  it('names a missing or malformed variable', () => {
    for (const v of ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const) {
      const env: NodeJS.ProcessEnv = { ...full };
      delete env[v];
      assert.throws(() => readDistEnv(env), (e: Error) => e instanceof TypeError && new RegExp(`expected ${v} to be set .*, but it is not set`).test(e.message));
    }
    const bad: [Partial<typeof full>, RegExp][] = [
      [{ RANK: '4' }, /expected RANK to be an integer in \[0, 3\], but received '4'/],
      [{ RANK: '-1' }, /expected RANK to be an integer in \[0, 3\], but received '-1'/],
      [{ WORLD_SIZE: '2.5' }, /expected WORLD_SIZE to be an integer in \[1, 1048576\], but received '2.5'/],
      [{ WORLD_SIZE: '' }, /expected WORLD_SIZE to be an integer .*, but received ''/],
      [{ LOCAL_RANK: '2' }, /expected LOCAL_RANK to be an integer in \[0, 1\], but received '2'/],
      [{ LOCAL_WORLD_SIZE: '5' }, /expected LOCAL_WORLD_SIZE to be an integer in \[1, 4\], but received '5'/],
      [{ MASTER_PORT: '0' }, /expected MASTER_PORT to be an integer in \[1, 65535\], but received '0'/],
      [{ MASTER_ADDR: ' ' }, /expected MASTER_ADDR to be a host name or address, but received an empty string/],
    ];
    for (const [change, msg] of bad) assert.throws(() => readDistEnv({ ...full, ...change }), (e: Error) => e instanceof RangeError && msg.test(e.message));
  });
  it('a job needs RANK and WORLD_SIZE; a world of one without MASTER_ADDR is a plain run', () => {
    assert.equal(isDistributedEnv(full), true);
    assert.equal(isDistributedEnv({ WORLD_SIZE: '4' }), false);
    assert.equal(isDistributedEnv({ WORLD_SIZE: '1' }), false);
    assert.equal(isDistributedEnv({ RANK: '0', WORLD_SIZE: '1' }), false);
    assert.equal(isDistributedEnv({ RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: 'h' }), true);
    assert.equal(isDistributedEnv({ RANK: '0', WORLD_SIZE: '2' }), true); // then readDistEnv names MASTER_ADDR
  });
  it('shares the CPUs among the workers, at least one thread each', () => {
    assert.equal(threadsPerWorker(2, 16), 8);
    assert.equal(threadsPerWorker(3, 16), 5);
    assert.equal(threadsPerWorker(4, 2), 1);
  });
});
