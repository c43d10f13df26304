// Where the addon comes from and what a user is told when it cannot run (lib/engine/platform.ts), with
// injected platforms: another OS or CPU, musl, an old glibc, a bundled library missing, the CUDA package
// absent or of another version. scripts/check-package.sh meets the same messages from an installed
// package; this file covers the platforms this machine is not.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  addonLoadMessage, cudaLibraryChoice, findCudaPackage, isPrebuilt, missingBundled, platformFacts, PREBUILT, prebuiltProblem, versionAtLeast,
} from '../lib/engine/platform.js';
import { node, ROOT } from './support/spawn.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

const linux = { platform: 'linux', arch: 'x64', glibc: '2.36' };

describe('platform: the prebuilt addon and what to install', () => {
  afterEach(removeTestTempDirs);

  it('reads this machine as linux-x64 with glibc (the CI machine the package is made on)', function () {
    const f = platformFacts();
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    assert.match(f.glibc ?? 'none', /^\d+\.\d+/);
    assert.equal(prebuiltProblem(f), undefined);
  });

  it('reads the report without its network part (reverse DNS can stall it) and restores the setting', function () {
    if (process.platform !== 'linux' || !process.report) this.skip();
    const report = process.report as NodeJS.ProcessReport & { excludeNetwork: boolean };
    const getReport = report.getReport;
    const seen: boolean[] = [];
    report.getReport = (...args) => {
      seen.push(report.excludeNetwork);
      return getReport.apply(report, args);
    };
    try {
      for (const before of [false, true]) {
        report.excludeNetwork = before;
        assert.match(platformFacts().glibc ?? 'none', /^\d+\.\d+/);
        assert.equal(report.excludeNetwork, before);
      }
    } finally {
      report.getReport = getReport;
      report.excludeNetwork = false;
    }
    assert.deepEqual(seen, [true, true]);
  });

  it('compares glibc versions numerically', () => {
    assert.ok(versionAtLeast('2.34', '2.34'));
    assert.ok(versionAtLeast('2.100', '2.34'));
    assert.ok(!versionAtLeast('2.9', '2.34'));
    assert.ok(!versionAtLeast('1.99', '2.34'));
    assert.ok(versionAtLeast('3', '2.34'));
  });

  it('names the platform found and what the prebuilt addon needs: macOS, arm64, musl, an old glibc', () => {
    assert.match(prebuiltProblem({ platform: 'darwin', arch: 'arm64', glibc: undefined })!,
      /prebuilt addon for linux-x64 with glibc >= 2\.34 .* only; this is darwin-arm64/);
    assert.match(prebuiltProblem({ platform: 'linux', arch: 'arm64', glibc: '2.36' })!, /this is linux-arm64/);
    assert.match(prebuiltProblem({ platform: 'win32', arch: 'x64', glibc: undefined })!, /this is win32-x64/);
    assert.match(prebuiltProblem({ platform: 'linux', arch: 'x64', glibc: undefined })!, /needs glibc; this system's C library is not glibc \(musl/);
    assert.match(prebuiltProblem({ platform: 'linux', arch: 'x64', glibc: '2.31' })!, /needs glibc >= 2\.34 .*; this system has glibc 2\.31/);
    assert.equal(prebuiltProblem(linux), undefined);
  });

  it('says how to build from source when no addon fits (installed package), naming the platform and the tools', () => {
    const root = testTempDir('pkg');
    const msg = addonLoadMessage({ root, version: '9.8.7', facts: { platform: 'darwin', arch: 'arm64', glibc: undefined } });
    assert.match(msg, /^crunet 9\.8\.7: the native addon is not built for this platform: .*this is darwin-arm64\./);
    assert.match(msg, /'CRUNET_BUILD_FROM_SOURCE=1 npm rebuild crunet' \(or 'npm install crunet --build-from-source'\).*g\+\+ \(C\+\+17\), make, python3 and oneDNN .*libdnnl-dev/);
    // In a source checkout the advice is the checkout's own set-up.
    fs.mkdirSync(path.join(root, 'lib'));
    fs.writeFileSync(path.join(root, 'lib', 'index.ts'), '');
    assert.match(addonLoadMessage({ root, version: '9.8.7', facts: linux }), /not built in this source checkout .*bash scripts\/setup\.sh/);
  });

  it('refuses a prebuilt addon whose bundled libraries are missing, naming each', () => {
    const root = testTempDir('pkg');
    const dir = path.join(root, PREBUILT.dir);
    fs.mkdirSync(dir, { recursive: true });
    const addon = path.join(dir, PREBUILT.addon);
    fs.writeFileSync(addon, '');
    fs.writeFileSync(path.join(dir, 'libgomp.so.1'), '');
    assert.ok(isPrebuilt(root, addon));
    assert.ok(!isPrebuilt(root, path.join(root, 'build', 'Release', 'crunet.node')));
    assert.deepEqual(missingBundled(dir), PREBUILT.bundled.filter((l) => l !== 'libgomp.so.1').map((l) => path.join(dir, l)));
    const msg = addonLoadMessage({ root, version: '1.2.3', facts: linux, addonPath: addon });
    assert.match(msg, /is incomplete: .*libdnnl\.so\.2, .*libOpenCL\.so\.1, .*libgloo\.so\.0, .* are missing beside .*crunet\.napi\.glibc\.node; reinstall the package \(npm install crunet@1\.2\.3\)/);
    // On another platform the platform is the reason, not the files.
    assert.match(addonLoadMessage({ root, version: '1.2.3', facts: { ...linux, glibc: undefined }, addonPath: addon }), /cannot run here: .*not glibc/);
  });

  it("adds what the prebuilt addon needs to the loader's error", () => {
    const root = testTempDir('pkg');
    const addon = path.join(root, PREBUILT.dir, PREBUILT.addon);
    for (const lib of PREBUILT.bundled) fs.mkdirSync(path.join(root, PREBUILT.dir, lib), { recursive: true });
    const msg = addonLoadMessage({ root, version: '1.2.3', facts: linux, addonPath: addon, loadError: "version `GLIBCXX_3.4.30' not found" });
    assert.match(msg, /could not be loaded \(version `GLIBCXX_3\.4\.30' not found\)\. It needs glibc >= 2\.34 and libstdc\+\+ from GCC 12 .*\(this system: glibc 2\.36\)/);
  });

  it('chooses the CUDA library: the package of the same version, refuses another version naming both, says what to install', () => {
    const pkg = { dir: '/x/node_modules/crunet-cuda-linux-x64', version: '0.1.0' };
    assert.deepEqual(cudaLibraryChoice({ version: '0.1.0', pkg, besideAddon: false }), { library: `${pkg.dir}/libcrunet_cuda.so` });
    const other = cudaLibraryChoice({ version: '0.2.0', pkg, besideAddon: false });
    assert.equal(other.library, undefined);
    assert.match(other.problem!, /^crunet-cuda-linux-x64 0\.1\.0 \(\/x\/node_modules\/crunet-cuda-linux-x64\) does not match crunet 0\.2\.0: .*npm install crunet-cuda-linux-x64@0\.2\.0/);
    const none = cudaLibraryChoice({ version: '0.2.0', besideAddon: false });
    assert.match(none.problem!, /^no CUDA backend is installed: install it with 'npm install crunet-cuda-linux-x64@0\.2\.0' .*libcudnn\.so\.9/);
    assert.doesNotMatch(none.problem!, /scripts\/|build:native/, 'an installed package has no scripts to run');
    assert.match(cudaLibraryChoice({ version: '0.2.0', besideAddon: false, checkout: true }).problem!, /scripts\/install-cuda\.sh/);
    // A library built from source beside the addon, or one the user names, is the addon's own business (and wins).
    assert.deepEqual(cudaLibraryChoice({ version: '0.2.0', besideAddon: true }), {});
    assert.deepEqual(cudaLibraryChoice({ version: '0.2.0', pkg, besideAddon: true }), {});
    assert.deepEqual(cudaLibraryChoice({ version: '0.2.0', pkg, besideAddon: false, env: '/my/lib.so' }), {});
  });

  it("an addon with no CUDA library beside it and no CUDA package: 'cuda' names the package, after the options are checked", function () {
    // In a child process, so that native() loads a copy of the addon alone in a folder (CRUNET_ADDON).
    const built = path.join(ROOT, 'build', 'Release', 'crunet.node');
    if (!fs.existsSync(built)) this.skip();
    const dir = testTempDir('addon');
    fs.copyFileSync(built, path.join(dir, 'crunet.node'));
    const script = `
      const { GraphBuilder, compile, buildInfo } = require('./lib/index.ts');
      const g = new GraphBuilder();
      const x = g.input('images', [1, 4, 4]);
      const net = g.build({ outputs: [g.linear(g.globalAvgPool(x), { outFeatures: 2 })] });
      (async () => {
        const out = [];
        for (const o of [{ device: 'cuda:1' }, { device: 'cuda', cudnn: { benchmarkLimit: -1 } }, { device: 'cuda:' }])
          await compile(net, { batchSize: 1, ...o }).then(() => out.push('compiled'), (e) => out.push(e.message));
        out.push(buildInfo().cudaUnavailableReason, String(buildInfo().cuda));
        console.log(JSON.stringify(out));
      })();`;
    const r = node(['-r', 'tsx/cjs', '-e', script], { CRUNET_ADDON: path.join(dir, 'crunet.node'), CRUNET_CUDA_LIBRARY: '' });
    assert.equal(r.code, 0, r.err);
    const [cuda1, badOption, malformed, reason, cuda] = JSON.parse(r.out) as string[];
    assert.match(cuda1!, /^device 'cuda:1': no CUDA backend is installed: install it with 'npm install crunet-cuda-linux-x64@\d+\.\d+\.\d+' \(linux-x64; it needs .*libcudnn\.so\.9/);
    assert.match(cuda1!, /bash scripts\/install-cuda\.sh/, 'in a source checkout, building it is advised too');
    assert.match(badOption!, /options\.cudnn\.benchmarkLimit: expected an integer/);
    assert.match(malformed!, /device 'cuda:' is not known/);
    assert.match(reason!, /^no CUDA backend is installed/);
    assert.equal(cuda, 'false');
  });

  it('finds the CUDA package installed beside crunet', () => {
    const root = testTempDir('app');
    const crunet = path.join(root, 'node_modules', 'crunet');
    const cuda = path.join(root, 'node_modules', 'crunet-cuda-linux-x64');
    fs.mkdirSync(crunet, { recursive: true });
    assert.equal(findCudaPackage(crunet), undefined);
    fs.mkdirSync(cuda);
    fs.writeFileSync(path.join(cuda, 'package.json'), JSON.stringify({ name: 'crunet-cuda-linux-x64', version: '4.5.6' }));
    assert.deepEqual(findCudaPackage(crunet), { dir: cuda, version: '4.5.6' });
  });
});
