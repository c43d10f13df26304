// npm run test:gpu: the CUDA parity suite (test/gpu/*.test.ts, mocha with test/gpu/mocharc.json) when a
// CUDA device can be used. With no NVIDIA device at all it prints one line, "test:gpu: skipped: ...", and
// exits 0; an NVIDIA device that the backend cannot use is a failure naming why (decide.ts).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInfo } from '../../lib/index.js';
import { decide, type GpuProbe } from './decide.js';

/** The driver's libcuda.so.1 as the dynamic loader's cache lists it (ldconfig -p), or null. */
function findLibcuda(): string | null {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 10_000 });
  const line = r.status === 0 ? r.stdout.split('\n').find((l) => /\blibcuda\.so\.1\b/.test(l)) : undefined;
  return line ? line.split('=>').pop()!.trim() : null;
}

function nvidiaSmi(): string | null {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim().split('\n')[0]! : null;
}

const info = buildInfo();
const probe: GpuProbe = {
  deviceNodes: fs.readdirSync('/dev').filter((f) => f.startsWith('nvidia')).map((f) => `/dev/${f}`),
  libcuda: findLibcuda(),
  nvidiaSmi: nvidiaSmi(),
  cudaBuilt: info.cuda,
  cudaDevices: info.cudaDevices,
  cudaUnavailableReason: info.cudaUnavailableReason ?? '',
};
const decision = decide(probe);
if (decision.action === 'skip') {
  console.log(decision.message);
  process.exit(0);
}
if (decision.action === 'fail') {
  console.error(decision.message);
  process.exit(1);
}
console.log(`test:gpu: ${info.cudaDevices} CUDA device(s); ${info.cudaBuild}; runtime versions ${JSON.stringify(info.cudaVersions)}`);
const root = path.resolve(__dirname, '..', '..');
const mocha = require.resolve('mocha/bin/mocha.js', { paths: [root] });
// The whole suite takes minutes on a GPU; an hour means it hangs.
const r = spawnSync(process.execPath, [mocha, '--config', path.join(root, 'test', 'gpu', 'mocharc.json')], {
  cwd: root,
  stdio: 'inherit',
  timeout: 3600_000,
  killSignal: 'SIGKILL',
});
if (r.error) console.error(`test:gpu: the suite did not finish: ${r.error.message}`);
process.exit(r.status ?? 1);
