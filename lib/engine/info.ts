import { native, packageRoot, packageVersion, type BuildInfo, type DeviceInfo } from './native.js';

/** crunet's version, from package.json. */
export function version(): string {
  return packageVersion(packageRoot());
}

/** How the addon was built: compiler, oneDNN version and the ISA it dispatches to, OpenMP threads. */
export function buildInfo(): BuildInfo {
  return native().buildInfo();
}

/** The devices this build can use. */
export function devices(): DeviceInfo[] {
  return native().devices();
}

/** Threads for CPU kernels (OpenMP on the engine thread). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, but received ${n}`);
  native().setNumThreads(n);
}
