// CUDA device errors that can be checked on any machine, with or without a GPU or the CUDA library:
// a 'cuda' device that cannot be used is an Error naming the precise reason (library not built, not
// loadable, not a crunet library, no driver, no device), never a CPU fall back; CRUNET_CUDA_LIBRARY
// overrides where the library is looked for; the cudnn option and its environment variables are
// checked before any device work. The GPU-side suite is test/gpu (npm run test:gpu).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInfo, compile, devices, GraphBuilder, type CompileOptions } from '../lib/index.js';
import { packageRoot } from '../lib/engine/native.js';

function tinyNet() {
  const g = new GraphBuilder();
  const x = g.input('images', [3, 6, 6]);
  const t = g.relu(g.conv2d(x, { outChannels: 4, kernel: 3, padding: 1, name: 'conv' }));
  return g.build({ outputs: [g.linear(g.globalAvgPool(t), { outFeatures: 2, name: 'fc' })] });
}

/** Runs fn with environment variables set (undefined: unset), restoring them afterwards. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) delete process.env[k];
      else process.env[k] = val;
    }
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}

async function compileError(opts: Partial<CompileOptions>): Promise<Error> {
  try {
    const s = await compile(tinyNet(), { batchSize: 2, ...opts });
    s.dispose();
  } catch (e) {
    return e as Error;
  }
  assert.fail(`compile(${JSON.stringify(opts)}) succeeded`);
}

// The reasons a CUDA device can be unusable on a machine without a GPU, each naming its cause (no library
// installed, lib/engine/platform.ts, gives the package to install).
const PRECISE_REASON =
  /no CUDA backend is installed: install it with 'npm install crunet-cuda-linux-x64@|crunet-cuda-linux-x64 \S+ \(.*\) does not match crunet |cannot load .*libcrunet_cuda\.so: |no CUDA driver \(libcuda\.so\.1 not found|no CUDA device \(cudaGetDeviceCount|the NVIDIA driver supports CUDA/;

describe('CUDA device errors (no GPU needed)', () => {
  const info = buildInfo();
  const usable = info.cudaDevices > 0;

  it('buildInfo() and devices() report the CUDA library and why no CUDA device is listed', function () {
    assert.equal(typeof info.cuda, 'boolean');
    assert.match(info.cudaLibrary, /libcrunet_cuda\.so$/);
    const cuda = devices().filter((d) => d.type === 'cuda');
    assert.equal(cuda.length, info.cudaDevices);
    if (usable) {
      assert.equal(info.cudaUnavailableReason, undefined);
      for (const d of cuda) assert.match(`${d.id} ${d.computeCapability}`, /^cuda:\d+ \d+\.\d+$/);
    } else {
      assert.match(info.cudaUnavailableReason ?? '', PRECISE_REASON);
    }
    if (info.cuda) {
      assert.match(info.cudaBuild ?? '', /^CUDA \d+\.\d+, cuDNN 9\.\d+\.\d+, cuBLAS \d+\.\d+\.\d+/);
      assert.match(info.cudaVersions?.cudnn ?? '', /^9\.\d+\.\d+$/);
    }
  });

  it("compile({device: 'cuda'}) fails with the precise reason, never falling back to the CPU", async function () {
    if (usable) this.skip();  // a GPU is here: test/gpu covers it
    for (const device of ['cuda', 'cuda:0', 'cuda:3']) {
      const e = await compileError({ device });
      assert.match(e.message, new RegExp(`^device '${device}': `));
      assert.match(e.message, PRECISE_REASON);
    }
  });

  it('names the missing driver when the library is built but libcuda.so.1 is absent', async function () {
    if (usable || !info.cuda || fs.existsSync('/usr/lib/x86_64-linux-gnu/libcuda.so.1')) this.skip();
    const e = await compileError({ device: 'cuda' });
    assert.match(e.message, /^device 'cuda': no CUDA driver \(libcuda\.so\.1 not found: .*cannot open shared object file/);
  });

  it('says the library was not built when it is absent', async function () {
    const missing = path.join(packageRoot(), 'build', 'no-such-dir', 'libcrunet_cuda.so');
    // Through CRUNET_CUDA_LIBRARY the message names the variable and the file.
    await withEnv({ CRUNET_CUDA_LIBRARY: missing }, async () => {
      const e = await compileError({ device: 'cuda:0' });
      assert.equal(e.message, `device 'cuda:0': CRUNET_CUDA_LIBRARY=${missing}: no such file`);
      assert.match(buildInfo().cudaUnavailableReason ?? '', /no such file/);
      assert.equal(buildInfo().cuda, false);
    });
    if (!info.cuda) {
      const e = await compileError({ device: 'cuda' });
      // Nothing beside the addon and no crunet-cuda-linux-x64 package (lib/engine/platform.ts).
      assert.match(e.message, /^device 'cuda': no CUDA backend is installed: install it with 'npm install crunet-cuda-linux-x64@\d+\.\d+\.\d+'/);
    }
  });

  it('names a CRUNET_CUDA_LIBRARY that is not a shared library, or not a crunet one', async () => {
    const notElf = path.join(packageRoot(), 'package.json');
    await withEnv({ CRUNET_CUDA_LIBRARY: notElf }, async () => {
      const e = await compileError({ device: 'cuda' });
      assert.match(e.message, new RegExp(`^device 'cuda': cannot load ${notElf.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*(invalid ELF header|file too short)`));
    });
    const addon = path.join(packageRoot(), 'build', 'Release', 'crunet.node');
    if (fs.existsSync(addon)) {
      await withEnv({ CRUNET_CUDA_LIBRARY: addon }, async () => {
        const e = await compileError({ device: 'cuda' });
        assert.match(e.message, /cannot use .*crunet\.node: it has no crunet_cuda_entry_v1 symbol \(not a crunet CUDA backend library\)/);
      });
    }
  });

  it('checks the cudnn option and its environment variables before touching a device', async () => {
    assert.match((await compileError({ device: 'cuda', cudnn: { benchmarkLimit: -1 } })).message, /options\.cudnn\.benchmarkLimit: expected an integer 0\.\.1000/);
    assert.match((await compileError({ device: 'cuda', cudnn: { benchmark: 1 as unknown as boolean } })).message, /options\.cudnn\.benchmark: expected a boolean/);
    assert.match((await compileError({ device: 'cuda', cudnn: { tf32: true } as never })).message, /options\.cudnn: unknown field 'tf32'/);
    assert.match((await compileError({ device: 'cuda', cudnn: { cacheFile: 3 as unknown as string } })).message, /options\.cudnn\.cacheFile: expected a file path/);
    assert.match((await compileError({ device: 'cuda', cudnn: { cacheFile: '' } })).message, /options\.cudnn\.cacheFile: expected a file path/);
    await withEnv({ CRUNET_CUDNN_BENCHMARK: 'maybe' }, async () => {
      assert.match((await compileError({ device: 'cuda' })).message, /CRUNET_CUDNN_BENCHMARK=maybe: expected 1\/0/);
      // The CPU ignores cuDNN settings.
      (await compile(tinyNet(), { batchSize: 2, device: 'cpu' })).dispose();
    });
    await withEnv({ CRUNET_CUDNN_BENCHMARK_LIMIT: 'ten' }, async () => {
      assert.match((await compileError({ device: 'cuda' })).message, /CRUNET_CUDNN_BENCHMARK_LIMIT=ten: expected an integer/);
    });
  });

  it('rejects malformed device strings by name', async () => {
    for (const device of ['cuda:', 'cuda:x', 'CUDA', 'gpu']) {
      assert.equal((await compileError({ device })).message, `device '${device}' is not known; valid devices: 'cpu', 'cuda', 'cuda:N'`);
    }
  });
});
