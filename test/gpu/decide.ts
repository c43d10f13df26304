// Whether `npm run test:gpu` runs the CUDA suite, skips it or fails, as a pure function of what was probed
// (so the host suite can test it: test/gpu-decide.test.ts). Skipping is for machines with no NVIDIA device
// at all; a device that is there but that the CUDA backend cannot use is a failure, or a broken driver or
// an incomplete build would pass CI silently.

export interface GpuProbe {
  /** /dev/nvidia* entries found. */
  deviceNodes: string[];
  /** Where the driver's libcuda.so.1 was found, or null. */
  libcuda: string | null;
  /** nvidia-smi -L's first line when it ran and succeeded, or null when it is absent or failed. */
  nvidiaSmi: string | null;
  /** From buildInfo(): whether the CUDA backend library is built, how many devices it can use, and why none. */
  cudaBuilt: boolean;
  cudaDevices: number;
  cudaUnavailableReason: string;
}

export type GpuDecision = { action: 'run' } | { action: 'skip'; message: string } | { action: 'fail'; message: string };

export function decide(p: GpuProbe): GpuDecision {
  if (p.cudaDevices > 0) return { action: 'run' };
  const evidence = [
    p.deviceNodes.length ? `device nodes ${p.deviceNodes.join(', ')}` : '',
    p.libcuda ? `the driver library ${p.libcuda}` : '',
    p.nvidiaSmi ? `nvidia-smi lists "${p.nvidiaSmi}"` : '',
  ].filter(Boolean);
  if (evidence.length === 0) {
    return { action: 'skip', message: `test:gpu: skipped: no NVIDIA device (no /dev/nvidia*, no libcuda.so.1, no nvidia-smi): ${p.cudaUnavailableReason}` };
  }
  const why = p.cudaBuilt ? `the CUDA backend cannot use it: ${p.cudaUnavailableReason}` : `the CUDA backend is not built: ${p.cudaUnavailableReason}`;
  return { action: 'fail', message: `test:gpu: FAILED: this machine has an NVIDIA device (${evidence.join('; ')}) but ${why}` };
}
