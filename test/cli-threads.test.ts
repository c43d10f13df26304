import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { availableCpus, cgroupCpuQuota } from '../lib/cli/threads.js';
import { setOpenMPWaitPolicy } from '../lib/engine/native.js';

describe('cli: CPU threads', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-cgroup-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  const write = (f: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  };

  it('reads a cgroup CPU quota (v2 cpu.max, else v1 cfs files) and rounds it down, to at least 1 CPU', () => {
    assert.equal(cgroupCpuQuota(root), undefined);
    assert.equal(availableCpus(root), os.availableParallelism());
    write('cpu/cpu.cfs_quota_us', '250000\n');
    write('cpu/cpu.cfs_period_us', '100000\n');
    assert.equal(cgroupCpuQuota(root), 2.5);
    write('cpu.max', 'max 100000\n'); // v2 without a limit: then the v1 files decide
    assert.equal(cgroupCpuQuota(root), 2.5);
    write('cpu.max', '50000 100000\n');
    assert.equal(cgroupCpuQuota(root), 0.5);
    assert.equal(availableCpus(root), 1, 'half a CPU still runs one thread');
    write('cpu.max', '150000 100000\n');
    assert.equal(availableCpus(root), Math.min(1, os.availableParallelism()));
  });

  it('sets OpenMP\'s passive wait policy unless the user chose a policy or a spin count', () => {
    const env: NodeJS.ProcessEnv = {};
    const undo = setOpenMPWaitPolicy(env);
    assert.equal(env.OMP_WAIT_POLICY, 'passive');
    undo(); // after the addon loaded: child processes get the user's environment
    assert.deepEqual(env, {});
    const active: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: 'active' };
    setOpenMPWaitPolicy(active);
    assert.equal(active.OMP_WAIT_POLICY, 'active');
    const spin: NodeJS.ProcessEnv = { GOMP_SPINCOUNT: '1000' };
    setOpenMPWaitPolicy(spin);
    assert.equal(spin.OMP_WAIT_POLICY, undefined);
  });
});
