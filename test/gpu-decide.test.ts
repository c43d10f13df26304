// test/gpu/run.ts's decision (run, skip or fail) from what it probed; runs on the host, no GPU needed.
import { strict as assert } from 'node:assert';
import { decide, type GpuProbe } from './gpu/decide.js';

const NOTHING: GpuProbe = {
  deviceNodes: [], libcuda: null, nvidiaSmi: null, cudaBuilt: true, cudaDevices: 0, cudaUnavailableReason: 'no CUDA driver (libcuda.so.1 not found)',
};

describe('test:gpu decides run, skip or fail from the probe', () => {
  it('runs when the backend sees a device', () => {
    assert.deepEqual(decide({ ...NOTHING, deviceNodes: ['/dev/nvidia0'], cudaDevices: 1, cudaUnavailableReason: '' }), { action: 'run' });
  });

  it('skips only when there is no NVIDIA device node, driver library or nvidia-smi', () => {
    const d = decide(NOTHING);
    assert.equal(d.action, 'skip');
    assert.match((d as { message: string }).message, /^test:gpu: skipped: no NVIDIA device .*no CUDA driver/);
    assert.equal(decide({ ...NOTHING, cudaBuilt: false }).action, 'skip');
  });

  const cases: [string, Partial<GpuProbe>, RegExp][] = [
    ['a device node', { deviceNodes: ['/dev/nvidiactl', '/dev/nvidia0'] }, /device nodes \/dev\/nvidiactl, \/dev\/nvidia0/],
    ['the driver library alone', { libcuda: '/usr/lib/x86_64-linux-gnu/libcuda.so.1' }, /the driver library \/usr\/lib\/x86_64-linux-gnu\/libcuda\.so\.1/],
    ['nvidia-smi alone', { nvidiaSmi: 'GPU 0: NVIDIA H200 (UUID: GPU-1)' }, /nvidia-smi lists "GPU 0: NVIDIA H200/],
  ];
  for (const [what, seen, named] of cases) {
    it(`fails, naming the evidence and the reason, when ${what} is there but the backend sees no device`, () => {
      const usable = decide({ ...NOTHING, ...seen, cudaUnavailableReason: 'cuInit failed: CUDA_ERROR_NO_DEVICE' });
      assert.equal(usable.action, 'fail');
      assert.match((usable as { message: string }).message, named);
      assert.match((usable as { message: string }).message, /the CUDA backend cannot use it: cuInit failed: CUDA_ERROR_NO_DEVICE/);
      const unbuilt = decide({ ...NOTHING, ...seen, cudaBuilt: false, cudaUnavailableReason: 'libcrunet_cuda.so is not built' });
      assert.equal(unbuilt.action, 'fail');
      assert.match((unbuilt as { message: string }).message, /the CUDA backend is not built: libcrunet_cuda\.so is not built/);
    });
  }
});
