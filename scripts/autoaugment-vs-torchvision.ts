// Checks lib/data/autoaugment.ts op by op against torchvision's own (_apply_op on uint8 tensors, nearest
// interpolation, fill 0): random grey and RGB images, full-range and low-contrast (a few levels, where
// float32 rounding decides AutoContrast's top value), every op at every RandAugment and TrivialAugment
// magnitude of both signs. Needs the PyTorch venv (~/.cache/crunet/torch-venv, with torchvision).
//   npx tsx scripts/autoaugment-vs-torchvision.ts [python]
// Prints, per op, how many of the images match exactly and the largest byte difference seen.
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyOp, BINS, magnitude, OPS, SIGNED } from '../lib/data/autoaugment.js';

const python = process.argv[2] ?? path.join(os.homedir(), '.cache/crunet/torch-venv/bin/python');
let s = 12345;
const byte = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % 256;
const cases: { op: string; kind: string; mag: number; c: number; h: number; w: number; img: number[]; ours: number[] }[] = [];
for (const [c, h, w] of [[1, 28, 28], [3, 32, 32]] as const) {
  for (const op of OPS) {
    for (const wide of [false, true]) {
      for (let bin = 0; bin < BINS; bin += 5) {
        for (const sign of SIGNED.has(op) ? [1, -1] : [1]) {
          // Full range, and low contrast: 2 to 17 levels from a random base.
          for (const levels of [256, 2 + (byte() % 16)]) {
            const base = byte() % (257 - levels);
            const img = Array.from({ length: c * h * w }, () => base + (byte() % levels));
            const mag = sign * magnitude(op, bin, h, w, wide);
            const px = Float32Array.from(img);
            applyOp(op, mag, px, 0, c, h, w, new Float32Array(c * h * w));
            cases.push({ op, kind: levels === 256 ? 'full range' : 'low contrast', mag, c, h, w, img, ours: [...px] });
          }
        }
      }
    }
  }
}
const code = `
import json, sys, torch
from torchvision.transforms.autoaugment import _apply_op
from torchvision.transforms import InterpolationMode
out = {}
for k in json.load(sys.stdin):
    img = torch.tensor(k['img'], dtype=torch.uint8).reshape(k['c'], k['h'], k['w'])
    ref = _apply_op(img, k['op'], float(k['mag']), InterpolationMode.NEAREST, None).reshape(-1).tolist()
    d = max(abs(a - b) for a, b in zip(ref, k['ours']))
    key = (k['op'], k['kind'])
    n, same, m = out.get(key, (0, 0, 0))
    out[key] = (n + 1, same + (d == 0), max(m, d))
for (op, kind), (n, same, d) in out.items():
    print(f'{op:13s} {kind:12s} {same:3d}/{n:3d} images identical, largest byte difference {d:.0f}')
`;
const r = spawnSync(python, ['-c', code], { input: JSON.stringify(cases), encoding: 'utf8', maxBuffer: 1 << 28 });
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
process.exit(r.status ?? 1);
