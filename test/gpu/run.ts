// npm run test:gpu: the CUDA parity suite (test/gpu/*.test.ts, mocha with test/gpu/mocharc.json) when a
// CUDA device can be used; otherwise one line, "test:gpu: skipped: ...", and exit 0. A machine that has
// an NVIDIA device node but no CUDA library built is a failure, not a skip: the build is incomplete.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInfo } from '../../lib/index.js';

const info = buildInfo();
if (info.cudaDevices === 0) {
  const gpuHere = fs.existsSync('/dev/nvidiactl') || fs.existsSync('/dev/nvidia0');
  if (gpuHere && !info.cuda) {
    console.error(`test:gpu: FAILED: this machine has an NVIDIA device but the CUDA backend is not built: ${info.cudaUnavailableReason}`);
    process.exit(1);
  }
  console.log(`test:gpu: skipped: no usable CUDA device: ${info.cudaUnavailableReason}`);
  process.exit(0);
}
console.log(`test:gpu: ${info.cudaDevices} CUDA device(s); ${info.cudaBuild}; runtime versions ${JSON.stringify(info.cudaVersions)}`);
const root = path.resolve(__dirname, '..', '..');
const mocha = require.resolve('mocha/bin/mocha.js', { paths: [root] });
const r = spawnSync(process.execPath, [mocha, '--config', path.join(root, 'test', 'gpu', 'mocharc.json')], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
