import * as fs from 'node:fs';
import * as path from 'node:path';
import { native, packageRoot, type BuildInfo, type DeviceInfo } from './native.js';

/** crunet's version, from package.json. */
export function version(): string {
  return JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version;
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
