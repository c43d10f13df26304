// Where the native addon comes from and what to say when it cannot: the prebuilt addon the package ships
// (prebuilds/linux-x64, with the oneDNN, OpenMP and Gloo libraries it needs beside it, found through its
// RUNPATH $ORIGIN), a build from source (build/Release), and the optional CUDA package. The checks are
// pure functions of the facts they are given, so that the tests can inject another platform.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The one prebuilt target (README "Install"). scripts/prebuild.sh makes it; these names must match. */
export const PREBUILT = {
  platform: 'linux',
  arch: 'x64',
  dir: 'prebuilds/linux-x64',
  addon: 'crunet.napi.glibc.node',
  /** The oldest glibc the prebuilt files ask for (their highest GLIBC_ symbol version, readelf). */
  minGlibc: '2.34',
  /** Libraries copied beside the addon; system libraries (libc, libstdc++, libgcc_s) are not. */
  bundled: ['libdnnl.so.2', 'libgomp.so.1', 'libOpenCL.so.1', 'libgloo.so.0', 'libhiredis.so.0.14', 'libibverbs.so.1', 'libnl-route-3.so.200', 'libnl-3.so.200'],
} as const;

/** The optional package with the CUDA backend library (scripts/pack-cuda.sh makes it). */
export const CUDA_PACKAGE = 'crunet-cuda-linux-x64';
export const CUDA_LIBRARY = 'libcrunet_cuda.so';

/** What the prebuilt addon needs at run time besides what it bundles. */
export const PREBUILT_NEEDS = `glibc >= ${PREBUILT.minGlibc} and libstdc++ from GCC 12 or newer (Debian 12, Ubuntu 22.04, Fedora 36 or newer)`;

/** What the CUDA package needs on the machine (it bundles none of it: cuDNN and cuBLAS are over 1 GB). */
export const CUDA_NEEDS =
  'an NVIDIA driver of branch 580 or newer and the CUDA 13 libraries libcublas.so.13 (cuBLAS), libcublasLt.so.13 and ' +
  'libcudnn.so.9 (cuDNN 9) where the dynamic loader finds them (ldconfig or LD_LIBRARY_PATH; e.g. ' +
  "'pip install nvidia-cublas nvidia-cudnn-cu13' and LD_LIBRARY_PATH set to their nvidia/cu13/lib and nvidia/cudnn/lib folders)";

export const BUILD_FROM_SOURCE =
  "build it from source with 'CRUNET_BUILD_FROM_SOURCE=1 npm rebuild crunet' (or 'npm install crunet --build-from-source'), which needs " +
  'g++ (C++17), make, python3 and oneDNN (Debian/Ubuntu: apt-get install g++ make python3 libdnnl-dev)';

export interface PlatformFacts {
  platform: string;
  arch: string;
  /** glibc's version, or undefined when the C library is not glibc (musl: Alpine). */
  glibc: string | undefined;
}

/** This process's platform, architecture and glibc version (from process.report, as Node itself reads it). */
export function platformFacts(): PlatformFacts {
  let glibc: string | undefined;
  if (process.platform === 'linux' && process.report) {
    // The report lists every socket and resolves their peers' names by reverse DNS, which can stall a
    // process with many sockets; the header alone is wanted (as detect-libc, which sharp uses, does).
    // (excludeNetwork is in Node since 20.13; @types/node 20 lacks it.)
    const report = process.report as NodeJS.ProcessReport & { excludeNetwork?: boolean };
    const excludeNetwork = report.excludeNetwork;
    report.excludeNetwork = true;
    try {
      const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
      glibc = header?.glibcVersionRuntime;
    } finally {
      report.excludeNetwork = excludeNetwork;
    }
  }
  return { platform: process.platform, arch: process.arch, glibc };
}

/** Whether version a (dotted numbers) is at least b. */
export function versionAtLeast(a: string, b: string): boolean {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Why the prebuilt addon cannot run on this platform, or undefined when it can. */
export function prebuiltProblem(f: PlatformFacts): string | undefined {
  const target = `${PREBUILT.platform}-${PREBUILT.arch} with ${PREBUILT_NEEDS}`;
  if (f.platform !== PREBUILT.platform || f.arch !== PREBUILT.arch)
    return `crunet ships a prebuilt addon for ${target} only; this is ${f.platform}-${f.arch}`;
  if (f.glibc === undefined)
    return `crunet's prebuilt addon for ${PREBUILT.platform}-${PREBUILT.arch} needs glibc; this system's C library is not glibc (musl, as on Alpine?)`;
  if (!versionAtLeast(f.glibc, PREBUILT.minGlibc))
    return `crunet's prebuilt addon needs ${PREBUILT_NEEDS}; this system has glibc ${f.glibc}`;
  return undefined;
}

/** The bundled libraries missing beside a prebuilt addon (a package copied without them, a broken install). */
export function missingBundled(addonDir: string, exists: (p: string) => boolean = fs.existsSync): string[] {
  return PREBUILT.bundled.filter((lib) => !exists(path.join(addonDir, lib))).map((lib) => path.join(addonDir, lib));
}

/** Whether crunet runs from a source checkout (the TypeScript sources are there) rather than an installed package. */
export function isSourceCheckout(root: string): boolean {
  return fs.existsSync(path.join(root, 'lib', 'index.ts'));
}

/** Whether a resolved addon path is the package's prebuilt one (not a build from source in build/). */
export function isPrebuilt(root: string, addonPath: string): boolean {
  return path.relative(path.join(root, 'prebuilds'), addonPath).split(path.sep)[0] !== '..';
}

/**
 * The error for an addon that is not there or does not load: what was found (platform, glibc, the loader's
 * first line), what the prebuilt addon needs and how to build from source. `version` is crunet's.
 */
export function addonLoadMessage(o: { root: string; version: string; facts: PlatformFacts; addonPath?: string; loadError?: string }): string {
  const where = `crunet ${o.version}: the native addon`;
  const problem = prebuiltProblem(o.facts);
  if (!o.addonPath) {
    // No build/Release and no prebuilds/<platform>-<arch> folder that fits.
    if (isSourceCheckout(o.root))
      return `${where} is not built in this source checkout (${o.root}): run 'bash scripts/setup.sh' ` +
        `(or 'npm run build:native'; it needs cmake, g++ and Debian's libdnnl-dev).`;
    return `${where} is not built for this platform: ${problem ?? `no prebuilt addon found in ${path.join(o.root, PREBUILT.dir)}`}. ` +
      `To use crunet here, ${BUILD_FROM_SOURCE}.`;
  }
  if (isPrebuilt(o.root, o.addonPath)) {
    if (problem) return `${where} cannot run here: ${problem}. To use crunet here, ${BUILD_FROM_SOURCE}.`;
    const missing = missingBundled(path.dirname(o.addonPath));
    if (missing.length)
      return `${where} is incomplete: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing beside ${o.addonPath}; ` +
        `reinstall the package (npm install crunet@${o.version}), or ${BUILD_FROM_SOURCE}.`;
    return `${where} ${o.addonPath} could not be loaded (${o.loadError ?? 'unknown error'}). It needs ${PREBUILT_NEEDS}` +
      `${o.facts.glibc ? ` (this system: glibc ${o.facts.glibc})` : ''}; otherwise ${BUILD_FROM_SOURCE}.`;
  }
  return `${where} ${o.addonPath} (built from source) could not be loaded (${o.loadError ?? 'unknown error'}). ` +
    `Rebuild it: in a source checkout 'npm run build:native' (cmake-js), in an installed package 'npm rebuild crunet --build-from-source'.`;
}

export interface CudaPackageFacts {
  /** crunet's version. */
  version: string;
  /** The CUDA package's folder and version, when it is installed. */
  pkg?: { dir: string; version: string };
  /** Whether a CUDA library built from source sits beside the addon (build/Release/libcrunet_cuda.so). */
  besideAddon: boolean;
  /** CRUNET_CUDA_LIBRARY, when the user set it. */
  env?: string;
  /** Whether crunet runs from a source checkout (then building the library is advised too). */
  checkout?: boolean;
}

/**
 * Where the addon should load the CUDA library from (passed to it as CRUNET_CUDA_LIBRARY), or why there
 * is none. In order: CRUNET_CUDA_LIBRARY, a library built from source beside the addon (both the addon's
 * own lookup: `library` and `problem` undefined), the CUDA package of crunet's version.
 */
export function cudaLibraryChoice(f: CudaPackageFacts): { library?: string; problem?: string } {
  if (f.env) return {};
  // A library built from source beside the addon is the addon's own build: it wins.
  if (f.besideAddon) return {};
  if (f.pkg) {
    if (f.pkg.version !== f.version)
      return {
        problem: `${CUDA_PACKAGE} ${f.pkg.version} (${f.pkg.dir}) does not match crunet ${f.version}: ` +
          `install the same version of both (npm install ${CUDA_PACKAGE}@${f.version})`,
      };
    return { library: path.join(f.pkg.dir, CUDA_LIBRARY) };
  }
  return {
    problem: `no CUDA backend is installed: install it with 'npm install ${CUDA_PACKAGE}@${f.version}' ` +
      `(linux-x64; it needs ${CUDA_NEEDS})` +
      (f.checkout ? `, or build it in this source checkout: 'bash scripts/install-cuda.sh' then 'npm run build:native'` : ''),
  };
}

/** The CUDA package's folder and version as seen from the crunet package root, if it is installed. */
export function findCudaPackage(root: string): { dir: string; version: string } | undefined {
  let pj: string;
  try {
    pj = require.resolve(`${CUDA_PACKAGE}/package.json`, { paths: [root] });
  } catch {
    return undefined;
  }
  return { dir: path.dirname(pj), version: JSON.parse(fs.readFileSync(pj, 'utf8')).version };
}
